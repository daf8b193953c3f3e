"""Train settings that contradict each other, for the recipe rules (light: no torch)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the recipe rules import this module
    from fttool.recipe.errors import RecipeError


def setting_errors(loaded, train: Mapping[str, Any]) -> list[RecipeError]:
    """Evaluation schedule, 8-bit loading and chat template settings that cannot hold together."""
    errors = []
    written = loaded.data.get("train", {})  # as written, before defaults
    if train["eval_steps"] is not None and train["evals_per_epoch"] is not None:
        errors.append(loaded.error(("train", "evals_per_epoch"), "set either eval_steps or evals_per_epoch, not "
                                   "both", at_key=True))
    if "early_stopping" in train:
        for key in ("eval_steps", "evals_per_epoch"):
            if written.get(key) is not None:
                errors.append(loaded.error(("train", key), f"{key} does not apply with early_stopping, which "
                                           "measures validation loss at every checkpoint (save_steps); remove it",
                                           at_key=True))
    if train["load_in_8bit"] and train["method"] != "lora":
        errors.append(loaded.error(("train", "load_in_8bit"), f"load_in_8bit trains LoRA on an 8-bit base, so it "
                                   f"needs method lora, not {train['method']} (qlora loads 4 bits)", at_key=True))
    if train["chat_template"] is not None and train["chat_template_file"] is not None:
        errors.append(loaded.error(("train", "chat_template_file"), "set either chat_template (a built-in name) "
                                   "or chat_template_file, not both", at_key=True))
    file = train["chat_template_file"]
    if file is not None and not (loaded.directory / file).is_file():
        errors.append(loaded.error(("train", "chat_template_file"), f"chat template file not found: "
                                   f"{loaded.directory / file} (paths are relative to the recipe file)"))
    return errors
