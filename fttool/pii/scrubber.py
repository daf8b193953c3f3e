"""Scrub personal data from texts: presidio's analyzer, its anonymizer and a second scan of the result.

`TextScrubber(params).outcomes(texts)` analyses a list of texts in spaCy batches and says, for each, what
to write and what was found. Texts are analysed in normal form (fttool.pii.normalise) and the findings mapped
back, so that the original text is replaced; findings are weighed again (fttool.pii.evidence), and values on the
allow list are never findings. With `action: scrub` each
finding is anonymised by its entity type's operator (replace with <TYPE>, redact, mask, or a keyed-hash
pseudonym such as <PERSON_3f2a91c0>) and the scrubbed text is analysed again: anything found there in text
the anonymizer did not write is a residual, counted by type. With `action: drop` nothing is rewritten.

Usable without the runner: the PII stage and the augment stage both call it. Importing this module is
cheap; presidio and spaCy load when the first scrubber is built.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from fttool.pii.evidence import AllowList, one_type_per_string, plausible, with_address_blocks, without_wrappers
from fttool.pii.nlp_engines import build_nlp_engine, ner_types_asked
from fttool.pii.normalise import Normalised, normalise
from fttool.pii.settings import PiiParams, entities_checked
from fttool.pipeline.plan import canonical_json

if TYPE_CHECKING:
    from presidio_analyzer import RecognizerResult

# Texts per spaCy nlp.pipe batch, and per task of the workers (fttool.pii.workers): small tasks leave little for one
# worker to finish alone at the end. A text's findings do not depend on the texts that share its batch.
NLP_BATCH = 64
PSEUDONYM_HEX_DIGITS = 8
MIN_HASH_KEY_CHARS = 16  # presidio's own minimum salt length; a short key makes pseudonyms guessable
DEFAULT_HASH_KEY_ENV = "FTTOOL_PII_SALT"
DEFAULT_OPERATOR = {"type": "replace"}

class PiiResidualError(RuntimeError):
    """`strict` is set and scrubbed text still holds PII."""


class RecognizerTimeoutError(RuntimeError):
    """A recognizer's pattern ran past pii.timeout_s: presidio would skip it and scrub less, so the run fails."""


class _TimeoutWatch(logging.Handler):
    """Hears presidio's "Regex pattern '...' timed out ..., skipping." warnings, which are all it does about one."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.patterns: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "timed out" in str(record.msg) and isinstance(record.args, tuple) and record.args:
            self.patterns.append(str(record.args[0]))

    def check(self, timeout_s: float) -> None:
        if self.patterns:
            names = ", ".join(f"'{name}'" for name in dict.fromkeys(self.patterns))
            self.patterns.clear()
            raise RecognizerTimeoutError(
                f"pii: the recognizer pattern {names} ran longer than pii.timeout_s ({timeout_s:g} s) on a text; "
                "rather than skip it and scrub less, the run stops. Fix the regular expression (nested or "
                "overlapping repeats such as (a+)+ backtrack without end) or raise pii.timeout_s")


@dataclass(frozen=True)
class Finding:
    """One finding, for the data owner's findings file: never the value, only its type and a masked context."""
    entity: str
    score: float
    recognizer: str
    context: str  # CONTEXT_CHARS either side; this and every other finding in it as <TYPE>, other digits as #


@dataclass(frozen=True)
class TextOutcome:
    """What one text gave: the text to write (None: unchanged), counts by type, and the findings."""
    scrubbed: str | None
    found: Counter
    residual: Counter
    findings: tuple[Finding, ...] = ()
    # (start, end, type, score, recognizer) of each finding anonymised: where a record's resolution starts from
    spans: tuple[tuple[int, int, str, float, str], ...] = ()
    # What the second scan found in the scrubbed text, its context taken from that text: one per `residual` count
    residual_findings: tuple[Finding, ...] = ()


NOTHING_FOUND = TextOutcome(None, Counter(), Counter())  # shared by the many texts without findings
CONTEXT_CHARS = 30


