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
    compute = recipe["compute"]
    if private and compute["num_processes"] > 1:
        # Each process would sample, clip and add noise on its own: the accountant's epsilon would not hold.
        return [loaded.error(("compute", "num_processes"), "differentially private training runs in "
                             "one process only (the privacy accounting assumes one sampler and one "
                             "noise draw a step); set compute.num_processes: 1 or disable train.privacy")]
    if private and compute["num_machines"] > 1:
        return [loaded.error(("compute", "num_machines"), "differentially private training runs in one process "
                             "on one machine only (the privacy accounting assumes one sampler and one noise draw "
                             "a step); set compute.num_machines: 1 or disable train.privacy")]
    return []


def _machine_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    """A rank outside the machines, several machines with no address to meet at, DeepSpeed settings unused."""
    compute, written = recipe["compute"], loaded.data.get("compute") or {}
    errors = []
    if compute["machine_rank"] >= compute["num_machines"]:
        errors.append(loaded.error(("compute", "machine_rank"), f"machine_rank {compute['machine_rank']} is not "
                                   f"below num_machines {compute['num_machines']}: ranks run from 0 to "
                                   f"{compute['num_machines'] - 1}; give each machine its own rank with "
                                   "fttool run --machine-rank"))
    if compute["num_machines"] > 1:
        missing = [key for key in ("main_process_ip", "main_process_port") if compute[key] is None]
        if missing:
            errors.append(loaded.error(("compute",), f"{compute['num_machines']} machines need "
                                       f"{' and '.join('compute.' + key for key in missing)}: the address and "
                                       "port of machine 0, where every machine's processes meet"))
    if "deepspeed" in written and compute["strategy"] != "deepspeed":  # as written, before defaults
        errors.append(loaded.error(("compute", "deepspeed"), "deepspeed settings apply to strategy: deepspeed "
                                   "only; remove them or set compute.strategy: deepspeed", at_key=True))
    return errors


RULES = [
    Rule(("train",), lambda loaded, recipe: _train_errors(loaded, recipe["train"]) if "train" in recipe else []),
    Rule(("train",), lambda loaded, recipe: privacy_errors(loaded, recipe["train"]) if "train" in recipe else []),
    Rule(("train",), lambda loaded, recipe: setting_errors(loaded, recipe["train"]) if "train" in recipe else []),
    Rule(("train", "compute"), _process_errors),
    Rule(("train", "compute"), _machine_errors),
    Rule(("train",), lambda loaded, recipe: _preference_privacy_errors(loaded, recipe["train"])
         if "train" in recipe else []),
]
