"""Record-level type resolution: a name-like string gets one type, and is replaced, across all texts of a record."""
from __future__ import annotations

import re

from conftest import alpaca
from support.pii import pii_params

from fttool.pii.records import record_scrubbing
from fttool.pii.settings import PiiParams
from fttool.pipeline.params import build


def scrub_records(records: list[dict], **settings) -> tuple[list[dict], object]:
    params = build(PiiParams, pii_params(workers=1, **settings), "pii")
    with record_scrubbing(params, len(records)) as (scrub, tally):
        return list(scrub(records)), tally


def placeholders(text: str) -> list[str]:
    return re.findall(r"<([A-Z_]+)>", text)


def test_a_name_typed_person_in_one_field_and_location_in_another_gets_one_type():
    # spaCy's small model reads "Georgia" as a person in the first text and as a place in the second.
    record = alpaca("Georgia said she would call back.", "Please send the parcel to Georgia.")
    [scrubbed], tally = scrub_records([record])
    assert "Georgia" not in scrubbed["instruction"] + scrubbed["output"]
    types = placeholders(scrubbed["instruction"]) + placeholders(scrubbed["output"])
    assert len(types) == 2 and len(set(types)) == 1
    assert sum(tally.entities.values()) == 2 and len(tally.entities) == 1


def test_a_name_found_in_one_field_is_replaced_in_the_others_of_that_record_only():
    # A title shows "Okonkwo" to be a name in the answer; nothing does in the instruction.
    missed = "Okonkwo will be pleased."
    together = alpaca(missed, "Please thank Mr Okonkwo for the visit.")
    alone = alpaca(missed, "Fine.")
    scrubbed, tally = scrub_records([together, alone], action="scrub")
    assert scrubbed[0]["instruction"] == "<PERSON> will be pleased."
    assert scrubbed[0]["output"] == "Please thank Mr <PERSON> for the visit."
    assert scrubbed[1]["instruction"] == missed  # nothing in its own record shows Okonkwo to be a name
    assert tally.entities == {"PERSON": 2}


def test_drop_counts_a_records_resolved_findings():
    record = alpaca("Georgia said she would call back.", "Please send the parcel to Georgia.")
    kept, tally = scrub_records([record, alpaca("Explain photosynthesis.", "Plants use light.")], action="drop")
    assert [r["instruction"] for r in kept] == ["Explain photosynthesis."]
    assert sum(tally.entities.values()) == 2 and len(tally.entities) == 1


def test_a_record_whose_names_are_found_alike_everywhere_is_not_resolved_again():
    params = build(PiiParams, pii_params(workers=1), "pii")
    sent: list = []
    with record_scrubbing(params, 2) as (scrub, tally):
        resolve = tally.resolve
        tally.resolve = lambda records: sent.extend(records) or resolve(records)
        alike, needs = list(scrub([alpaca("Natalia sold clips.", "How many clips did Natalia sell?"),
                                   alpaca("Okonkwo will be pleased.", "Please thank Mr Okonkwo for the visit.")]))
    assert "Natalia" not in alike["instruction"] + alike["output"]
    assert needs["instruction"] == "<PERSON> will be pleased."
    [record] = sent  # the source tag "test" is one of each record's texts too
    assert {"Okonkwo will be pleased.", "Please thank Mr Okonkwo for the visit."} <= {text for text, _ in record}
