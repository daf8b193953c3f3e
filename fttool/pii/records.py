"""Scrub streams of records: each distinct text is analysed once, in chunks, and counted per occurrence.

Every string of a record is scanned (extra fields, `meta`, the source tag, system prompts, tool messages), except
its id, format and message roles and the fields the recipe names in `pii.skip_fields`.

`record_scrubbing(params, records)` yields a function that turns a stream of records into the records to
write (scrubbed, or without those dropped), and the tally of what was found. Types are resolved per record: a
name-like string found in one of a record's texts gets one type, and is a finding, in every text of the record
(`resolve_records`). Chunks are analysed ahead of the one being written, in this process or in workers
(fttool.pii.workers). Counts hold entity types, fields and record ids, never the values found.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice

from fttool.pii.evidence import one_type_across, spreads
from fttool.pii.scrubber import TextOutcome
from fttool.pii.settings import PiiParams
from fttool.pii.workers import Start, analysis

CHUNK_RECORDS = 512  # records analysed together: enough for spaCy batching, small enough to stream
CHUNKS_IN_FLIGHT = 2  # chunks handed to the analysis beyond the one being written, so that it never waits
EXAMPLE_IDS = 10  # ids of dropped records listed in the summary


# Keys that hold no free text: the record's id and format, and a chat message's role.
NOT_TEXT = frozenset({"id", "format", "role"})


def field_name(path: str) -> str:
    """messages[3].content -> messages.content: fields are counted and skipped by name, not by position."""
    return re.sub(r"\[\d+\]", "", path)


def _skipped(name: str, skip: frozenset[str]) -> bool:
    return name in skip or any(name.startswith(prefix + ".") for prefix in skip)


def map_strings(value, transform, skip: frozenset[str], path: str = ""):
    """`value` with transform(path, text) applied to every non-empty string in it, at any depth (extra fields,
    meta, the source tag, every chat message), except under NOT_TEXT keys and the field names in `skip`."""
    if isinstance(value, dict):
        return {key: item if key in NOT_TEXT or _skipped(field_name(f"{path}{key}"), skip)
                else map_strings(item, transform, skip, f"{path}{key}.") for key, item in value.items()}
    if isinstance(value, list):
        return [map_strings(item, transform, skip, f"{path[:-1]}[{index}].") for index, item in enumerate(value)]
    if isinstance(value, str) and value.strip():
        return transform(path[:-1], value)
    return value


def texts_of(record: dict, skip: frozenset[str]) -> list[str]:
    found: list[str] = []

    def collect(_path: str, text: str) -> str:
        found.append(text)
        return text

    map_strings(record, collect, skip)
    return found


def _key(text: str) -> bytes:
    """The cache key of a text: a digest, so that the cache does not hold every text of the run."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class OutcomeCache:
    """Each distinct text's outcome for the run. A text is claimed once, by the first chunk it occurs in,
    and chunks are finished in order, so a later chunk finds the outcomes of every text it shares."""

    def __init__(self):
        self._by_key: dict[bytes, TextOutcome | None] = {}

    def claim(self, texts: Iterable[str]) -> dict[bytes, str]:
        claimed: dict[bytes, str] = {}
        for text in texts:
            key = _key(text)
            if key not in self._by_key and key not in claimed:
                claimed[key] = text
        self._by_key.update(dict.fromkeys(claimed))
        return claimed

    def store(self, keys: Iterable[bytes], outcomes: list[TextOutcome]) -> None:
        self._by_key.update(zip(keys, outcomes))

    def of(self, text: str) -> TextOutcome:
        outcome = self._by_key[_key(text)]
        # Claimed but not stored would mean a chunk finished before the chunk that claimed one of its texts.
        assert outcome is not None, "chunks are finished in order"
        return outcome


# For each record, its distinct texts with their findings' spans -> the outcomes that change (resolved_outcomes).
Resolve = Callable[[list[list[tuple[str, tuple]]]], list[dict[str, TextOutcome]]]


