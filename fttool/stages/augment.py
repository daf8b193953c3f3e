"""Augment the train split with new records whose wording differs from a train record.

Each method entry picks round(ratio * n) parents from the n train records with its seed (a ratio above
1 gives each record several copies), rewrites the entry's fields of each copy and keeps the copy
unless it is unchanged or duplicates, after casefolding and collapsing whitespace, any train,
validation or test record or another new record. Validation and test are only consulted, so no
rewording of an evaluation record can leak into training. Originals are written first, unchanged and
in order, followed by the kept records.

Method "synonym" swaps words for WordNet synonyms with nlpaug (see fttool.augment_wordnet); PII
placeholders, numbers, URLs and e-mail addresses are left byte-identical, which is checked for every
kept record. Nothing here logs or reports text: the summary holds counts and ids.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from itertools import chain

from fttool.recipe.plan import thaw
from fttool.records import read_jsonl, text_fields, write_jsonl
from fttool.stages.base import Stage, StageContext, StageResult
from fttool.stages.dedup import exact_key

MAX_EXAMPLES = 5
REJECTION_REASONS = ("unchanged", "duplicate")


def _swap_seed(seed: int, entry: int, parent_id: str, copy: int, field: str) -> int:
    # Derived per text rather than drawn in sequence, so one record's result does not depend on the others.
    digest = hashlib.sha256(f"{seed}/{entry}/{parent_id}/{copy}/{field}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _copies_per_parent(n: int, ratio: float, seed: int) -> list[int]:
    """How many new records to derive from each of the n train records: round(ratio * n) in all."""
    each, extra = divmod(round(ratio * n), n) if n else (0, 0)
    chosen = set(random.Random(seed).sample(range(n), extra))
    return [each + (index in chosen) for index in range(n)]


def _swapped_texts(augmenter, parent: dict, entry: dict, entry_index: int, copy: int) -> dict[str, str]:
    """The entry's fields of one copy of `parent`, rewritten; fields the record lacks or leaves empty are skipped."""
    return {field: augmenter.swap(parent[field], _swap_seed(entry["seed"], entry_index, parent["id"], copy, field))
            for field in entry["fields"] if parent.get(field)}


def _check_protected(parent: dict, texts: dict[str, str]) -> None:
    """The tokenizer and skip rule already keep protected spans; this turns the report's claim into a check."""
    from fttool.augment_wordnet import protected_spans

    for field, text in texts.items():
        if protected_spans(text) != protected_spans(parent[field]):
            raise RuntimeError(f"synonym swap altered a protected span in field '{field}' of a copy of record "
                               f"{parent['id']}")


class AugmentStage(Stage):
    name = "augment"
    reads = ("train",)
    references = ("validation", "test")
    writes = ("train",)
    report_section = "augmentation"

    def run(self, ctx: StageContext) -> StageResult:
        from fttool.augment_wordnet import ProtectedSynonymAug, resources

        seen: set[bytes] = set()  # keys of every original record and every kept new record
        n_train = 0
        for split in ("train", "validation", "test"):
            for record in read_jsonl(ctx.inputs[split]):
                seen.add(exact_key(record))
                n_train += split == "train"

        stats: dict[str, Counter] = {}
        examples: list[dict] = []

        def new_records():
            for entry_index, entry in enumerate(ctx.params["methods"]):
                method = entry["method"]
                if method != "synonym":
                    raise ValueError(f"unknown augmentation method '{method}'")
                augmenter = ProtectedSynonymAug(entry["aug_p"])
                params = {key: value for key, value in thaw(entry).items() if key != "method"}
                counts = stats.setdefault(method, Counter({"generated": 0, "kept": 0,
                                                           **{reason: 0 for reason in REJECTION_REASONS}}))
                copies = _copies_per_parent(n_train, entry["ratio"], entry["seed"])
                parents = ctx.progress(zip(read_jsonl(ctx.inputs["train"]), copies), total=n_train,
                                       desc=f"augment {method}")
                for parent, n_copies in parents:
                    for copy in range(n_copies):
                        counts["generated"] += 1
                        texts = _swapped_texts(augmenter, parent, entry, entry_index, copy)
                        if all(text == parent[field] for field, text in texts.items()):
                            counts["unchanged"] += 1
                            continue
                        _check_protected(parent, texts)
                        child = {**parent, **texts}
                        key = exact_key(child)
                        if key in seen:
                            counts["duplicate"] += 1
                            continue
                        seen.add(key)
                        identity = json.dumps([parent["id"], method, texts], sort_keys=True, ensure_ascii=False)
                        child.update(id="a" + hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16],
                                     parent_id=parent["id"], augmentation={"method": method, "params": params})
                        counts["kept"] += 1
                        if len(examples) < MAX_EXAMPLES:
                            examples.append({"id": child["id"], "parent_id": parent["id"]})
                        yield child

        # New records wait in scratch space because they go after every original.
        scratch = ctx.work_dir / "augmented.jsonl"
        write_jsonl(scratch, new_records())
        write_jsonl(ctx.outputs["train"], chain(read_jsonl(ctx.inputs["train"]), read_jsonl(scratch)))
        methods = {method: {"generated": counts["generated"], "kept": counts["kept"],
                            "rejected": {reason: counts[reason] for reason in REJECTION_REASONS}}
                   for method, counts in stats.items()}
        return StageResult(
            added={method: summary["kept"] for method, summary in methods.items()},
            summary={"methods": methods, "examples": examples, "protected_spans_checked": True,
                     "resources": resources()})


STAGE = AugmentStage
