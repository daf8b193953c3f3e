"""A look at the first records of a source, so that `fttool validate` can report a `fields` mapping that matches
nothing before a run quarantines every record for it."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from fttool.data.containers import BLANK, CONTAINERS, Rejected, UnreadableRest, read_container
from fttool.data.normalise import SHAREGPT_KEY
from fttool.data.preference import alternative_shape_seen
from fttool.data.settings import SourceSettings

PROBED_RECORDS = 100
# Fields a record may lack: alpaca's input, a chat's tools and a ShareGPT system prompt.
OPTIONAL_FIELDS = ("input", "tools", "system")


@dataclass(frozen=True)
class UnmatchedField:
    canonical: str
    key: str  # the key the source maps it to
    keys_seen: tuple[str, ...]  # top-level keys of the records read, sorted
    records: int  # how many records were read


def unreadable_start(source: SourceSettings, path: Path) -> tuple[int, str] | None:
    """(line, problem) when the container cannot be read before its first record (a .json file that is not an
    array, a Parquet file that is not Parquet, a CSV header that is not CSV): ingest would quarantine the whole
    file as one entry. Records that are each broken are ingest's to quarantine one by one, not this."""
    assert source.container is not None, "probed sources are files, whose container the compiler resolves"
    for line, item in read_container(CONTAINERS[source.container], path):
        if item is BLANK:
            continue
        if isinstance(item, UnreadableRest):
            return line, item.message.removesuffix(UnreadableRest.SUFFIX)
        return None
    return None


def unmatched_fields(source: SourceSettings, path: Path, explicit: set[str]) -> list[UnmatchedField]:
    """Fields whose key appears in none of the first PROBED_RECORDS records of the file.

    Required fields are checked always, optional ones only when the recipe maps them (`explicit`). Nothing is
    reported for a file with no readable object record: ingest quarantines those with their own reasons.
    """
    assert source.container is not None, "probed sources are files, whose container the compiler resolves"
    items = read_container(CONTAINERS[source.container], path)
    objects = [item for _, item in itertools.islice(
        ((line, item) for line, item in items if item is not BLANK and not isinstance(item, Rejected)),
        PROBED_RECORDS) if isinstance(item, dict)]
    if not objects:
        return []
    seen = {key for record in objects for key in record}
    unmatched = []
    for canonical, key in source.fields.items():
        if canonical in OPTIONAL_FIELDS and canonical not in explicit:
            continue
        found = (key in seen or (canonical == "messages" and key == "messages" and SHAREGPT_KEY in seen)
                 or alternative_shape_seen(source, canonical, seen))
        if not found:
            unmatched.append(UnmatchedField(canonical, key, tuple(sorted(seen)), len(objects)))
    return unmatched
