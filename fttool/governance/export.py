"""`fttool export`: the trained model of a verified run, ready to publish, with its model card and manifest.

The export is the LoRA adapter as trained, or (`--merge`) the base model with the adapter merged into
its weights (peft `merge_and_unload`); a full fine-tune is already a whole model. README.md is the
run's model card (fttool.report.model_card, from report.json and signoff.json: the sign-offs, their keys'
fingerprints and waivers); signoff.json travels with it, and manifest.json gives the sha256 of every
exported file with the run digest and the digest of the report they come from, so a published model can
be traced to the audited run.

Refused: a run whose `fttool verify` fails (its report no longer describes it; with allowed signers, as
`fttool verify --allowed-signers` checks it), and a run whose report policy failed unless a sign-off of the run
as it is, signed by a key the allowed signers file lists, waived each failing rule (an unsigned waiver is
anyone's who can write signoff.json: it is shown, never counted), and each rule the report's own policy file waived
(a name in a file the recipe chose, signed by no one). Only the model files the
lineage lists are exported. A merge loads the base model and its settings (`trust_remote_code`,
revision) from plan.json, which verify checked, never from report.json, and a local base only when its
files still have the digest the lineage recorded. Digests are not secret, so a base model's own code
(trust_remote_code) runs only when the command line consents (--trust-remote-code). An export into the
run directory goes under export/, where verify checks it against its manifest, and holds the run's lock.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from fttool.governance.approvals import given_signoffs
from fttool.governance.evidence import (
    EXPORT_CARD,
    EXPORT_MANIFEST,
    MODEL_DIR,
    current_run_digest,
    read_report,
    recipe_dir_of,
    verify,
)
from fttool.governance.signoff import SignoffRefused, require_policy_passed_or_waived
from fttool.pipeline.digest import files_under, sha256_file, sha256_path
from fttool.pipeline.errors import RunError
from fttool.pipeline.layout import EXPORT, SIGNOFFS, RunLayout, RunLock
from fttool.report.model_card import render_model_card
from fttool.training.model_identity import hub_cache_folder
from fttool.training.model_ref import is_demo_reference, is_local_model

MANIFEST_FILE = EXPORT_MANIFEST  # verify checks an export inside the run directory against it
CARD_FILE = EXPORT_CARD  # where the Hugging Face hub looks for a model card


class ExportError(Exception):
    """The run cannot be exported; the message says why and what to do."""


def _train_params(run_dir: Path) -> dict:
    """The train stage's parameters from plan.json (which verify checked)."""
    plan = json.loads(RunLayout(run_dir).plan.read_text(encoding="utf-8"))
    for stage in plan["stages"]:
        if stage["name"] == "train":
            return stage["params"]
    raise ExportError(f"{run_dir}: plan.json has no train stage, so there is no model to export")


def _checked_base(run_dir: Path, report: dict, model_params: dict, recipe_dir: Path) -> None:
    """ExportError unless a local base model still has the digest the run's lineage recorded for it."""
    base = model_params["base"]
    if not is_local_model(base):
        return
    recorded = {a["path"]: a["sha256"] for a in report["lineage"]["artifacts"] if a["kind"] == "source"}
    path = (recipe_dir / Path(base).expanduser()).resolve()
    if base not in recorded:
        raise ExportError(f"{run_dir}: the base model {base} is not among the run's sources; it cannot be checked")
    if not path.exists() or sha256_path(path) != recorded[base]:
        raise ExportError(f"{path}: the base model is missing or differs from the one the run trained on (sha256 in "
                          "the lineage); pass --recipe-dir where the recipe's folder is now, or restore the base")


def _require_consent_to_run_code(run_dir: Path, trust_remote_code: bool) -> None:
    """ExportError when the base model runs its own code and the person exporting did not say it may.

    Whoever can write the run directory can rewrite plan.json and every digest (they are not secret), so the run
    cannot vouch for the directory plan.json names; only the command line can consent to running its code.
    """
    model = _train_params(run_dir)["model"]
    if model.get("trust_remote_code") and not trust_remote_code:
        raise ExportError(f"{run_dir}: the base model {model['base']} runs its own code (trust_remote_code in "
                          "plan.json); --merge loads it only with --trust-remote-code, given once you have checked "
                          "that model's code")


def _merge(run_dir: Path, report: dict, out: Path, recipe_dir: Path) -> None:
    from peft import PeftModel

    from fttool.training.modeling import load_causal_lm, load_tokenizer, resolve_base_model
    from fttool.training.quiet import quiet_libraries

    quiet_libraries()
    model_params = _train_params(run_dir)["model"]
    _checked_base(run_dir, report, model_params, recipe_dir)
    with tempfile.TemporaryDirectory() as scratch:
        base = load_causal_lm(resolve_base_model(model_params, Path(scratch), recipe_dir), model_params)
        merged = PeftModel.from_pretrained(base, run_dir / MODEL_DIR).merge_and_unload()
        merged.save_pretrained(out)
    load_tokenizer(str(run_dir / MODEL_DIR), model_params).save_pretrained(out)


