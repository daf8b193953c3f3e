"""Compile a recipe into a plan.

This module is the one place that knows how recipe sections map onto stage parameters, in the way
torchtune keeps configuration apart from the code it runs. Stages never see the recipe itself.
"""
from __future__ import annotations

from pathlib import Path

from fttool.augment.settings import method_params
from fttool.data.records import FORMAT_FIELDS
from fttool.evaluation.metrics import CLASSIFICATION_METRICS, normalise
from fttool.data.settings import resolved_source
from fttool.fairness.settings import bias_params
from fttool.pipeline.params import build
from fttool.pipeline.plan import Plan, StageSpec, freeze
from fttool.recipe.errors import RecipeError, RecipeInvalid
from fttool.recipe.loader import LoadedRecipe, load_recipe_file
from fttool.pii.settings import entities_checked
from fttool.recipe.schema import apply_defaults, load_schema, schema_errors
from fttool.stages import STAGE_ORDER, stage_class
from fttool.data.containers import CONTAINERS, source_container, source_tag
from fttool.training.model_ref import DEMO_MODEL_PREFIX, DEMO_MODELS, is_local_model
from fttool.training.private import privacy_errors


def _stage_params(recipe: dict) -> dict[str, dict | str]:
    """Each stage's parameters, or the reason it is skipped."""
    data = recipe["data"]
    params: dict[str, dict | str] = {
        "ingest": {"sources": [resolved_source(source) for source in data["sources"]], "max_chars": data["max_chars"]},
        "dedup": data["dedup"],
        "split": {"stratify": None, "group_by": None, **data["split"]},
    }
    pii = recipe.get("pii")
    params["pii"] = ({k: v for k, v in pii.items() if k != "enabled"} if pii and pii["enabled"]
                     else "pii section absent or disabled")
    params["bias"] = bias_params(recipe["bias"]) if "bias" in recipe else "no bias section"
    if recipe.get("augment"):
        # Augmented text is scanned for PII with the recipe's own PII settings, else with the schema's defaults.
        scan = params["pii"] if isinstance(params["pii"], dict) else {
            k: v for k, v in apply_defaults({}, load_schema()["properties"]["pii"]).items() if k != "enabled"}
        params["augment"] = {"methods": [method_params(entry) for entry in recipe["augment"]], "pii": scan}
    else:
        params["augment"] = "no augment section"
    if "train" in recipe:
        tracking = recipe["tracking"]
        params["train"] = {**recipe["train"], "model": recipe["model"], "compute": recipe["compute"],
                           "tracking": {**tracking, "experiment": tracking["experiment"] or recipe["name"]}}
    else:
        params["train"] = "no train section"
    if "evaluate" in recipe:
        params["evaluate"] = _evaluate_params(recipe)
    else:
        params["evaluate"] = "no evaluate section"
    memorisation = recipe.get("memorisation")
    if memorisation and memorisation["enabled"]:
        # Both stages draw the same secrets from these parameters; the measurement also loads the model.
        canaries = {k: v for k, v in memorisation.items() if k != "enabled"}
        params["canaries"] = canaries
        params["memorisation"] = {**canaries, "model": _model_params(recipe)}
    else:
        params["canaries"] = params["memorisation"] = "memorisation section absent or disabled"
    return params


def _evaluate_task(evaluate: dict) -> str:
    """The task as written, else classification when labels are given (the schema allows no empty list)."""
    return evaluate.get("task") or ("classification" if evaluate.get("labels") else "generation")


def _evaluate_params(recipe: dict) -> dict:
    """The evaluate section with the defaults that depend on other keys and sections resolved."""
    evaluate = recipe["evaluate"]
    task = _evaluate_task(evaluate)
    groups = evaluate["groups"]
    fields = groups.get("fields") or recipe.get("bias", {}).get("fields", [])
    metrics = groups.get("metrics") or (["accuracy"] if task == "classification" else ["token_f1", "rougeL"])
    return {**evaluate, "task": task, "labels": evaluate.get("labels"), "forgetting": evaluate.get("forgetting"),
            "groups": {"fail_above_difference": None, "fail_below_ratio": None, **groups, "fields": fields,
                       "metrics": metrics},
            "model": _model_params(recipe)}


