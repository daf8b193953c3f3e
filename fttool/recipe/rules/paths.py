"""Paths a recipe names stay inside the recipe's folder unless the recipe allows otherwise.

A recipe reviewed in one repository should not silently read files from elsewhere on the machine (another
team's data, a home directory) through an absolute path, `..` or a symlink. `allow_paths_outside_recipe_dir: true`
lets it, visibly; a policy can forbid that key (see policies/README.md).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fttool.recipe.errors import RecipeError
from fttool.recipe.loader import JsonPath, LoadedRecipe
from fttool.recipe.rules.rule import Rule
from fttool.training.model_ref import is_local_model

# Recipe settings that name files or directories, as JSON paths; "*" stands for every list index.
PATH_SETTINGS: tuple[tuple, ...] = (
    ("data", "sources", "*", "path"),
    ("evaluate", "forgetting", "path"),
    ("report", "policy"),
    ("train", "chat_template_file"),
)
# Augment settings naming a model: a hub id, or a local directory relative to the recipe.
AUGMENT_MODELS = ("model_path", "from_model", "to_model")


def _values(node, pattern: tuple, path: JsonPath) -> Iterator[tuple[JsonPath, object]]:
    if not pattern:
        yield path, node
        return
    head, rest = pattern[0], pattern[1:]
    if head == "*" and isinstance(node, list):
        for index, item in enumerate(node):
            yield from _values(item, rest, path + (index,))
    elif isinstance(node, dict) and head in node:
        yield from _values(node[head], rest, path + (head,))


def recipe_paths(recipe: dict) -> Iterator[tuple[JsonPath, str]]:
    """(JSON path, value) of every file or directory the recipe names, local models (base, augment, pii NER)
    included."""
    for pattern in PATH_SETTINGS:
        for path, value in _values(recipe, pattern, ()):
            if isinstance(value, str):
                yield path, value
    ner = (recipe.get("pii") or {}).get("ner") or {}
    models: list[tuple[JsonPath, object]] = [(("model", "base"), recipe.get("model", {}).get("base")),
                                             (("pii", "ner", "model"), ner.get("model"))]
    models += [(("augment", index, key), method.get(key)) for index, method in enumerate(recipe.get("augment") or [])
               if isinstance(method, dict) for key in AUGMENT_MODELS]
    for where, model in models:
        if isinstance(model, str) and is_local_model(model):
            yield where, model


def _outside_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    if recipe.get("allow_paths_outside_recipe_dir"):
        return []
    folder = loaded.directory.resolve()
    errors = []
    for where, value in recipe_paths(recipe):
        resolved = (loaded.directory / Path(value).expanduser()).resolve()  # follows symlinks
        if not resolved.is_relative_to(folder):
            errors.append(loaded.error(where, f"'{value}' leads outside the recipe's folder ({folder}); move the "
                                       "file under it, or set allow_paths_outside_recipe_dir: true"))
    return errors


RULES = [Rule(("data", "evaluate", "report", "train", "model", "augment", "pii"), _outside_errors)]
