"""Augment the train split with new records that reword a train record without changing its meaning.

Each entry of the recipe's augment list is one method (see fttool.augment.methods). It picks `count`, or
round(ratio * n), parents from the n train records with its seed (more than n gives each record several
copies) and rewrites the entry's fields of each copy; a field whose text parses as JSON is left alone.
A candidate is rejected, and counted by reason, when it is
- unchanged;
- protected_span_changed: a protected span (placeholder, number, code, URL, e-mail) is missing, altered
  or added;
- low_similarity: the MiniLM cosine similarity between a rewritten field and the parent's field is
  below min_similarity (the lowest over its fields counts);
- pii_detected: the PII library (fttool.pii), with the recipe's PII settings (the schema's defaults when the
  recipe has none), would replace something in a rewritten field;
- duplicate: after casefolding and collapsing whitespace it equals a train, validation or test record or
  another new record.
Validation and test are only consulted, so no rewording of an evaluation record can leak into training.
Originals are written first, unchanged and in order, followed by the kept records, each with parent_id
and augmentation {method, params}. Nothing here logs or reports text: the summary holds counts, ids and
similarities.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, deque
from collections.abc import Iterator
from itertools import chain
from typing import TYPE_CHECKING

from fttool.augment.settings import AugmentMethod, AugmentParams
from fttool.data.dedup import exact_key
from fttool.data.embeddings import MODEL_NAME, model_dir
from fttool.data.engines import engine_problems
from fttool.data.per_record import batched, in_order_beyond
from fttool.data.records import SPLITS, read_jsonl, write_jsonl
from fttool.data.settings import EngineSettings
from fttool.pii.nlp_engines import located, ner_model_inputs
from fttool.pii.settings import PiiParams
from fttool.pipeline.plan import thaw
from fttool.pipeline.stage import Stage, StageContext, StageResult

if TYPE_CHECKING:  # presidio and spaCy load only when the check first runs
    from fttool.pii.scrubber import TextScrubber

MAX_EXAMPLES = 5
REJECTION_REASONS = ("unchanged", "protected_span_changed", "low_similarity", "pii_detected", "duplicate")
# Candidates rewritten, embedded and scanned together: large enough for model batches, small enough to stream.
CHUNK_CANDIDATES = 256
# Below this many candidates a word method rewrites in the stage's process: a worker first imports nlpaug (torch,
# transformers) and spaCy and loads WordNet, seconds that so few candidates do not repay (docs/benchmarks.md).
MIN_CANDIDATES_FOR_WORKERS = 1_000
HISTOGRAM_BINS = 10


def _text_seed(seed: int, entry: int, parent_id: str, copy: int, field: str) -> int:
    # Derived per text rather than drawn in sequence, so one record's result does not depend on the others.
    digest = hashlib.sha256(f"{seed}/{entry}/{parent_id}/{copy}/{field}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _copies_per_parent(n: int, total: int, seed: int) -> list[int]:
    """How many new records to derive from each of the n train records: `total` in all."""
    each, extra = divmod(total, n) if n else (0, 0)
    chosen = set(random.Random(seed).sample(range(n), extra))
    return [each + (index in chosen) for index in range(n)]


def _labels(entries: tuple[AugmentMethod, ...]) -> list[str]:
    """Report keys: the method name, or method[index] when the recipe uses that method more than once."""
    uses = Counter(entry.method for entry in entries)
    return [entry.method if uses[entry.method] == 1 else f"{entry.method}[{index}]"
            for index, entry in enumerate(entries)]


class _PiiCheck:
    """Whether the PII library, with the recipe's PII settings, would change (or drop) each text: augmented
    text meets exactly the bar every original met. The scrubber is built on first use."""

    def __init__(self, params: PiiParams):
        self.params = params
        self._scrubber: TextScrubber | None = None

    def found(self, texts: list[str]) -> list[bool]:
        from fttool.pii.scrubber import TextScrubber

        if self._scrubber is None:
            self._scrubber = TextScrubber(self.params)
        return [bool(outcome.found) for outcome in self._scrubber.outcomes(texts)]


def _similarities(pairs: list[tuple[str, str]]) -> list[float]:
    """Cosine similarity of each (parent text, new text) pair; each distinct text is embedded once."""
    from fttool.data.embeddings import embed

    unique = list(dict.fromkeys(text for pair in pairs for text in pair))
    row = {text: index for index, text in enumerate(unique)}
    vectors = embed(unique)
    return [float(vectors[row[old]] @ vectors[row[new]]) for old, new in pairs]


def _distribution(values: list[float]) -> dict | None:
    """Summary of candidate similarities; the histogram's bins split [0, 1], cosines below 0 count in the first."""
    import numpy as np

    if not values:
        return None
    array = np.asarray(values, dtype=np.float64)
    p10, median, p90 = np.percentile(array, [10, 50, 90])
    counts, edges = np.histogram(np.clip(array, 0.0, 1.0), bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return {"count": len(values), **{name: round(float(value), 4) for name, value in (
                ("min", array.min()), ("p10", p10), ("median", median), ("p90", p90), ("max", array.max()))},
            "histogram": {"edges": [round(float(edge), 2) for edge in edges], "counts": counts.tolist()}}


class _Tally:
    """Counts, similarities and example ids of one augment entry."""

    def __init__(self):
        self.counts = Counter({"generated": 0, "kept": 0, **{reason: 0 for reason in REJECTION_REASONS}})
        self.similarities: list[float] = []
        self.kept_examples: list[dict] = []
        self.rejected_examples: dict[str, list[str]] = {reason: [] for reason in REJECTION_REASONS}

    def reject(self, parent: dict, reason: str) -> None:
        self.counts[reason] += 1
        if len(self.rejected_examples[reason]) < MAX_EXAMPLES:
            self.rejected_examples[reason].append(parent["id"])

    def keep(self, child: dict) -> None:
        self.counts["kept"] += 1
        if len(self.kept_examples) < MAX_EXAMPLES:
            self.kept_examples.append({"id": child["id"], "parent_id": child["parent_id"]})

    def summary(self, resources: dict) -> dict:
        return {"generated": self.counts["generated"], "kept": self.counts["kept"],
                "rejected": {reason: self.counts[reason] for reason in REJECTION_REASONS},
                "similarity": _distribution(self.similarities), "examples": self.kept_examples,
                "rejected_examples": {reason: ids for reason, ids in self.rejected_examples.items() if ids},
                "resources": resources}


def _spans_kept(old: str, new: str) -> bool:
    from fttool.augment.spans import protected_spans

    # A multiset: translation may reorder a sentence, but every span must come back exactly once.
    return Counter(protected_spans(new)) == Counter(protected_spans(old))


Job = tuple[int, str, str, int]  # a text to rewrite: its candidate's index in the chunk, field, text and seed


class _Entry:
    """One entry of the augment list: rewrites chunks of (parent, copy) candidates and screens them."""

    def __init__(self, entry: AugmentMethod, index: int, ctx: StageContext, pii: _PiiCheck):
        from fttool.augment.methods import METHODS, build_rewriter, word_rewriter

        self.entry, self.index, self.pii = entry, index, pii
        self.params = entry.settings()  # recorded on every new record
        self.in_workers = METHODS[entry.method].in_workers
        self.rewriter = word_rewriter(entry) if self.in_workers else build_rewriter(entry, ctx.resolve)
        self.tally = _Tally()

    def jobs(self, chunk: list[tuple[dict, int]]) -> list[Job]:
        """The texts of a chunk's candidates to rewrite; empty fields and JSON are not rewritten."""
        from fttool.augment.spans import is_structured

        return [(index, field, parent[field], _text_seed(self.entry.seed, self.index, parent["id"], copy, field))
                for index, (parent, copy) in enumerate(chunk) for field in self.entry.fields
                if parent.get(field) and not is_structured(parent[field])]

    def kept(self, candidates: Iterator[tuple[dict, int]], compute: EngineSettings, total: int,
             seen: set[bytes]) -> Iterator[dict]:
        """The kept records among `total` candidates, in order, a chunk at a time."""
        # Workers may rewrite chunks ahead; each rewrite comes back, in order, to the chunk that asked for it.
        waiting: deque[tuple[list[tuple[dict, int]], list[Job]]] = deque()

        def job_batches() -> Iterator[list[Job]]:
            for chunk in batched(candidates, CHUNK_CANDIDATES):
                waiting.append((chunk, self.jobs(chunk)))
                yield waiting[-1][1]

        for outputs in self.rewritten(job_batches(), compute, total, MIN_CANDIDATES_FOR_WORKERS):
            chunk, jobs = waiting.popleft()
            yield from self.screen(chunk, jobs, outputs, seen)

    def rewritten(self, job_batches: Iterator[list[Job]], compute: EngineSettings, candidates: int,
                  min_candidates_for_workers: int) -> Iterator[list[str | None]]:
        """The rewrite of each batch's texts, in order: a word method's on the engine of `compute` (from
        `min_candidates_for_workers` candidates up), a model method's in this process."""
        from fttool.augment.methods import rewrite_batch

        if not self.in_workers:
            return (self.rewriter.rewrite([job[2] for job in jobs], [job[3] for job in jobs]) for jobs in job_batches)
        texts = ([(job[2], job[3]) for job in jobs] for jobs in job_batches)
        return in_order_beyond(rewrite_batch, texts, self.entry, compute, min_candidates_for_workers, candidates)

    def screen(self, chunk: list[tuple[dict, int]], jobs: list[Job], outputs: list[str | None],
               seen: set[bytes]) -> Iterator[dict]:
        """The kept records among one chunk of candidates, given their rewritten texts, in order; each check runs on
        the whole chunk."""
        changed_by: list[dict[str, str | None]] = [{} for _ in chunk]  # the fields each candidate's rewrite changed
        for (index, field, old, _), new in zip(jobs, outputs):
            if new != old:
                changed_by[index][field] = new
        tally = self.tally
        intact: list[tuple[dict, dict[str, str]]] = []  # (parent, changed fields)
        for (parent, _), new_texts in zip(chunk, changed_by):
            tally.counts["generated"] += 1
            # None: a model method lost a span's marker (fttool.augment.methods)
            rewritten = {field: text for field, text in new_texts.items() if text is not None}
            if not new_texts:
                tally.reject(parent, "unchanged")
            elif len(rewritten) < len(new_texts) or not all(_spans_kept(parent[field], text)
                                                            for field, text in rewritten.items()):
                tally.reject(parent, "protected_span_changed")
            else:
                intact.append((parent, rewritten))

        pairs = [(parent[field], text) for parent, changed in intact for field, text in changed.items()]
        scores = iter(_similarities(pairs) if pairs else [])
        similar = []
        for parent, changed in intact:
            similarity = min(next(scores) for _ in changed)
            tally.similarities.append(similarity)
            if similarity < self.entry.min_similarity:
                tally.reject(parent, "low_similarity")
            else:
                similar.append((parent, changed))

        texts = [text for _, changed in similar for text in changed.values()]
        found = iter(self.pii.found(texts) if texts else [])
        method = self.entry.method
        for parent, changed in similar:
            if any([next(found) for _ in changed]):  # a list, so every flag of the candidate is consumed
                tally.reject(parent, "pii_detected")
                continue
            child = {**parent, **changed}
            key = exact_key(child)
            if key in seen:
                tally.reject(parent, "duplicate")
                continue
            seen.add(key)
            identity = json.dumps([parent["id"], method, changed], sort_keys=True, ensure_ascii=False)
            child.update(id="a" + hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16],
                         parent_id=parent["id"], augmentation={"method": method, "params": self.params})
            tally.keep(child)
            yield child