def _candidate(texts: list[str], outcomes: list[TextOutcome]) -> list[tuple[str, tuple]]:
    """A record's distinct texts with their findings' spans when resolving types over the record could change one
    (_could_change), else nothing. Plain data: the resolution runs where the analysis does (fttool.pii.workers), so
    that a process that hands it to workers never imports presidio."""
    distinct = dict(zip(texts, outcomes))  # a text repeated in a record is resolved once
    if len(distinct) < 2 or not _could_change(distinct):
        return []
    return [(text, outcome.spans) for text, outcome in distinct.items()]


def _could_change(distinct: dict[str, TextOutcome]) -> bool:
    """Whether one type per string over the record could change a text's findings: a found name-like string has
    two types in the record, or occurs in a text more often than it was found there (counting occurrences inside
    longer words too, which the resolution itself then leaves alone). Most records with names find each the same
    way wherever it occurs, and need no resolution."""
    types: dict[str, set[str]] = {}
    found_at: dict[tuple[str, str], set[int]] = {}
    for text, outcome in distinct.items():
        for start, end, kind, _, _ in outcome.spans:
            value = text[start:end]
            if spreads(kind, value):
                types.setdefault(value, set()).add(kind)
                found_at.setdefault((text, value), set()).add(start)
    if any(len(kinds) > 1 for kinds in types.values()):
        return True
    return any(text.count(value) > len(found_at.get((text, value), ())) for text in distinct for value in types)


def _record_changes(record: list[tuple[str, tuple]]) -> list[tuple[str, list]]:
    """(text, its findings) for each text of a record whose findings change when each name-like string gets one
    type over the whole record (fttool.pii.evidence.one_type_across)."""
    from presidio_analyzer import RecognizerResult

    analysed = [(text, [RecognizerResult(kind, start, end, score,
                                         recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: recognizer})
                        for start, end, kind, score, recognizer in spans])
                for text, spans in record]
    return [(text, after) for (text, before), after in zip(analysed, one_type_across(analysed))
            if {(r.start, r.end, r.entity_type) for r in before} != {(r.start, r.end, r.entity_type) for r in after}]


def resolved_outcomes(scrubber, records: list[list[tuple[str, tuple]]]) -> list[dict[str, TextOutcome]]:
    """For each record (its distinct texts with their spans), the outcomes of the texts whose findings change when
    types are resolved over the record, from one TextScrubber.outcomes_with call, so that the second scan of the
    texts it rewrites runs in one batch. Run by the analysis, with its scrubber (fttool.pii.workers)."""
    changes = [(index, text, results) for index, record in enumerate(records)
               for text, results in _record_changes(record)]
    resolved: list[dict[str, TextOutcome]] = [{} for _ in records]
    if changes:
        redone = scrubber.outcomes_with([text for _, text, _ in changes], [results for _, _, results in changes])
        for (index, text, _), outcome in zip(changes, redone):
            resolved[index][text] = outcome
    return resolved


def resolve_records(texts_of_records: list[list[str]], outcomes: OutcomeCache, resolve: Resolve
                    ) -> list[dict[str, TextOutcome]]:
    """For each record (given by its texts), the outcomes that change when types are resolved over the record: a
    name the NER typed LOCATION in one message and PERSON in the next, or found in one field and missed in another.
    `resolve` runs resolved_outcomes where the analysis runs, once for all the records that could change. A text
    shared with other records keeps, there, the outcome its own analysis gave."""
    candidates = [(index, record) for index, texts in enumerate(texts_of_records)
                  for record in [_candidate(texts, [outcomes.of(text) for text in texts])] if record]
    resolved: list[dict[str, TextOutcome]] = [{} for _ in texts_of_records]
    if candidates:
        for (index, _), changed in zip(candidates, resolve([record for _, record in candidates])):
            resolved[index] = changed
    return resolved


