"""The recognizers fttool runs on top of presidio's predefined ones, and those a recipe declares.

`build_registry` assembles them in the style of presidio's RecognizerRegistry: presidio's predefined
recognizers for the language, with the e-mail and spaCy recognizers swapped for the ones below, plus
recognizers for card numbers outside presidio's pattern, phone numbers judged by phonenumbers (in place of
presidio's PhoneRecognizer), street addresses (fttool.pii.addresses) and introduced names.
Recipe recognizers (`pii.recognizers`) are built per run by `recipe_recognizers` and passed to each
analysis as ad-hoc recognizers, so the cached engines stay the same for every recipe.

This module imports presidio at import time; import it only where the analysis runs.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

import regex
import tldextract
from presidio_analyzer import LocalRecognizer, Pattern, PatternRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, EmailRecognizer, SpacyRecognizer

from fttool.pii.addresses import ADDRESS_CONTEXT, ADDRESS_PATTERNS
from fttool.pii.name_fields import common_words, name_field_spans
from fttool.pii.names import given_name_spans, organisation_person_span, place_is_person
from fttool.pii.phones import phone_spans

# presidio's card pattern admits only 13 to 17 digits led by 1, 3, 4, 5[0-5] or 6, so it never matches
# Mastercard's 2-series (2221-2720), 15-digit JCB (2131, 1800), 19-digit Visa or 12-digit Maestro. This one
# admits every length a payment card number has (12 to 19 digits, single spaces or hyphens between digit
# groups) for those issuer prefixes; as in presidio's, the Luhn checksum decides, so a match that fails it
# is dropped and one that passes scores 1.
CARD_PATTERN = r"(?<![\w-])(?=2[2-7]|2131|1800|35|4|5[0-8]|6)\d{2,6}(?:[ -]?\d{2,6}){1,5}(?![\w-])"
CARD_DIGITS = range(12, 20)


class IssuerRangeCardRecognizer(CreditCardRecognizer):
    """Card numbers of the issuer ranges and lengths presidio's CreditCardRecognizer leaves out."""

    def __init__(self, supported_language: str):
        # presidio's name: where both match one number, presidio keeps either (its duplicate removal hashes
        # results), and the findings file should not depend on which.
        super().__init__(patterns=[Pattern("issuer ranges, 12 to 19 digits", CARD_PATTERN, 0.3)],
                         supported_language=supported_language, name="CreditCardRecognizer")

    def validate_result(self, pattern_text: str) -> bool:
        digits = [c for c in pattern_text if c.isdigit()]
        return len(digits) in CARD_DIGITS and super().validate_result(pattern_text)


# The small spaCy models miss many names; a capitalised name right after a title, an introduction, a
# greeting or a sign-off is a name. Matched case-sensitively (the triggers are not), so "my name is fine"
# is left alone.
_TITLE = r"(?i:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\b"
_NOT_NAME = rf"(?:{_TITLE}|(?:Sir|Madam|Customer|Team|All|Everyone|There|Again|Colleagues|Friends)\b)"
_NAME_WORD = rf"(?!{_NOT_NAME})\p{{Lu}}(?:\p{{Ll}}+|['’]\p{{Lu}}\p{{Ll}}+)(?:-\p{{Lu}}\p{{Ll}}+)?"
_FULL_NAME = rf"{_NAME_WORD}(?:[ \t]+(?:\p{{Lu}}\.[ \t]+)?{_NAME_WORD}){{0,2}}"
NAME_PATTERNS = (
    ("title", rf"(?<=\b{_TITLE}\.?\s+){_FULL_NAME}", 0.9),
    ("introduction", rf"(?<=\b(?i:(?:my|his|her|their|your) (?:(?:first|last|middle|maiden|full|family) )?name "
                     rf"is|(?:sur|last |first )name(?: is|:)|my name's|call me|dear)\s+){_FULL_NAME}", 0.9),
    ("sign-off", rf"(?<=\b(?i:regards|sincerely|yours truly),?\s+){_FULL_NAME}", 0.9),
    ("greeting",
     rf"(?<=\b(?i:hi|hello|hey|thanks|thank you|good (?:morning|afternoon|evening)),?\s+){_FULL_NAME}", 0.9),
)

# Capitalised labels of screens, menus and buttons ("open Settings", "tap Close", "Select Documents"),
# which the small spaCy models often tag as PERSON. None of them is a common given name or surname.
INTERFACE_WORDS = frozenset("""
    accessibility account accounts activity add advanced alerts allow apply apps archive back basket billing bin
    block calendar cancel card cards cart change chat checkout choose claims click close confirm contacts continue
    copy create dashboard delete devices documents done download downloads drafts edit enable export favorites
    favourites feedback files finish freeze gallery go help hide history home import inbox insurance investments
    invoices limits loans lock login logout mailbox manage menu messages my new next notifications offers ok open
    options orders overview payments photos preferences press print privacy profile refresh remove reset rewards
    save savings search security select send services settings share show sign start statements storage submit
    support tap tools transactions transfers trash undo unlock update updates upload view wallet
""".split())