class AugmentStage(Stage):
    name = "augment"
    reads = ("train",)
    references = ("validation", "test")
    writes = ("train",)
    report_section = "augmentation"
    Params = AugmentParams

    @classmethod
    def external_inputs(cls, params: AugmentParams) -> list[str]:
        from fttool.augment.methods import METHODS

        # The models decide what is written: the encoder through the similarity check, the others directly.
        # pii.ner's transformers model, when named, decides which augmented texts are rejected.
        paths = [str(model_dir()), *ner_model_inputs(params.pii.ner)]
        for entry in params.methods:
            paths += [getattr(entry, key) for key in METHODS[entry.method].model_keys]
            paths += METHODS[entry.method].data_paths
        return list(dict.fromkeys(paths))

    @classmethod
    def unmet_requirements(cls, params: AugmentParams) -> list[str]:
        from fttool.augment.wordnet_files import DEBIAN_WORDNET, INSTALL_HINT, missing_files

        missing = missing_files() if any(entry.method == "synonym" for entry in params.methods) else []
        if missing:
            return [f"synonym augmentation needs WordNet 3.0 in {DEBIAN_WORDNET} (missing: {', '.join(missing)}); "
                    f"{INSTALL_HINT}"]
        return engine_problems(params.compute)

    def run(self, ctx: StageContext) -> StageResult:
        seen: set[bytes] = set()  # keys of every original record and every kept new record
        n_train = 0
        for split in SPLITS:
            for record in read_jsonl(ctx.inputs[split]):
                seen.add(exact_key(record))
                n_train += split == "train"
        params: AugmentParams = ctx.params
        pii = _PiiCheck(located(params.pii, ctx.recipe_dir))  # a NER model's directory, from the recipe's
        entries = params.methods
        reports: dict[str, dict] = {}

        def new_records() -> Iterator[dict]:
            for index, (entry, label) in enumerate(zip(entries, _labels(entries))):
                run = _Entry(entry, index, ctx, pii)
                total = entry.candidates(n_train)
                copies = _copies_per_parent(n_train, total, entry.seed)
                parents = ctx.progress(zip(read_jsonl(ctx.inputs["train"]), copies), total=n_train,
                                       desc=f"augment {label}")
                candidates = ((parent, copy) for parent, n_copies in parents for copy in range(n_copies))
                yield from run.kept(candidates, params.compute, total, seen)
                reports[label] = run.tally.summary(run.rewriter.resources)

        # New records wait in scratch space because they go after every original.
        scratch = ctx.work_dir / "augmented.jsonl"
        write_jsonl(scratch, new_records())
        write_jsonl(ctx.outputs["train"], chain(read_jsonl(ctx.inputs["train"]), read_jsonl(scratch)))
        return StageResult(
            added={label: report["kept"] for label, report in reports.items()},
            summary={"methods": reports, "protected_spans_checked": True, "similarity_model": MODEL_NAME,
                     "pii_scan": thaw(params.pii)})


STAGE = AugmentStage