class Tally:
    """Counts for the summary, per occurrence of a text (a repeated text counts each time it appears)."""

    def __init__(self, drops: bool, skip: frozenset[str], on_finding: Callable[[dict], None] | None = None,
                 resolve: Resolve | None = None):
        self.drops = drops
        self.skip = skip
        self.on_finding = on_finding
        self.resolve = resolve  # resolves types per record (resolve_records); None: per text only
        self.fields_scanned: set[str] = set()
        self.entities: Counter = Counter()
        self.by_field: dict[str, Counter] = {}
        self.residual: Counter = Counter()
        self.records_with_pii = 0
        self.records_scanned = 0
        self.dropped = 0
        self.dropped_example_ids: list[str] = []

    def resolutions(self, records: list[dict], outcomes: OutcomeCache) -> list[dict[str, TextOutcome]]:
        """Each record's outcomes that differ from its texts' own (resolve_records)."""
        if self.resolve is None:
            return [{} for _ in records]
        return resolve_records([texts_of(record, self.skip) for record in records], outcomes, self.resolve)

    def handle(self, record: dict, outcomes: OutcomeCache, resolved: dict[str, TextOutcome] | None = None
               ) -> dict | None:
        """The record to write, or None when it is dropped; `resolved` holds the record's outcomes that differ
        from its texts' own (Tally.resolutions)."""
        found_any = False
        resolved = resolved or {}

        def transform(path: str, text: str) -> str:
            nonlocal found_any
            outcome = resolved[text] if text in resolved else outcomes.of(text)
            self.fields_scanned.add(field_name(path))
            if self.on_finding:
                # A residual's context is the scrubbed text's: what is written, with the value left in it masked.
                for finding, residual in [*((f, False) for f in outcome.findings),
                                          *((f, True) for f in outcome.residual_findings)]:
                    self.on_finding({"record": record["id"], "field": path, "type": finding.entity,
                                     "score": finding.score, "recognizer": finding.recognizer,
                                     "residual": residual, "context": finding.context})
            if outcome.found:
                found_any = True
                self.entities.update(outcome.found)
                self.by_field.setdefault(field_name(path), Counter()).update(outcome.found)
            self.residual.update(outcome.residual)
            return text if outcome.scrubbed is None else outcome.scrubbed

        handled = map_strings(record, transform, self.skip)
        self.records_scanned += 1
        self.records_with_pii += found_any
        if self.drops and found_any:
            self.dropped += 1
            if len(self.dropped_example_ids) < EXAMPLE_IDS:
                self.dropped_example_ids.append(record["id"])
            return None
        return handled


def _chunks(records: Iterator[dict], size: int) -> Iterator[list[dict]]:
    while chunk := list(islice(records, size)):
        yield chunk


def _handled_records(records: Iterator[dict], outcomes: OutcomeCache, start: Start, tally: Tally) -> Iterator[dict]:
    """The records to write, in order, while later chunks are being analysed."""
    in_flight: deque = deque()

    def finish_oldest() -> Iterator[dict]:
        chunk, keys, wait = in_flight.popleft()
        outcomes.store(keys, wait())
        for record, resolved in zip(chunk, tally.resolutions(chunk, outcomes)):
            handled = tally.handle(record, outcomes, resolved)
            if handled is not None:
                yield handled

    for chunk in _chunks(records, CHUNK_RECORDS):
        claimed = outcomes.claim(text for record in chunk for text in texts_of(record, tally.skip))
        in_flight.append((chunk, list(claimed), start(list(claimed.values()))))
        if len(in_flight) > CHUNKS_IN_FLIGHT:
            yield from finish_oldest()
    while in_flight:
        yield from finish_oldest()


@contextmanager
def record_scrubbing(params: PiiParams, records: int, on_finding: Callable[[dict], None] | None = None
                     ) -> Iterator[tuple[Callable[[Iterable[dict]], Iterator[dict]], Tally]]:
    """(scrub, tally): scrub(records) gives the records to write; `records` is how many will come in all,
    which decides whether workers are worth starting; on_finding, if given, receives each finding (record id,
    field, type, score, recognizer, masked context). Fails before any work on a bad key or allow list, and on a
    bad model or entity before any record is written (fttool.pii.workers.analysis)."""
    with analysis(params, records) as analyser:
        tally = Tally(drops=params.action == "drop", skip=frozenset(params.skip_fields), on_finding=on_finding,
                      resolve=lambda records: analyser.call(resolved_outcomes, records))
        outcomes = OutcomeCache()
        yield (lambda stream: _handled_records(iter(stream), outcomes, analyser.start, tally)), tally
