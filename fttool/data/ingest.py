"""Ingest sources: stream each one, normalise every record, and quarantine each one that is unusable.

One bad record costs one record, never the run. Quarantine entries name the source, line, reason and a
message that holds no record content; the summary names the quarantine file and the most frequent reasons,
so that a run that keeps nothing can say why.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from fttool.data.containers import BLANK, CONTAINERS, Rejected, read_container
from fttool.data.normalise import normalised, record_line
from fttool.data.per_record import batched, in_order_beyond
from fttool.data.preference import PREFERENCE_INPUTS, preference_record
from fttool.data.settings import EngineSettings, SourceSettings

TOP_REASONS = 3  # quarantine reasons the summary names with an example entry
RECORDS_PER_BATCH = 512  # records a worker normalises at a time
MIN_RECORDS_FOR_WORKERS = 20_000  # see docs/benchmarks.md, "Per-record stages in parallel"


@dataclass
class SourceItems:
    """A source opened for reading: its raw records and how messages should name a position in it."""

    items: Iterable[tuple[int, Any]]
    unit: str  # what one input record is called in messages
    line_is_row_number: bool
    identity: dict  # what the summary says about where the records came from


def open_source(source: SourceSettings, resolve: Callable[[str], Path]) -> SourceItems:
    """The raw records of a local file (`resolve` turns a recipe path into a file) or a pinned hub split."""
    if source.hub:
        from fttool.data.hub import read_hub_split, resolved_commit, snapshot_dir

        assert source.revision and source.split, "the recipe rules require both for a hub source"
        snapshot = snapshot_dir(source.hub, source.revision)
        return SourceItems(read_hub_split(snapshot, source.split), "row", True,
                           {"hub": source.hub, "revision": source.revision, "commit": resolved_commit(snapshot),
                            "split": source.split})
    assert source.path and source.container, "the compiler resolves both for a file source"
    container = CONTAINERS[source.container]
    return SourceItems(read_container(container, resolve(source.path)), container.unit,
                       container.line_is_row_number, {"path": source.path, "container": source.container})


@dataclass
class Quarantine:
    """The quarantine file, with counts by reason and the first entry of each reason."""

    handle: BinaryIO
    path: str  # as the summary names it
    by_reason: Counter[str] = field(default_factory=Counter)
    first_of: dict[str, dict] = field(default_factory=dict)

    def add(self, entry: dict) -> None:
        self.by_reason[entry["reason"]] += 1
        self.first_of.setdefault(entry["reason"], entry)
        self.handle.write((json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))

    def summary(self) -> dict:
        top = self.by_reason.most_common(TOP_REASONS)
        return {"path": self.path, "records": sum(self.by_reason.values()),
                "top_reasons": [{"reason": reason, "count": count,
                                 "example": {key: self.first_of[reason][key] for key in ("source", "line", "message")}}
                                for reason, count in top]}


@dataclass(frozen=True)
class _Normalising:
    """What a worker needs to normalise a source's records: picklable (the source's fields as a plain dict)."""

    source: SourceSettings
    unit: str
    max_chars: int


# A batch holds (line number, kind, payload) for each input record: kind "value" (the raw JSON value), "blank",
# or "rejected" (payload: reason and message). A container's BLANK and Rejected do not survive pickling, so they
# travel as kinds; a "value" comes back as "kept" (its records file line and meta keys) or "rejected".
Entry = tuple[int, str, Any]


def normalise_batch(batch: list[Entry], job: _Normalising) -> list[Entry]:
    """Normalise and serialise the raw values of one batch; blanks and rejections pass through."""
    normalise = preference_record if job.source.format in PREFERENCE_INPUTS else normalised
    outcomes = []
    for line_number, kind, payload in batch:
        if kind == "value":
            try:
                record = normalise(payload, job.unit, job.source, job.max_chars)
                kind, payload = "kept", (record_line(record), tuple((record.get("meta") or {}).keys()))
            except Rejected as rejection:
                kind, payload = "rejected", (rejection.reason, rejection.message)
        outcomes.append((line_number, kind, payload))
    return outcomes


def _entries(items: Iterable[tuple[int, Any]]) -> Iterator[Entry]:
    for line_number, item in items:
        if item is BLANK:
            yield line_number, "blank", None
        elif isinstance(item, Rejected):  # the container could not read it: quarantined like any other rejection
            yield line_number, "rejected", (item.reason, item.message)
        else:
            yield line_number, "value", item


def ingest_source(source: SourceSettings, opened: SourceItems, max_chars: int, records_out: BinaryIO,
                  quarantine: Quarantine, compute: EngineSettings,
                  progress: Callable[[Iterable, str], Iterator] = lambda items, _: iter(items),
                  min_records_for_workers: int = MIN_RECORDS_FOR_WORKERS) -> tuple[dict, int]:
    """Stream one source into records_out and the quarantine; its summary and its blank line count.

    Records are normalised a batch at a time on the engine of `compute` (in this process for the first
    `min_records_for_workers`); the container is read, and the outcomes written, here in input order.
    """
    lines = kept = blank = 0
    meta_fields: Counter[str] = Counter()  # keys outside the format: kept as meta, never trained on
    job = _Normalising(replace(source, fields=dict(source.fields)), opened.unit, max_chars)
    batches = batched(_entries(progress(opened.items, f"ingest {source.where}")), RECORDS_PER_BATCH)
    for outcomes in in_order_beyond(normalise_batch, batches, job, compute, min_records_for_workers):
        for line_number, kind, payload in outcomes:
            if kind == "blank":
                blank += 1
                continue
            lines += 1
            if kind == "kept":
                line, meta_keys = payload
                meta_fields.update(meta_keys)
                records_out.write(line)
                kept += 1
            else:
                reason, message = payload
                message = f"row {line_number}: {message}" if opened.line_is_row_number else message
                quarantine.add({"source": source.where, "line": line_number, "reason": reason, "message": message})
    summary = {**opened.identity, "tag": source.tag, "format": source.format, "lines": lines, "kept": kept,
               "quarantined": lines - kept, "meta_fields": dict(sorted(meta_fields.items()))}
    return summary, blank
