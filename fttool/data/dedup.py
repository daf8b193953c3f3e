"""Clean the text of every record, then drop exact, near and (optionally) semantic duplicates, keeping the first.

Exact duplicates are found by a hash of the record's text after casefolding and collapsing whitespace;
near duplicates by MinHash LSH over word 3-grams (fttool.data.minhash); semantic duplicates by the cosine
similarity of sentence embeddings. The records themselves are never held. Exact keys, LSH bands and MinHash
signatures, which grow with the number of records, live on disk in a scratch SQLite database (`ScratchDB`)
behind a fixed page cache, so memory does not grow with the data; only the kept embeddings of semantic dedup do.

Cleaning, keys, signatures and embeddings depend on the record alone: they are computed a batch at a time by an
engine (fttool.data.engines: worker processes or a Ray cluster's actors, each loading the encoder once). The index
pass that decides which records are duplicates runs in the stage's own process in input order, so the output does
not depend on the engine.
The split stage reuses the exact key and the MinHash index to check for leakage across splits.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fttool.data.embeddings import MODEL_NAME, embed
from fttool.data.engines import in_order
from fttool.data.records import map_text_fields, text_fields
from fttool.data.settings import DedupParams

MAX_EXAMPLE_IDS = 5
RECORDS_PER_BATCH = 512  # records an engine cleans, keys and signs at a time
# Values one lookup statement binds (SQLite allows 32766); a batch's lookups go in chunks of at most this many.
SQL_VALUES_PER_QUERY = 1024
SEMANTIC_BATCH = 256  # records embedded and compared at a time
# Kept embeddings per matrix product: bounds the similarity matrix to SEMANTIC_BATCH x this many floats.
KEPT_BLOCK_ROWS = 8192
# Unicode's control characters (category Cc, a fixed set: U+0000-U+001F and U+007F-U+009F) but newline and tab.
CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Runs of spaces and tabs after a line's first non-blank character: leading indentation is kept,
# because collapsing it would break code in the data.
INNER_BLANK_RUN = re.compile(r"(?<=\S)[ \t]{2,}")
TRAILING_BLANKS = re.compile(r"[ \t]+$", re.MULTILINE)
WHITESPACE_RUN = re.compile(r"\s+")
# Page cache of each scratch database: the memory its state may use, however many records it holds.
SCRATCH_CACHE_KIB = 8192


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _drop_control_chars(text: str) -> str:
    return CONTROL_CHARS.sub("", text)


def _tidy_whitespace(text: str) -> str:
    return TRAILING_BLANKS.sub("", INNER_BLANK_RUN.sub(" ", text)).rstrip()


# Applied in this order; each one's count is the number of records it changed.
CLEANING_RULES = (("nfc", _nfc), ("control_chars", _drop_control_chars), ("whitespace", _tidy_whitespace))


def _clean(record: dict, changed_by: Counter[str]) -> dict:
    """The record with every rule applied to each text in turn; a rule counts once per record it changed."""
    changed: set[str] = set()

    def cleaned(_path: str, text: str) -> str:
        for rule, transform in CLEANING_RULES:
            after = transform(text)
            if after != text:
                changed.add(rule)
            text = after
        return text

    record = map_text_fields(record, cleaned)
    changed_by.update(changed)
    return record


def exact_key(record: dict) -> bytes:
    """Equal for records whose texts differ only in case and whitespace; field names and chat roles count."""
    roles = [message["role"] for message in record.get("messages", ())]  # chats, and the prompts of pairs
    texts = [(path, WHITESPACE_RUN.sub(" ", text.casefold()).strip()) for path, text in text_fields(record)]
    return hashlib.sha256(json.dumps([record["format"], roles, texts]).encode("utf-8")).digest()


def _joined_text(record: dict) -> str:
    return "\n".join(text for _, text in text_fields(record))


def signature_of(record: dict):
    """The record's MinHash signature (NUM_PERM uint32 values, as datasketch computes them)."""
    from fttool.data.minhash import shingles, signatures

    return signatures([shingles(_joined_text(record))])[0]


