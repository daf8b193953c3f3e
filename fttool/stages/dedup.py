"""Clean the text of every record, then drop exact and (optionally) near duplicates, keeping the first.

Exact duplicates are found by a hash of the record's text after casefolding and collapsing whitespace;
near duplicates by MinHash LSH over word 3-grams. Only hashes and signatures stay in memory, never the
records themselves.
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from typing import Iterator

from fttool.records import map_text_fields, read_jsonl, text_fields, write_jsonl
from fttool.stages.base import Stage, StageContext, StageResult

NUM_PERM = 128
SHINGLE_WORDS = 3
# (false positive, false negative) weights for choosing LSH bands: candidates are confirmed against
# the signatures, so missing a near duplicate costs more than checking an extra candidate.
LSH_RECALL_WEIGHTS = (0.1, 0.9)
MAX_EXAMPLE_IDS = 5
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


def _exact_key(record: dict) -> bytes:
    """Equal for records whose texts differ only in case and whitespace; field names and chat roles count."""
    roles = [message["role"] for message in record["messages"]] if record["format"] == "chat" else []
    texts = [(path, WHITESPACE_RUN.sub(" ", text.casefold()).strip()) for path, text in text_fields(record)]
    return hashlib.sha256(json.dumps([record["format"], roles, texts]).encode("utf-8")).digest()


def _shingles(record: dict) -> set[bytes]:
    words = " ".join(text for _, text in text_fields(record)).casefold().split()
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words).encode("utf-8")}
    return {" ".join(words[i:i + SHINGLE_WORDS]).encode("utf-8") for i in range(len(words) - SHINGLE_WORDS + 1)}


class _NearDuplicateIndex:
    """MinHash signatures of the records kept so far; LSH finds candidates, the signatures confirm them."""

    def __init__(self, threshold: float):
        from datasketch import MinHash, MinHashLSH

        self.threshold = threshold
        try:
            self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM, weights=LSH_RECALL_WEIGHTS)
        except ValueError:  # near 1, datasketch picks a single band, which it then refuses
            self.lsh = MinHashLSH(num_perm=NUM_PERM, params=(2, NUM_PERM // 2))
        self.template = MinHash(num_perm=NUM_PERM)  # copies reuse its permutations instead of redrawing them
        self.signatures: list = []  # hash value arrays; the list index is the LSH key

    def seen_before(self, record: dict) -> bool:
        """Whether the record nearly duplicates one kept earlier; if not, it is indexed as kept."""
        minhash = self.template.copy()
        minhash.update_batch(list(_shingles(record)))
        signature = minhash.hashvalues
        # LSH banding also returns some pairs below the threshold; the estimated Jaccard decides.
        if any((self.signatures[key] == signature).mean() >= self.threshold for key in self.lsh.query(minhash)):
            return True
        # Keyed by arrival order because ids can repeat (identical input lines share one).
        self.lsh.insert(len(self.signatures), minhash, check_duplication=False)
        self.signatures.append(signature)
        return False


class DedupStage(Stage):
    name = "dedup"
    reads = ("records",)
    writes = ("records",)
    report_section = "data.dedup"

    def run(self, ctx: StageContext) -> StageResult:
        params = ctx.params
        rules_on = [rule for rule, on in (("exact_duplicate", params["exact"]), ("near_duplicate", params["near"]))
                    if on]
        removed: Counter[str] = Counter({rule: 0 for rule in rules_on})
        example_ids: dict[str, list[str]] = {rule: [] for rule in rules_on}
        changed_by: Counter[str] = Counter({rule: 0 for rule, _ in CLEANING_RULES})
        exact_keys: set[bytes] = set()
        near_index = _NearDuplicateIndex(params["near_threshold"]) if params["near"] else None

        def duplicate_rule(record: dict) -> str | None:
            if params["exact"]:
                key = _exact_key(record)
                if key in exact_keys:
                    return "exact_duplicate"
                exact_keys.add(key)
            if near_index is not None and near_index.seen_before(record):
                return "near_duplicate"
            return None

        def kept_records() -> Iterator[dict]:
            for record in ctx.progress(read_jsonl(ctx.inputs["records"]), desc="dedup"):
                record = _clean(record, changed_by)
                rule = duplicate_rule(record)
                if rule is None:
                    yield record
                    continue
                removed[rule] += 1
                if len(example_ids[rule]) < MAX_EXAMPLE_IDS:
                    example_ids[rule].append(record["id"])

        write_jsonl(ctx.outputs["records"], kept_records())
        rules = {rule: {"removed": removed[rule], "example_ids": ids} for rule, ids in example_ids.items()}
        return StageResult(removed=dict(removed), summary={"rules": rules, "normalised": dict(changed_by)})


STAGE = DedupStage