def _model_params(recipe: dict) -> dict:
    """The model section with its optional keys present (None when the recipe leaves them out)."""
    return {"revision": None, "license": None, **recipe["model"]}


def _evaluate_errors(loaded: LoadedRecipe, evaluate: dict) -> list[RecipeError]:
    """Settings that contradict each other, and a forgetting file that is missing."""
    errors = []
    classification = _evaluate_task(evaluate) == "classification"
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
            errors.append(loaded.error(("pii", "recognizers", index), "a recognizer needs patterns, a deny_list or both"))
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


def semantic_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    """Checks that a JSON Schema cannot express: cross-field rules and files that must exist."""
    errors = []
    split = recipe["data"]["split"]
    total = split["train"] + split["validation"] + split["test"]
    if abs(total - 1.0) > 1e-6:
        errors.append(loaded.error(("data", "split"),
                                   f"split ratios sum to {total:g}; train + validation + test must sum to 1"))
    if "stratify" in split and "group_by" in split:
        # Groups can cross strata, so both cannot hold at once; the user must choose.
        errors.append(loaded.error(("data", "split", "group_by"), "use either 'stratify' or 'group_by', not both",
                                   at_key=True))
    first_with_tag: dict[str, int] = {}
    for index, source in enumerate(recipe["data"]["sources"]):
        path = loaded.directory / source["path"]
        if not path.is_file():
            errors.append(loaded.error(("data", "sources", index, "path"),
                                       f"source file not found: {path} (paths are relative to the recipe file)"))
        container = source_container(source)
        if container is None:
            errors.append(loaded.error(("data", "sources", index, "path"),
                                       f"cannot tell how '{source['path']}' is stored from its extension; "
                                       f"add container: one of {', '.join(CONTAINERS)}"))
        elif container == "csv" and source["format"] == "chat":
            errors.append(loaded.error(("data", "sources", index, "format"),
                                       "CSV cells are plain strings, so a CSV source cannot hold chat messages"))
        tag = source_tag(source)
        if tag in first_with_tag:
            # Records are traced back to their source by tag alone.
            where = "tag" if "tag" in source else "path"  # a source without a tag is tagged with its file name
            errors.append(loaded.error(("data", "sources", index, where),
                                       f"tag '{tag}' is already used by data.sources[{first_with_tag[tag]}]; "
                                       "give each source its own tag"))
        first_with_tag.setdefault(tag, index)
        allowed = FORMAT_FIELDS[source["format"]]
        for name in source.get("fields", {}):
            if name not in allowed:
                errors.append(loaded.error(("data", "sources", index, "fields", name),
                                           f"'{name}' is not a field of the {source['format']} format; "
                                           f"map one of: {', '.join(allowed)}", at_key=True))
    for section in ("train", "evaluate"):
        if section in recipe and "model" not in recipe:
            errors.append(loaded.error((section,), f"'{section}' needs a 'model' section naming the base model",
                                       at_key=True))
    if "evaluate" in recipe and "train" not in recipe:
        errors.append(loaded.error(("evaluate",), "'evaluate' compares the tuned model with its base, "
                                   "so it needs a 'train' section", at_key=True))
    if "evaluate" in recipe and split["test"] == 0:
        errors.append(loaded.error(("data", "split", "test"), "'evaluate' needs a test split above 0"))
    if "train" in recipe and split["validation"] == 0:
        errors.append(loaded.error(("data", "split", "validation"),
                                   "training reports validation loss, so the validation split must be above 0"))
    base = recipe.get("model", {}).get("base", "")
    if base.startswith(DEMO_MODEL_PREFIX):
        if base[len(DEMO_MODEL_PREFIX):] not in DEMO_MODELS:
            errors.append(loaded.error(("model", "base"), f"unknown demo model '{base}'; use one of: "
                                       + ", ".join(DEMO_MODEL_PREFIX + m for m in DEMO_MODELS)))
    elif is_local_model(base) and not (loaded.directory / Path(base).expanduser()).is_dir():
        errors.append(loaded.error(("model", "base"), f"base model directory not found: {base} "
                                   "(relative paths are relative to the recipe file)"))
    if "pii" in recipe:
        errors += _pii_errors(loaded, recipe["pii"])
    if "evaluate" in recipe:
        errors += _evaluate_errors(loaded, recipe["evaluate"])
    if "train" in recipe:
        errors += _train_errors(loaded, recipe["train"])
        errors += privacy_errors(loaded, recipe["train"])
        if recipe["train"].get("privacy", {}).get("enabled") and recipe["compute"]["num_processes"] > 1:
            # Each process would sample, clip and add noise on its own: the accountant's epsilon would not hold.
            errors.append(loaded.error(("compute", "num_processes"), "differentially private training runs in "
                                       "one process only (the privacy accounting assumes one sampler and one "
                                       "noise draw a step); set compute.num_processes: 1 or disable train.privacy"))
    if "memorisation" in recipe:
        errors += _memorisation_errors(loaded, recipe)
    report_policy = recipe.get("report", {}).get("policy")
    if report_policy:
        errors += _report_policy_errors(loaded, report_policy)
    return errors


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