class ScratchDB:
    """A throwaway SQLite database in a new temporary directory, for state that grows with the number of records.

    Pages beyond a fixed cache stay on disk, so memory does not grow with the data. Nothing is ever committed
    or made durable: close() (or garbage collection) deletes the directory.
    """

    def __init__(self, directory: Path | None, prefix: str):
        self._tmp = tempfile.TemporaryDirectory(prefix=prefix + "-", dir=directory)
        self.dir = Path(self._tmp.name)
        self.db = sqlite3.connect(self.dir / "state.sqlite", isolation_level=None)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "locking_mode = EXCLUSIVE",
                       f"cache_size = -{SCRATCH_CACHE_KIB}", "temp_store = FILE"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute("BEGIN")  # one transaction throughout: no commit per statement

    def close(self) -> None:
        self.db.close()
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _select_in(db: sqlite3.Connection, query: str, values: list) -> Iterator[tuple]:
    """The rows of `query`, whose `IN ({})` takes the values, a chunk of them at a time.

    Each chunk is padded (repeating a value, which IN ignores) to a power of two, so that a few statement texts
    serve every batch: sqlite3 caches a prepared statement per text, and one per batch size would pile up.
    """
    values = list(set(values))
    for start in range(0, len(values), SQL_VALUES_PER_QUERY):
        chunk = values[start:start + SQL_VALUES_PER_QUERY]
        size = 1 << (len(chunk) - 1).bit_length()
        yield from db.execute(query.format(", ".join("?" * size)), chunk + chunk[:1] * (size - len(chunk)))


class KeySet:
    """A set of byte strings, on disk."""

    def __init__(self, directory: Path | None):
        self.scratch = ScratchDB(directory, "keys")
        self.scratch.db.execute("CREATE TABLE seen (key BLOB PRIMARY KEY) WITHOUT ROWID")

    def present(self, keys: list[bytes]) -> set[bytes]:
        """Those of `keys` in the set."""
        return {key for (key,) in _select_in(self.scratch.db, "SELECT key FROM seen WHERE key IN ({})", keys)}

    def add_new(self, keys: list[bytes]) -> None:
        """Add keys that are not in the set yet."""
        self.scratch.db.executemany("INSERT INTO seen VALUES (?)", ((key,) for key in keys))

    def close(self) -> None:
        self.scratch.close()


class NearDuplicateIndex:
    """MinHash signatures of indexed records; LSH finds candidates, the signatures confirm them.

    Banding is datasketch's MinHashLSH (the bands it picks for the threshold): a candidate shares every value of
    at least one band. The index lives on disk: a 64-bit hash of each band in SQLite, which narrows the search,
    and the signatures in a flat file, which decide it (same band, and estimated Jaccard at the threshold).
    Records are added in batches: until `flush`, the latest ones wait in memory, where `similar` finds them too.
    """

    def __init__(self, threshold: float, directory: Path | None = None):
        from fttool.data.minhash import NUM_PERM, SIGNATURE_DTYPE, lsh_bands

        self.threshold = threshold
        self.bands, self.rows = lsh_bands(threshold)
        self.signature_bytes = NUM_PERM * SIGNATURE_DTYPE.itemsize
        self.dtype = SIGNATURE_DTYPE
        self.scratch = ScratchDB(directory, "minhash")
        self.scratch.db.execute("CREATE TABLE band (hash INTEGER NOT NULL, key INTEGER NOT NULL,"
                                " PRIMARY KEY (hash, key)) WITHOUT ROWID")
        self.signatures = open(self.scratch.dir / "signatures", "w+b", buffering=0)  # key i at i * signature_bytes
        self.size = 0
        self._unflushed: dict[int, list[int]] = {}  # band hash -> keys added since the last flush
        self._unflushed_signatures: dict[int, Any] = {}  # key -> signature, for those keys

    def band_hashes(self, signature_rows):
        """(records, bands) signed 64-bit band hashes of signature rows."""
        from fttool.data.minhash import band_hashes

        return band_hashes(signature_rows, self.bands, self.rows)

    def _banded(self, signature):
        return signature[:self.bands * self.rows].reshape(self.bands, self.rows)

    def indexed_keys(self, band_hash_rows) -> dict[int, list[int]]:
        """band hash -> keys of the flushed records with a band of that hash, for every hash of these rows."""
        keys: dict[int, list[int]] = {}
        for band_hash, key in _select_in(self.scratch.db, "SELECT hash, key FROM band WHERE hash IN ({})",
                                         band_hash_rows.ravel().tolist()):
            keys.setdefault(band_hash, []).append(key)
        return keys

    def _signature(self, key: int):
        import numpy as np

        if key in self._unflushed_signatures:
            return self._unflushed_signatures[key]
        data = os.pread(self.signatures.fileno(), self.signature_bytes, key * self.signature_bytes)
        return np.frombuffer(data, dtype=self.dtype)

    def similar(self, signature, band_hashes, indexed: dict[int, list[int]]) -> list[int]:
        """Keys of the indexed records whose estimated Jaccard similarity reaches the threshold, given the
        signature's band hashes and `indexed_keys` of them."""
        band_of = {h: band for band, h in reversed(list(enumerate(band_hashes.tolist())))}
        # A set filled band by band, as datasketch's query fills it, so candidates come out in its order (which
        # only decides the examples a LeakageError names).
        candidates = set()
        for _, key in sorted((band_of[h], key) for h in band_of
                             for key in (*indexed.get(h, ()), *self._unflushed.get(h, ()))):
            candidates.add(key)
        similar = []
        for key in candidates:
            other = self._signature(key)
            # Band hashes can collide, so a candidate must also share a whole band, as in datasketch. Banding
            # also returns some pairs below the threshold; the estimated Jaccard decides.
            if ((self._banded(other) == self._banded(signature)).all(axis=1).any()
                    and (other == signature).mean() >= self.threshold):
                similar.append(key)
        return similar

    def add(self, signature, band_hashes) -> None:
        """Index a record; its key is its arrival order, because ids can repeat (identical input lines share one)."""
        key = self.size
        for h in set(band_hashes.tolist()):
            self._unflushed.setdefault(h, []).append(key)
        self._unflushed_signatures[key] = signature
        self.size += 1

    def flush(self) -> None:
        """Write the records added since the last flush to disk."""
        import numpy as np

        self.scratch.db.executemany("INSERT INTO band VALUES (?, ?)",
                                    ((h, key) for h, keys in self._unflushed.items() for key in keys))
        if self._unflushed_signatures:
            self.signatures.write(np.stack(list(self._unflushed_signatures.values())).astype(self.dtype).tobytes())
        self._unflushed, self._unflushed_signatures = {}, {}

    def close(self) -> None:
        self.signatures.close()
        self.scratch.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class _Wanted:
    """What an engine computes for each record of a batch."""

    exact: bool
    near: bool
    semantic: bool
    bands: int
    rows: int


