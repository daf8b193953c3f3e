"""Clean the text of every record, then drop exact, near and (optionally) semantic duplicates, keeping the first.

Exact duplicates are found by a hash of the record's text after casefolding and collapsing whitespace;
near duplicates by MinHash LSH over word 3-grams; semantic duplicates by the cosine similarity of
sentence embeddings. The records themselves are never held. Exact keys, LSH bands and MinHash signatures,
which grow with the number of records, live on disk in a scratch SQLite database (`ScratchDB`) behind a
fixed page cache, so memory does not grow with the data; only the kept embeddings of semantic dedup do.
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
from pathlib import Path

from fttool.data.embeddings import MODEL_NAME, embed
from fttool.data.records import map_text_fields, text_fields
from fttool.data.settings import DedupParams

NUM_PERM = 128
SHINGLE_WORDS = 3
# (false positive, false negative) weights for choosing LSH bands: candidates are confirmed against
# the signatures, so missing a near duplicate costs more than checking an extra candidate.
LSH_RECALL_WEIGHTS = (0.1, 0.9)
MAX_EXAMPLE_IDS = 5
SEMANTIC_BATCH = 256  # records embedded and compared at a time
# Kept embeddings per matrix product: bounds the similarity matrix to SEMANTIC_BATCH x this many floats.
KEPT_BLOCK_ROWS = 8192
KEPT_CONTROL_CHARS = "\n\t"
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
    return "".join(char for char in text if char in KEPT_CONTROL_CHARS or unicodedata.category(char) != "Cc")


def _tidy_whitespace(text: str) -> str:
    return TRAILING_BLANKS.sub("", INNER_BLANK_RUN.sub(" ", text)).rstrip()


# Applied in this order; each one's count is the number of records it changed.
CLEANING_RULES = (("nfc", _nfc), ("control_chars", _drop_control_chars), ("whitespace", _tidy_whitespace))


def _clean(record: dict, changed_by: Counter[str]) -> dict:
    for rule, transform in CLEANING_RULES:
        cleaned = map_text_fields(record, lambda _path, text, rule_transform=transform: rule_transform(text))
        if cleaned != record:
            changed_by[rule] += 1
        record = cleaned
    return record


def exact_key(record: dict) -> bytes:
    """Equal for records whose texts differ only in case and whitespace; field names and chat roles count."""
    roles = [message["role"] for message in record.get("messages", ())]  # chats, and the prompts of pairs
    texts = [(path, WHITESPACE_RUN.sub(" ", text.casefold()).strip()) for path, text in text_fields(record)]
    return hashlib.sha256(json.dumps([record["format"], roles, texts]).encode("utf-8")).digest()


def _joined_text(record: dict) -> str:
    return "\n".join(text for _, text in text_fields(record))


def _shingles(record: dict) -> set[bytes]:
    words = _joined_text(record).casefold().split()
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words).encode("utf-8")}
    return {" ".join(words[i:i + SHINGLE_WORDS]).encode("utf-8") for i in range(len(words) - SHINGLE_WORDS + 1)}


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


class KeySet:
    """A set of byte strings, on disk."""

    def __init__(self, directory: Path | None):
        self.scratch = ScratchDB(directory, "keys")
        self.scratch.db.execute("CREATE TABLE seen (key BLOB PRIMARY KEY) WITHOUT ROWID")

    def add(self, key: bytes) -> bool:
        """Add `key`; whether it was new."""
        return self.scratch.db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (key,)).rowcount == 1

    def close(self) -> None:
        self.scratch.close()


class NearDuplicateIndex:
    """MinHash signatures of indexed records; LSH finds candidates, the signatures confirm them.

    Banding is datasketch's MinHashLSH (the bands it picks for the threshold): a candidate shares every value of
    at least one band. The index lives on disk: a 64-bit hash of each band in SQLite, which narrows the search,
    and the signatures in a flat file, which decide it (same band, and estimated Jaccard at the threshold).
    """

    def __init__(self, threshold: float, directory: Path | None = None):
        import numpy as np
        from datasketch import MinHash, MinHashLSH

        self.threshold = threshold
        try:
            lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM, weights=LSH_RECALL_WEIGHTS)
        except ValueError:  # near 1, datasketch picks a single band, which it then refuses
            lsh = MinHashLSH(num_perm=NUM_PERM, params=(2, NUM_PERM // 2))
        self.bands, self.rows = lsh.b, lsh.r
        assert lsh.hashranges == [(i * lsh.r, (i + 1) * lsh.r) for i in range(lsh.b)]
        self.template = MinHash(num_perm=NUM_PERM)  # copies reuse its permutations instead of redrawing them
        self.dtype = self.template.hashvalues.dtype
        self.signature_bytes = NUM_PERM * self.dtype.itemsize
        # Odd 64-bit multipliers, one per band value: sum(value * multiplier) mod 2**64 hashes a band.
        self.multipliers = np.random.default_rng(0).integers(
            0, 2**63, size=(self.bands, self.rows), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.scratch = ScratchDB(directory, "minhash")
        self.scratch.db.execute("CREATE TABLE band (hash INTEGER NOT NULL, key INTEGER NOT NULL,"
                                " PRIMARY KEY (hash, key)) WITHOUT ROWID")
        self.signatures = open(self.scratch.dir / "signatures", "w+b", buffering=0)  # key i at i * signature_bytes
        self.size = 0

    def minhash(self, record: dict):
        minhash = self.template.copy()
        minhash.update_batch(list(_shingles(record)))
        return minhash

    def _banded(self, hashvalues):
        return hashvalues[:self.bands * self.rows].reshape(self.bands, self.rows)

    def _band_hashes(self, hashvalues) -> list[int]:
        """One signed 64-bit hash per band; each band has its own multipliers, so equal values in two bands differ."""
        import numpy as np

        hashes = (self._banded(hashvalues).astype(np.uint64) * self.multipliers).sum(axis=1, dtype=np.uint64)
        return hashes.view(np.int64).tolist()

    def _signature(self, key: int):
        import numpy as np

        data = os.pread(self.signatures.fileno(), self.signature_bytes, key * self.signature_bytes)
        return np.frombuffer(data, dtype=self.dtype)

    def _candidates(self, band_hashes: list[int]):
        """(hash, key) of the indexed bands that have one of these hashes."""
        marks = ", ".join("?" * len(band_hashes))
        return self.scratch.db.execute(f"SELECT hash, key FROM band WHERE hash IN ({marks})", band_hashes)

    def similar(self, minhash) -> list[int]:
        """Keys of the indexed records whose estimated Jaccard similarity reaches the threshold."""
        values = minhash.hashvalues
        band_of = {h: band for band, h in reversed(list(enumerate(self._band_hashes(values))))}
        # A set filled band by band, as datasketch's query fills it, so candidates come out in its order (which
        # only decides the examples a LeakageError names).
        candidates = set()
        for _, key in sorted((band_of[h], key) for h, key in self._candidates(list(band_of))):
            candidates.add(key)
        similar = []
        for key in candidates:
            other = self._signature(key)
            # Band hashes can collide, so a candidate must also share a whole band, as in datasketch. Banding
            # also returns some pairs below the threshold; the estimated Jaccard decides.
            if ((self._banded(other) == self._banded(values)).all(axis=1).any()
                    and (other == values).mean() >= self.threshold):
                similar.append(key)
        return similar

    def add(self, minhash) -> None:
        """Index a record; its key is its arrival order, because ids can repeat (identical input lines share one)."""
        key = self.size
        self.scratch.db.executemany("INSERT OR IGNORE INTO band VALUES (?, ?)",
                                    [(h, key) for h in self._band_hashes(minhash.hashvalues)])
        self.signatures.write(minhash.hashvalues.astype(self.dtype, copy=False).tobytes())
        self.size += 1

    def seen_before(self, record: dict) -> bool:
        """Whether the record nearly duplicates one indexed earlier; if not, it is indexed."""
        minhash = self.minhash(record)
        if self.similar(minhash):
            return True
        self.add(minhash)
        return False

    def close(self) -> None:
        self.signatures.close()
        self.scratch.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _SemanticIndex:
    """Embeddings of the records kept so far, held as a few large matrices compared one at a time."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.blocks: list = []  # float32 matrices of unit-length rows, each filled to about KEPT_BLOCK_ROWS

    def keep(self, texts: list[str]) -> list[bool]:
        """Whether each text is kept: no cosine similarity above the threshold to any text kept before it."""
        import numpy as np

        vectors = embed(texts)
        like_earlier = np.zeros(len(texts), dtype=bool)
        for block in self.blocks:
            like_earlier |= (vectors @ block.T > self.threshold).any(axis=1)
        # Texts of the same batch are compared in order, each only with those of them that were kept.
        like_batch = vectors @ vectors.T > self.threshold
        kept: list[int] = []
        for row in range(len(texts)):
            if not like_earlier[row] and not like_batch[row, kept].any():
                kept.append(row)
        if kept:
            if self.blocks and len(self.blocks[-1]) < KEPT_BLOCK_ROWS:
                self.blocks[-1] = np.concatenate([self.blocks[-1], vectors[kept]])
            else:
                self.blocks.append(vectors[kept])
        kept_rows = set(kept)
        return [row in kept_rows for row in range(len(texts))]


