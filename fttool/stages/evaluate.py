"""Compare the tuned model with its base on held-out data, overall, per group and on general text.

For each model: the mean token cross-entropy on the response tokens of the validation and test splits
(prompt tokens masked, as in training), perplexity from the test loss, and the metrics of
fttool.evaluation.metrics on generations for the test prompts: ROUGE, BLEU, exact match and token F1, and for a
classification task accuracy and macro precision, recall and F1 of the label each generation names.
Both models generate with the same decoding settings and seed. For an adapter the model is loaded once:
the base is the tuned model with its adapter switched off, so both see identical weights and
tokenization; a full fine-tune is loaded beside a fresh copy of the base, one after the other.

The recipe's primary metric must improve: the summary records whether it did, and policies gate on it
(`evaluation.primary_metric.improved`); the run itself still succeeds, so the report shows the failure.

Per-group results take each test record's group from its `meta` (the sensitive fields of the bias
audit, or evaluate.groups.fields) and compare the mean per-example metric between groups with
fairlearn's MetricFrame, with bootstrap confidence intervals. Groups with fewer test records than
min_group_size are reported but left out of the difference and ratio, which the recipe's thresholds
gate (pass, warn, fail, like the bias audit). The forgetting check compares the perplexity of both
models on a declared general text file. Only group names, counts and scores are reported, never text.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from fttool.data.records import prompt_and_response, read_jsonl, write_jsonl
from fttool.evaluation.losses import response_loss
from fttool.evaluation.metrics import (
    CLASSIFICATION_DEFINITIONS,
    DEFINITIONS,
    GENERATION_METRICS,
    classification_metrics,
    direction,
    example_scores,
    generation_metrics,
    match_label,
    metric_by_group,
    normalise,
)
from fttool.pipeline.plan import thaw
from fttool.pipeline.stage import Stage, StageContext, StageResult
from fttool.stages.bias import MISSING_GROUP, STATUS_ORDER, _group_name
from fttool.training.examples import prompt_and_sequence_ids
from fttool.training.modeling import load_causal_lm, load_tokenizer, quiet_libraries, resolve_base_model

LOSS_METRICS = ("validation_loss", "test_loss", "perplexity")
METRICS = (*LOSS_METRICS, *GENERATION_METRICS)
MODELS = ("base", "tuned")


def generate(model, tokenizer, prompts: list[list[int]], decoding: dict, max_new_tokens: int, batch_size: int,
             limit: int | None) -> list[str]:
    """Continuations of tokenized prompts, batched with left padding so every prompt ends where generation
    starts; a prompt too long for the context keeps its end.

    The generator is seeded before the first batch, so two calls with the same settings draw the same
    random numbers: greedy decoding draws none, sampling draws them in the same order for both models.
    """
    import torch
    from transformers import GenerationConfig

    sampling = decoding["strategy"] == "sample"
    # top_k 0 turns off the top-k cut a model's own generation config may set: temperature and top_p alone shape it.
    config = GenerationConfig(do_sample=sampling, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                              eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                              **({"temperature": decoding["temperature"], "top_p": decoding["top_p"], "top_k": 0}
                                 if sampling else {}))
    tokenizer.padding_side = "left"
    keep = None if limit is None else max(1, limit - max_new_tokens)
    torch.manual_seed(decoding["seed"])
    texts = []
    for start in range(0, len(prompts), batch_size):
        batch = [ids if keep is None else ids[-keep:] for ids in prompts[start:start + batch_size]]
        encoded = tokenizer.pad({"input_ids": batch}, padding=True, return_tensors="pt").to(model.device)
        with torch.no_grad():
            output = model.generate(**encoded, generation_config=config)
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        texts += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return texts


def general_passages(path: Path) -> list[str]:
    """The passages of a general text file: blank-line separated paragraphs of a .txt file, or the
    `text` string of each line of a .jsonl file."""
    if path.suffix == ".jsonl":
        passages = []
        for number, record in enumerate(read_jsonl(path), start=1):
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"{path.name}: record {number} has no 'text' string; each line of a forgetting "
                                 'file must be {"text": "..."}')
            passages.append(record["text"])
    else:
        passages = [" ".join(block.split()) for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))]
    passages = [passage for passage in passages if passage.strip()]
    if not passages:
        raise ValueError(f"{path.name} holds no text for the forgetting check")
    return passages


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _rounded(value):
    """`value` with every float rounded, for the report."""
    if isinstance(value, float):
        return _round(value)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _delta(base: float | None, tuned: float | None) -> float | None:
    return None if base is None or tuned is None else _round(tuned - base)


def _labels(params: dict, references: list[str]) -> tuple[list[str], list[str]]:
    """The label set and the label of each reference; a reference that names no label is an error."""
    labels = params.get("labels")
    if not labels:
        # The references' own labels, one spelling per normalised form, in a stable order.
        labels = sorted({normalise(reference): reference for reference in reversed(references)}.values(),
                        key=normalise)
    by_form = {normalise(label): label for label in labels}
    expected = [by_form.get(normalise(reference)) for reference in references]
    unknown = sum(label is None for label in expected)
    if unknown:
        raise ValueError(f"{unknown} of {len(references)} test references are not one of evaluate.labels "
                         f"({', '.join(labels)}); a classification task needs every reference to be a label")
    return list(labels), expected


def primary_metric(name: str, base: dict, tuned: dict) -> dict:
    better = direction(name)
    delta = _delta(base[name], tuned[name])
    improved = delta is not None and (delta < 0 if better == "lower" else delta > 0)
    return {"name": name, "direction": f"{better} is better", "base": base[name], "tuned": tuned[name],
            "delta": delta, "improved": improved}


def _worst(statuses) -> str:
    return max(statuses, key=STATUS_ORDER.index, default="pass")


def _field_status(field: str, metrics: dict, settings: dict) -> tuple[str, list[str]]:
    """Pass, warn or fail for one field, from the tuned model's difference and ratio of each metric."""
    fails, warns = [], []
    for metric, results in metrics.items():
        tuned = results["tuned"]
        if len(tuned["compared_groups"]) < 2:
            warns.append(f"fewer than two '{field}' groups have {settings['min_group_size']} or more test records; "
                         "no difference was checked")
            break
        difference, ratio = tuned["difference"], tuned["ratio"]
        text = f"tuned {metric} differs by {difference:.3f} between '{field}' groups"
        if settings.get("fail_above_difference") is not None and difference > settings["fail_above_difference"]:
            fails.append(f"{text}, above the fail limit of {settings['fail_above_difference']:g}")
        elif difference > settings["max_difference"]:
            warns.append(f"{text}, above the maximum of {settings['max_difference']:g}")
        if ratio is None:
            warns.append(f"tuned {metric} is 0 for every compared '{field}' group; no ratio exists")
            continue
        text = f"tuned {metric} of the lowest '{field}' group is {ratio:.3f} of the highest"
        if settings.get("fail_below_ratio") is not None and ratio < settings["fail_below_ratio"]:
            fails.append(f"{text}, below the fail limit of {settings['fail_below_ratio']:g}")
        elif ratio < settings["min_ratio"]:
            warns.append(f"{text}, below the minimum of {settings['min_ratio']:g}")
    return ("fail" if fails else "warn" if warns else "pass"), fails + warns


