"""Ingest sources: stream each one, normalise every record, and quarantine each one that is unusable.

One bad record costs one record, never the run. Quarantine entries name the source, line, reason and a
message that holds no record content; the summary names the quarantine file and the most frequent reasons,
so that a run that keeps nothing can say why.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from fttool.data.containers import BLANK, CONTAINERS, Rejected, read_container
from fttool.data.normalise import normalised, record_line
from fttool.data.preference import PREFERENCE_INPUTS, preference_record
from fttool.data.settings import SourceSettings

TOP_REASONS = 3  # quarantine reasons the summary names with an example entry


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


def ingest_source(source: SourceSettings, opened: SourceItems, max_chars: int, records_out: BinaryIO,
                  quarantine: Quarantine, progress: Callable[[Iterable, str], Iterator] = lambda items, _: iter(items),
                  ) -> tuple[dict, int]:
    """Stream one source into records_out and the quarantine; its summary and its blank line count."""
    lines = kept = blank = 0
    meta_fields: Counter[str] = Counter()  # keys outside the format: kept as meta, never trained on
    normalise = preference_record if source.format in PREFERENCE_INPUTS else normalised
    for line_number, item in progress(opened.items, f"ingest {source.where}"):
        if item is BLANK:
            blank += 1
            continue
        lines += 1
        try:
            if isinstance(item, Rejected):
                raise item  # the container could not read it: quarantined like any other rejection
            record = normalise(item, opened.unit, source, max_chars)
            meta_fields.update((record.get("meta") or {}).keys())
            records_out.write(record_line(record))
            kept += 1
        except Rejected as rejection:
            message = f"row {line_number}: {rejection.message}" if opened.line_is_row_number else rejection.message
            quarantine.add({"source": source.where, "line": line_number, "reason": rejection.reason,
                            "message": message})
    summary = {**opened.identity, "tag": source.tag, "format": source.format, "lines": lines, "kept": kept,
               "quarantined": lines - kept, "meta_fields": dict(sorted(meta_fields.items()))}
    return summary, blank
