"""Second thoughts on the recognizers' findings: context that argues against, validation, allow lists, consistency.

Applied to the findings in a text, in this order:
- arithmetic and money argue against a number being a phone, card or SSN: a match inside a calculator annotation
  (GSM8K's `<<48/2=24>>`), next to an operator or `=`, or right after a currency sign is dropped;
- a date or time format ("YYYY-MM-DD", "HH:MM") argues against a name or place inside it: the small spaCy model
  reads "MM" (Myanmar's country code) and "YYYY" as places, which broke the formats of tool schemas;
- structured types are validated: a phone must be a possible number in some region (fttool.pii.phones), an SSN must
  follow the SSA's rules (area not 000, 666 or 9xx; group not 00; serial not 0000), a card number must be one a
  network issues, written in its print grouping (fttool.pii.cards), and an e-mail address at a reserved name
  (RFC 2606, RFC 6761) counts only when its local part names someone (fttool.pii.emails);
- allow-list entries (exact strings, or {"regex": ...} matched against the whole value) are never findings;
- an address block: the short lines after a street address (unit, place, postcode) are part of it;
- one string, one type: every occurrence of a found string in the text is a finding, all of the type its
  best-scored occurrence had, so "Betty" is not replaced in one sentence and kept in the next
  (`one_type_across` does the same over every text of a record: fttool.pii.records).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from fttool.pii.arithmetic import arithmetic
from fttool.pii.cards import card_number_plausible
from fttool.pii.emails import nobodys_address
from fttool.pii.phones import judge

if TYPE_CHECKING:
    from presidio_analyzer import RecognizerResult

NUMERIC_TYPES = frozenset({"PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "US_BANK_NUMBER", "US_DRIVER_LICENSE"})
WORD_CHAR = re.compile(r"\w")
# Types whose occurrences are spread to every other occurrence of the same string (a name, a place).
SPREAD_TYPES = frozenset({"PERSON", "LOCATION", "STREET_ADDRESS"})
MIN_SPREAD_CHARS = 3
# Fields of a date or time format in ISO 8601's representation letters, two or more joined by a separator.
_FORMAT_FIELD = r"(?:yyyy|yy|mm|dd|hh|ss)"
DATE_TIME_FORMAT = re.compile(rf"(?i)(?<!\w){_FORMAT_FIELD}(?:[-/:.]{_FORMAT_FIELD})+(?!\w)")
FORMAT_LETTERS = re.compile(r"(?i)[ymdhs]+")
FORMAT_REACH = 32  # characters a format may run either side of a field in it ("YYYY-MM-DDTHH:MM:SS" is 19)
# The types the NER gives and a format's fields are taken for.
NAME_AND_PLACE = frozenset({"PERSON", "LOCATION"})


def spreads(kind: str, value: str) -> bool:
    """Whether a found string of this type is replaced wherever it occurs in a record (one_type_across)."""
    return kind in SPREAD_TYPES and len(value) >= MIN_SPREAD_CHARS


def ssn_valid(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000" \
        and len(set(digits)) > 1


class AllowList:
    """Exact values and whole-value regular expressions that are never findings."""

    def __init__(self, entries: Iterable[str | Mapping]):
        import regex

        self.exact = frozenset(e for e in entries if isinstance(e, str))
        patterns = []
        for index, entry in enumerate(entries):
            if isinstance(entry, str):
                continue
            try:
                regex.compile(entry["regex"])
            except regex.error as exc:
                raise ValueError(f"pii.allow_list[{index}].regex: invalid regular expression: {exc.msg} at "
                                 f"character {exc.pos}; fix it in the recipe") from exc
            patterns.append(entry["regex"])
        self.pattern = regex.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    def allows(self, value: str) -> bool:
        return value in self.exact or bool(self.pattern and self.pattern.fullmatch(value, timeout=1.0))


WRAPPING = frozenset("()[]{}<>\"' \t")


def without_wrappers(text: str, results: list) -> list:
    """Drop a finding that holds a better-scored finding of another type and adds only brackets, quotes or spaces to
    it: "(897-44-7354)" after "SSN" is an SSN that the phone pattern also read with its parentheses, and presidio's
    anonymizer would keep the wider, lower-scored span and so the wrong type. A "+" is a phone's own (its
    international prefix), so "+4915112345678" stays a phone though its digits pass as a card."""
    def wraps(outer, inner) -> bool:
        return (outer is not inner and outer.entity_type != inner.entity_type and inner.score > outer.score
                and outer.start <= inner.start and inner.end <= outer.end
                and all(c in WRAPPING for c in text[outer.start:inner.start] + text[inner.end:outer.end]))

    return [outer for outer in results if not any(wraps(outer, inner) for inner in results)]


def plausible(text: str, result) -> bool:
    """False when context or validation argues against the finding."""
    kind, value = result.entity_type, text[result.start:result.end]
    if kind in NUMERIC_TYPES and arithmetic(text, result.start, result.end):
        return False
    if kind == "US_SSN":
        return ssn_valid(value)
    if kind == "PHONE_NUMBER":
        return judge(value) is not None
    if kind == "CREDIT_CARD":
        return card_number_plausible(value)
    if kind == "EMAIL_ADDRESS":
        return not nobodys_address(value)
    if kind in NAME_AND_PLACE:
        return not in_date_time_format(text, result.start, result.end)
    return True


def in_date_time_format(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] lies within a date or time format such as "YYYY-MM-DD" or "hh:mm:ss". Only a value
    of format letters is looked for, and only near itself: a long text holds thousands of names."""
    if not FORMAT_LETTERS.fullmatch(text, start, end):
        return False
    stop = end + FORMAT_REACH
    while stop < len(text) and WORD_CHAR.match(text, stop):
        stop += 1  # the search does not look past its end: it must not end inside a word
    nearby = DATE_TIME_FORMAT.finditer(text, max(0, start - FORMAT_REACH), min(len(text), stop))
    return any(match.start() <= start and end <= match.end() for match in nearby)