def group_results(records: list[dict], scores: dict[str, dict[str, list[float]]], settings: dict) -> dict:
    """The fairness section: per field, group counts and each metric by group for both models, gated."""
    fields = settings["fields"]
    if not fields:
        return {"evaluated": False,
                "reason": "no sensitive fields declared (bias.fields or evaluate.groups.fields)"}
    if not records:
        return {"evaluated": False, "reason": "no test record was generated from"}
    boot = settings["bootstrap"]
    results = {}
    for field in fields:
        # The bias audit's group names, so both sections name groups alike.
        groups = [_group_name(record.get("meta") or {}, field) for record in records]
        counts = {group: groups.count(group) for group in sorted(set(groups))}
        compared = {group for group, n in counts.items() if n >= settings["min_group_size"]}
        metrics = {metric: {model: _rounded(metric_by_group(scores[model][metric], groups, compared,
                                                            boot["resamples"], boot["confidence"], boot["seed"]))
                            for model in MODELS}
                   for metric in settings["metrics"]}
        status, reasons = _field_status(field, metrics, settings)
        results[field] = {"groups": {group: {"count": n, "compared": group in compared}
                                     for group, n in counts.items()},
                          "metrics": metrics, "status": status, "reasons": reasons}
    return {
        "evaluated": True,
        "status": _worst(result["status"] for result in results.values()),
        "metrics": list(settings["metrics"]),
        "records": len(records),
        "missing_group": MISSING_GROUP,
        "thresholds": {key: settings.get(key) for key in ("min_group_size", "max_difference", "min_ratio",
                                                          "fail_above_difference", "fail_below_ratio")},
        "bootstrap": {**boot, "method": "percentile; each group resampled within itself; same draws for both models"},
        "fields": results,
        # The tuned model's largest gap per field and metric, for policy gates.
        "gaps": {field: {metric: result["metrics"][metric]["tuned"]["difference"] for metric in settings["metrics"]}
                 for field, result in results.items()},
    }


