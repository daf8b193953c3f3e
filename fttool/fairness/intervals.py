"""Judging a measured gap by its confidence interval rather than its point estimate.

A gap measured on a sample is uncertain. The point estimate alone can call a gap "within the limit" when
the interval says it may well exceed it, or the other way round. So a limit is judged from the whole
interval: "within" when all of it is on the allowed side, "beyond" when all of it is past the limit, and
"inconclusive" when it crosses the limit (or could not be computed): more records per group would be
needed to tell. The per-group evaluation and policy FAIR-101 both judge this way, so they agree.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

# From best to worst: a section's status is the worst of its parts. Inconclusive is better than warn: it
# says a limit may be crossed, where warn says one is.
FAIRNESS_STATUSES = ("pass", "inconclusive", "warn", "fail")


def _known(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def against_limit(interval: Sequence[float | None] | None, limit: float, worse: str) -> str:
    """"within", "inconclusive" or "beyond" for an interval [low, high] and a limit that is crossed by values
    `worse` ("above" or "below") it. A missing or non-finite bound is inconclusive, never within."""
    if not _known(limit):
        raise ValueError(f"a limit must be a finite number, not {limit!r}")
    bounds = [float(bound) for bound in interval or () if isinstance(bound, (int, float)) and _known(bound)]
    if len(bounds) != 2 or len(interval or ()) != 2:
        return "inconclusive"
    low, high = bounds
    if worse == "above":
        return "within" if high <= limit else "beyond" if low > limit else "inconclusive"
    if worse == "below":
        return "within" if low >= limit else "beyond" if high < limit else "inconclusive"
    raise ValueError(f"worse must be 'above' or 'below', not {worse!r}")


def interval_text(interval: Sequence[float | None] | None) -> str:
    if not interval or not all(_known(bound) for bound in interval):
        return "no interval"
    return f"interval [{interval[0]:.3f}, {interval[1]:.3f}]"


def worst_status(statuses: Iterable[str]) -> str:
    return max(statuses, key=FAIRNESS_STATUSES.index, default="pass")