def with_address_blocks(text: str, results: list) -> list:
    """The results plus, after each street address, the place names that close it on its line and the lines that
    continue its block (fttool.pii.addresses.address_blocks)."""
    from presidio_analyzer import RecognizerResult

    from fttool.pii.addresses import address_blocks

    streets = [r for r in results if r.entity_type == "STREET_ADDRESS"]
    if not streets:
        return results
    blocks = address_blocks(text, [(r.start, r.end) for r in streets])
    metadata = streets[0].recognition_metadata
    return results + [RecognizerResult("STREET_ADDRESS", start, end, streets[0].score, recognition_metadata=metadata)
                      for start, end in blocks]


def one_type_per_string(text: str, results: list) -> list:
    """Every occurrence of a found name-like string becomes a finding, each of the type its best finding had."""
    return one_type_across([(text, results)])[0]


def one_type_across(analysed: list[tuple[str, list]]) -> list[list]:
    """For texts analysed together (one text, or every text of a record) with their findings: every occurrence of
    a found name-like string in any of them becomes a finding, each of the type its best-scored finding had, so
    that a name typed LOCATION in one message and PERSON in the next, or found in one field and missed in another,
    is replaced alike. A found span is always kept; another occurrence only where it is not part of a longer word."""
    from presidio_analyzer import RecognizerResult

    best: dict[str, RecognizerResult] = {}
    for text, results in analysed:
        for r in results:
            value = text[r.start:r.end]
            if spreads(r.entity_type, value):
                if value not in best or r.score > best[value].score:
                    best[value] = r
    if not best:
        return [results for _, results in analysed]
    spread = []
    for text, results in analysed:
        found_at = {(r.start, r.end) for r in results if text[r.start:r.end] in best}
        out = [r for r in results if text[r.start:r.end] not in best]
        for value, chosen in best.items():
            for match in re.finditer(re.escape(value), text):
                start, end = match.span()
                if (start, end) not in found_at and _inside_word(text, start, end):
                    continue
                out.append(RecognizerResult(chosen.entity_type, start, end, chosen.score,
                                            recognition_metadata=chosen.recognition_metadata))
        spread.append(out)
    return spread


def _inside_word(text: str, start: int, end: int) -> bool:
    return bool((start and WORD_CHAR.match(text[start - 1])) or (end < len(text) and WORD_CHAR.match(text[end])))
