"""Assign every record to train, validation or test, deterministically from the seed, then stop leakage.

Records are assigned in units: a record id, or with `group_by` a group (the value of a meta field), so
that a customer's records never straddle splits. Sorted ids are shuffled with the seed and cut by the
ratios, within each value of the `stratify` field on its own when there is one; groups are taken in
seeded order, each by the split that still wants the most records. The same records and seed always
give the same splits, whatever order the records arrive in. Records with the same id (possible only
when exact dedup is off) land in the same split.

A held-out record that duplicates one in another split would inflate evaluation. Exact duplicates are
found with dedup's exact key, near duplicates with its MinHash index; `on_leak: fail` stops the run,
`move` moves the held-out units of every cluster of duplicates that spans splits into train. No
record is removed.
"""
from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from fttool.records import read_jsonl
from fttool.stages.base import Stage, StageContext, StageResult
from fttool.stages.dedup import MAX_EXAMPLE_IDS, NearDuplicateIndex, exact_key

SPLITS = ("train", "validation", "test")
MISSING = "(missing)"  # the stratum or group of records without the field


class LeakageError(Exception):
    """Records in different splits duplicate each other and the recipe says on_leak: fail."""


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


def assign_groups(sizes: Mapping[str, int], ratios: dict[str, float], seed: int) -> dict[str, str]:
    """group -> split name, for groups of the given record counts, aiming at the ratios in records."""
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    wanted = split_sizes(sum(sizes.values()), ratios)
    assignment = {}
    for group in order:
        # The split furthest below its size, so a large group goes where there is most room; ties go to train.
        split = max(SPLITS, key=wanted.__getitem__)
        assignment[group] = split
        wanted[split] -= sizes[group]
    return assignment


