"""PII parameters as the compiler resolves them, for tests that run the pii or augment stage directly."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fttool.pii.settings import resolved_pii
from fttool.recipe.schema import apply_defaults, load_schema

LOCAL_DATA = {"engine": "local", "ray": {"address": ""}}  # the data section's engine settings by default


def pii_params(data: Mapping[str, Any] = LOCAL_DATA, **settings) -> dict:
    """The `pii` section with `settings` and the schema's defaults, on the engine of the `data` section's
    engine and ray settings, as the compiler hands it to the stage."""
    return resolved_pii(apply_defaults(settings, load_schema()["properties"]["pii"]), data)
