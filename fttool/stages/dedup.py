"""Clean the text of every record, then drop exact, near and (optionally) semantic duplicates, keeping the first.

Exact duplicates are found by a hash of the record's text after casefolding and collapsing whitespace;
near duplicates by MinHash LSH over word 3-grams; semantic duplicates by the cosine similarity of
sentence embeddings. Only hashes, signatures and embeddings stay in memory, never the records themselves.
The split stage reuses the exact key and the MinHash index to check for leakage across splits.
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from typing import Iterator

from fttool.embeddings import MODEL_NAME, embed, model_dir
from fttool.records import map_text_fields, read_jsonl, text_fields, write_jsonl
from fttool.stages.base import Stage, StageContext, StageResult

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
        cleaned = map_text_fields(record, lambda _path, text: transform(text))
        if cleaned != record:
            changed_by[rule] += 1
        record = cleaned
    return record


def exact_key(record: dict) -> bytes:
    """Equal for records whose texts differ only in case and whitespace; field names and chat roles count."""
    roles = [message["role"] for message in record["messages"]] if record["format"] == "chat" else []
    texts = [(path, WHITESPACE_RUN.sub(" ", text.casefold()).strip()) for path, text in text_fields(record)]
    return hashlib.sha256(json.dumps([record["format"], roles, texts]).encode("utf-8")).digest()


def _joined_text(record: dict) -> str:
    return "\n".join(text for _, text in text_fields(record))


def _shingles(record: dict) -> set[bytes]:
    words = _joined_text(record).casefold().split()
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words).encode("utf-8")}
    return {" ".join(words[i:i + SHINGLE_WORDS]).encode("utf-8") for i in range(len(words) - SHINGLE_WORDS + 1)}


class NearDuplicateIndex:
    """MinHash signatures of indexed records; LSH finds candidates, the signatures confirm them."""

    def __init__(self, threshold: float):
        from datasketch import MinHash, MinHashLSH

        self.threshold = threshold
        try:
            self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM, weights=LSH_RECALL_WEIGHTS)
        except ValueError:  # near 1, datasketch picks a single band, which it then refuses
            self.lsh = MinHashLSH(num_perm=NUM_PERM, params=(2, NUM_PERM // 2))
        self.template = MinHash(num_perm=NUM_PERM)  # copies reuse its permutations instead of redrawing them
        self.signatures: list = []  # hash value arrays; the list index is the LSH key

    def minhash(self, record: dict):
        minhash = self.template.copy()
        minhash.update_batch(list(_shingles(record)))
        return minhash

    def similar(self, minhash) -> list[int]:
        """Keys of the indexed records whose estimated Jaccard similarity reaches the threshold."""
        # LSH banding also returns some pairs below the threshold; the estimated Jaccard decides.
        return [key for key in self.lsh.query(minhash)
                if (self.signatures[key] == minhash.hashvalues).mean() >= self.threshold]

    def add(self, minhash) -> None:
        """Index a record; its key is its arrival order, because ids can repeat (identical input lines share one)."""
        self.lsh.insert(len(self.signatures), minhash, check_duplication=False)
        self.signatures.append(minhash.hashvalues)

    def seen_before(self, record: dict) -> bool:
        """Whether the record nearly duplicates one indexed earlier; if not, it is indexed."""
        minhash = self.minhash(record)
        if self.similar(minhash):
            return True
        self.add(minhash)
        return False


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


class DedupStage(Stage):
    name = "dedup"
    reads = ("records",)
    writes = ("records",)
    report_section = "data.dedup"

    @classmethod
    def external_inputs(cls, params) -> list[str]:
        # The encoder's files decide which records go, so they belong in the fingerprint and the lineage.
        if params["semantic"]:
            return [str(model_dir())]
        return []

    def run(self, ctx: StageContext) -> StageResult:
        params = ctx.params
        rules_on = [rule for rule, on in (("exact_duplicate", params["exact"]), ("near_duplicate", params["near"]),
                                          ("semantic_duplicate", params["semantic"])) if on]
        removed: Counter[str] = Counter({rule: 0 for rule in rules_on})
        example_ids: dict[str, list[str]] = {rule: [] for rule in rules_on}
        changed_by: Counter[str] = Counter({rule: 0 for rule, _ in CLEANING_RULES})
        exact_keys: set[bytes] = set()
        near_index = NearDuplicateIndex(params["near_threshold"]) if params["near"] else None
        semantic_index = _SemanticIndex(params["semantic_threshold"]) if params["semantic"] else None

        def duplicate_rule(record: dict) -> str | None:
            if params["exact"]:
                key = exact_key(record)
                if key in exact_keys:
                    return "exact_duplicate"
                exact_keys.add(key)
            if near_index is not None and near_index.seen_before(record):
                return "near_duplicate"
            return None

        def note_removed(record: dict, rule: str) -> None:
            removed[rule] += 1
            if len(example_ids[rule]) < MAX_EXAMPLE_IDS:
                example_ids[rule].append(record["id"])

        def semantically_new(batch: list[dict]) -> Iterator[dict]:
            for record, keep in zip(batch, semantic_index.keep([_joined_text(r) for r in batch])):
                if keep:
                    yield record
                else:
                    note_removed(record, "semantic_duplicate")

        def kept_records() -> Iterator[dict]:
            # Records that pass the cheap rules wait here to be embedded in batches; they keep their order.
            pending: list[dict] = []
            for record in ctx.progress(read_jsonl(ctx.inputs["records"]), desc="dedup"):
                record = _clean(record, changed_by)
                rule = duplicate_rule(record)
                if rule is not None:
                    note_removed(record, rule)
                elif semantic_index is None:
                    yield record
                else:
                    pending.append(record)
                    if len(pending) == SEMANTIC_BATCH:
                        yield from semantically_new(pending)
                        pending = []
            if pending:
                yield from semantically_new(pending)

        write_jsonl(ctx.outputs["records"], kept_records())
        rules = {rule: {"removed": removed[rule], "example_ids": ids} for rule, ids in example_ids.items()}
        if semantic_index is not None:
            rules["semantic_duplicate"]["model"] = MODEL_NAME
        return StageResult(removed=dict(removed), summary={"rules": rules, "normalised": dict(changed_by)})


STAGE = DedupStage
