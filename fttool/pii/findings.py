"""The data owner's view of a run's findings (pii/findings.jsonl): a sample to tune allow lists and spot misses.

The file holds, per finding, the record id, field, type, score, recognizer and a context window with every value
masked; it stays in the run directory and out of the shareable report. A finding marked `residual` is one the second
scan found still in the scrubbed text (the report's residual count), its context taken from the scrubbed text.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

FINDINGS = "pii/findings.jsonl"


def sample(run_dir: Path, entity: str | None, n: int, seed: int = 0, residual: bool = False
           ) -> tuple[list[dict], int]:
    """Up to `n` findings of type `entity` (all types when None), only the residual ones if `residual`, drawn with
    `seed`, and how many there are."""
    path = run_dir / FINDINGS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no findings file; it is written by the pii stage of a run "
                                "(is the pii section enabled, and did the run get that far?)")
    with open(path, encoding="utf-8") as handle:
        matching = [finding for finding in map(json.loads, handle) if (entity is None or finding["type"] == entity)
                    and (not residual or finding.get("residual", False))]
    chosen = random.Random(seed).sample(matching, min(n, len(matching)))
    return sorted(chosen, key=lambda f: (f["record"], f["field"])), len(matching)


def line(finding: dict) -> str:
    left = "  left in the scrubbed text" if finding.get("residual") else ""
    return (f"{finding['record']}  {finding['field']}  {finding['type']} {finding['score']:.2f} "
            f"({finding['recognizer'] or 'recognizer not named'}){left}  "
            f"{json.dumps(finding['context'], ensure_ascii=False)}")
