"""`fttool export`: the trained model of a verified run, ready to publish, with its model card and manifest.

The export is the LoRA adapter as trained, or (`--merge`) the base model with the adapter merged into
its weights (peft `merge_and_unload`); a full fine-tune is already a whole model. README.md is the
run's model card (fttool.model_card, from report.json), and manifest.json gives the sha256 of every
exported file with the digest of the report they come from, so a published model can be traced to
the audited run. A run whose `fttool verify` fails is refused: its report no longer describes it.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from fttool.governance.evidence import verify
from fttool.pipeline.digest import files_under, sha256_file
from fttool.report.model_card import render_model_card

MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"  # where the Hugging Face hub looks for a model card
EXPORT_DIR = "export"


class ExportError(Exception):
    """The run cannot be exported; the message says why and what to do."""


def _merge(run_dir: Path, report: dict, out: Path) -> None:
    from peft import PeftModel

    from fttool.training.modeling import load_causal_lm, load_tokenizer, quiet_libraries, resolve_base_model

    quiet_libraries()
    model_params = report["recipe"]["resolved"]["model"]
    recipe_dir = (run_dir / report["recipe"]["path"]).parent
    with tempfile.TemporaryDirectory() as scratch:
        # A local base is among the sources verify re-hashed, so this is the base the run trained on.
        base = load_causal_lm(resolve_base_model(model_params, Path(scratch), recipe_dir), model_params)
        merged = PeftModel.from_pretrained(base, run_dir / "model").merge_and_unload()
        merged.save_pretrained(out)
    load_tokenizer(str(run_dir / "model"), model_params).save_pretrained(out)


def export_run(run_dir: Path, merge: bool = False, output: Path | None = None) -> Path:
    """Write the export of RUN_DIR into `output` (default RUN_DIR/export/<adapter|merged|full>) and return it."""
    run_dir = Path(run_dir).resolve()
    problems = verify(run_dir)
    if problems:
        raise ExportError(f"{run_dir} does not verify, so its report no longer describes it: "
                          + "; ".join(map(str, problems)) + ". Export a run that passes fttool verify")
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    training = report.get("training")
    if not training or not (run_dir / "model").is_dir():
        raise ExportError(f"{run_dir}: the run trained no model (its recipe has no train section)")
    method = training["method"]
    kind = "full" if method == "full" else "merged" if merge else "adapter"
    out = Path(output).resolve() if output else run_dir / EXPORT_DIR / kind
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} is not empty; choose another --output")
    out.mkdir(parents=True, exist_ok=True)
    if kind == "merged":
        _merge(run_dir, report, out)
    else:
        shutil.copytree(run_dir / "model", out, dirs_exist_ok=True)
    (out / CARD_FILE).write_text(render_model_card(report), encoding="utf-8")
    files = {path.relative_to(out).as_posix(): sha256_file(path) for path in files_under(out)}
    manifest = {"run_id": report["run"]["id"], "report_sha256": sha256_file(run_dir / "report.json"),
                "export": kind, "method": method, "base_model": training["base_model"]["name"], "files": files}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out