def _report_policy_errors(loaded: LoadedRecipe, policy: str) -> list[RecipeError]:
    """The policy the finished report is checked against must exist and be valid before anything runs."""
    from fttool.policy.policy_file import load_policy  # the policy package imports this module

    path = loaded.directory / policy
    if not path.is_file():
        return [loaded.error(("report", "policy"), f"policy file not found: {path} "
                             "(paths are relative to the recipe file)")]
    try:
        load_policy(path)
    except RecipeInvalid as exc:
        return list(exc.errors)
    return []


def _wire(enabled: list[str]) -> dict[str, tuple[dict, dict]]:
    """Give each stage's inputs and outputs a path in the run directory.

    A record dataset's last writer puts it in data/<name>.jsonl; earlier writers use work/<stage>/.
    """
    classes = {name: stage_class(name) for name in enabled}
    last_writer = {}
    for name in enabled:
        for dataset in classes[name].writes:
            last_writer[dataset] = name
    current: dict[str, str] = {}
    wiring = {}
    for name in enabled:
        cls = classes[name]
        needed = cls.reads + cls.references
        missing = [n for n in needed if n not in current]
        if missing:
            raise AssertionError(f"stage {name} reads {missing} that no earlier stage writes")
        inputs = {n: current[n] for n in needed}
        outputs = {}
        for dataset in cls.writes:
            final = last_writer[dataset] == name and dataset != "records"
            outputs[dataset] = f"data/{dataset}.jsonl" if final else f"work/{name}/{dataset}.jsonl"
        outputs.update(cls.artifacts)
        current.update(outputs)
        wiring[name] = (inputs, outputs)
    return wiring


def validated_recipe(loaded: LoadedRecipe) -> dict:
    """The recipe with every default applied; raises RecipeInvalid with every schema error, or else every
    cross-field error (those assume a recipe the schema accepts)."""
    errors = schema_errors(loaded)
    if errors:
        raise RecipeInvalid(errors)
    recipe = apply_defaults(loaded.data)
    errors = semantic_errors(loaded, recipe)
    if errors:
        raise RecipeInvalid(errors)
    return recipe


def _typed_params(stage: str, params: dict):
    """The stage's parameter dataclass, every field given (defaults were resolved above)."""
    params_type = stage_class(stage).Params
    return build(params_type, params, stage) if params_type else freeze(params)


def compile_loaded(loaded: LoadedRecipe) -> Plan:
    recipe = validated_recipe(loaded)
    stage_params = _stage_params(recipe)
    enabled = [name for name in STAGE_ORDER if isinstance(stage_params[name], dict)]
    wiring = _wire(enabled)
    stages = tuple(StageSpec(name, _typed_params(name, stage_params[name]), freeze(wiring[name][0]),
                             freeze(wiring[name][1]))
                   for name in enabled)
    skipped = {name: reason for name, reason in stage_params.items() if isinstance(reason, str)}
    return Plan(name=recipe["name"], recipe_path=loaded.path.resolve(), recipe=freeze(recipe), stages=stages,
                skipped=freeze(skipped))


def compile_recipe(path: str | Path) -> Plan:
    """Load, validate and compile; raises RecipeInvalid with every error found."""
    return compile_loaded(load_recipe_file(path))