def _masked_context(text: str, results: list, finding) -> str:
    """The text around `finding`, with every finding that reaches into the window shown as <TYPE>."""
    start, end = max(0, finding.start - CONTEXT_CHARS), min(len(text), finding.end + CONTEXT_CHARS)
    inside = sorted((r for r in results if r.start < end and r.end > start), key=lambda r: (r.start, -r.end))
    parts, position = [], start
    for r in inside:
        if r.start >= position:
            parts.append(text[position:r.start])
            parts.append(f"<{r.entity_type}>")
            position = r.end
        elif r.end > position:
            position = r.end  # overlaps the one already shown
    parts.append(text[min(max(position, start), end):end])
    # Digits outside findings are masked too: a number the recognizers missed (a rare ID format) stays unreadable.
    return ("…" if start else "") + re.sub(r"\d", "#", "".join(parts)) + ("…" if end < len(text) else "")


def _recognizer(result) -> str:
    return (result.recognition_metadata or {}).get("recognizer_name", "")


def _findings(text: str, results: list, also_masked: tuple = ()) -> tuple[Finding, ...]:
    """One finding per span and type (recognizers that agree are named once, the first by name); a finding
    inside a stronger one of another type is left out, as the anonymizer leaves it out. Contexts show the results
    and `also_masked` (spans with start, end and entity_type) as <TYPE>."""
    def stronger(q, r) -> bool:
        return q.start <= r.start and r.end <= q.end and (q.score, q.end - q.start) > (r.score, r.end - r.start)

    kept = [r for r in results if not any(stronger(q, r) for q in results)]
    unique: dict[tuple, RecognizerResult] = {}
    for r in sorted(kept, key=lambda r: (r.start, r.end, r.entity_type, _recognizer(r))):
        unique.setdefault((r.start, r.end, r.entity_type), r)
    shown = [*results, *also_masked]
    return tuple(Finding(r.entity_type, round(r.score, 3), _recognizer(r), _masked_context(text, shown, r))
                 for r in unique.values())


@lru_cache(maxsize=2)
def _engines(language: str, nlp_model: str, ner_settings: str, ner_types: tuple[str, ...]):
    """A batch analyzer and an anonymizer, built once per process: loading the models is the slow part.

    `ner_settings` is PiiParams.ner as canonical JSON (hashable, for the cache); `ner_types` are the NER entity
    types a transformers model must have labels for (fttool.pii.nlp_engines.ner_types_asked)."""
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
    from presidio_anonymizer import AnonymizerEngine

    from fttool.pii.lemmas import defer_lemmas
    from fttool.pii.recognizers import build_registry
    from fttool.pii.settings import NerParams
    from fttool.pipeline.params import build

    ner = build(NerParams, json.loads(ner_settings), "pii.ner")
    nlp_engine = build_nlp_engine(language, nlp_model, ner, ner_types)
    defer_lemmas(nlp_engine)
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, registry=build_registry(language, nlp_engine),
                              supported_languages=[language])
    return BatchAnalyzerEngine(analyzer), AnonymizerEngine()


@lru_cache(maxsize=1)
def _timeout_watch() -> _TimeoutWatch:
    watch = _TimeoutWatch()
    logging.getLogger("presidio-analyzer").addHandler(watch)
    return watch


def _watch_timeouts(timeout_s: float) -> _TimeoutWatch:
    """The process's watch on presidio's pattern timeouts, with presidio's limit set to `timeout_s`."""
    import presidio_analyzer.pattern_recognizer as pattern_recognizer

    pattern_recognizer.REGEX_TIMEOUT_SECONDS = timeout_s  # type: ignore[assignment]  # an int there; regex takes any
    return _timeout_watch()


def hash_key(variable: str) -> bytes:
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


