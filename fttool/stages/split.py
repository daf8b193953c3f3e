"""Assign every record to train, validation or test, deterministically from the seed.

Assignment is by record id: the sorted ids are shuffled with the seed and cut by the ratios, so the
same records and seed always give the same splits, whatever order the records arrive in. Records with
the same id (possible only when exact dedup is off) land in the same split.
"""
from __future__ import annotations

import json
import random
from contextlib import ExitStack

from fttool.records import read_jsonl
from fttool.stages.base import Stage, StageContext, StageResult

SPLITS = ("train", "validation", "test")


def split_sizes(n: int, ratios: dict[str, float]) -> dict[str, int]:
    """Sizes that sum to n exactly: validation and test are rounded, train gets the rest."""
    validation = round(n * ratios["validation"])
    test = min(round(n * ratios["test"]), n - validation)
    return {"train": n - validation - test, "validation": validation, "test": test}


def assign(ids: set[str], ratios: dict[str, float], seed: int) -> dict[str, str]:
    """id -> split name."""
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    assignment, start = {}, 0
    for split, size in split_sizes(len(order), ratios).items():
        assignment.update((record_id, split) for record_id in order[start:start + size])
        start += size
    return assignment


class SplitStage(Stage):
    name = "split"
    reads = ("records",)
    writes = SPLITS
    report_section = "data.split"

    def run(self, ctx: StageContext) -> StageResult:
        ratios = {split: ctx.params[split] for split in SPLITS}
        seed = ctx.params["seed"]
        ids = {record["id"] for record in read_jsonl(ctx.inputs["records"])}
        assignment = assign(ids, ratios, seed)

        counts = dict.fromkeys(SPLITS, 0)
        written: dict[str, set[str]] = {split: set() for split in SPLITS}
        with ExitStack() as stack:
            outputs = {split: stack.enter_context(open(ctx.outputs[split], "w", encoding="utf-8")) for split in SPLITS}
            # A second pass, so each split keeps the input's record order without holding the records.
            for record in read_jsonl(ctx.inputs["records"]):
                split = assignment[record["id"]]
                outputs[split].write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
                written[split].add(record["id"])
                counts[split] += 1
        assert not (written["train"] & written["validation"] or written["train"] & written["test"]
                    or written["validation"] & written["test"]), "an id was written to two splits"

        notes = [f"{split} ratio is {ratios[split]:g} but it got no records: only {sum(counts.values())} records "
                 "to split" for split in SPLITS if ratios[split] > 0 and counts[split] == 0]
        return StageResult(summary={"seed": seed, "ratios": ratios, "counts": counts, "notes": notes})


STAGE = SplitStage
