"""Rules of the train and compute sections: settings that contradict each other, and what DP training needs."""
from __future__ import annotations

from fttool.recipe.errors import RecipeError
from fttool.recipe.loader import LoadedRecipe
from fttool.recipe.rules.rule import Rule
from fttool.training.private import privacy_errors
from fttool.training.setting_checks import setting_errors


def _train_errors(loaded: LoadedRecipe, train: dict) -> list[RecipeError]:
    """Training settings that contradict each other."""
    errors = []
    if train["warmup_ratio"] and train["warmup_steps"]:
        errors.append(loaded.error(("train", "warmup_steps"), "set either warmup_ratio or warmup_steps, not both",
                                   at_key=True))
    if train["method"] == "full" and "lora" in loaded.data["train"]:  # as written, before defaults
        errors.append(loaded.error(("train", "lora"), "lora settings do not apply to method: full; remove them "
                                   "or use method: lora", at_key=True))
    return errors




def _preference_privacy_errors(loaded: LoadedRecipe, train: dict) -> list[RecipeError]:
    """DP-SGD is implemented for supervised fine-tuning only."""
    if train["objective"] == "sft" or not train.get("privacy", {}).get("enabled"):
        return []
    # The DP backend clips and noises per-record gradients of the SFT loss; a preference loss couples a pair's two
    # responses (and a reference model), which its privacy unit and accounting do not cover.
    return [loaded.error(("train", "privacy"), f"differential privacy is not available with objective "
                         f"{train['objective']}: DP-SGD here clips and noises the gradients of the supervised loss "
                         "per source record, and a preference loss couples the pair's responses with a reference "
                         "model, which that accounting does not cover; remove train.privacy or use objective: sft")]


def _process_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    private = "train" in recipe and recipe["train"].get("privacy", {}).get("enabled")
    if private and recipe["compute"]["num_processes"] > 1:
        # Each process would sample, clip and add noise on its own: the accountant's epsilon would not hold.
        return [loaded.error(("compute", "num_processes"), "differentially private training runs in "
                             "one process only (the privacy accounting assumes one sampler and one "
                             "noise draw a step); set compute.num_processes: 1 or disable train.privacy")]
    return []


RULES = [
    Rule(("train",), lambda loaded, recipe: _train_errors(loaded, recipe["train"]) if "train" in recipe else []),
    Rule(("train",), lambda loaded, recipe: privacy_errors(loaded, recipe["train"]) if "train" in recipe else []),
    Rule(("train",), lambda loaded, recipe: setting_errors(loaded, recipe["train"]) if "train" in recipe else []),
    Rule(("train", "compute"), _process_errors),
    Rule(("train",), lambda loaded, recipe: _preference_privacy_errors(loaded, recipe["train"])
         if "train" in recipe else []),
]
