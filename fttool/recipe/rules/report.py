"""Rules of the report section: the policy the finished report is checked against exists and is valid."""
from __future__ import annotations

from fttool.recipe.errors import RecipeError, RecipeInvalid
from fttool.recipe.loader import LoadedRecipe
from fttool.recipe.rules.rule import Rule


def _report_policy_errors(loaded: LoadedRecipe, policy: str) -> list[RecipeError]:
    """The policy the finished report is checked against must exist and be valid before anything runs."""
    from fttool.policy.policy_file import load_policy  # the policy package imports this module

    path = loaded.directory / policy
    if not path.is_file():
        return [loaded.error(("report", "policy"), f"policy file not found: {path} "
                             "(paths are relative to the recipe file)")]
    try:
        load_policy(path)
    except RecipeInvalid as exc:
        return list(exc.errors)
    return []


RULES = [Rule(("report",), lambda loaded, recipe: _report_policy_errors(loaded, recipe["report"]["policy"])
              if recipe.get("report", {}).get("policy") else [])]
