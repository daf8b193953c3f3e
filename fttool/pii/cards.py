"""Whether a Luhn-valid digit run can be a payment card number: issuer ranges, lengths and print groupings.

ISO/IEC 7812 numbers cards by issuer identification number (IIN); each network issues numbers of set lengths in its
ranges (the networks' published ranges, as Wikipedia's "Payment card number" table collects them). A number whose
prefix no network uses at its length ("1007411131329104": prefix 1 is UATP's, whose numbers have 15 digits) is not
a card. A number written with separators is printed in the networks' groupings: fours with a shorter last group
(4-4-4-4, 4-4-4-4-3), American Express's 4-6-5 or Diners Club's 4-6-4, and 13-digit Visa's old 4-3-3-3;
"355909190063-746" is in none. Luhn itself is checked by the recognizers (presidio's CreditCardRecognizer).
"""
from __future__ import annotations

import re

# (network, IIN prefix pattern, lengths it issues). A prefix shared by several networks is listed once per length set.
NETWORKS = (
    ("UATP", r"1", range(15, 16)),
    ("JCB (15 digits)", r"2131|1800", range(15, 16)),
    ("Mir", r"220[0-4]", range(16, 20)),
    ("Mastercard", r"2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)|5[1-5]", range(16, 17)),
    ("Diners Club", r"30[0-5]|3095|3[689]", range(14, 20)),
    ("American Express", r"3[47]", range(15, 16)),
    # JCB issues from 3528-3589; the rest of the 35 block is counted too, as Faker's JCB numbers are (any 35):
    # unassigned parts of a network's block are assigned over time, and a labelled set made with Faker holds them.
    ("JCB", r"35", range(16, 20)),
    ("Visa", r"4", (13, 16, 19)),
    ("Maestro, Discover, UnionPay, RuPay and others", r"5[06-8]|6", range(12, 20)),
)
_ISSUED = [(re.compile(prefix), lengths) for _, prefix, lengths in NETWORKS]
PRINT_GROUPINGS = (re.compile(r"(?:4,)*[1-4]"), re.compile(r"4,6,[45]"), re.compile(r"4,3,3,3"))


def card_number_plausible(value: str) -> bool:
    """Whether `value` (digits with optional single spaces or hyphens) is issued and written as a card number."""
    digits = re.sub(r"\D", "", value)
    if not any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _ISSUED):
        return False
    groups = re.findall(r"\d+", value)
    return len(groups) == 1 or any(g.fullmatch(",".join(str(len(group)) for group in groups))
                                   for g in PRINT_GROUPINGS)
