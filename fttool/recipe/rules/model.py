"""Rules of the model section: it must exist for training and evaluation, and name a model fttool can load."""
from __future__ import annotations

from pathlib import Path

from fttool.recipe.errors import RecipeError
from fttool.recipe.loader import LoadedRecipe
from fttool.recipe.rules.rule import Rule
from fttool.training.model_identity import ModelIdentityError, license_conflicts, metadata_directory, resolved_revision
from fttool.training.model_ref import DEMO_MODEL_PREFIX, DEMO_MODELS, is_local_model


def _model_needed(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    errors = []
    for section in ("train", "evaluate"):
        if section in recipe and "model" not in recipe:
            errors.append(loaded.error((section,), f"'{section}' needs a 'model' section naming the base model",
                                       at_key=True))
    if "evaluate" in recipe and "train" not in recipe:
        errors.append(loaded.error(("evaluate",), "'evaluate' compares the tuned model with its base, "
                                   "so it needs a 'train' section", at_key=True))
    return errors


def _base_model_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    base = recipe.get("model", {}).get("base", "")
    if base.startswith(DEMO_MODEL_PREFIX):
        if base[len(DEMO_MODEL_PREFIX):] not in DEMO_MODELS:
            return [loaded.error(("model", "base"), f"unknown demo model '{base}'; use one of: "
                                 + ", ".join(DEMO_MODEL_PREFIX + m for m in DEMO_MODELS))]
    elif is_local_model(base) and not (loaded.directory / Path(base).expanduser()).is_dir():
        return [loaded.error(("model", "base"), f"base model directory not found: {base} "
                             "(relative paths are relative to the recipe file)")]
    return []


def _license_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    """A declared licence that the model's own metadata (a local directory's, or a cached hub snapshot's at the
    commit the revision resolves to) contradicts. A revision that resolves to nothing is the compiler's error, so
    that checking a recipe's policy does not depend on reaching the hub."""
    model = recipe.get("model")
    if not model:
        return []
    try:
        revision = resolved_revision(model["base"], model.get("revision"))
    except ModelIdentityError:
        return []
    directory = metadata_directory(model["base"], revision, loaded.directory)
    if directory is None or not directory.is_dir() or model.get("license_override"):
        return []
    return [loaded.error(("model", "license"), f"{conflict}; correct model.license, or keep it and give the reason "
                         "in model.license_override")
            for conflict in license_conflicts(model.get("license"), directory)]


RULES = [Rule(("model",), _model_needed), Rule(("model",), _base_model_errors), Rule(("model",), _license_errors)]