ABBREVIATIONS = Path(__file__).with_name("abbreviations.txt")


@lru_cache(maxsize=1)
def abbreviations_not_places() -> frozenset[str]:
    """Abbreviations in capitals that WordNet knows, none of them as a place ("AI", "EU", "IT", "CEO"), which the
    small spaCy models tag as places: built by bench/build_abbreviations.py."""
    return frozenset(line for line in ABBREVIATIONS.read_text(encoding="utf-8").splitlines()
                     if line and not line.startswith("#"))


# Name evidence (fttool.pii.names): ORG spans and one-word places that read as names, and proper nouns led by a
# given name, count as people. Measured against bench/pii_external.py --name-evidence-off (docs/benchmarks.md).
NAME_EVIDENCE = True
NAME_EVIDENCE_SCORE = 0.6


MAX_LOWERCASE_TAG_CHARS = 3


class PlausibleNameSpacyRecognizer(SpacyRecognizer):
    """presidio's spaCy recognizer, without PERSON spans that read as interface words rather than names, nor
    places that are abbreviations WordNet knows only as something else.

    A PERSON span is dropped when every word in it is an interface word, or when the tagger reads none
    of its words as a proper noun (it then sees a common noun or a verb, such as "Settings" or "Tap").
    Fine-grained tags (NNP, NNPS) are used rather than coarse POS because they come from the tagger alone.
    A LOCATION that is, as a whole, one of `abbreviations_not_places` is dropped: the small models tag every
    "AI" as a place, which cost LLM instruction data each "As an AI language model".
    With a transformers NER model (pii.ner) its spans are not vetoed: the recipe chose that model's
    judgement over the small spaCy model's, whose tagger reads a sentence-initial "Grace" as a common noun.
    """

    def __init__(self, *args, veto_implausible: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.veto_implausible = veto_implausible

    def analyze(self, text, entities, nlp_artifacts=None):
        results = super().analyze(text, entities, nlp_artifacts)
        if nlp_artifacts is None:
            return results
        if self.veto_implausible:
            implausible = {(span.start_char, span.end_char) for span in nlp_artifacts.entities
                           if span.label_ == "PERSON" and not _plausible_name(span)}
            not_places = abbreviations_not_places()
            results = [r for r in results
                       if not (r.entity_type == "PERSON" and (r.start, r.end) in implausible
                               or r.entity_type == "LOCATION" and text[r.start:r.end] in not_places)]
        if "PERSON" in entities and NAME_EVIDENCE:
            people = {(span.start_char, span.end_char) for span in nlp_artifacts.entities
                      if span.label_ == "LOCATION" and place_is_person(span)}
            for r in results:
                if r.entity_type == "LOCATION" and (r.start, r.end) in people:
                    r.entity_type = "PERSON"
            results += self._names_as_people(text, nlp_artifacts)
        return results

    def _names_as_people(self, text, nlp_artifacts) -> list:
        """The small spaCy models tag many names as ORG ("founders: Eklund, Becker and Vasquez") or as nothing."""
        doc = nlp_artifacts.tokens
        if not hasattr(doc, "ents"):
            return []
        spans = [found for span in doc.ents if span.label_ == "ORG"
                 for found in [organisation_person_span(span, text)] if found] + given_name_spans(doc)
        metadata = {RecognizerResult.RECOGNIZER_NAME_KEY: "NameEvidence",
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}
        return [RecognizerResult("PERSON", start, end, NAME_EVIDENCE_SCORE, recognition_metadata=metadata)
                for start, end in spans]


def _plausible_name(span) -> bool:
    if len(span) == 1 and span[0].is_lower and len(span[0]) <= MAX_LOWERCASE_TAG_CHARS:
        return False  # a short lower-case value on its own ("eu", "us" in a region field)
    words = [token.lower_ for token in span if token.is_alpha]
    if words and all(word in INTERFACE_WORDS for word in words):
        return False
    return any(token.tag_ in ("NNP", "NNPS") for token in span)


# A text that is, as a whole, a person's name (fttool.pii.name_fields): scored as the NER's PERSON spans, so that the
# whole name wins over a part the NER found. Measured against bench/pii_external.py --name-fields-off.
NAME_FIELDS = True
NAME_FIELD_SCORE = 0.85


class NameFieldRecognizer(LocalRecognizer):
    """Texts that hold only a person's name, or a couple's ("MARK EDMONDS", "LOIACONO, JOSEPH")."""

    def __init__(self, supported_language: str, nlp):
        super().__init__(supported_entities=["PERSON"], supported_language=supported_language,
                         name="NameFieldRecognizer")
        self.common_words = common_words(nlp)

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        metadata = {RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}
        places = tuple((span.start_char, span.end_char) for span in getattr(nlp_artifacts, "entities", ())
                       if span.label_ == "LOCATION")
        return [RecognizerResult("PERSON", start, end, NAME_FIELD_SCORE, recognition_metadata=metadata)
                for start, end in name_field_spans(text, self.common_words, places)]


class PhoneNumberRecognizer(LocalRecognizer):
    """Phone numbers of any common format, judged by phonenumbers (fttool.pii.phones)."""

    def __init__(self, supported_language: str):
        super().__init__(supported_entities=["PHONE_NUMBER"], supported_language=supported_language,
                         name="PhoneNumberRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        metadata = {RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}
        return [RecognizerResult("PHONE_NUMBER", start, end, score, recognition_metadata=metadata)
                for start, end, score in phone_spans(text)]


class _DropLanguageSkips(logging.Filter):
    """presidio warns once per recognizer of every other language it skips; that is expected, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Recognizer not added to registry because language")


def build_registry(language: str, nlp_engine) -> RecognizerRegistry:
    """presidio's predefined recognizers for `language` with fttool's replacements and additions."""
    presidio_log = logging.getLogger("presidio-analyzer")
    language_skips = _DropLanguageSkips()
    presidio_log.addFilter(language_skips)
    try:
        registry = RecognizerRegistry(supported_languages=[language])
        registry.load_predefined_recognizers(languages=[language], nlp_engine=nlp_engine)
    finally:
        presidio_log.removeFilter(language_skips)
    # The NER's recognizer: SpacyRecognizer, or its subclass TransformersRecognizer with a transformers engine
    # (pii.ner), which reads the entities the same way.
    stock_ner = next(r for r in registry.recognizers if isinstance(r, SpacyRecognizer))
    stock_name: str = stock_ner.name  # type: ignore[has-type]  # presidio assigns it in branches, unannotated
    registry.remove_recognizer(stock_name)
    spacy_ner = type(stock_ner) is SpacyRecognizer
    registry.add_recognizer(PlausibleNameSpacyRecognizer(
        supported_language=language, supported_entities=stock_ner.supported_entities,
        ner_strength=stock_ner.ner_strength, veto_implausible=spacy_ner,
        # The findings file names the recognizer: a transformers model's findings say so.
        name=None if spacy_ner else stock_name))
    registry.remove_recognizer("EmailRecognizer")
    registry.add_recognizer(_offline_email_recognizer(language))
    registry.add_recognizer(IssuerRangeCardRecognizer(language))
    registry.add_recognizer(PatternRecognizer(
        supported_entity="STREET_ADDRESS", name="StreetAddressRecognizer", supported_language=language,
        patterns=[Pattern(name, pattern, score) for name, pattern, score in ADDRESS_PATTERNS],
        context=ADDRESS_CONTEXT))
    registry.remove_recognizer("PhoneRecognizer")
    registry.add_recognizer(PhoneNumberRecognizer(language))
    if NAME_FIELDS:
        registry.add_recognizer(NameFieldRecognizer(language, (getattr(nlp_engine, "nlp", None) or {}).get(language)))
    registry.add_recognizer(PatternRecognizer(
        supported_entity="PERSON", name="IntroducedNameRecognizer", supported_language=language,
        patterns=[Pattern(name, pattern, score) for name, pattern, score in NAME_PATTERNS],
        global_regex_flags=regex.DOTALL | regex.MULTILINE))
    return registry


def _offline_email_recognizer(language: str) -> EmailRecognizer:
    """presidio's email recognizer, validating domains against tldextract's bundled suffix list.

    The stock one calls the module-level tldextract.extract, which downloads the public suffix list on
    first use and logs a connection error without a network; this one never touches the network or disk.
    """
    extract = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return extract(pattern_text).fqdn != ""

    return OfflineEmailRecognizer(supported_language=language)


def recipe_recognizers(declarations: Iterable[Mapping], language: str) -> list[PatternRecognizer]:
    """Pattern and deny-list recognizers from `pii.recognizers`; regexes were checked when the recipe compiled.

    Context words raise a pattern's score (presidio adds 0.35 when one occurs shortly before the match),
    so a pattern scored below the threshold counts only where its context is present.
    """
    return [PatternRecognizer(
        supported_entity=declaration["entity"], name=declaration["name"], supported_language=language,
        patterns=[Pattern(f"{declaration['name']} {index}", pattern["regex"], pattern["score"])
                  for index, pattern in enumerate(declaration.get("patterns", []))],
        deny_list=list(declaration.get("deny_list", [])), context=list(declaration.get("context", [])))
        for declaration in declarations]
