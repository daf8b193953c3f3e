"""Checks a JSON Schema cannot express: cross-field rules and files that must exist, one module per recipe section.

Each rule names the top-level sections it reads. `rule_errors` runs every rule whose sections passed the schema,
so `fttool validate` shows schema errors, cross-field errors and missing files together, in one pass; a rule over
a section with schema errors is skipped, because it would only repeat them less clearly.
"""
from __future__ import annotations

import re

from fttool.recipe.errors import RecipeError
from fttool.recipe.loader import LoadedRecipe
from fttool.recipe.rules import data, evaluate, memorisation, model, paths, pii, preference, report, train
from fttool.recipe.schema import load_schema

RULES = [*data.RULES, *model.RULES, *pii.RULES, *evaluate.RULES, *train.RULES, *preference.RULES, *memorisation.RULES,
         *report.RULES, *paths.RULES]


def broken_sections(schema_errors: list[RecipeError]) -> set[str]:
    """Top-level sections with a schema error ('$' for the document itself)."""
    return {re.split(r"[.\[]", error.json_path or "$")[0] or "$" for error in schema_errors}


def rule_errors(loaded: LoadedRecipe, recipe: dict, broken: set[str]) -> list[RecipeError]:
    """Every rule's errors, for the rules whose sections are free of schema errors."""
    errors: list[RecipeError] = []
    # A required section that is missing has its schema error at the document root ('$'), not at the section.
    broken = broken | {section for section in load_schema("recipe")["required"] if section not in recipe}
    for rule in RULES:
        if not broken.intersection(rule.sections):
            errors += rule.check(loaded, recipe)
    return errors
