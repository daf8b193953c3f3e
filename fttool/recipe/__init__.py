"""Recipes: loading, the schema and its defaults, and compiling to a plan."""
from fttool.pipeline.plan import Plan, StageSpec
from fttool.recipe.compiler import compile_recipe
from fttool.recipe.errors import RecipeError, RecipeInvalid

__all__ = ["compile_recipe", "Plan", "StageSpec", "RecipeError", "RecipeInvalid"]
