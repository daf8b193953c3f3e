"""Rules of the pii section: recipe recognizers that can run, operators that apply to what is checked, and a NER
model (pii.ner) that can be loaded."""
from __future__ import annotations

from fttool.pii.nlp_engines import model_problem
from fttool.pii.settings import NerParams, entities_checked
from fttool.pipeline.params import build
from fttool.recipe.errors import RecipeError
from fttool.recipe.loader import LoadedRecipe
from fttool.recipe.rules.rule import Rule
from fttool.training.model_ref import is_local_model

OPERATOR_OPTIONS = {"replace": {"new_value"}, "redact": set(), "mask": {"masking_char", "chars_to_mask", "from_end"},
                    "hash": {"salt_env"}}




def _regex_problem(pattern: str) -> str | None:
    """Why presidio's regex engine cannot compile `pattern`, so what passes here runs there; None if it can.

    `regex` is imported here, not at the top, because it adds milliseconds to every `fttool check`.
    """
    import regex

    try:
        regex.compile(pattern, regex.DOTALL | regex.MULTILINE | regex.IGNORECASE)
    except regex.error as exc:
        return f"invalid regular expression: {exc.msg} at character {exc.pos}"
    return None




def _pii_errors(loaded: LoadedRecipe, pii: dict) -> list[RecipeError]:
    """Recipe recognizers that cannot run and operators for entities that are never checked."""
    errors = []
    names: dict[str, int] = {}
    for index, recognizer in enumerate(pii["recognizers"]):
        if recognizer["name"] in names:
            errors.append(loaded.error(("pii", "recognizers", index, "name"),
                                       f"recognizer name '{recognizer['name']}' is already used by "
                                       f"pii.recognizers[{names[recognizer['name']]}]"))
        names.setdefault(recognizer["name"], index)
        if not recognizer.get("patterns") and not recognizer.get("deny_list"):
            errors.append(loaded.error(("pii", "recognizers", index),
                                       "a recognizer needs patterns, a deny_list or both"))
        for number, pattern in enumerate(recognizer.get("patterns", [])):
            problem = _regex_problem(pattern["regex"])
            if problem:
                errors.append(loaded.error(("pii", "recognizers", index, "patterns", number, "regex"), problem))
    checked = entities_checked(pii["entities"], pii["recognizers"])
    for entity, operator in pii["operators"].items():
        if entity != "default" and entity not in checked:
            errors.append(loaded.error(("pii", "operators", entity),
                                       f"'{entity}' is not among the entities checked ({', '.join(checked)}); "
                                       "add it to pii.entities or use 'default'", at_key=True))
        for option in sorted(set(operator) - {"type"} - OPERATOR_OPTIONS[operator["type"]]):
            errors.append(loaded.error(("pii", "operators", entity, option),
                                       f"'{option}' does not apply to a {operator['type']} operator", at_key=True))
    return errors




def _ner_errors(loaded: LoadedRecipe, pii: dict) -> list[RecipeError]:
    """A transformers engine names a model that can be used; spaCy's NER is not given settings it would ignore."""
    ner = pii["ner"]
    if ner["engine"] != "transformers":
        written = (loaded.data.get("pii") or {}).get("ner") or {}
        return [loaded.error(("pii", "ner", key), f"pii.ner.{key} applies to engine transformers only (engine is "
                             f"{ner['engine']}); remove it, or set engine: transformers", at_key=True)
                for key in written if key != "engine"]
    if not ner["model"]:
        return [loaded.error(("pii", "ner", "engine"), "engine transformers needs pii.ner.model: a local directory "
                             "of a token-classification model, or a hub id in the local Hugging Face cache")]
    if ner["revision"] and is_local_model(ner["model"]):
        return [loaded.error(("pii", "ner", "revision"), "pii.ner.revision applies to a hub id, not to a local "
                             "directory; remove it", at_key=True)]
    if not is_local_model(ner["model"]):
        return []  # a hub id is looked for in the cache of the machine that runs the recipe (unmet_requirements)
    problem = model_problem(build(NerParams, ner, "pii.ner"), loaded.directory)
    return [loaded.error(("pii", "ner", "model"), problem)] if problem else []


def _section_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    return _pii_errors(loaded, recipe["pii"]) + _ner_errors(loaded, recipe["pii"]) if "pii" in recipe else []


RULES = [Rule(("pii",), _section_errors)]
