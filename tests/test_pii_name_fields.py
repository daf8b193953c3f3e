"""Texts that are, as a whole, a person's name (issue 11: names alone in a field). The layouts people write in a name
field are found and scrubbed whole through the real presidio analyzer and spaCy model (TextScrubber with the recipe
schema's defaults); companies, titles, places, one-word fields and sentences are left to the other recognizers.
The names are made up here, in the layouts of the US campaign-finance and faculty lists that real name fields show."""
from __future__ import annotations

import pytest
from support.pii import pii_params

from fttool.pii.name_fields import name_field_spans

RULE = "NameFieldRecognizer"


@pytest.fixture(scope="module")
def scrub():
    from fttool.pii.scrubber import TextScrubber
    from fttool.pii.settings import PiiParams
    from fttool.pipeline.params import build

    scrubber = TextScrubber(build(PiiParams, pii_params(workers=1), "pii"))

    def run(text: str) -> tuple[str, set[str]]:
        """(the scrubbed text, the recognizers of its PERSON findings)."""
        [outcome] = scrubber.outcomes([text])
        return ((text if outcome.scrubbed is None else outcome.scrubbed),
                {finding.recognizer for finding in outcome.findings if finding.entity == "PERSON"})

    return run


@pytest.mark.parametrize("text", [
    "KAREN HOLLOWAY",  # capitals
    "PRZYBYLSKI JR, THOMAS J",  # "Surname, Given" with a suffix and an initial
    "MC ALLISTER, BRENDA K",  # a surname particle
    "Okonkwo, Chidi",
    "sandra okafor",  # lower case
    "Ms PRIYANKA RAGHAVAN",  # a form of address
    "Dr. Helen Marsh M.D.",  # degrees ("M.D." is a place to the NER)
    "Angela Ferreira, PhD",
    "Gerald Whitcombe III",
    "Robert (Bobby) T Kowalczyk",  # a nickname in parentheses
    'Walter "Skip" Brennan',  # in quotes
    "Mary Eugenia Black",  # a surname that is also an ordinary word
    "Marisol de la Fuente",
    "Lukas Nowak,",  # a trailing comma, as a list column leaves it
])
def test_name_layouts_are_scrubbed_whole(scrub, text):
    # Where the NER found the same span, presidio keeps one of the equal findings: the rule is checked on its own.
    assert scrub(text)[0].rstrip(",") == "<PERSON>"
    assert [text[a:b] for a, b in name_field_spans(text)] == [text.rstrip(",")]


def test_a_couple_is_one_finding_per_person(scrub):
    assert scrub("martin & yuki tanaka")[0] == "<PERSON> & <PERSON>"
    assert scrub("Mr. and Mrs. Daniel Osei")[0] == "Mr. and <PERSON>"  # a form of address alone names nobody


def test_offsets_map_back_through_normalisation(scrub):
    # Fullwidth letters become ASCII and a zero-width space goes before analysis; what is replaced is the original.
    assert scrub("  Ｍｓ KAREN HOLL\u200bOWAY  ")[0] == "  <PERSON>  "


@pytest.mark.parametrize("text", [
    "Holloway Brothers Holdings Inc",  # an organisation word
    "Serena Concrete",  # a common word that is no surname: a business
    "Pride and Prejudice",  # a title: no given name, and a couple names a surname
    "Romeo and Juliet",
    "San Francisco",  # the NER's place
    "Paris, France",
    "Karen",  # one word
    "Karen Holloway sold her car on Monday.",  # a sentence: the NER's work
    "I will succeed.",
    "Jimmy Chen's",  # a possessive: a shop
    "Grace Period",
])
def test_not_a_name_field(scrub, text):
    assert RULE not in scrub(text)[1]


def test_spans_without_the_analyzer():
    text = "  HARNISCH JR, FREDERICK L"
    assert [text[a:b] for a, b in name_field_spans(text)] == ["HARNISCH JR, FREDERICK L"]
    assert name_field_spans("Lou & Ann") == []  # two given names: no surname for the couple
    assert name_field_spans("Austin, Texas") == []  # a place word
    assert name_field_spans("John Smith 3") == []  # a digit
    assert name_field_spans("Will Smith") and not name_field_spans("will do it")  # "Will" the name, "will" the word
    assert name_field_spans("Karen Holloway", places=((0, 14),)) == []