def key_digests(params: PiiParams) -> dict[str, str]:
    """For each environment variable a hash operator reads, an HMAC-SHA256 keyed by its value (never the value;
    "unset" when it is not set): the stage's fingerprint changes with the key, and nothing can be learnt of it."""
    if params.action != "scrub":
        return {}
    variables = {operator_spec(params, entity).get("salt_env", DEFAULT_HASH_KEY_ENV)
                 for entity in entities_checked(params.entities, params.recognizers)
                 if operator_spec(params, entity)["type"] == "hash"}
    digests = {}
    for variable in sorted(variables):
        value = os.environ.get(variable)
        digests[variable] = (hmac.new(value.encode("utf-8"), b"fttool pii pseudonym key", hashlib.sha256).hexdigest()
                             if value else "unset")
    return digests


def check_settings(params: PiiParams) -> None:
    """Raise, naming the setting, for a hash key that is missing or short or an invalid allow-list regex: the
    checks that need no model, for a process that hands the analysis to workers before any work starts."""
    AllowList(params.allow_list)
    if params.action == "scrub":
        for entity in entities_checked(params.entities, params.recognizers):
            spec = operator_spec(params, entity)
            if spec["type"] == "hash":
                hash_key(spec.get("salt_env", DEFAULT_HASH_KEY_ENV))


def _pseudonymiser(entity: str, key: bytes) -> Callable[[str], str]:
    """<ENTITY_hex>: the same value gives the same pseudonym in every record, and without the key no value
    can be checked against it (a plain hash of a name could be matched by hashing candidate names)."""

    def pseudonym(value: str) -> str:
        digest = hmac.new(key, f"{entity}\0{value}".encode(), hashlib.sha256).hexdigest()
        return f"<{entity}_{digest[:PSEUDONYM_HEX_DIGITS]}>"

    return pseudonym


def operator_spec(params: PiiParams, entity: str) -> Mapping:
    operators = params.operators
    return operators.get(entity, operators.get("default", DEFAULT_OPERATOR))


def _operators(params: PiiParams) -> dict:
    """presidio OperatorConfigs by entity type; each entity gets its own, since a pseudonym names its type."""
    from presidio_anonymizer.entities import OperatorConfig

    configs = {}
    for entity in entities_checked(params.entities, params.recognizers):
        spec = operator_spec(params, entity)
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
            key = hash_key(spec.get("salt_env", DEFAULT_HASH_KEY_ENV))
            configs[entity] = OperatorConfig("custom", {"lambda": _pseudonymiser(entity, key)})
    return configs