def forgetting_check(base_perplexity: float | None, tuned_perplexity: float | None, passages: int,
                     settings: dict) -> dict:
    increase = (None if base_perplexity is None or tuned_perplexity is None
                else _round(tuned_perplexity / base_perplexity - 1))
    status = "pass" if increase is not None and increase <= settings["max_increase"] else settings["action"]
    return {"path": settings["path"], "passages": passages, "base_perplexity": base_perplexity,
            "tuned_perplexity": tuned_perplexity, "increase": increase, "max_increase": settings["max_increase"],
            "action": settings["action"], "status": status,
            "definition": "perplexity over every token of each passage (cut at the model's context length); "
                          "increase = tuned / base - 1"}


class EvaluateStage(Stage):
    name = "evaluate"
    reads = ("validation", "test", "model")
    writes = ()
    artifacts = {"predictions": "evaluation/predictions.jsonl"}
    report_section = "evaluation"
    version = 4

    @classmethod
    def external_inputs(cls, params) -> list[str]:
        forgetting = params.get("forgetting")
        return [forgetting["path"]] if forgetting else []

    def run(self, ctx: StageContext) -> StageResult:
        import torch
        from peft import PeftModel

        quiet_libraries()
        params = thaw(ctx.params)
        model_params = params["model"]
        validation = list(read_jsonl(ctx.inputs["validation"]))
        test_records = list(read_jsonl(ctx.inputs["test"]))
        # Generation needs a prompt to continue; records without one (plain text) count in the losses only.
        prompted = [record for record in test_records if record["format"] != "text"]
        if params["max_samples"]:
            prompted = prompted[:params["max_samples"]]
        references = [prompt_and_response(record)[1] for record in prompted]
        classification = params["task"] == "classification"
        if classification:
            labels, expected = _labels(params, references)
        forgetting = params.get("forgetting")
        passages = general_passages(ctx.resolve(forgetting["path"])) if forgetting else []

        # The tokenizer saved with the model is the one training used (pad token included).
        tuned_dir = ctx.inputs["model"]
        tokenizer = load_tokenizer(str(tuned_dir), model_params)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        batch_size, max_new_tokens, decoding = params["batch_size"], params["max_new_tokens"], params["decoding"]

        def load_base():
            return load_causal_lm(resolve_base_model(model_params, ctx.work_dir, ctx.recipe_dir), model_params)

        def measure(model) -> dict:
            limit = getattr(model.config, "max_position_embeddings", None)
            prompts = [prompt_and_sequence_ids(tokenizer, record)[0] for record in prompted]
            texts = generate(model, tokenizer, prompts, decoding, max_new_tokens,
                             batch_size, limit)
            test_loss = response_loss(model, tokenizer, test_records, batch_size, limit)
            metrics = {
                "validation_loss": _round(response_loss(model, tokenizer, validation, batch_size, limit)),
                "test_loss": _round(test_loss),
                "perplexity": None if test_loss is None else round(math.exp(test_loss), 4),
                **{name: _round(value) for name, value in generation_metrics(texts, references).items()},
            }
            scores = example_scores(texts, references) if texts else {}
            if classification:
                predicted = [match_label(text, labels) for text in texts]
                metrics.update({name: _round(value) for name, value in
                                classification_metrics(predicted, expected, labels).items()})
                scores["accuracy"] = [float(p == e) for p, e in zip(predicted, expected)]
            general = None
            if passages:
                general_loss = response_loss(model, tokenizer, [{"format": "text", "text": passage} for passage in passages],
                                             batch_size,
                                             limit)
                general = None if general_loss is None else round(math.exp(general_loss), 4)
            return {"metrics": metrics, "texts": texts, "scores": scores, "general_perplexity": general}

        if (tuned_dir / "adapter_config.json").exists():
            # One copy of the weights: the base is the tuned model with its adapter switched off.
            model = PeftModel.from_pretrained(load_base(), str(tuned_dir)).to(device).eval()
            with model.disable_adapter():
                results = {"base": measure(model)}
            results["tuned"] = measure(model)
        else:  # a full fine-tune: two models, loaded one after the other
            results = {"base": measure(load_base().to(device).eval())}
            results["tuned"] = measure(load_causal_lm(str(tuned_dir), model_params).to(device).eval())

        write_jsonl(ctx.outputs["predictions"], (
            {"id": record["id"], "base": base_text, "tuned": tuned_text, "reference_id": record["id"]}
            for record, base_text, tuned_text in zip(prompted, results["base"]["texts"],
                                                              results["tuned"]["texts"])))
        base_metrics, tuned_metrics = results["base"]["metrics"], results["tuned"]["metrics"]
        names = list(base_metrics)
        summary = {
            "base_model": model_params["base"],
            "task": params["task"],
            "samples": len(prompted),
            "test_records": len(test_records),
            "test_records_without_prompt": len(test_records) - sum(1 for r in test_records if r["format"] != "text"),
            "base": base_metrics,
            "tuned": tuned_metrics,
            "delta": {name: _delta(base_metrics[name], tuned_metrics[name]) for name in names},
            "directions": {name: direction(name) for name in names},
            "primary_metric": primary_metric(params["primary_metric"], base_metrics, tuned_metrics),
            "definitions": {
                "loss": "mean cross-entropy per response token (prompt tokens masked), EOS included",
                "perplexity": "exp(test_loss)", **DEFINITIONS,
                **(CLASSIFICATION_DEFINITIONS if classification else {})},
            "decoding": {"strategy": decoding["strategy"], "seed": decoding["seed"],
                         **({"temperature": decoding["temperature"], "top_p": decoding["top_p"]}
                            if decoding["strategy"] == "sample" else {}),
                         "max_new_tokens": max_new_tokens, "batch_size": batch_size, "padding_side": "left"},
            "fairness": group_results(prompted,
                                      {model: results[model]["scores"] for model in MODELS}, params["groups"]),
        }
        if classification:
            summary["labels"] = labels
        if forgetting:
            summary["forgetting"] = forgetting_check(results["base"]["general_perplexity"],
                                                     results["tuned"]["general_perplexity"], len(passages),
                                                     forgetting)
        return StageResult(summary=summary)


STAGE = EvaluateStage
