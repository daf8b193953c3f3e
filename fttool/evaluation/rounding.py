"""How the evaluation and memorisation summaries round numbers for the report: one rule per kind of number.

Rounding happens once, when a summary is built, so the report, the policy gates and the renderings all
read the same figures.
"""
from __future__ import annotations

SCORE_DIGITS = 6  # losses, metric values, differences, ratios and their intervals
PERPLEXITY_DIGITS = 4  # perplexities (exp of a loss: large numbers, where 6 decimals say nothing)
BITS_DIGITS = 4  # canary exposures in bits


def rounded(value: float | None, digits: int = SCORE_DIGITS) -> float | None:
    return None if value is None else round(value, digits)


def rounded_all(value, digits: int = SCORE_DIGITS):
    """`value` with every float in it (through dicts and lists) rounded to `digits`."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: rounded_all(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded_all(item, digits) for item in value]
    return value
