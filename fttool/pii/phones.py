"""Phone numbers in any common written format, judged by phonenumbers rather than by a longer regex.

A loose pattern finds candidates: runs of 7 to 15 digits with the separators people write (spaces, dots, hyphens,
slashes, parentheses), an optional leading + or 00, and an optional extension (x751, ext. 12). phonenumbers then
decides, region by region (PHONE_REGIONS, or the number's own with a country code):
a number valid in some region scores VALID_SCORE; one that is only possible there scores LAID_OUT_SCORE when it is
written in a phone number's layout (+44 ..., (555) ..., 555-123-4567), else POSSIBLE_SCORE, below the default
threshold, so that it counts only with a context word (phone, call, mobile, fax, office, ...) within
CONTEXT_CHARS before or after it. Arithmetic beside a candidate is weighed later (fttool.pii.evidence).

Layouts that notation gives to quantities need a context word whatever phonenumbers says (`quantity_layout`): a bare
run of digits, an ascending range ("2000-2015", "100-1000"), a decimal ("314.0185", ISO 80000-1's decimal sign) or a
decimal divided ("318.856/3"), thousands grouped by spaces ("5 650 000", ISO 80000-1), digits spaced one by one
("6 9 2 7"), digits aligned in columns ("69271   36"), and, without a country code, a group of more than 11 digits
beside others ("355909190063-746"): libphonenumber's formats for all its regions print no group that long.

phonenumbers' own PhoneNumberMatcher does the same search once per region, which costs about 13 ms a text with
digits for presidio's eight regions; this finds candidates once and parses only those.
"""
from __future__ import annotations

import re
from functools import lru_cache

from fttool.pii.arithmetic import arithmetic

# Regions whose numbering plans phone findings are checked against (and matched in): North America, Europe's
# largest, and the most populous elsewhere. A number written with + and a country code is checked in its own.
PHONE_REGIONS = ("US", "CA", "GB", "IE", "DE", "FR", "ES", "IT", "NL", "BE", "CH", "AT", "SE", "DK", "NO", "FI",
                 "PL", "CZ", "PT", "GR", "HU", "AU", "NZ", "IN", "BR", "MX", "ZA", "IL", "JP", "SG")
CANDIDATE = re.compile(
    r"(?<![\w+.-])(?:\+|00)?\(?\d(?:[ \t().\-/]{0,3}\d){6,14}\)?"
    r"(?:\s*(?:x|ext\.?|extension)\s*\d{1,6})?(?![\w@-]|\.\d)", re.IGNORECASE)
EXTENSION = re.compile(r"(?i)\s*(?:x|ext\.?|extension)\s*\d{1,6}$")
# "number" in prose names any quantity or identifier ("the final number, which is", "cut this number by"): it
# speaks of a phone when it is someone's, or as a form's label ("Number: ...").
CONTEXT = re.compile(r"(?i)\b(?:phone|telephone|tel|call|calling|called|mobile|cell|cellphone|fax|ring|dial|"
                     r"whatsapp|sms|text|contact|reach|office|desk|tlf|telefon|téléphone|"
                     r"(?:my|your|his|her|our|their) (?:new |home |work |direct )?number)\b|\bnumber\s*:")
DATE = re.compile(r"\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}")  # 12/27/1986, 2024-05-01: dates, not numbers
DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")  # an IPv4 address or a version number
ZIP_PLUS_FOUR = re.compile(r"\d{5}-\d{4}")  # a US ZIP+4 code
# Layouts only phone numbers take: a country code, an area code in parentheses, North America's 3-3-4 groups.
PHONE_LAYOUT = re.compile(r"\+|\(\d{1,5}\)|\d{3}[-. ]\d{3}[-. ]\d{4}\b")
RANGE = re.compile(r"\(?([1-9]\d*)[-–]([1-9]\d*)\)?")  # "2000-2015", "(2011-2015)", "100-1000" when ascending
DECIMAL = re.compile(r"\d+\.\d+(?:/\d+)?")  # one decimal point, perhaps divided ("318.856/3"): ISO 80000-1's signs
SPACED_THOUSANDS = re.compile(r"[1-9]\d?(?: \d{3})+")  # "5 650 000"; a lead of 3 digits is also a phone layout
SPACED_DIGITS = re.compile(r"\d(?: \d)+")  # "6 9 2 7 1 3 6", a column sum
COLUMNS = re.compile(r"\d[ \t]{2,}\d")  # "69271   36": aligned columns, not one number
LONG_GROUP = re.compile(r"^(?!\+|00)\d+\D.*\d{12}|^(?!\+|00)\d{12,}\D")  # nationally written, beside another group
CONTEXT_CHARS = 40
VALID_SCORE = 0.6
LAID_OUT_SCORE = 0.45  # possible, and written in a phone number's layout
POSSIBLE_SCORE = 0.3
CONTEXT_BOOST = 0.35
MIN_DIGITS = 7


@lru_cache(maxsize=8192)
def judge(candidate: str) -> str | None:
    """'valid', 'possible' or None for a candidate, over the regions tried."""
    import phonenumbers

    number = EXTENSION.sub("", candidate).strip()
    if number.startswith("00"):
        number = "+" + number[2:]
    regions = (None,) if number.startswith("+") else PHONE_REGIONS
    verdict = None
    for region in regions:
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return "valid"
        if verdict is None and phonenumbers.is_possible_number(parsed):
            verdict = "possible"
    return verdict


def quantity_layout(value: str) -> bool:
    """Whether the candidate is written as quantities are (see the module's docstring), not as phones are."""
    if value.isdigit() or DECIMAL.fullmatch(value) or SPACED_THOUSANDS.fullmatch(value) \
            or SPACED_DIGITS.fullmatch(value) or COLUMNS.search(value) or LONG_GROUP.search(value):
        return True
    ascending = RANGE.fullmatch(value)
    return bool(ascending and int(ascending.group(1)) < int(ascending.group(2)))


def phone_spans(text: str) -> list[tuple[int, int, float]]:
    """(start, end, score) of each phone number candidate that phonenumbers accepts."""
    if sum(char.isdigit() for char in text) < MIN_DIGITS:
        return []
    spans = []
    for match in CANDIDATE.finditer(text):
        # A parenthesis a phone layout uses encloses an area code; an unmatched one closes the text around
        # ("count: 1000000)").
        value = match.group().strip().removesuffix(")") if "(" not in match.group() else match.group().strip()
        if DATE.fullmatch(value) or DOTTED_QUAD.fullmatch(value) or ZIP_PLUS_FOUR.fullmatch(value):
            continue
        start = match.start() + (len(match.group()) - len(match.group().lstrip()))
        end = start + len(value)
        if arithmetic(text, start, end):  # before phonenumbers, which is the slow part
            continue
        digits = sum(char.isdigit() for char in EXTENSION.sub("", value))
        if not MIN_DIGITS <= digits <= 15:
            continue
        verdict = judge(value)
        if verdict is None:
            continue
        if quantity_layout(value):  # a bare run ("#### 2880000"), a range, a decimal: it needs context
            score = POSSIBLE_SCORE
        elif verdict == "valid":
            score = VALID_SCORE
        else:
            score = LAID_OUT_SCORE if PHONE_LAYOUT.match(value) else POSSIBLE_SCORE
        if CONTEXT.search(text[max(0, start - CONTEXT_CHARS):start]) or CONTEXT.search(text[end:end + CONTEXT_CHARS]):
            score = min(1.0, score + CONTEXT_BOOST)
        spans.append((start, end, score))
    return spans
