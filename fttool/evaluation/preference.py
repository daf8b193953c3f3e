"""The tuned model against its base on held-out preference data: log-likelihoods of chosen and rejected responses.

Each response is scored as training formats it (fttool.data.preference.response_record, the prompt masked):
log p(response | prompt), summed over its tokens. A model's implicit reward, as DPO defines it with the base as
reference, is r(x, y) = beta (log p_model(y|x) - log p_base(y|x)). Per model:
- preference_accuracy: the share of test pairs whose chosen response the implicit reward ranks above the rejected
  one, a tie counting half (KTO records: the reward's sign matches the label). The base's rewards are all zero, so
  it ranks at chance, 0.5: a tuned model scores above it only by preferring chosen responses more than the base;
- reward_margin: the mean of r(chosen) - r(rejected) over beta, in nats (0 for the base);
- log_likelihood_margin: the mean of log p(chosen) - log p(rejected), the model's own ranking (length-sensitive);
- test_loss, validation_loss: mean cross-entropy per token of the chosen responses (SFT's loss, on what is wanted).
Per-pair scores feed the per-group comparison with bootstrap intervals, as the SFT evaluation's do.
"""
from __future__ import annotations

import dataclasses
from statistics import fmean

from fttool.data.preference import response_record
from fttool.evaluation.group_comparison import group_results
from fttool.evaluation.losses import mean_token_loss, response_token_losses
from fttool.evaluation.model_pair import MODELS
from fttool.evaluation.rounding import rounded
from fttool.evaluation.settings import EvaluateParams
from fttool.training.preference_settings import PER_PAIR_METRICS, PREFERENCE_METRICS

DEFINITIONS = {
    "preference_accuracy": "share of test pairs whose chosen response the implicit reward beta (log p_model - "
                           "log p_base) ranks above the rejected one, ties counting half (the base: 0.5); KTO "
                           "records count when the reward's sign matches the label",
    "reward_margin": "mean of r(chosen) - r(rejected) over beta, in nats (the base: 0)",
    "log_likelihood_margin": "mean of log p(chosen) - log p(rejected), summed over response tokens, in nats",
    "test_loss": "mean cross-entropy per token of the chosen responses of the test split",
    "validation_loss": "mean cross-entropy per token of the chosen responses of the validation split",
}


def _responses(record: dict) -> list[tuple[str, bool]]:
    """(response, desirable) of a record: chosen and rejected of a pair, or KTO's response and label."""
    if record["format"] == "kto":
        return [(record["completion"], record["label"])]
    return [(record["chosen"], True), (record["rejected"], False)]


def response_log_likelihoods(model, tokenizer, records: list[dict], batch_size: int,
                             limit: int | None) -> list[list[tuple[float, int]]]:
    """Per record, (log-likelihood in nats, tokens) of each of its responses, in _responses order."""
    chats = [response_record(record, text) for record in records for text, _ in _responses(record)]
    losses = response_token_losses(model, tokenizer, chats, batch_size, limit)
    scored, position = [], 0
    for record in records:
        count = len(_responses(record))
        scored.append([(-total, tokens) for total, tokens in losses[position:position + count]])
        position += count
    return scored


def _chosen_loss(records: list[dict], scored: list[list[tuple[float, int]]]) -> float | None:
    wanted = [(-logp, tokens) for record, scores in zip(records, scored)
              for (_, desirable), (logp, tokens) in zip(_responses(record), scores) if desirable]
    return mean_token_loss(wanted)


def measure_preferences(model, tokenizer, test: list[dict], validation: list[dict], params: EvaluateParams) -> dict:
    """One model's log-likelihoods of every test response, its losses and its own log-likelihood margin."""
    limit = getattr(model.config, "max_position_embeddings", None)
    scored = response_log_likelihoods(model, tokenizer, test, params.batch_size, limit)
    validation_scored = response_log_likelihoods(model, tokenizer, validation, params.batch_size, limit)
    margins = [scores[0][0] - scores[1][0] for record, scores in zip(test, scored) if record["format"] == "preference"]
    metrics = {"validation_loss": rounded(_chosen_loss(validation, validation_scored)),
               "test_loss": rounded(_chosen_loss(test, scored)),
               "log_likelihood_margin": rounded(fmean(margins)) if margins else None}
    return {"metrics": metrics, "log_likelihoods": scored, "scores": {"log_likelihood_margin": margins}}


