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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from fttool.data.dedup import MAX_EXAMPLE_IDS, NearDuplicateIndex, ScratchDB, exact_key, signature_of
from fttool.data.preference import is_preference, prompt_unit, prompt_view
from fttool.data.records import SPLITS, read_jsonl
from fttool.data.settings import SplitParams
from fttool.fairness.groups import MISSING_GROUP, group_value

RECORDS_PER_FLUSH = 256  # records the leakage check's MinHash index holds in memory before writing them to disk


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


def dedup_rules_out_leaks(params: SplitParams) -> bool:
    """Whether dedup, run on the split's input just before it, already removed every pair the leakage check finds.

    Exact pairs: dedup's exact pass leaves no two records with one exact key, and so does its near pass (equal keys
    mean equal texts, so equal signatures: estimated Jaccard 1, every band shared). Near pairs: the check finds a
    later record that shares a band (of the banding datasketch picks for leak_threshold) with an earlier one and
    reaches leak_threshold. Dedup's near pass compared that later record with the earlier, kept one, in the same
    signatures; with the same banding at a threshold no higher, it found the pair and removed the later record.
    Different thresholds can pick different bandings, which LSH may miss pairs of, so then the check runs. It
    compares preference pairs by their prompts alone, which dedup does not, so `_Splitter` runs it when there are.
    """
    from fttool.data.minhash import lsh_bands

    dedup_threshold = params.deduplicated_near_threshold
    return (params.deduplicated_exact and dedup_threshold is not None and dedup_threshold <= params.leak_threshold
            and lsh_bands(dedup_threshold) == lsh_bands(params.leak_threshold))


def _find_leaks(path: Path, unit_of: Callable[[dict], str], split_of: Mapping[str, str], threshold: float,
                work_dir: Path | None = None, progress: Callable[[Iterable], Iterable] = iter) -> _Leaks:
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

        for i, record in enumerate(progress(read_jsonl(path))):
            # Pairs leak through their prompts: a test prompt seen in training is no test, whatever the responses.
            compared = prompt_view(record)
            key, unit = exact_key(compared), unit_of(record)
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

            signature = signature_of(compared)
            band_hashes = index.band_hashes(signature[None])[0]
            # Every record is indexed, so an index key is a record's position.
            for j in index.similar(signature, band_hashes, index.indexed_keys(band_hashes[None])):
                other_id, other_unit, other_key = earlier(j)
                if other_key != key:
                    clusters.join(other_unit, unit)
                    other_split = split_of[other_unit]
                    if other_split != split:
                        leaks.near_pairs += 1
                        note(record["id"], split, other_id, other_split)
            index.add(signature, band_hashes)
            if index.size % RECORDS_PER_FLUSH == 0:
                index.flush()

    spans: defaultdict[str, set[str]] = defaultdict(set)
    for unit in clusters.parent:
        spans[clusters.find(unit)].add(split_of[unit])
    leaks.to_move = {unit for unit in clusters.parent
                     if split_of[unit] != "train" and len(spans[clusters.find(unit)]) > 1}
    return leaks


