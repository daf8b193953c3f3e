"""PII parameters as the compiler resolves them, for tests that run the pii or augment stage directly."""
from __future__ import annotations

from fttool.recipe.schema import apply_defaults, load_schema


def pii_params(**settings) -> dict:
    """The `pii` section with `settings` and the schema's defaults, as the compiler hands it to the stage."""
    section = apply_defaults(settings, load_schema()["properties"]["pii"])
    section.pop("enabled", None)
    return section
