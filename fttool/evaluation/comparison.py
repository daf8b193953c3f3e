"""The tuned model against its base on held-out data: what is measured on each model, and the summary.

For each model: the mean token cross-entropy on the response tokens of the validation and test splits
(prompt tokens masked, as in training), perplexity from the test loss, and the metrics of
fttool.evaluation.metrics on generations for the test prompts: ROUGE, BLEU, exact match and token F1, and
for a classification task accuracy and macro precision, recall and F1 of the label each generation names.
Both models generate with the same decoding settings and seed.

The recipe's primary metric must improve: the summary records whether it did, and policies gate on it
(`evaluation.primary_metric.improved`); the run itself still succeeds, so the report shows the failure.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from fttool.data.records import prompt_and_response
from fttool.evaluation.forgetting import forgetting_check, passage_records
from fttool.evaluation.generation import decoding_summary, generate
from fttool.evaluation.group_comparison import group_results
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
    normalise,
)
from fttool.evaluation.model_pair import MODELS
from fttool.evaluation.rounding import PERPLEXITY_DIGITS, rounded
from fttool.evaluation.settings import EvaluateParams
from fttool.training.examples import prompt_and_sequence_ids

LOSS_METRICS = ("validation_loss", "test_loss", "perplexity")
METRICS = (*LOSS_METRICS, *GENERATION_METRICS)
LOSS_DEFINITIONS = {"loss": "mean cross-entropy per response token (prompt tokens masked), EOS included",
                    "perplexity": "exp(test_loss)"}


@dataclass(frozen=True)
class EvaluationSet:
    """What both models are measured on.

    validation, test: the records whose response losses are measured.
    prompted: the test records generated from (those with a prompt, capped at max_samples).
    references: the expected response of each prompted record.
    labels: the label set of a classification task; None for generation.
    expected: the label of each reference (classification only).
    passages: the general text of the forgetting check; empty when it is not run.
    """

    validation: list[dict]
    test: list[dict]
    prompted: list[dict]
    references: list[str]
    labels: list[str] | None
    expected: list[str] | None
    passages: list[str]


def reference_labels(labels: tuple[str, ...] | None, references: list[str]) -> tuple[list[str], list[str]]:
    """The label set (the given labels, else the references' own) and the label of each reference; a reference
    that names no label is an error."""
    # Without declared labels, the references' own: one spelling per normalised form, in a stable order.
    label_set = list(labels) if labels else sorted(
        {normalise(reference): reference for reference in reversed(references)}.values(), key=normalise)
    by_form = {normalise(label): label for label in label_set}
    expected = [by_form[form] for form in map(normalise, references) if form in by_form]
    unknown = len(references) - len(expected)
    if unknown:
        raise ValueError(f"{unknown} of {len(references)} test references are not one of evaluate.labels "
                         f"({', '.join(label_set)}); a classification task needs every reference to be a label")
    return label_set, expected


def evaluation_set(validation: list[dict], test: list[dict], params: EvaluateParams,
                   passages: list[str]) -> EvaluationSet:
    # Generation needs a prompt to continue; records without one (plain text) count in the losses only.
    prompted = [record for record in test if record["format"] != "text"]
    if params.max_samples:
        prompted = prompted[:params.max_samples]
    references = [prompt_and_response(record)[1] for record in prompted]
    labels, expected = (reference_labels(params.labels, references) if params.task == "classification"
                        else (None, None))
    return EvaluationSet(validation, test, prompted, references, labels, expected, passages)


def _perplexity(loss: float | None) -> float | None:
    return None if loss is None else rounded(math.exp(loss), PERPLEXITY_DIGITS)


def measure(model, tokenizer, data: EvaluationSet, params: EvaluateParams) -> dict:
    """One model's metrics, generations, per-example scores and general-text perplexity."""
    limit = getattr(model.config, "max_position_embeddings", None)
    prompts = [prompt_and_sequence_ids(tokenizer, record)[0] for record in data.prompted]
    texts = generate(model, tokenizer, prompts, params.decoding, params.max_new_tokens, params.batch_size, limit)
    test_loss = response_loss(model, tokenizer, data.test, params.batch_size, limit)
    metrics = {
        "validation_loss": rounded(response_loss(model, tokenizer, data.validation, params.batch_size, limit)),
        "test_loss": rounded(test_loss),
        "perplexity": _perplexity(test_loss),
        **{name: rounded(value) for name, value in generation_metrics(texts, data.references).items()},
    }
    scores = example_scores(texts, data.references) if texts else {}
    if data.labels is not None and data.expected is not None:
        predicted = [match_label(text, data.labels) for text in texts]
        metrics.update({name: rounded(value) for name, value in
                        classification_metrics(predicted, data.expected, data.labels).items()})
        scores["accuracy"] = [float(p == e) for p, e in zip(predicted, data.expected)]
    general = (_perplexity(response_loss(model, tokenizer, passage_records(data.passages), params.batch_size, limit))
               if data.passages else None)
    return {"metrics": metrics, "texts": texts, "scores": scores, "general_perplexity": general}


def delta(base: float | None, tuned: float | None) -> float | None:
    return None if base is None or tuned is None else rounded(tuned - base)


def primary_metric(name: str, base: dict, tuned: dict) -> dict:
    better = direction(name)
    change = delta(base[name], tuned[name])
    improved = change is not None and (change < 0 if better == "lower" else change > 0)
    return {"name": name, "direction": f"{better} is better", "base": base[name], "tuned": tuned[name],
            "delta": change, "improved": improved}


def comparison_summary(results: dict[str, dict], data: EvaluationSet, params: EvaluateParams) -> dict:
    """The report's evaluation section (with `fairness`, which the report moves to the top level), from what
    `measure` returned for each model."""
    base_metrics, tuned_metrics = results["base"]["metrics"], results["tuned"]["metrics"]
    classification = data.labels is not None
    summary = {
        "base_model": params.model.base,
        "task": params.task,
        "samples": len(data.prompted),
        "test_records": len(data.test),
        "test_records_without_prompt": sum(1 for record in data.test if record["format"] == "text"),
        "base": base_metrics,
        "tuned": tuned_metrics,
        "delta": {name: delta(base_metrics[name], tuned_metrics[name]) for name in base_metrics},
        "directions": {name: direction(name) for name in base_metrics},
        "primary_metric": primary_metric(params.primary_metric, base_metrics, tuned_metrics),
        "definitions": {**LOSS_DEFINITIONS, **DEFINITIONS, **(CLASSIFICATION_DEFINITIONS if classification else {})},
        "decoding": decoding_summary(params.decoding, params.max_new_tokens, params.batch_size),
        "fairness": group_results(data.prompted, {model: results[model]["scores"] for model in MODELS},
                                  params.groups),
    }
    if classification:
        summary["labels"] = data.labels
    if params.forgetting:
        summary["forgetting"] = forgetting_check(results["base"]["general_perplexity"],
                                                 results["tuned"]["general_perplexity"], len(data.passages),
                                                 params.forgetting)
    return summary