def meta_value(record: dict, name: str) -> str:
    """A meta field's value as a stratum or group name; absent, null and empty values are MISSING."""
    value = record["meta"].get(name)
    if value is None or value == "":
        return MISSING
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class _Clusters:
    """Union-find over units joined by duplicate pairs."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, unit: str) -> str:
        root = unit
        while self.parent.setdefault(root, root) != root:
            root = self.parent[root]
        while unit != root:  # path compression keeps later finds short
            self.parent[unit], unit = root, self.parent[unit]
        return root

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


@dataclass
class _Leaks:
    exact_pairs: int = 0
    near_pairs: int = 0  # pairs that are not also exact duplicates
    examples: list[str] = field(default_factory=list)  # "id (split) ~ id (split)"
    to_move: set[str] = field(default_factory=set)  # held-out units to move into train


def _find_leaks(path: Path, unit_of: Callable[[dict], str], split_of: Mapping[str, str], threshold: float) -> _Leaks:
    """Duplicate pairs of records in different splits, and the held-out units that must move to end them.

    Duplicates are joined into clusters whatever their splits: after a held-out record moves into train,
    a duplicate of it left in validation or test would leak in turn. So every cluster that spans splits
    moves all its held-out units into train.
    """
    leaks = _Leaks()
    clusters = _Clusters()
    index = NearDuplicateIndex(threshold)
    ids: list[str] = []
    units: list[str] = []
    keys: list[bytes] = []
    # exact key -> split -> [records so far, index of the first]
    by_key: dict[bytes, dict[str, list[int]]] = {}

    def note(i: int, j: int) -> None:
        if len(leaks.examples) < MAX_EXAMPLE_IDS:
            leaks.examples.append(f"{ids[i]} ({split_of[units[i]]}) ~ {ids[j]} ({split_of[units[j]]})")

    for i, record in enumerate(read_jsonl(path)):
        key, unit = exact_key(record), unit_of(record)
        split = split_of[unit]
        ids.append(record["id"])
        units.append(unit)
        keys.append(key)
        seen = by_key.setdefault(key, {})
        for other_split, (count, first) in seen.items():
            clusters.join(units[first], unit)
            if other_split != split:
                leaks.exact_pairs += count
                note(i, first)
        seen.setdefault(split, [0, i])[0] += 1

        minhash = index.minhash(record)
        for j in index.similar(minhash):  # every record is indexed, so an index key is a record's position
            if keys[j] != key:
                clusters.join(units[j], unit)
                if split_of[units[j]] != split:
                    leaks.near_pairs += 1
                    note(i, j)
        index.add(minhash)

    spans: defaultdict[str, set[str]] = defaultdict(set)
    for unit in clusters.parent:
        spans[clusters.find(unit)].add(split_of[unit])
    leaks.to_move = {unit for unit in clusters.parent
                     if split_of[unit] != "train" and len(spans[clusters.find(unit)]) > 1}
    return leaks


class SplitStage(Stage):
    name = "split"
    reads = ("records",)
    writes = SPLITS
    report_section = "data.split"

    def run(self, ctx: StageContext) -> StageResult:
        params = ctx.params
        ratios = {split: params[split] for split in SPLITS}
        seed = params["seed"]
        stratify, group_by = params.get("stratify"), params.get("group_by")
        records_path = ctx.inputs["records"]

        def unit_of(record: dict) -> str:
            return meta_value(record, group_by) if group_by else record["id"]

        unit_size: Counter[str] = Counter()
        unit_stratum: dict[str, str] = {}
        for record in read_jsonl(records_path):
            unit = unit_of(record)
            unit_size[unit] += 1
            if stratify:
                # An id seen with two values (one example from two sources) takes the smaller,
                # so that the split does not depend on the input order.
                stratum = meta_value(record, stratify)
                unit_stratum[unit] = min(stratum, unit_stratum.get(unit, stratum))

        if group_by:
            split_of = assign_groups(unit_size, ratios, seed)
        else:
            by_stratum: defaultdict[str | None, set[str]] = defaultdict(set)
            for unit in unit_size:
                by_stratum[unit_stratum.get(unit)].add(unit)  # without stratify, all in one
            split_of = {}
            for stratum_units in by_stratum.values():
                split_of.update(assign(stratum_units, ratios, seed))
        assigned: Counter[str] = Counter()
        for unit, size in unit_size.items():
            assigned[split_of[unit]] += size

        leaks = _find_leaks(records_path, unit_of, split_of, params["leak_threshold"])
        if params["on_leak"] == "fail" and (leaks.exact_pairs or leaks.near_pairs):
            raise LeakageError(
                f"leakage across splits: {leaks.exact_pairs} exact and {leaks.near_pairs} near-duplicate pairs of "
                f"records are in different splits, e.g. {', '.join(leaks.examples)}; remove the duplicates, or set "
                "data.split.on_leak: move to move the held-out records into train")
        for unit in leaks.to_move:
            split_of[unit] = "train"

        counts = dict.fromkeys(SPLITS, 0)
        strata: dict[str, dict[str, int]] = {}
        moved, moved_ids = 0, []
        written: dict[str, set[str]] = {split: set() for split in SPLITS}
        with ExitStack() as stack:
            outputs = {split: stack.enter_context(open(ctx.outputs[split], "w", encoding="utf-8")) for split in SPLITS}
            # A second pass, so each split keeps the input's record order without holding the records.
            for record in read_jsonl(records_path):
                unit = unit_of(record)
                split = split_of[unit]
                outputs[split].write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
                written[split].add(record["id"])
                counts[split] += 1
                if stratify:
                    strata.setdefault(meta_value(record, stratify), dict.fromkeys(SPLITS, 0))[split] += 1
                if unit in leaks.to_move:
                    moved += 1
                    if len(moved_ids) < MAX_EXAMPLE_IDS:
                        moved_ids.append(record["id"])
        assert not (written["train"] & written["validation"] or written["train"] & written["test"]
                    or written["validation"] & written["test"]), "an id was written to two splits"

        to_split = f"{len(unit_size)} groups" if group_by else f"{sum(unit_size.values())} records"
        notes = [f"{split} ratio is {ratios[split]:g} but it got no records: only {to_split} to split"
                 for split in SPLITS if ratios[split] > 0 and assigned[split] == 0]
        if moved:
            notes.append(f"{moved} held-out records moved to train because they duplicate records in another "
                         "split; validation and test are smaller than their ratios")
        groups = Counter(split_of.values())
        summary = {
            "seed": seed, "ratios": ratios, "counts": counts, "notes": notes,
            "stratify": {"field": stratify, "strata": dict(sorted(strata.items())),
                         "missing": sum(strata.get(MISSING, {}).values())} if stratify else None,
            "group_by": {"field": group_by, "groups": {split: groups[split] for split in SPLITS},
                         "missing": unit_size[MISSING]} if group_by else None,
            "leakage": {"exact_pairs": leaks.exact_pairs, "near_pairs": leaks.near_pairs, "moved": moved,
                        "example_ids": moved_ids, "action": params["on_leak"]},
        }
        return StageResult(summary=summary)


STAGE = SplitStage
