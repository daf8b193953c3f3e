"""Recall on names and street addresses: address blocks, unit lines, and given names beyond the US Census lists."""
from __future__ import annotations

import pytest
from support.pii import pii_params

from fttool.pii import names
from fttool.pii.scrubber import TextScrubber
from fttool.pii.settings import PiiParams
from fttool.pipeline.params import build


@pytest.fixture(scope="module")
def scrub():
    scrubber = TextScrubber(build(PiiParams, pii_params(workers=1), "pii"))

    def scrub(*texts: str) -> list[str]:
        return [text if outcome.scrubbed is None else outcome.scrubbed
                for text, outcome in zip(texts, scrubber.outcomes(list(texts)))]

    return scrub


def test_every_line_of_an_address_block_is_replaced_even_after_a_place_the_ner_found(scrub):
    # The NER finds the country; the postcode after it on the same line is still part of the block.
    [out] = scrub("Deliver to:\n742 Evergreen Terrace\nSpringfield\nUnited States 49007\n\nThanks!")
    assert "49007" not in out and "Springfield" not in out and "Evergreen" not in out
    assert out.endswith("\n\nThanks!")


def test_a_street_line_ending_in_a_full_stop_keeps_its_block(scrub):
    [out] = scrub("kristin novak\n\n98 fő utca 45.\n apt. 614\n pomáz\n\n hungary 2013")
    assert not any(value in out for value in ("fő utca", "apt. 614", "pomáz", "2013"))


def test_a_unit_on_a_line_of_its_own_starts_a_block_but_a_chapter_heading_does_not(scrub):
    address, heading = scrub("Michael Urner\n\n11 Hlavní 939\nApt. 827\nKaplice\n\nCzechia 38241",
                             "Unit 3\nFractions and decimals\nSuite 2 in D minor is next.")
    assert not any(value in address for value in ("Apt. 827", "Kaplice", "38241"))
    assert heading == "Unit 3\nFractions and decimals\nSuite 2 in D minor is next."


def test_given_names_beyond_the_us_census_lists_are_evidence():
    given = names.lexicon()[0]
    census_only = {"filip", "tomasz", "yusuf", "priya", "oluwaseun"} - set(given)
    assert not census_only
    # Ordinary words and places that name lists also hold are not taken for given names.
    assert not {"cloud", "peace", "friend", "sahara", "berlin", "the"} & given


def test_a_sentence_led_by_an_international_given_name_loses_the_name(scrub):
    [out] = scrub("Tomasz lives on the third floor and Oluwaseun's kid lives next door.")
    assert "Tomasz" not in out and "Oluwaseun" not in out


def test_ordinary_capitalised_words_stay(scrub):
    texts = ("Cloud storage is cheap.", "Peace returned to the valley.", "Open Settings and tap Close.")
    assert scrub(*texts) == list(texts)


def test_the_places_between_a_street_and_its_postcode_on_one_line_are_replaced(scrub):
    # Royal Mail's and Canada Post's order written on one line: street, locality, post town (province), postcode.
    british, canadian = scrub("Send the parcel to 14 Orchard Lane, Kingsbridge, Devon TQ7 1AB today.",
                              "Our office is at 2150 Maple Crescent, Sherbrooke (Québec) J1H 2K7 since May.")
    assert not any(value in british for value in ("Orchard", "Kingsbridge", "Devon", "TQ7"))
    assert not any(value in canadian for value in ("Maple", "Sherbrooke", "Québec", "J1H"))
    assert british.endswith(" today.") and canadian.endswith(" since May.")


def test_a_direction_that_starts_the_next_line_belongs_to_that_line(scrub):
    # "East Bergholt" is the block's next line, not a post-directional of the street above it.
    [out] = scrub("Deliver to:\n8 Elm Road\nEast Bergholt\nCO7 6TQ\n\nThanks!")
    assert "Bergholt" not in out and "Elm Road" not in out and out.endswith("\n\nThanks!")


def test_canada_posts_units_post_office_boxes_and_lettered_numbered_streets(scrub):
    units, boxes, numbered = scrub("Write to 880, boul. Laurier, bureau 1200 next week.",
                                   "Cheques go to PO Box 4471 or to Case postale 318, never elsewhere.",
                                   "The depot at 14952 121A ST NW and 104-18663 Fraser Hwy are closed.")
    assert "Laurier" not in units and "1200" not in units
    assert "4471" not in boxes and "318" not in boxes
    assert "121A" not in numbered and "18663" not in numbered


def test_counts_and_monitors_are_not_numbered_streets(scrub):
    texts = ("Buy 2 100 ct packs of wipes.", "She kept 3 old CRT monitors in the shed.")
    assert scrub(*texts) == list(texts)


def test_a_us_city_state_and_zip_after_a_street_on_its_line_are_replaced(scrub):
    # As a tool's JSON writes it: no address word before the ZIP Code, which alone would be too weak to count.
    [out] = scrub('{"name": "R&G Lounge", "location": "631 Kearny St, San Francisco, CA 94108"}')
    assert out == '{"name": "R&G Lounge", "location": "<STREET_ADDRESS>, <STREET_ADDRESS>"}'
