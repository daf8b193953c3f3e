"""Rules of the memorisation section: the canaries need a LoRA model trained on them and enough references."""
from __future__ import annotations

from fttool.recipe.errors import RecipeError
from fttool.recipe.loader import LoadedRecipe
from fttool.recipe.rules.rule import Rule


def _memorisation_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    """The canaries need a model trained on them, and a reference set large enough to show the limit."""
    import math

    memorisation = recipe["memorisation"]
    errors = []
    if memorisation["enabled"] and "train" not in recipe:
        errors.append(loaded.error(("memorisation",), "'memorisation' measures the tuned model, so it needs a "
                                   "'train' section; add one or set memorisation.enabled: false", at_key=True))
    if memorisation["enabled"] and recipe.get("train", {}).get("method") == "full":
        errors.append(loaded.error(("train", "method"), "the memorisation check compares the LoRA adapter switched on "
                                   "and off, so it needs train.method lora or qlora, not full"))
    measurable = math.log2(memorisation["references"] + 1)
    if memorisation["max_exposure_bits"] >= measurable:
        needed = math.ceil(2 ** memorisation["max_exposure_bits"])
        where = ("memorisation", "references") if "references" in loaded.data["memorisation"] else ("memorisation",)
        errors.append(loaded.error(where, f"{memorisation['references']} references can show at most "
                                   f"{measurable:.2f} bits of exposure, so the limit of "
                                   f"{memorisation['max_exposure_bits']:g} bits could never be reached; "
                                   f"use at least {needed} references or lower max_exposure_bits"))
    return errors




RULES = [Rule(("memorisation", "train"),
              lambda loaded, recipe: _memorisation_errors(loaded, recipe) if "memorisation" in recipe else [])]
