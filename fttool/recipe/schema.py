"""The recipe JSON Schema: loading it, validating against it, and filling its defaults.

The schema in schemas/recipe.schema.json is the one place where recipe keys, types, ranges and
defaults are written down; `fttool schema` prints it.
"""
from __future__ import annotations

import copy
import difflib
import functools
import json
import math
from pathlib import Path

from fttool.recipe.errors import RecipeError
from fttool.recipe.loader import LoadedDocument

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@functools.cache
def load_schema(name: str = "recipe") -> dict:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def _type_name(value) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _describe(error) -> list[tuple[tuple, str, bool]]:
    """Turn one jsonschema error into (json path, message, points at key) triples a user can act on."""
    path = tuple(error.absolute_path)
    schema = error.schema
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        out = []
        for key in sorted(set(error.instance) - set(allowed)):
            guess = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{guess[0]}'?" if guess else f"allowed keys: {', '.join(allowed)}"
            out.append((path + (key,), f"unknown key '{key}'; {hint}", True))
        return out
    if kind == "required":
        missing = error.message.split("'")[1]
        why = f": {schema['description']}" if "description" in schema else ""
        return [(path, f"missing required key '{missing}'{why}", False)]
    if kind == "enum":
        choices = ", ".join(json.dumps(v) for v in schema["enum"])
        return [(path, f"{json.dumps(error.instance)} is not allowed; use one of: {choices}", False)]
    if kind == "type":
        got = f"{_type_name(error.instance)} {json.dumps(error.instance)}"
        return [(path, f"expected {schema['type']}, got {got}", False)]
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        relation = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
        return [(path, f"{error.instance} is out of range; the value must be {relation} {schema[kind]}", False)]
    if kind == "pattern":
        return [(path, f"{json.dumps(error.instance)} does not match the pattern {schema['pattern']}", False)]
    if kind == "anyOf":
        options = " or ".join(
            sub.get("const") and json.dumps(sub["const"]) or sub.get("type", "value") for sub in schema["anyOf"])
        return [(path, f"{json.dumps(error.instance)} is not valid; expected {options}", False)]
    return [(path, error.message, False)]


def _non_finite_errors(document: LoadedDocument, value, path: tuple) -> list[RecipeError]:
    """Errors for NaN and infinity (`.nan`, `.inf`, 1e999): they pass every range check and then compare false."""
    if isinstance(value, float) and not math.isfinite(value):
        return [document.error(path, f"{value} is not a finite number; write a finite value")]
    if isinstance(value, dict):
        return [e for key, item in value.items() for e in _non_finite_errors(document, item, path + (key,))]
    if isinstance(value, list):
        return [e for index, item in enumerate(value) for e in _non_finite_errors(document, item, path + (index,))]
    return []


def schema_errors(document: LoadedDocument, schema: dict | None = None) -> list[RecipeError]:
    """Every way `document` breaks `schema` (the recipe schema unless given), at the line and column; and every
    non-finite number, which JSON Schema's range keywords cannot catch."""
    from jsonschema import Draft202012Validator  # noqa: PLC0415  (keeps `import fttool` free of it)

    validator = Draft202012Validator(load_schema() if schema is None else schema)
    errors = _non_finite_errors(document, document.data, ())
    for error in validator.iter_errors(document.data):
        for path, message, at_key in _describe(error):
            errors.append(document.error(path, message, at_key=at_key))
    return errors


def apply_defaults(data: dict, schema: dict | None = None) -> dict:
    """A copy of `data` with schema defaults filled in.

    Sections the user left out stay out (they are stages that do not run); a property is created
    only when its schema gives a default, and objects are filled recursively.
    """
    schema = load_schema() if schema is None else schema
    data = copy.deepcopy(data)

    def fill(value, node):
        if isinstance(value, dict) and node.get("type") == "object":
            for key, sub in node.get("properties", {}).items():
                if key not in value and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                if key in value:
                    value[key] = fill(value[key], sub)
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            value = [fill(item, node["items"]) for item in value]
        return value

    return fill(data, schema)
