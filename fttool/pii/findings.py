"""The data owner's view of a run's findings (pii/findings.jsonl): a sample to tune allow lists and spot misses.

The file holds, per finding, the record id, field, type, score, recognizer and a context window with every value
masked; it stays in the run directory and out of the shareable report.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

FINDINGS = "pii/findings.jsonl"


def sample(run_dir: Path, entity: str | None, n: int, seed: int = 0) -> tuple[list[dict], int]:
    """Up to `n` findings of type `entity` (all types when None), drawn with `seed`, and how many there are."""
    path = run_dir / FINDINGS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no findings file; it is written by the pii stage of a run "
                                "(is the pii section enabled, and did the run get that far?)")
    with open(path, encoding="utf-8") as handle:
        matching = [finding for finding in map(json.loads, handle) if entity is None or finding["type"] == entity]
    chosen = random.Random(seed).sample(matching, min(n, len(matching)))
    return sorted(chosen, key=lambda f: (f["record"], f["field"])), len(matching)


def line(finding: dict) -> str:
    return (f"{finding['record']}  {finding['field']}  {finding['type']} {finding['score']:.2f} "
            f"({finding['recognizer']})  {json.dumps(finding['context'], ensure_ascii=False)}")