def _ranked(reward_gap: float) -> float:
    return 1.0 if reward_gap > 0 else 0.5 if reward_gap == 0 else 0.0


def reward_scores(test: list[dict], base: list, model: list) -> tuple[list[float], list[float]]:
    """Per record, whether the implicit reward (base as reference) ranks it right (a tie: 0.5), and per pair the
    reward margin over beta."""
    ranked, margins = [], []
    for record, base_scores, model_scores in zip(test, base, model):
        rewards = [m[0] - b[0] for b, m in zip(base_scores, model_scores)]
        if record["format"] == "kto":
            ranked.append(_ranked(rewards[0] if record["label"] else -rewards[0]))
        else:
            ranked.append(_ranked(rewards[0] - rewards[1]))
            margins.append(rewards[0] - rewards[1])
    return ranked, margins


def add_reward_metrics(results: dict[str, dict], test: list[dict]) -> None:
    """Each model's preference_accuracy and reward_margin, against the base's log-likelihoods."""
    base = results["base"]["log_likelihoods"]
    for result in results.values():
        ranked, margins = reward_scores(test, base, result["log_likelihoods"])
        result["metrics"]["preference_accuracy"] = rounded(fmean(ranked)) if ranked else None
        result["metrics"]["reward_margin"] = rounded(fmean(margins)) if margins else None
        result["scores"].update(preference_accuracy=ranked, reward_margin=margins)


def preference_primary_metric(name: str, base: dict, tuned: dict) -> dict:
    if name not in PREFERENCE_METRICS:
        raise ValueError(f"evaluate: primary_metric {name} is not measured on preference data; use one of "
                         f"{', '.join(PREFERENCE_METRICS)}")
    better = PREFERENCE_METRICS[name]
    change = None if base[name] is None or tuned[name] is None else rounded(tuned[name] - base[name])
    improved = change is not None and (change < 0 if better == "lower" else change > 0)
    return {"name": name, "direction": f"{better} is better", "base": base[name], "tuned": tuned[name],
            "delta": change, "improved": improved}


def preference_summary(results: dict[str, dict], test: list[dict], params: EvaluateParams) -> dict:
    """The report's evaluation section (with `fairness`) for preference data."""
    base, tuned = results["base"]["metrics"], results["tuned"]["metrics"]
    # Margins exist for pairs only, so a test split with KTO records compares groups by accuracy alone.
    comparable = PER_PAIR_METRICS if all(record["format"] == "preference" for record in test) else PER_PAIR_METRICS[:1]
    groups = dataclasses.replace(params.groups, metrics=tuple(
        metric for metric in params.groups.metrics if metric in comparable) or comparable[:1])
    return {
        "base_model": params.model.base,
        "task": "preference",
        "samples": len(test),
        "test_records": len(test),
        "test_records_without_prompt": 0,
        "base": base,
        "tuned": tuned,
        "delta": {name: None if base[name] is None or tuned[name] is None else rounded(tuned[name] - base[name])
                  for name in base},
        "directions": {name: PREFERENCE_METRICS[name] for name in base},
        "primary_metric": preference_primary_metric(params.primary_metric, base, tuned),
        "definitions": DEFINITIONS,
        "fairness": group_results(test, {model: results[model]["scores"] for model in MODELS}, groups),
    }


def evaluate_preferences(models, tokenizer, validation: list[dict], test: list[dict], params: EvaluateParams,
                         predictions_path) -> dict:
    """Measure ("base", model) then ("tuned", model) as fttool.evaluation.model_pair yields them; write each test
    record's log-likelihoods (ids and numbers, never text) to `predictions_path`; the evaluation section."""
    from fttool.data.records import write_jsonl

    results = {side: measure_preferences(model, tokenizer, test, validation, params) for side, model in models}
    add_reward_metrics(results, test)
    write_jsonl(predictions_path, (
        {"id": record["id"], "base_log_likelihoods": [round(logp, 4) for logp, _ in base],
         "tuned_log_likelihoods": [round(logp, 4) for logp, _ in tuned]}
        for record, base, tuned in zip(test, results["base"]["log_likelihoods"], results["tuned"]["log_likelihoods"])))
    return preference_summary(results, test, params)
