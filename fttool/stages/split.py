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

The records are read three times and never held. What grows with their number (units and their sizes,
the assignment, each record's exact key, the MinHash index) lives in scratch SQLite databases on disk
behind a fixed page cache; in memory stay only the seeded order (8 bytes a unit, one stratum at a
time), the units that duplicate others, and per-split and per-stratum counts.
"""
from __future__ import annotations

import itertools
import json
import random
import sqlite3
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from fttool.data.records import read_jsonl
from fttool.pipeline.stage import Stage, StageContext, StageResult
from fttool.stages.dedup import MAX_EXAMPLE_IDS, NearDuplicateIndex, ScratchDB, exact_key

SPLITS = ("train", "validation", "test")
MISSING = "(missing)"  # the stratum or group of records without the field


class LeakageError(Exception):
    """Records in different splits duplicate each other and the recipe says on_leak: fail."""


def split_sizes(n: int, ratios: dict[str, float]) -> dict[str, int]:
    """Sizes that sum to n exactly: validation and test are rounded, train gets the rest."""
    validation = round(n * ratios["validation"])
    test = min(round(n * ratios["test"]), n - validation)
    return {"train": n - validation - test, "validation": validation, "test": test}


def _shuffled_ranks(n: int, seed: int) -> array:
    """The order random.Random(seed).shuffle leaves n sorted items in, as their ranks (8 bytes each).

    A shuffle only swaps positions, drawing from the generator according to the length alone, so shuffling
    the ranks 0..n-1 gives the order that shuffling the sorted items themselves gives.
    """
    ranks = array("q", range(n))
    random.Random(seed).shuffle(ranks)
    return ranks


def _split_by_rank(n: int, ratios: dict[str, float], seed: int) -> bytearray:
    """The SPLITS index of each of n sorted units: shuffled with the seed, then cut by the ratios."""
    by_rank, start = bytearray(n), 0
    ranks = _shuffled_ranks(n, seed)
    for index, size in enumerate(split_sizes(n, ratios).values()):  # in SPLITS order
        for rank in ranks[start:start + size]:
            by_rank[rank] = index
        start += size
    return by_rank


def _group_split_by_rank(sizes: Sequence[int], ratios: dict[str, float], seed: int) -> bytearray:
    """The SPLITS index of each sorted group, given their record counts in the same order."""
    wanted = split_sizes(sum(sizes), ratios)
    by_rank = bytearray(len(sizes))
    for rank in _shuffled_ranks(len(sizes), seed):
        # The split furthest below its size, so a large group goes where there is most room; ties go to train.
        split = max(SPLITS, key=wanted.__getitem__)
        by_rank[rank] = SPLITS.index(split)
        wanted[split] -= sizes[rank]
    return by_rank


def assign(ids: set[str], ratios: dict[str, float], seed: int) -> dict[str, str]:
    """id -> split name."""
    order = sorted(ids)
    return {unit: SPLITS[index] for unit, index in zip(order, _split_by_rank(len(order), ratios, seed))}


def assign_groups(sizes: Mapping[str, int], ratios: dict[str, float], seed: int) -> dict[str, str]:
    """group -> split name, for groups of the given record counts, aiming at the ratios in records."""
    order = sorted(sizes)
    by_rank = _group_split_by_rank([sizes[group] for group in order], ratios, seed)
    return {group: SPLITS[index] for group, index in zip(order, by_rank)}


def _blob(text: str) -> bytes:
    """A unit, id or stratum as SQLite stores it: its bytes compare as the strings do (by code point)."""
    return text.encode("utf-8", "surrogatepass")


def _text(blob: bytes) -> str:
    return blob.decode("utf-8", "surrogatepass")


class _Assignment(Mapping):
    """unit -> split name, kept in the stage's scratch database (table `assigned`)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __getitem__(self, unit: str) -> str:
        row = self.db.execute("SELECT split FROM assigned WHERE unit = ?", (_blob(unit),)).fetchone()
        if row is None:
            raise KeyError(unit)
        return SPLITS[row[0]]

    def __iter__(self) -> Iterator[str]:
        return (_text(unit) for (unit,) in self.db.execute("SELECT unit FROM assigned"))

    def __len__(self) -> int:
        return self.db.execute("SELECT count(*) FROM assigned").fetchone()[0]


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


def _find_leaks(path: Path, unit_of: Callable[[dict], str], split_of: Mapping[str, str], threshold: float,
                work_dir: Path | None = None) -> _Leaks:
    """Duplicate pairs of records in different splits, and the held-out units that must move to end them.

    Duplicates are joined into clusters whatever their splits: after a held-out record moves into train,
    a duplicate of it left in validation or test would leak in turn. So every cluster that spans splits
    moves all its held-out units into train. Per-record state goes to scratch databases under `work_dir`.
    """
    leaks = _Leaks()
    clusters = _Clusters()
    with ScratchDB(work_dir, "leaks") as scratch, NearDuplicateIndex(threshold, work_dir) as index:
        db = scratch.db
        # Each record's id, unit and exact key by its position, which is also its key in the MinHash index.
        db.execute("CREATE TABLE record (i INTEGER PRIMARY KEY, id BLOB NOT NULL, unit BLOB NOT NULL,"
                   " key BLOB NOT NULL)")
        # exact key -> split -> records so far and the position of the first
        db.execute("CREATE TABLE by_key (key BLOB NOT NULL, split TEXT NOT NULL, count INTEGER NOT NULL,"
                   " first INTEGER NOT NULL, PRIMARY KEY (key, split)) WITHOUT ROWID")

        def earlier(j: int) -> tuple[str, str, bytes]:
            record_id, unit, key = db.execute("SELECT id, unit, key FROM record WHERE i = ?", (j,)).fetchone()
            return _text(record_id), _text(unit), key

        def note(record_id: str, split: str, other_id: str, other_split: str) -> None:
            if len(leaks.examples) < MAX_EXAMPLE_IDS:
                leaks.examples.append(f"{record_id} ({split}) ~ {other_id} ({other_split})")

        for i, record in enumerate(read_jsonl(path)):
            key, unit = exact_key(record), unit_of(record)
            split = split_of[unit]
            db.execute("INSERT INTO record VALUES (?, ?, ?, ?)", (i, _blob(record["id"]), _blob(unit), key))
            # Splits in the order this key first reached them.
            seen = db.execute("SELECT split, count, first FROM by_key WHERE key = ? ORDER BY first", (key,)).fetchall()
            for other_split, count, first in seen:
                first_id, first_unit, _ = earlier(first)
                clusters.join(first_unit, unit)
                if other_split != split:
                    leaks.exact_pairs += count
                    note(record["id"], split, first_id, other_split)
            if any(other_split == split for other_split, _, _ in seen):
                db.execute("UPDATE by_key SET count = count + 1 WHERE key = ? AND split = ?", (key, split))
            else:
                db.execute("INSERT INTO by_key VALUES (?, ?, 1, ?)", (key, split, i))

            minhash = index.minhash(record)
            for j in index.similar(minhash):  # every record is indexed, so an index key is a record's position
                other_id, other_unit, other_key = earlier(j)
                if other_key != key:
                    clusters.join(other_unit, unit)
                    other_split = split_of[other_unit]
                    if other_split != split:
                        leaks.near_pairs += 1
                        note(record["id"], split, other_id, other_split)
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

        with ScratchDB(ctx.work_dir, "split") as scratch:
            db = scratch.db
            # unit -> its records, and with stratify its stratum
            db.execute("CREATE TABLE unit (unit BLOB PRIMARY KEY, size INTEGER NOT NULL, stratum BLOB) WITHOUT ROWID")
            db.execute("CREATE TABLE assigned (unit BLOB PRIMARY KEY, split INTEGER NOT NULL) WITHOUT ROWID")
            # An id seen with two values (one example from two sources) takes the smaller, so that the split
            # does not depend on the input order.
            db.executemany(
                "INSERT INTO unit VALUES (?, 1, ?) ON CONFLICT (unit) DO UPDATE"
                " SET size = size + 1, stratum = min(stratum, excluded.stratum)",
                ((_blob(unit_of(record)), _blob(meta_value(record, stratify)) if stratify else None)
                 for record in read_jsonl(records_path)))
            unit_count, record_count = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM unit").fetchone()

            assigned: Counter[str] = Counter()

            def in_order(rows, by_rank: bytearray) -> Iterator[tuple[bytes, int]]:
                """(unit, SPLITS index) for sorted (unit, size) rows, given the split of each rank."""
                for rank, (unit, size) in enumerate(rows):
                    assigned[SPLITS[by_rank[rank]]] += size
                    yield unit, by_rank[rank]

            def assignment() -> Iterator[tuple[bytes, int]]:
                # Units in sorted order, as assign and assign_groups take them: SQLite orders these blobs as
                # Python orders the strings.
                if group_by:
                    sizes = array("q", (size for (size,) in db.execute("SELECT size FROM unit ORDER BY unit")))
                    yield from in_order(db.execute("SELECT unit, size FROM unit ORDER BY unit"),
                                        _group_split_by_rank(sizes, ratios, seed))
                elif not stratify:
                    yield from in_order(db.execute("SELECT unit, size FROM unit ORDER BY unit"),
                                        _split_by_rank(unit_count, ratios, seed))
                else:  # each stratum on its own
                    units_in = dict(db.execute("SELECT stratum, count(*) FROM unit GROUP BY stratum"))
                    rows = db.execute("SELECT stratum, unit, size FROM unit ORDER BY stratum, unit")
                    for stratum, stratum_rows in itertools.groupby(rows, key=lambda row: row[0]):
                        yield from in_order((row[1:] for row in stratum_rows),
                                            _split_by_rank(units_in[stratum], ratios, seed))

            db.executemany("INSERT INTO assigned VALUES (?, ?)", assignment())
            split_of = _Assignment(db)

            leaks = _find_leaks(records_path, unit_of, split_of, params["leak_threshold"], ctx.work_dir)
            if params["on_leak"] == "fail" and (leaks.exact_pairs or leaks.near_pairs):
                raise LeakageError(
                    f"leakage across splits: {leaks.exact_pairs} exact and {leaks.near_pairs} near-duplicate pairs of "
                    f"records are in different splits, e.g. {', '.join(leaks.examples)}; remove the duplicates, or set "
                    "data.split.on_leak: move to move the held-out records into train")
            db.executemany("UPDATE assigned SET split = ? WHERE unit = ?",
                           ((SPLITS.index("train"), _blob(unit)) for unit in leaks.to_move))

            counts = dict.fromkeys(SPLITS, 0)
            strata: dict[str, dict[str, int]] = {}
            moved, moved_ids = 0, []
            # Only with group_by can records of one id be in different units, and so in two splits.
            if group_by:
                db.execute("CREATE TABLE written (id BLOB NOT NULL, split INTEGER NOT NULL, PRIMARY KEY (id, split))"
                           " WITHOUT ROWID")
            with ExitStack() as stack:
                outputs = {split: stack.enter_context(open(ctx.outputs[split], "w", encoding="utf-8"))
                           for split in SPLITS}
                # A second pass, so each split keeps the input's record order without holding the records.
                for record in read_jsonl(records_path):
                    unit = unit_of(record)
                    split = split_of[unit]
                    outputs[split].write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
                    if group_by:
                        db.execute("INSERT OR IGNORE INTO written VALUES (?, ?)",
                                   (_blob(record["id"]), SPLITS.index(split)))
                    counts[split] += 1
                    if stratify:
                        strata.setdefault(meta_value(record, stratify), dict.fromkeys(SPLITS, 0))[split] += 1
                    if unit in leaks.to_move:
                        moved += 1
                        if len(moved_ids) < MAX_EXAMPLE_IDS:
                            moved_ids.append(record["id"])
            assert not (group_by and db.execute("SELECT 1 FROM written GROUP BY id HAVING count(*) > 1 LIMIT 1")
                        .fetchone()), "an id was written to two splits"

            groups = Counter({SPLITS[split]: n for split, n in
                              db.execute("SELECT split, count(*) FROM assigned GROUP BY split")})
            missing_group = db.execute("SELECT size FROM unit WHERE unit = ?", (_blob(MISSING),)).fetchone()

        to_split = f"{unit_count} groups" if group_by else f"{record_count} records"
        notes = [f"{split} ratio is {ratios[split]:g} but it got no records: only {to_split} to split"
                 for split in SPLITS if ratios[split] > 0 and assigned[split] == 0]
        if moved:
            notes.append(f"{moved} held-out records moved to train because they duplicate records in another "
                         "split; validation and test are smaller than their ratios")
        summary = {
            "seed": seed, "ratios": ratios, "counts": counts, "notes": notes,
            "stratify": {"field": stratify, "strata": dict(sorted(strata.items())),
                         "missing": sum(strata.get(MISSING, {}).values())} if stratify else None,
            "group_by": {"field": group_by, "groups": {split: groups[split] for split in SPLITS},
                         "missing": missing_group[0] if missing_group else 0} if group_by else None,
            "leakage": {"exact_pairs": leaks.exact_pairs, "near_pairs": leaks.near_pairs, "moved": moved,
                        "example_ids": moved_ids, "action": params["on_leak"]},
        }
        return StageResult(summary=summary)


STAGE = SplitStage
