"""Compile a recipe into a plan.

This module is the one place that knows how recipe sections map onto stage parameters, in the way
torchtune keeps configuration apart from the code it runs. Stages never see the recipe itself.
"""
from __future__ import annotations

from pathlib import Path

from fttool.augment.settings import method_params
from fttool.data.settings import dedup_params, engine_settings, resolved_source, split_params
from fttool.fairness.settings import bias_params
from fttool.pii.settings import resolved_pii
from fttool.pipeline.params import build
from fttool.pipeline.plan import Plan, StageSpec, freeze
from fttool.recipe.errors import RecipeInvalid
from fttool.recipe.loader import LoadedRecipe, load_recipe_file
from fttool.recipe.rules import broken_sections, rule_errors
from fttool.recipe.rules.evaluate import evaluate_task
from fttool.recipe.schema import apply_defaults, load_schema, schema_errors
from fttool.stages import STAGE_ORDER, stage_class
from fttool.training.model_identity import ModelIdentityError, resolved_revision
from fttool.training.preference_settings import preference_params


def _stage_params(recipe: dict) -> dict[str, dict | str]:
    """Each stage's parameters, or the reason it is skipped."""
    data = recipe["data"]
    params: dict[str, dict | str] = {
        "ingest": {"sources": [resolved_source(source) for source in data["sources"]], "max_chars": data["max_chars"],
                   "compute": engine_settings(data)},
        "dedup": dedup_params(data),
        "split": split_params(data),
    }
    pii = recipe.get("pii")
    params["pii"] = resolved_pii(pii, data) if pii and pii["enabled"] else "pii section absent or disabled"
    params["bias"] = {**bias_params(recipe["bias"]), "compute": engine_settings(data)} if "bias" in recipe else \
        "no bias section"
    if recipe.get("augment"):
        # Augmented text is scanned for PII with the recipe's own PII settings, else with the schema's defaults.
        scan = params["pii"] if isinstance(params["pii"], dict) else resolved_pii(
            apply_defaults({}, load_schema()["properties"]["pii"]), data)
        params["augment"] = {"methods": [method_params(entry) for entry in recipe["augment"]], "pii": scan,
                             "compute": engine_settings(data)}
    else:
        params["augment"] = "no augment section"
    if "train" in recipe:
        params["train"] = _train_params(recipe)
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


def _evaluate_params(recipe: dict) -> dict:
    """The evaluate section with the defaults that depend on other keys and sections resolved."""
    evaluate = recipe["evaluate"]
    task = evaluate_task(evaluate)
    groups = evaluate["groups"]
    fields = groups.get("fields") or recipe.get("bias", {}).get("fields", [])
    metrics = groups.get("metrics") or (["accuracy"] if task == "classification" else ["token_f1", "rougeL"])
    return {**evaluate, "task": task, "labels": evaluate.get("labels"), "forgetting": evaluate.get("forgetting"),
            "groups": {"fail_above_difference": None, "fail_below_ratio": None, **groups, "fields": fields,
                       "metrics": metrics, "k_anonymity": _k_anonymity(recipe)},
            "model": _model_params(recipe)}


def _k_anonymity(recipe: dict) -> int:
    """The bias audit's k_anonymity (its schema default without a bias section), so that the per-group evaluation
    leaves unnamed the small groups the audit leaves unnamed."""
    bias = recipe.get("bias") or apply_defaults({}, load_schema()["properties"]["bias"])
    return bias["k_anonymity"]


def _model_params(recipe: dict) -> dict:
    """The model section with its optional keys present (None when the recipe leaves them out) and a hub id's
    revision resolved to a commit, so every stage loads, fingerprints and reports that commit."""
    model = {key: value for key, value in recipe["model"].items() if key != "license_override"}  # validation only
    return {"license": None, **model, "revision": resolved_revision(model["base"], model.get("revision"))}


def _compute_params(compute: dict) -> dict:
    """The compute section; DeepSpeed's settings only with strategy deepspeed (None otherwise)."""
    return {**compute, "deepspeed": compute["deepspeed"] if compute["strategy"] == "deepspeed" else None}


def _train_params(recipe: dict) -> dict:
    """The train section with the model, compute and tracking sections, every optional setting present (None
    when the recipe leaves it out; no adapter with method full)."""
    train, tracking = recipe["train"], recipe["tracking"]
    privacy = train.get("privacy")
    optional_privacy = {"target_epsilon": None, "noise_multiplier": None, "delta": None}
    return {**train, "lora": train["lora"] if train["method"] != "full" else None,
            "early_stopping": train.get("early_stopping"),
            "privacy": {**optional_privacy, **privacy} if privacy else None, "preference": preference_params(train),
            "model": _model_params(recipe), "compute": _compute_params(recipe["compute"]),
            "tracking": {**tracking, "experiment": tracking["experiment"] or recipe["name"]}}


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
    """The recipe with every default applied; raises RecipeInvalid with every error found in one pass: schema
    errors, and the cross-field rules (fttool.recipe.rules) of every section the schema accepted."""
    errors = schema_errors(loaded)
    recipe = apply_defaults(loaded.data)
    errors += rule_errors(loaded, recipe, broken_sections(errors))
    if errors:
        raise RecipeInvalid(errors)
    return recipe


def _typed_params(stage: str, params: dict):
    """The stage's parameter dataclass, every field given (defaults were resolved above)."""
    params_type = stage_class(stage).Params
    return build(params_type, params, stage) if params_type else freeze(params)


def compile_loaded(loaded: LoadedRecipe) -> Plan:
    recipe = validated_recipe(loaded)
    try:
        stage_params = _stage_params(recipe)
    except ModelIdentityError as exc:  # a hub revision that resolves to no commit here: nothing can run
        where = ("model", "revision") if "revision" in recipe["model"] else ("model", "base")
        raise RecipeInvalid([loaded.error(where, str(exc))]) from None
    enabled = {name: params for name in STAGE_ORDER if isinstance(params := stage_params[name], dict)}
    wiring = _wire(list(enabled))
    stages = tuple(StageSpec(name, _typed_params(name, params), freeze(wiring[name][0]), freeze(wiring[name][1]))
                   for name, params in enabled.items())
    skipped = {name: reason for name, reason in stage_params.items() if isinstance(reason, str)}
    return Plan(name=recipe["name"], recipe_path=loaded.path.resolve(), recipe=freeze(recipe), stages=stages,
                skipped=freeze(skipped))


def compile_recipe(path: str | Path, machine_rank: int | None = None) -> Plan:
    """Load, validate and compile; raises RecipeInvalid with every error found.

    `machine_rank` (fttool run --machine-rank) replaces compute.machine_rank: every machine of a multi-machine run
    shares one recipe, and its rank is the one setting that differs.
    """
    loaded = load_recipe_file(path)
    if machine_rank is not None and isinstance(loaded.data.get("compute", {}), dict):
        loaded.data["compute"] = {**loaded.data.get("compute", {}), "machine_rank": machine_rank}
    return compile_loaded(loaded)

