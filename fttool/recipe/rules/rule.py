"""A cross-field rule: the recipe sections it reads, and the check."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fttool.recipe.errors import RecipeError
from fttool.recipe.loader import LoadedRecipe


@dataclass(frozen=True)
class Rule:
    sections: tuple[str, ...]  # top-level recipe sections the check reads
    check: Callable[[LoadedRecipe, dict], list[RecipeError]]