class TextScrubber:
    """Analyses texts and scrubs what it finds; build one per process from the PII parameters."""

    def __init__(self, params: PiiParams):
        from fttool.pii.recognizers import recipe_recognizers

        self.params = params
        self.language = params.language
        self.scrubs = params.action == "scrub"
        self.entities = entities_checked(params.entities, params.recognizers)
        self.batch, self.anonymizer = _engines(self.language, params.nlp_model, canonical_json(params.ner),
                                               ner_types_asked(params))
        self.recipe_recognizers = recipe_recognizers(params.recognizers, self.language)
        self.allow_list = AllowList(params.allow_list)
        self.timeouts = _watch_timeouts(params.timeout_s)
        supported = set(self.batch.analyzer_engine.get_supported_entities(self.language))
        unknown = [e for e in params.entities if e not in supported]
        if unknown:
            raise ValueError(f"pii.entities: no recognizer for {', '.join(unknown)} in language "
                             f"'{self.language}'; supported: {', '.join(sorted(supported))} (or declare one "
                             "under pii.recognizers)")
        # A dropped record is never anonymised, so dropping needs no hash key.
        self.operators = _operators(params) if self.scrubs else {}

    def outcomes(self, texts: list[str]) -> list[TextOutcome]:
        """What each of `texts` gave, in order."""
        return self.outcomes_with(texts, self._analyse(texts))

    def outcomes_with(self, texts: list[str], analysed: list[list]) -> list[TextOutcome]:
        """What each of `texts` gives with the findings given (presidio RecognizerResults at its offsets): the
        analysis's, or a record's resolution of them (fttool.pii.records)."""
        anonymised = [self._anonymise(text, results) for text, results in zip(texts, analysed)]
        findings = [_findings(text, results) if results else () for text, results in zip(texts, analysed)]
        spans = [tuple((r.start, r.end, r.entity_type, r.score, _recognizer(r)) for r in results)
                 for results in analysed]
        if not self.scrubs:
            return [TextOutcome(None, _types(a), Counter(), found, kept) if a else NOTHING_FOUND
                    for a, found, kept in zip(anonymised, findings, spans)]
        # Only scrubbed texts need the second look (a text left unchanged had no findings the first time), and
        # only around what was replaced: that is where a fragment (a surname after its first name) is left.
        windows = {a.text: _windows(a) for a in anonymised if a}
        snippets = list(dict.fromkeys(a.text[start:end] for a in anonymised if a for start, end in windows[a.text]))
        found_in = dict(zip(snippets, self._analyse(snippets)))
        rescanned = {text: [_shifted(r, start) for start, end in spans for r in found_in[text[start:end]]]
                     for text, spans in windows.items()}
        outcomes = []
        for a, found, kept in zip(anonymised, findings, spans):
            if not a:
                outcomes.append(NOTHING_FOUND)
                continue
            # What a mask left standing ("***athan") is part of a value: the context shows it as <TYPE> too.
            masked = tuple(item for item in a.items if item.operator == "mask")
            left = _findings(a.text, _residual(a, rescanned[a.text]), masked)
            outcomes.append(TextOutcome(a.text, _types(a), Counter(f.entity for f in left), found, kept, left))
        return outcomes

    def _analyse(self, texts: list[str]) -> list[list]:
        """Each text's findings, at the original text's offsets: analysed in normal form (fttool.pii.normalise),
        then weighed again (fttool.pii.evidence)."""
        normals = [normalise(text) for text in texts]
        analysed = self.batch.analyze_iterator(
            [n.text for n in normals], language=self.language, batch_size=NLP_BATCH, entities=self.entities,
            score_threshold=self.params.score_threshold, ad_hoc_recognizers=self.recipe_recognizers)
        self.timeouts.check(self.params.timeout_s)
        return [self._weighed(text, normal, results) for text, normal, results in zip(texts, normals, analysed)]

    def _weighed(self, text: str, normal: Normalised, results: list) -> list:
        from presidio_analyzer import RecognizerResult

        kept = without_wrappers(normal.text, [r for r in results if plausible(normal.text, r)])
        kept = one_type_per_string(normal.text, with_address_blocks(normal.text, kept))
        out = []
        for r in kept:
            start, end = normal.span(r.start, r.end)
            if not self.allow_list.allows(text[start:end]):
                out.append(RecognizerResult(r.entity_type, start, end, r.score,
                                            recognition_metadata=r.recognition_metadata))
        return out

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


RESCAN_CHARS = 80  # text rescanned either side of a replacement


def _windows(anonymised) -> list[tuple[int, int]]:
    """Merged spans of the scrubbed text within RESCAN_CHARS of a replacement, widened to whitespace."""
    text, spans = anonymised.text, list[tuple[int, int]]()
    for item in sorted(anonymised.items, key=lambda item: item.start):
        start, end = max(0, item.start - RESCAN_CHARS), min(len(text), item.end + RESCAN_CHARS)
        while start > 0 and not text[start - 1].isspace():
            start -= 1
        while end < len(text) and not text[end].isspace():
            end += 1
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def _shifted(result, offset: int):
    from presidio_analyzer import RecognizerResult

    return RecognizerResult(result.entity_type, result.start + offset, result.end + offset, result.score,
                            recognition_metadata=result.recognition_metadata)


def _types(anonymised) -> Counter:
    return Counter(item.entity_type for item in anonymised.items)


def _residual(anonymised, results: list) -> list:
    """Findings in scrubbed text that cover a letter or digit the anonymizer did not write.

    Characters a mask leaves standing are the original's, so only replacements and pseudonyms count as written.
    """
    scrubbed = anonymised.text
    written = {i for item in anonymised.items if item.operator != "mask" for i in range(item.start, item.end)}
    return [r for r in results if any(scrubbed[i].isalnum() and i not in written for i in range(r.start, r.end))]