@dataclass
class _Prepared:
    """A batch of records, cleaned and serialised, with what the index pass needs of each."""

    lines: list[str]  # the cleaned records as the stage writes them
    ids: list[str]
    changed_by: Counter[str]
    exact_keys: list[bytes] = field(default_factory=list)
    signatures: Any = None  # (records, NUM_PERM) uint32
    band_hashes: Any = None  # (records, bands) int64
    vectors: Any = None  # (records, dimensions) float32 unit rows, for semantic dedup


def prepare_batch(lines: list[str], wanted: _Wanted) -> _Prepared:
    """Clean, serialise, key and sign a batch of records file lines; what it computes depends on each record alone."""
    from fttool.data.minhash import band_hashes, shingles, signatures

    changed_by: Counter[str] = Counter()
    records = [_clean(json.loads(line), changed_by) for line in lines]
    prepared = _Prepared([json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n" for record in records],
                         [record["id"] for record in records], changed_by)
    if wanted.exact:
        prepared.exact_keys = [exact_key(record) for record in records]
    if wanted.near:
        prepared.signatures = signatures([shingles(_joined_text(record)) for record in records])
        prepared.band_hashes = band_hashes(prepared.signatures, wanted.bands, wanted.rows)
    if wanted.semantic:
        # Encoding is the costly part of semantic dedup, so the engine's workers (or Ray actors, each loading the
        # encoder once) do it; only comparing with the records kept so far needs the sequential pass. The price: a
        # record that exact or near dedup drops in that pass was encoded too.
        prepared.vectors = embed([_joined_text(record) for record in records])
    return prepared


def record_lines(path: Path) -> Iterator[str]:
    """The non-blank lines of a records file."""
    with open(path, encoding="utf-8") as handle:
        yield from (line for line in handle if line.strip())


def _batched(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _SemanticIndex:
    """Embeddings of the records kept so far, held as a few large matrices compared one at a time."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.blocks: list = []  # float32 matrices of unit-length rows, each filled to about KEPT_BLOCK_ROWS

    def keep(self, vectors) -> list[bool]:
        """Whether each row (an embedded text) is kept: no cosine similarity above the threshold to any row kept
        before it."""
        import numpy as np

        count = len(vectors)
        like_earlier = np.zeros(count, dtype=bool)
        for block in self.blocks:
            like_earlier |= (vectors @ block.T > self.threshold).any(axis=1)
        # Texts of the same batch are compared in order, each only with those of them that were kept.
        like_batch = vectors @ vectors.T > self.threshold
        kept: list[int] = []
        for row in range(count):
            if not like_earlier[row] and not like_batch[row, kept].any():
                kept.append(row)
        if kept:
            if self.blocks and len(self.blocks[-1]) < KEPT_BLOCK_ROWS:
                self.blocks[-1] = np.concatenate([self.blocks[-1], vectors[kept]])
            else:
                self.blocks.append(vectors[kept])
        kept_rows = set(kept)
        return [row in kept_rows for row in range(count)]


class Deduplication:
    """The records a DedupParams keeps, cleaned, with counts and example ids of what each rule removed."""

    def __init__(self, params: DedupParams, work_dir: Path | None):
        self.params = params
        self.rules_on = [rule for rule, on in (("exact_duplicate", params.exact), ("near_duplicate", params.near),
                                               ("semantic_duplicate", params.semantic)) if on]
        self.removed: Counter[str] = Counter({rule: 0 for rule in self.rules_on})
        self.example_ids: dict[str, list[str]] = {rule: [] for rule in self.rules_on}
        self.changed_by: Counter[str] = Counter({rule: 0 for rule, _ in CLEANING_RULES})
        self.exact_keys = KeySet(work_dir) if params.exact else None
        self.near_index = NearDuplicateIndex(params.near_threshold, work_dir) if params.near else None
        self.semantic_index = _SemanticIndex(params.semantic_threshold) if params.semantic else None

    def _duplicate_rules(self, batch: _Prepared) -> list[str | None]:
        """The rule that removes each record of the batch (None: kept so far), deciding record by record in order,
        so that a record is compared with every earlier one that was kept, in this batch or before it."""
        rules: list[str | None] = [None] * len(batch.ids)
        seen_keys, new_keys = (self.exact_keys.present(batch.exact_keys), []) if self.exact_keys else (set(), [])
        index = self.near_index
        indexed = index.indexed_keys(batch.band_hashes) if index else {}
        for i in range(len(batch.ids)):
            if self.exact_keys is not None:
                if batch.exact_keys[i] in seen_keys:
                    rules[i] = "exact_duplicate"
                    continue
                seen_keys.add(batch.exact_keys[i])
                new_keys.append(batch.exact_keys[i])
            if index is not None:
                if index.similar(batch.signatures[i], batch.band_hashes[i], indexed):
                    rules[i] = "near_duplicate"
                    continue
                index.add(batch.signatures[i], batch.band_hashes[i])
        if self.exact_keys is not None:
            self.exact_keys.add_new(new_keys)
        if index is not None:
            index.flush()
        return rules

    def _note_removed(self, record_id: str, rule: str) -> None:
        self.removed[rule] += 1
        if len(self.example_ids[rule]) < MAX_EXAMPLE_IDS:
            self.example_ids[rule].append(record_id)

    def _semantically_new(self, pending: list[tuple[str, str, Any]], semantic: _SemanticIndex) -> Iterator[str]:
        """The lines of the (line, id, embedding) records that are no semantic duplicates."""
        import numpy as np

        vectors = np.stack([vector for *_, vector in pending])
        for (line, record_id, _), keep in zip(pending, semantic.keep(vectors)):
            if keep:
                yield line
            else:
                self._note_removed(record_id, "semantic_duplicate")

    def kept_lines(self, lines: Iterable[str]) -> Iterator[str]:
        """The cleaned records (as records file lines) that are no duplicates of earlier ones, in their order.

        `lines` are the non-blank lines of a records file; the engine of params.compute cleans, keys and signs
        them a batch at a time.
        """
        index, semantic = self.near_index, self.semantic_index
        wanted = _Wanted(self.exact_keys is not None, index is not None, semantic is not None,
                         index.bands if index else 0, index.rows if index else 0)
        # Records that pass the cheap rules wait here to be compared in batches; they keep their order.
        pending: list[tuple[str, str, Any]] = []
        for batch in in_order(prepare_batch, _batched(lines, RECORDS_PER_BATCH), wanted, self.params.compute):
            self.changed_by.update(batch.changed_by)
            for i, rule in enumerate(self._duplicate_rules(batch)):
                if rule is not None:
                    self._note_removed(batch.ids[i], rule)
                elif semantic is None:
                    yield batch.lines[i]
                else:
                    pending.append((batch.lines[i], batch.ids[i], batch.vectors[i]))
                    if len(pending) == SEMANTIC_BATCH:
                        yield from self._semantically_new(pending, semantic)
                        pending = []
        if semantic is not None and pending:  # only a semantic dedup keeps records pending
            yield from self._semantically_new(pending, semantic)

    def summary(self) -> dict:
        rules = {rule: {"removed": self.removed[rule], "example_ids": ids} for rule, ids in self.example_ids.items()}
        if self.semantic_index is not None:
            rules["semantic_duplicate"]["model"] = MODEL_NAME
        return {"rules": rules, "normalised": dict(self.changed_by)}

    def close(self) -> None:
        for index in (self.exact_keys, self.near_index):
            if index is not None:
                index.close()
