"""Rules of the evaluate section: the task, labels, metrics and decoding settings agree; the forgetting file exists."""
from __future__ import annotations

from fttool.evaluation.metrics import CLASSIFICATION_METRICS, normalise
from fttool.recipe.errors import RecipeError
from fttool.recipe.loader import LoadedRecipe
from fttool.recipe.rules.rule import Rule


def evaluate_task(evaluate: dict) -> str:
    """The task as written, else classification when labels are given (the schema allows no empty list)."""
    return evaluate.get("task") or ("classification" if evaluate.get("labels") else "generation")




def _evaluate_errors(loaded: LoadedRecipe, evaluate: dict) -> list[RecipeError]:
    """Settings that contradict each other, and a forgetting file that is missing."""
    errors = []
    classification = evaluate_task(evaluate) == "classification"
    if "labels" in evaluate and not classification:
        errors.append(loaded.error(("evaluate", "labels"), "labels apply to a classification task; "
                                   "set task: classification or remove labels", at_key=True))
    forms: dict[str, str] = {}
    for index, label in enumerate(evaluate.get("labels", [])):
        form = normalise(label)
        if not form or form in forms:
            clash = f"is the same as '{forms[form]}'" if form else "is empty"
            errors.append(loaded.error(("evaluate", "labels", index),
                                       f"label '{label}' {clash} after normalisation (case, punctuation and "
                                       "articles are ignored); give each label distinct words"))
        forms.setdefault(form, label)
    if evaluate["primary_metric"] in CLASSIFICATION_METRICS and not classification:
        errors.append(loaded.error(("evaluate", "primary_metric"), f"'{evaluate['primary_metric']}' is a "
                                   "classification metric; set task: classification or choose another metric"))
    if "accuracy" in evaluate["groups"].get("metrics", []) and not classification:
        index = evaluate["groups"]["metrics"].index("accuracy")
        errors.append(loaded.error(("evaluate", "groups", "metrics", index),
                                   "accuracy needs task: classification; use token_f1 or rougeL for generation"))
    raw_decoding = loaded.data.get("evaluate", {}).get("decoding", {})  # as written, before defaults
    if evaluate["decoding"]["strategy"] == "greedy":
        for key in ("temperature", "top_p"):
            if key in raw_decoding:
                errors.append(loaded.error(("evaluate", "decoding", key), f"'{key}' applies only to sampling; "
                                           "set strategy: sample or remove it", at_key=True))
    forgetting = evaluate.get("forgetting")
    if forgetting and not (loaded.directory / forgetting["path"]).is_file():
        errors.append(loaded.error(("evaluate", "forgetting", "path"), f"general text file not found: "
                                   f"{loaded.directory / forgetting['path']} (paths are relative to the recipe file)"))
    return errors




RULES = [Rule(("evaluate",),
              lambda loaded, recipe: _evaluate_errors(loaded, recipe["evaluate"]) if "evaluate" in recipe else [])]
