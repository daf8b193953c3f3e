"""Numbers in calculations and amounts of money: context that argues against a phone, card or SSN finding.

GSM8K-style calculator annotations (`<<48/2=24>>`), an operator or `=` beside a number, a currency sign before it,
or a subtraction inside the match ("3000 - 2920") make a number arithmetic, not an identifier.
"""
from __future__ import annotations

import re

# `<<...>>` calculator annotations; an operator or `=` beside a number makes it arithmetic.
CALCULATOR = re.compile(r"<<[^<>\n]{0,200}>>")
# After a digit or followed by a space ("9 * (1003885)"): a mask leaves "***" right before the digits it kept,
# which is not a product.
OPERATOR_BEFORE = re.compile(r"(?:\d\s*[*/×÷+^]|[*/×÷+^]\s|\d\s[-x]|[=<>$€£¥₹])\s*$")
OPERATOR_AFTER = re.compile(r"^\s*(?:[*/×÷+^]\s*\d|[=%<>]|[-x]\s\d)")
CONTEXT_CHARS = 4  # how far beside a match an operator is looked for


def arithmetic(text: str, start: int, end: int) -> bool:
    """Whether the match text[start:end] is a number in a calculation or an amount of money."""
    if any(m.start() <= start and end <= m.end() for m in CALCULATOR.finditer(text)):
        return True
    value = text[start:end]
    if re.search(r"\d\s+[-x×*/+=]\s+\d", value):  # "3000 - 2920" is a subtraction, not a number
        return True
    return bool(OPERATOR_BEFORE.search(text[max(0, start - CONTEXT_CHARS):start])
                or OPERATOR_AFTER.search(text[end:end + CONTEXT_CHARS]))