@dataclass
class _Written:
    """What the second pass wrote: records per split and per stratum, and the records moved to end leaks."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    strata: dict[str, dict[str, int]] = field(default_factory=dict)
    moved: int = 0
    moved_ids: list[str] = field(default_factory=list)


class _Splitter:
    """One split of a records file by SplitParams, with its per-record state in a scratch database."""

    def __init__(self, params: SplitParams, records_path: Path, db: sqlite3.Connection):
        self.params = params
        self.ratios = {split: getattr(params, split) for split in SPLITS}
        self.records_path = records_path
        self.db = db
        self.assigned: Counter[str] = Counter()  # records per split before leaks are moved
        self.has_pairs = False  # whether a preference pair was read (count_units reads every record)
        # unit -> its records, and with stratify its stratum
        db.execute("CREATE TABLE unit (unit BLOB PRIMARY KEY, size INTEGER NOT NULL, stratum BLOB) WITHOUT ROWID")
        db.execute("CREATE TABLE assigned (unit BLOB PRIMARY KEY, split INTEGER NOT NULL) WITHOUT ROWID")

    def unit_of(self, record: dict) -> str:
        if self.params.group_by:
            return group_value(record["meta"], self.params.group_by)
        return prompt_unit(record) if is_preference(record) else record["id"]  # every pair of a prompt together

    def _noting_pairs(self, records: Iterator[dict]) -> Iterator[dict]:
        for record in records:
            self.has_pairs = self.has_pairs or is_preference(record)
            yield record

    def count_units(self) -> tuple[int, int]:
        """Load every unit with its size (and stratum); (units, records)."""
        stratify = self.params.stratify
        # An id seen with two values (one example from two sources) takes the smaller, so that the split
        # does not depend on the input order.
        self.db.executemany(
            "INSERT INTO unit VALUES (?, 1, ?) ON CONFLICT (unit) DO UPDATE"
            " SET size = size + 1, stratum = min(stratum, excluded.stratum)",
            ((_blob(self.unit_of(record)), _blob(group_value(record["meta"], stratify)) if stratify else None)
             for record in self._noting_pairs(read_jsonl(self.records_path))))
        return self.db.execute("SELECT count(*), coalesce(sum(size), 0) FROM unit").fetchone()

    def _in_order(self, rows, by_rank: bytearray) -> Iterator[tuple[bytes, int]]:
        """(unit, SPLITS index) for sorted (unit, size) rows, given the split of each rank."""
        for rank, (unit, size) in enumerate(rows):
            self.assigned[SPLITS[by_rank[rank]]] += size
            yield unit, by_rank[rank]

    def _assignment(self, unit_count: int) -> Iterator[tuple[bytes, int]]:
        # Units in sorted order, as assign and assign_groups take them: SQLite orders these blobs as
        # Python orders the strings.
        db, seed = self.db, self.params.seed
        if self.params.group_by:
            sizes = array("q", (size for (size,) in db.execute("SELECT size FROM unit ORDER BY unit")))
            yield from self._in_order(db.execute("SELECT unit, size FROM unit ORDER BY unit"),
                                      _group_split_by_rank(sizes, self.ratios, seed))
        elif not self.params.stratify:
            yield from self._in_order(db.execute("SELECT unit, size FROM unit ORDER BY unit"),
                                      _split_by_rank(unit_count, self.ratios, seed))
        else:  # each stratum on its own
            units_in = dict(db.execute("SELECT stratum, count(*) FROM unit GROUP BY stratum"))
            rows = db.execute("SELECT stratum, unit, size FROM unit ORDER BY stratum, unit")
            for stratum, stratum_rows in itertools.groupby(rows, key=lambda row: row[0]):
                yield from self._in_order((row[1:] for row in stratum_rows),
                                          _split_by_rank(units_in[stratum], self.ratios, seed))

    def assign(self, unit_count: int) -> _Assignment:
        self.db.executemany("INSERT INTO assigned VALUES (?, ?)", self._assignment(unit_count))
        return _Assignment(self.db)

    def end_leaks(self, split_of: _Assignment, work_dir: Path | None,
                  progress: Callable[[Iterable], Iterable]) -> _Leaks:
        """Find duplicates across splits; fail, or move their held-out units into train, as on_leak says."""
        if dedup_rules_out_leaks(self.params) and not self.has_pairs:
            leaks = _Leaks()
        else:
            leaks = _find_leaks(self.records_path, self.unit_of, split_of, self.params.leak_threshold, work_dir,
                                progress)
        if self.params.on_leak == "fail" and (leaks.exact_pairs or leaks.near_pairs):
            raise LeakageError(
                f"leakage across splits: {leaks.exact_pairs} exact and {leaks.near_pairs} near-duplicate pairs of "
                f"records are in different splits, e.g. {', '.join(leaks.examples)}; remove the duplicates, or set "
                "data.split.on_leak: move to move the held-out records into train")
        self.db.executemany("UPDATE assigned SET split = ? WHERE unit = ?",
                            ((SPLITS.index("train"), _blob(unit)) for unit in leaks.to_move))
        return leaks

    def write(self, split_of: _Assignment, to_move: set[str], outputs: Mapping[str, Path]) -> _Written:
        """A second pass, so each split keeps the input's record order without holding the records."""
        written, group_by, stratify = _Written(), self.params.group_by, self.params.stratify
        # Only with group_by can records of one id be in different units, and so in two splits.
        if group_by:
            self.db.execute("CREATE TABLE written (id BLOB NOT NULL, split INTEGER NOT NULL, PRIMARY KEY (id, split))"
                            " WITHOUT ROWID")
        with ExitStack() as stack:
            files = {split: stack.enter_context(open(outputs[split], "w", encoding="utf-8")) for split in SPLITS}
            for record in read_jsonl(self.records_path):
                unit = self.unit_of(record)
                split = split_of[unit]
                files[split].write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
                if group_by:
                    self.db.execute("INSERT OR IGNORE INTO written VALUES (?, ?)",
                                    (_blob(record["id"]), SPLITS.index(split)))
                written.counts[split] += 1
                if stratify:
                    stratum = group_value(record["meta"], stratify)
                    written.strata.setdefault(stratum, dict.fromkeys(SPLITS, 0))[split] += 1
                if unit in to_move:
                    written.moved += 1
                    if len(written.moved_ids) < MAX_EXAMPLE_IDS:
                        written.moved_ids.append(record["id"])
        assert not (group_by and self.db.execute("SELECT 1 FROM written GROUP BY id HAVING count(*) > 1 LIMIT 1")
                    .fetchone()), "an id was written to two splits"
        return written

    def group_counts(self) -> dict:
        groups = Counter({SPLITS[split]: n for split, n in
                          self.db.execute("SELECT split, count(*) FROM assigned GROUP BY split")})
        missing = self.db.execute("SELECT size FROM unit WHERE unit = ?", (_blob(MISSING_GROUP),)).fetchone()
        return {"field": self.params.group_by, "groups": {split: groups[split] for split in SPLITS},
                "missing": missing[0] if missing else 0}


