"""Assemble report.json from the plan, the runner's stage records and lineage."""
from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from pathlib import Path

from fttool import __version__
from fttool.data.records import SPLITS
from fttool.pii.settings import withhold_deny_lists
from fttool.pipeline.errors import RunError
from fttool.pipeline.layout import RunLayout
from fttool.pipeline.plan import Plan, thaw
from fttool.pipeline.software import package_versions
from fttool.report.sections import declared_sections

REPORT_SCHEMA_VERSION = 1

def environment(recipe_path: Path) -> dict:
    packages = dict(package_versions())
    commit = _git(Path(__file__).parent, "rev-parse", "HEAD")
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "fttool_git_commit": commit, "packages": packages, **hardware(),
            "recipe_git": recipe_git(recipe_path)}


def _git(directory: Path, *args: str) -> str | None:
    """A git command's output in `directory`; None outside a repository or without git."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=directory)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def recipe_git(recipe_path: Path) -> dict | None:
    """The commit of the repository holding the recipe, and whether its working tree differs from that commit."""
    directory = recipe_path.parent
    commit = _git(directory, "rev-parse", "HEAD")
    if not commit:
        return None
    status = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "uncommitted_changes": None if status is None else bool(status)}


def hardware() -> dict:
    """Memory, CPU model and the GPUs torch sees; torch is asked only when a stage already loaded it."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    torch = sys.modules.get("torch")
    gpus = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch is not None and torch.cuda.is_available() else [])
    return {"memory_bytes": memory, "cpu_model": cpu_model(), "gpus": gpus}


def cpu_model() -> str | None:
    """The CPU's model name (Linux), else what the platform says; None when neither knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def stage_summaries(records) -> dict[str, dict | None]:
    """Each report section a stage declares -> the summaries of the stages that declare it and ran, merged in
    pipeline order (the canaries stage's counts, then the memorisation stage's results); None when none ran."""
    declared = declared_sections()
    summaries: dict[str, dict | None] = dict.fromkeys(declared.values())
    by_name = {record.name: record for record in records}
    for stage, section in declared.items():
        if stage in by_name:
            summaries[section] = {**(summaries[section] or {}), **by_name[stage].result.get("summary", {})}
    return summaries


def report_order() -> list[str]:
    """The declared sections in the order of the last stage that fills each, so a section follows its evidence."""
    last_first = dict.fromkeys(reversed(list(declared_sections().values())))
    return list(reversed(list(last_first)))


def data_counts(records) -> dict:
    """The record flow from input to the final splits; raises if any record is unaccounted for."""
    by_name = {r.name: r for r in records}
    input_count = by_name["ingest"].records_in
    removed = {name: sum(by_name[name].removed.values()) if name in by_name else 0
               for name in ("ingest", "dedup", "pii")}
    augmented = sum(by_name["augment"].added.values()) if "augment" in by_name else 0
    kept = by_name["split"].records_out - removed["pii"]  # split writes every surviving record once
    counts = {"input": input_count, "quarantined": removed["ingest"], "duplicates": removed["dedup"],
              "dropped_by_policy": removed["pii"], "kept": kept, "augmented": augmented}
    if "canaries" in by_name:
        counts["canaries"] = sum(by_name["canaries"].added.values())
    accounted = counts["kept"] + counts["quarantined"] + counts["duplicates"] + counts["dropped_by_policy"]
    if accounted != input_count:
        raise RunError(f"record conservation failed: {input_count} input records, but kept + quarantined + "
                       f"duplicates + dropped = {accounted}")
    return counts


def _evaluation_and_fairness(plan: Plan, evaluation: dict | None) -> tuple[dict | None, dict]:
    """The evaluate stage's summary, with its per-group results moved to their own top-level section."""
    if evaluation is None:
        reason = thaw(plan.skipped).get("evaluate", "the evaluate stage did not run")
        return None, {"evaluated": False, "reason": f"evaluate stage skipped: {reason}"}
    evaluation = dict(evaluation)
    return evaluation, evaluation.pop("fairness")


def _training_and_privacy(training: dict | None) -> tuple[dict | None, dict]:
    """The train stage's summary, with its differential privacy moved to its own top-level section."""
    if training is None or "privacy" not in training:
        return training, {"enabled": False}
    training = dict(training)
    return training, training.pop("privacy")


def stage_sections(plan: Plan, records) -> dict[str, dict | None]:
    """The report sections the stages fill (dotted paths such as `data.ingest`), in report order; the train and
    evaluate summaries each give up a part that the report shows as a section of its own (privacy, fairness)."""
    summaries = stage_summaries(records)
    sections: dict[str, dict | None] = {}
    for section in report_order():
        if section == "training":
            sections["training"], sections["privacy"] = _training_and_privacy(summaries[section])
        elif section == "evaluation":
            sections["evaluation"], sections["fairness"] = _evaluation_and_fairness(plan, summaries[section])
        else:
            sections[section] = summaries[section]
    return sections