class Deduplication:
    """The records a DedupParams keeps, cleaned, with counts and example ids of what each rule removed."""

    def __init__(self, params: DedupParams, work_dir: Path | None):
        self.rules_on = [rule for rule, on in (("exact_duplicate", params.exact), ("near_duplicate", params.near),
                                               ("semantic_duplicate", params.semantic)) if on]
        self.removed: Counter[str] = Counter({rule: 0 for rule in self.rules_on})
        self.example_ids: dict[str, list[str]] = {rule: [] for rule in self.rules_on}
        self.changed_by: Counter[str] = Counter({rule: 0 for rule, _ in CLEANING_RULES})
        self.exact_keys = KeySet(work_dir) if params.exact else None
        self.near_index = NearDuplicateIndex(params.near_threshold, work_dir) if params.near else None
        self.semantic_index = _SemanticIndex(params.semantic_threshold) if params.semantic else None

    def _duplicate_rule(self, record: dict) -> str | None:
        if self.exact_keys is not None and not self.exact_keys.add(exact_key(record)):
            return "exact_duplicate"
        if self.near_index is not None and self.near_index.seen_before(record):
            return "near_duplicate"
        return None

    def _note_removed(self, record: dict, rule: str) -> None:
        self.removed[rule] += 1
        if len(self.example_ids[rule]) < MAX_EXAMPLE_IDS:
            self.example_ids[rule].append(record["id"])

    def _semantically_new(self, batch: list[dict]) -> Iterator[dict]:
        for record, keep in zip(batch, self.semantic_index.keep([_joined_text(r) for r in batch])):
            if keep:
                yield record
            else:
                self._note_removed(record, "semantic_duplicate")

    def kept(self, records: Iterable[dict]) -> Iterator[dict]:
        """The cleaned records that are no duplicates of earlier ones, in their order."""
        # Records that pass the cheap rules wait here to be embedded in batches; they keep their order.
        pending: list[dict] = []
        for record in records:
            record = _clean(record, self.changed_by)
            rule = self._duplicate_rule(record)
            if rule is not None:
                self._note_removed(record, rule)
            elif self.semantic_index is None:
                yield record
            else:
                pending.append(record)
                if len(pending) == SEMANTIC_BATCH:
                    yield from self._semantically_new(pending)
                    pending = []
        if pending:
            yield from self._semantically_new(pending)

    def summary(self) -> dict:
        rules = {rule: {"removed": self.removed[rule], "example_ids": ids} for rule, ids in self.example_ids.items()}
        if self.semantic_index is not None:
            rules["semantic_duplicate"]["model"] = MODEL_NAME
        return {"rules": rules, "normalised": dict(self.changed_by)}

    def close(self) -> None:
        for index in (self.exact_keys, self.near_index):
            if index is not None:
                index.close()
