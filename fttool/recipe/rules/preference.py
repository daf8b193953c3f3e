"""Rules of preference tuning: the objective must match the data's format, its settings must be TRL's, and the
stages that cannot yet handle pairs are refused with the reason."""
from __future__ import annotations

from fttool.data.preference import PREFERENCE_INPUTS
from fttool.recipe.errors import RecipeError
from fttool.recipe.loader import LoadedRecipe
from fttool.recipe.rules.rule import Rule
from fttool.training.preference_settings import (
    LOSS_TYPES,
    PER_PAIR_METRICS,
    PREFERENCE_METRICS,
    PREFERENCE_OBJECTIVES,
)


def _objective(recipe: dict) -> str:
    return recipe["train"]["objective"] if "train" in recipe else "sft"


def _format_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    """Every source's format must suit the objective: pairs for dpo and orpo, pairs or KTO records for kto, a
    supervised format for sft. A data-only run may hold either kind, but not both in one set of splits."""
    formats = [source["format"] for source in recipe["data"]["sources"]]
    if "train" not in recipe:
        if len({fmt in PREFERENCE_INPUTS for fmt in formats}) < 2:
            return []
        objective, wanted = "(none)", "one kind of data: pairs and supervised records cannot share splits"
    else:
        objective = _objective(recipe)
        wanted = {"sft": "a supervised format (alpaca, chat, sharegpt, prompt_completion, text)",
                  "dpo": "pairs (preference or sharegpt_preference)",
                  "orpo": "pairs (preference or sharegpt_preference)",
                  "kto": "preference, sharegpt_preference or kto"}[objective]
    errors = []
    for index, fmt in enumerate(formats):
        preference = fmt in PREFERENCE_INPUTS
        if objective == "(none)":
            fits = preference == (formats[0] in PREFERENCE_INPUTS)
        else:
            fits = not preference if objective == "sft" else preference and (objective == "kto" or fmt != "kto")
        if not fits:
            errors.append(loaded.error(("data", "sources", index, "format"),
                                       f"format {fmt} does not suit train.objective {objective}, which needs {wanted}; "
                                       "change the source's format or train.objective"))
    return errors


def _settings_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    if "train" not in recipe:
        return []
    train, objective = recipe["train"], _objective(recipe)
    written = loaded.data.get("train", {})  # as written, before defaults
    if objective not in PREFERENCE_OBJECTIVES:
        if "preference" in written:
            return [loaded.error(("train", "preference"), "preference settings apply to objective dpo, kto or "
                                 "orpo; remove them or set train.objective", at_key=True)]
        return []
    loss_type = train["preference"].get("loss_type")
    if loss_type is not None and loss_type not in LOSS_TYPES[objective]:
        allowed = ", ".join(LOSS_TYPES[objective]) or "none (ORPO has one loss; remove loss_type)"
        return [loaded.error(("train", "preference", "loss_type"), f"loss_type {loss_type} is not one of TRL's "
                             f"loss types for {objective}: {allowed}")]
    if train["preference"]["sync_ref_model"] and train["method"] != "full":
        return [loaded.error(("train", "preference", "sync_ref_model"), "sync_ref_model needs method: full: with "
                             "LoRA the reference is the base with the adapter switched off, which cannot move")]
    return []


def _stage_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    """Stages that do not yet work on pairs, refused with the reason rather than run on half the data."""
    if _objective(recipe) not in PREFERENCE_OBJECTIVES:
        return []
    errors = []
    if recipe.get("augment"):
        errors.append(loaded.error(("augment",), "augmentation is not available for preference data: rewriting "
                                   "a response can swap which one is preferred, and rewriting only prompts would "
                                   "add pairs that share responses; remove the augment section", at_key=True))
    if recipe.get("memorisation", {}).get("enabled"):
        errors.append(loaded.error(("memorisation",), "the canary check plants supervised records in the train "
                                   "split, which a preference trainer cannot read; remove the memorisation section "
                                   "or set memorisation.enabled: false", at_key=True))
    if "train" in recipe and recipe["train"]["packing"]:
        errors.append(loaded.error(("train", "packing"), "packing applies to objective sft only; TRL's preference "
                                   "trainers pad each pair"))
    return errors


def _evaluate_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    """Preference data is scored by likelihoods, not generations: settings that would go unused are refused."""
    if _objective(recipe) not in PREFERENCE_OBJECTIVES or "evaluate" not in recipe:
        return []
    evaluate, written, errors = recipe["evaluate"], loaded.data.get("evaluate", {}), []
    if evaluate["primary_metric"] not in PREFERENCE_METRICS:
        errors.append(loaded.error(("evaluate", "primary_metric"), f"{evaluate['primary_metric']} is not measured on "
                                   f"preference pairs; use one of {', '.join(PREFERENCE_METRICS)}"))
    unused = [key for key in ("task", "labels", "forgetting", "decoding", "max_new_tokens") if key in written]
    if unused:
        errors.append(loaded.error(("evaluate", unused[0]), f"evaluate.{unused[0]} does not apply to preference "
                                   "tuning, which is evaluated by the likelihood of chosen over rejected responses "
                                   "rather than by generations; remove it", at_key=True))
    wrong = [metric for metric in evaluate["groups"].get("metrics") or [] if metric not in PER_PAIR_METRICS]
    if wrong:
        errors.append(loaded.error(("evaluate", "groups", "metrics"), f"{wrong[0]} is not measured per preference "
                                   f"pair; use {', '.join(PER_PAIR_METRICS)}"))
    return errors


RULES = [
    Rule(("data", "train"), _format_errors),
    Rule(("train",), _settings_errors),
    Rule(("train", "augment", "memorisation"), _stage_errors),
    Rule(("train", "evaluate"), _evaluate_errors),
]
