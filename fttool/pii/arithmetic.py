"""Numbers in calculations and amounts of money: context that argues against a phone, card or SSN finding.

GSM8K-style calculator annotations (`<<48/2=24>>`), an operator, `=` or a relation sign (≈ ≠ ≤ ≥) beside a number, a
currency sign before it, or a subtraction inside the match ("3000 - 2920") make a number arithmetic, not an
identifier. So do:
- a decimal point joining it to more digits ("275.43397884615385"), or a comma and three more digits after it
  ("155250/1,000"): identifiers carry no decimal sign or thousands separator (ISO 80000-1);
- a line that ends with `=`, then only words up to the number ("... =\n\nThe result is:\n\n4212883012996"): the
  number is the equation's result (a `key=value` line has its value on the same line, so it is not one);
- a rule of dashes, underscores or `=` on the line above ("-------\n1007411131329104"): the total of a column sum.
"""
from __future__ import annotations

import re

# `<<...>>` calculator annotations; an operator or `=` beside a number makes it arithmetic.
CALCULATOR = re.compile(r"<<[^<>\n]{0,200}>>")
# After a digit or followed by a space ("9 * (1003885)"): a mask leaves "***" right before the digits it kept,
# which is not a product.
OPERATOR_BEFORE = re.compile(r"(?:\d\s*[*/×÷+^]|[*/×÷+^]\s|\d\s[-x]|[=<>≈≠≤≥$€£¥₹])\s*\(?$")  # "150+(150..."
OPERATOR_AFTER = re.compile(r"^\s*(?:[*/×÷+^]\s*\d|[=%<>≈≠≤≥]|[-x]\s\d)")
CONTEXT_CHARS = 4  # how far beside a match an operator is looked for
DECIMAL_BEFORE = re.compile(r"\d\.$")
DECIMAL_AFTER = re.compile(r"^(?:\.\d|,\d{3}\b)")  # a decimal part, or more thousands ("155250/1,000")
# A line ending in `=`, then words, with no other number and no end of sentence between, up to the match.
RESULT_OF = re.compile(r"=[ \t]*\n[^\d=.!?;]{0,60}$")
RULE_ABOVE = re.compile(r"(?:^|\n)[ \t]*[-_=+]{3,}[ \t]*\n[ \t]*$")  # a line of dashes, then the match's line


def arithmetic(text: str, start: int, end: int) -> bool:
    """Whether the match text[start:end] is a number in a calculation or an amount of money."""
    if any(m.start() <= start and end <= m.end() for m in CALCULATOR.finditer(text)):
        return True
    value = text[start:end]
    if re.search(r"\d\s+[-x×*/+=]\s+\d", value):  # "3000 - 2920" is a subtraction, not a number
        return True
    before, after = text[max(0, start - CONTEXT_CHARS):start], text[end:end + CONTEXT_CHARS]
    if OPERATOR_BEFORE.search(before) or OPERATOR_AFTER.search(after):
        return True
    if DECIMAL_BEFORE.search(before) or DECIMAL_AFTER.search(after):
        return True
    statement = text[max(0, start - 80):start]
    return bool(RESULT_OF.search(statement) or RULE_ABOVE.search(statement))
