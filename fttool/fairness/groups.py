"""A record's group for a sensitive field: the one definition the split, bias audit and evaluation share.

The value is read from the record's `meta`. Absent, null and blank values (an empty CSV cell, a string of
spaces) are all MISSING_GROUP: a blank says nothing about the group, so it must not form a group of its own.
Non-strings take their JSON spelling, so booleans, numbers, lists and objects get a stable name.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

MISSING_GROUP = "(missing)"
# Audit statuses from best to worst; a section's status is the worst of its parts.
STATUS_ORDER = ("pass", "warn", "fail")


def group_value(meta: Mapping[str, Any] | None, field: str) -> str:
    """The group a record with this `meta` belongs to for `field`."""
    value = (meta or {}).get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        return MISSING_GROUP
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def worst_status(statuses: Iterable[str]) -> str:
    return max(statuses, key=STATUS_ORDER.index, default="pass")