def split_records(records_path: Path, params: SplitParams, outputs: Mapping[str, Path], work_dir: Path | None = None,
                  progress: Callable[[Iterable, int], Iterable] = lambda records, _total: records) -> dict:
    """Write each record of `records_path` to outputs[split]; the summary for the report. The leak check, the
    longest pass, goes through progress(records, total)."""
    with ScratchDB(work_dir, "split") as scratch:
        splitter = _Splitter(params, records_path, scratch.db)
        unit_count, record_count = splitter.count_units()
        split_of = splitter.assign(unit_count)
        leaks = splitter.end_leaks(split_of, work_dir, lambda records: progress(records, record_count))
        written = splitter.write(split_of, leaks.to_move, outputs)
        group_by = splitter.group_counts() if params.group_by else None
    ratios = splitter.ratios
    to_split = f"{unit_count} groups" if params.group_by else f"{record_count} records"
    notes = [f"{split} ratio is {ratios[split]:g} but it got no records: only {to_split} to split"
             for split in SPLITS if ratios[split] > 0 and splitter.assigned[split] == 0]
    if written.moved:
        notes.append(f"{written.moved} held-out records moved to train because they duplicate records in another "
                     "split; validation and test are smaller than their ratios")
    return {
        "seed": params.seed, "ratios": ratios, "counts": written.counts, "notes": notes,
        "stratify": {"field": params.stratify, "strata": dict(sorted(written.strata.items())),
                     "missing": sum(written.strata.get(MISSING_GROUP, {}).values())} if params.stratify else None,
        "group_by": group_by,
        "leakage": {"exact_pairs": leaks.exact_pairs, "near_pairs": leaks.near_pairs, "moved": written.moved,
                    "example_ids": written.moved_ids, "action": params.on_leak},
    }