def _place(report: dict, section: str, value) -> None:
    """Put `value` at the dotted path `section` of `report`, creating the mappings above it."""
    *parents, key = section.split(".")
    for parent in parents:
        report = report.setdefault(parent, {})
    report[key] = value


def _final_splits(run_dir: Path) -> dict[str, int]:
    splits = {}
    for name in SPLITS:
        path = RunLayout(run_dir).split(name)
        splits[name] = sum(1 for line in open(path, encoding="utf-8") if line.strip()) if path.exists() else 0
    return splits


def build_report(plan: Plan, state: dict, records, lineage: dict, run_dir: Path) -> dict:
    stage_rows = [{"name": r.name, "status": r.status, "fingerprint": r.fingerprint, "seconds": r.seconds,
                   "records_in": r.records_in, "records_out": r.records_out, "removed": r.removed,
                   "added": r.added} for r in records]
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "run": {"name": plan.name, "id": state["run_id"], "status": "succeeded", "started_at": state["started_at"],
                "finished_at": state.get("finished_at"), "resumed_at": state.get("resumed_at"),
                "fttool_version": __version__},
        "recipe": {"path": os.path.relpath(plan.recipe_path, run_dir), "fingerprint": plan.fingerprint,
                   "resolved": withhold_deny_lists(thaw(plan.recipe))},
        "environment": environment(plan.recipe_path),
        "stages": stage_rows,
        "skipped_stages": [{"name": name, "reason": reason} for name, reason in thaw(plan.skipped).items()],
        "data": {"counts": data_counts(records), "splits": _final_splits(run_dir)},
    }
    for section, value in stage_sections(plan, records).items():
        _place(report, section, value)
    report["lineage"] = lineage
    report["review"] = None  # filled in by `fttool review import`
    # Sign-offs are given on a written report; a report rewritten later lists those it supersedes.
    report["signoff"] = None
    non_finite = non_finite_paths(report)
    if non_finite:
        raise RunError("the report would hold numbers JSON does not allow (NaN or infinity) at "
                       f"{', '.join(non_finite)}; the stage that wrote them must report a finite number or null")
    report["policy"] = policy_outcome(report, run_dir, plan.recipe_path.parent)
    return report


def non_finite_paths(value, path: str = "$") -> list[str]:
    """Where `value` holds NaN or an infinity, as dotted paths; report.json is strict JSON."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in non_finite_paths(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in non_finite_paths(item, f"{path}[{index}]")]
    return []


# The policy fttool ships, found beside the package in a source checkout.
SHIPPED_POLICY = Path(__file__).resolve().parents[2] / "policies" / "regulated.yaml"


def typed_from(path: Path, run_dir: Path) -> str:
    """`path` as typed from the run directory: relative, unless the two share no folder but the root, where
    '../../../..' would say less than the absolute path."""
    path, run_dir = Path(path).resolve(), Path(run_dir).resolve()
    if os.path.commonpath([path, run_dir]) == path.anchor:
        return str(path)
    return os.path.relpath(path, run_dir)


def policy_how(run_dir: Path) -> str:
    """How to check the run, typed from its directory, where a reader of its report is."""
    policy = (typed_from(SHIPPED_POLICY, run_dir) if SHIPPED_POLICY.is_file()
              else "POLICY.yaml (e.g. policies/regulated.yaml of the fttool repository)")
    return f"from the run directory, fttool check . --policy {policy} (or name a policy in the recipe's report.policy)"


def policy_outcome(report: dict, run_dir: Path, recipe_dir: Path) -> dict:
    """The recipe's report.policy applied to `report`; {evaluated: false, how} when the recipe names none."""
    policy_path = report["recipe"]["resolved"].get("report", {}).get("policy")
    if not policy_path:
        return {"evaluated": False, "how": policy_how(run_dir)}
    import json

    from fttool.pipeline.digest import sha256_file
    from fttool.policy.engine import evaluate
    from fttool.policy.policy_file import load_policy
    from fttool.policy.targets import load_report_target

    path = (recipe_dir / policy_path).resolve()
    policy = load_policy(path)
    # The report is checked as it will be written; rules never read the policy section itself.
    draft = {**report, "policy": {"evaluated": False, "how": ""}}
    target = load_report_target(run_dir / "report.json", json.dumps(draft, indent=2, ensure_ascii=False))
    check_run = evaluate(policy, [target])
    return {
        "evaluated": True, "policy": policy.name, "path": typed_from(path, run_dir), "sha256": sha256_file(path),
        "checked_on": check_run.day.isoformat(), "passed": check_run.passed, "summary": check_run.summary(),
        "rules": [{"id": o.rule.id, "description": o.rule.description, "severity": o.rule.severity, "status": o.status,
                   "findings": [f.message for f in o.findings],
                   "waiver": None if o.waiver is None else {"reason": o.waiver.reason, "approver": o.waiver.approver,
                                                            "expires": o.waiver.expires.isoformat()}}
                  for o in check_run.outcomes],
    }