def _copy_model(run_dir: Path, report: dict, out: Path) -> None:
    """Copy the model files the lineage lists, and nothing else that may sit in model/."""
    for artifact in report["lineage"]["artifacts"]:
        if artifact["kind"] == "artifact" and artifact["path"].startswith(MODEL_DIR + "/"):
            target = out / artifact["path"][len(MODEL_DIR) + 1:]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run_dir / artifact["path"], target)


def _checked_report(run_dir: Path, allowed_signers: Path | None) -> dict:
    problems = verify(run_dir, allowed_signers=allowed_signers)
    if problems:
        command = "fttool verify" + (f" --allowed-signers {allowed_signers}" if allowed_signers else "")
        raise ExportError(f"{run_dir} does not verify, so its report no longer describes it: "
                          + "; ".join(map(str, problems)) + f". Export a run that passes {command}")
    report = read_report(run_dir)
    try:
        require_policy_passed_or_waived(run_dir, report, allowed_signers)
    except SignoffRefused as exc:
        raise ExportError(f"{run_dir}: {exc}") from None
    if not report.get("training") or not (run_dir / MODEL_DIR).is_dir():
        raise ExportError(f"{run_dir}: the run trained no model (its recipe has no train section)")
    return report


def export_run(run_dir: Path, merge: bool = False, output: Path | None = None,
               recipe_dir: Path | None = None, trust_remote_code: bool = False,
               allowed_signers: Path | None = None) -> Path:
    """Write the export of RUN_DIR into `output` (default RUN_DIR/export/<adapter|merged|full>) and return it.

    `recipe_dir`: where the recipe's folder is now, for a local base model of a run that moved.
    `trust_remote_code`: the caller consents to a merge running the base model's own code.
    `allowed_signers`: git's allowed_signers file; the run is verified against it (as fttool verify
    --allowed-signers does), and only waivers signed by a key it lists unlock a run whose report policy failed.
    Raises signing.SignatureError when that file cannot be read.
    """
    run_dir = Path(run_dir).resolve()
    output = Path(output).resolve() if output else None
    if output is None or output.is_relative_to(run_dir):
        if output is not None and not output.is_relative_to(run_dir / EXPORT):
            raise ExportError(f"{output}: an export inside the run directory goes under {EXPORT}/, where verify "
                              "checks it against its manifest; choose --output there or outside the run")
        try:  # no review import may rewrite the report while its export is written beside it
            with RunLock(RunLayout(run_dir), "fttool export"):
                return _export(run_dir, merge, output, recipe_dir, trust_remote_code, allowed_signers)
        except RunError as exc:
            raise ExportError(str(exc)) from None
    return _export(run_dir, merge, output, recipe_dir, trust_remote_code, allowed_signers)


def base_model_identity(report: dict) -> dict:
    """The base model as the verified run proved it: a local directory by the content digest the lineage
    recorded, a hub id by the commit its revision resolved to, the demo model by name (fttool builds it)."""
    base = report["training"]["base_model"]
    name = base["name"]
    # A hub model's cached snapshot is a source under its commit (fttool.training.model_identity.base_model_inputs).
    snapshot = f"{hub_cache_folder(name)}/snapshots/{base.get('revision')}"
    source = next((artifact for artifact in report["lineage"]["artifacts"] if artifact["kind"] == "source"
                   and (artifact["path"] == name or artifact["path"].endswith(snapshot))), None)
    if is_demo_reference(name):
        identified_by = "the demo model fttool builds"
    elif is_local_model(name):
        identified_by = "sha256 of the directory's files"
    else:
        identified_by = "hub commit" + (" and the sha256 of its cached files" if source else "")
    return {"name": name, "revision": base.get("revision"), "sha256": source["sha256"] if source else None,
            "license": base.get("license"), "identified_by": identified_by}


def _export(run_dir: Path, merge: bool, output: Path | None, recipe_dir: Path | None, trust_remote_code: bool,
            allowed_signers: Path | None) -> Path:
    report = _checked_report(run_dir, allowed_signers)
    method = report["training"]["method"]
    kind = "full" if method == "full" else "merged" if merge else "adapter"
    if kind == "merged":
        _require_consent_to_run_code(run_dir, trust_remote_code)
    out = output or run_dir / EXPORT / kind
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} is not empty; choose another --output")
    out.mkdir(parents=True, exist_ok=True)
    if kind == "merged":
        _merge(run_dir, report, out, Path(recipe_dir) if recipe_dir else recipe_dir_of(run_dir, report))
    else:
        _copy_model(run_dir, report, out)
    # The run's model card as verify checked it: with who signed off, each key's fingerprint and the waivers.
    (out / CARD_FILE).write_text(render_model_card(report, given_signoffs(run_dir)), encoding="utf-8")
    if RunLayout(run_dir).signoffs.is_file():
        shutil.copyfile(RunLayout(run_dir).signoffs, out / SIGNOFFS)
    files = {path.relative_to(out).as_posix(): sha256_file(path) for path in files_under(out)}
    manifest = {"run_id": report["run"]["id"], "report_sha256": sha256_file(RunLayout(run_dir).report),
                "run_digest": current_run_digest(run_dir), "export": kind, "method": method,
                "base_model": base_model_identity(report), "files": files}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out
