"""Evaluation metrics: text generation, labels, and per-group comparisons, each with a stated definition.

ROUGE through rouge-score and BLEU through sacrebleu, the implementations reviewers know; exact match
and token F1 follow the SQuAD definitions (lower case, no punctuation or articles, whitespace
collapsed), so a reader can reproduce them. Label metrics come from scikit-learn. Per-group values,
differences and ratios come from fairlearn's MetricFrame; their confidence intervals from a seeded
percentile bootstrap that resamples each group within itself, so every resample keeps the group sizes.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

GENERATION_METRICS = ("rouge1", "rouge2", "rougeL", "bleu", "exact_match", "token_f1")
CLASSIFICATION_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "unmatched")
# Metrics with a value per example, which per-group results average.
EXAMPLE_METRICS = ("rouge1", "rouge2", "rougeL", "exact_match", "token_f1")
GROUP_METRICS = (*EXAMPLE_METRICS, "accuracy")
# Every other metric is better when higher.
LOWER_IS_BETTER = frozenset({"validation_loss", "test_loss", "perplexity", "unmatched"})
DEFINITIONS = {
    "rouge1": "mean ROUGE-1 F-measure (Porter stemming), rouge-score",
    "rouge2": "mean ROUGE-2 F-measure (Porter stemming), rouge-score",
    "rougeL": "mean ROUGE-L F-measure (Porter stemming), rouge-score",
    "bleu": "corpus BLEU (sacrebleu defaults, 13a tokenisation), 0-100",
    "exact_match": "share of generations equal to the reference after SQuAD normalisation",
    "token_f1": "mean token-overlap F1 after SQuAD normalisation",
}
CLASSIFICATION_DEFINITIONS = {
    "accuracy": "share of generations naming the reference label (scikit-learn accuracy_score)",
    "precision_macro": "precision averaged over the labels, unweighted (scikit-learn, zero_division=0)",
    "recall_macro": "recall averaged over the labels, unweighted (scikit-learn, zero_division=0)",
    "f1_macro": "F1 averaged over the labels, unweighted (scikit-learn, zero_division=0)",
    "unmatched": "share of generations that name no label; they count as wrong",
    "label_matching": "after SQuAD normalisation, a generation names the label it equals, else the longest "
                      "label it starts with as whole words",
}
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
NO_LABEL = "(no label)"


def direction(metric: str) -> str:
    return "lower" if metric in LOWER_IS_BETTER else "higher"


def normalise(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def token_f1(prediction: str, reference: str) -> float:
    predicted, expected = normalise(prediction).split(), normalise(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def example_scores(predictions: list[str], references: list[str]) -> dict[str, list[float]]:
    """Each metric of EXAMPLE_METRICS for each (prediction, reference) pair."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    rouge = [scorer.score(reference, prediction) for prediction, reference in zip(predictions, references)]
    return {
        **{name: [score[name].fmeasure for score in rouge] for name in ("rouge1", "rouge2", "rougeL")},
        "exact_match": [float(normalise(p) == normalise(r)) for p, r in zip(predictions, references)],
        "token_f1": [token_f1(p, r) for p, r in zip(predictions, references)],
    }


def generation_metrics(predictions: list[str], references: list[str]) -> dict[str, float | None]:
    """Every metric in GENERATION_METRICS; None for all when there is nothing to score."""
    if not predictions:
        return dict.fromkeys(GENERATION_METRICS)
    import sacrebleu

    scores = example_scores(predictions, references)
    means = {name: sum(values) / len(values) for name, values in scores.items()}
    return {name: means[name] if name != "bleu" else sacrebleu.corpus_bleu(predictions, [references]).score
            for name in GENERATION_METRICS}


def match_label(text: str, labels: Sequence[str]) -> str | None:
    """The label a generation names: the one it equals after normalisation, else the longest one it starts
    with as whole words (a model may go on after the label), else None."""
    normalised = normalise(text)
    candidates = [label for label in labels
                  if normalised == normalise(label) or normalised.startswith(normalise(label) + " ")]
    return max(candidates, key=lambda label: len(normalise(label)), default=None)


def classification_metrics(predicted: list[str | None], expected: list[str],
                           labels: list[str]) -> dict[str, float | None]:
    """Every metric in CLASSIFICATION_METRICS; `predicted` holds None where a generation named no label."""
    if not expected:
        return dict.fromkeys(CLASSIFICATION_METRICS)
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    y_pred = [NO_LABEL if label is None else label for label in predicted]
    # Averaged over the declared labels only: a generation that names no label is a miss, not a class.
    precision, recall, f1, _ = precision_recall_fscore_support(expected, y_pred, labels=labels, average="macro",
                                                               zero_division=0)
    return {"accuracy": float(accuracy_score(expected, y_pred)), "precision_macro": float(precision),
            "recall_macro": float(recall), "f1_macro": float(f1),
            "unmatched": sum(label is None for label in predicted) / len(predicted)}


def _mean(y_true, y_pred) -> float:
    """MetricFrame passes each group's per-example scores as y_pred."""
    import numpy as np

    return float(np.mean(y_pred))


def _number(value) -> float | None:
    import math

    value = float(value)
    return value if math.isfinite(value) else None


def _interval(samples, confidence: float) -> list[float | None]:
    import numpy as np

    finite = samples[np.isfinite(samples)]
    if not finite.size:
        return [None, None]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [float(low), float(high)]


def metric_by_group(values: Sequence[float], groups: Sequence[str], compared: set[str], resamples: int,
                    confidence: float, seed: int) -> dict:
    """Mean of per-example `values` overall and per group, with the difference (largest minus smallest)
    and ratio (smallest over largest) between the groups in `compared`, all from fairlearn's MetricFrame;
    a percentile bootstrap interval for each, from `resamples` resamples drawn with `seed`."""
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import MetricFrame

    scores = np.asarray(values, dtype=float)
    features = pd.Series(list(groups), name="group")
    frame = MetricFrame(metrics=_mean, y_true=scores, y_pred=scores, sensitive_features=features)
    names = sorted(str(group) for group in frame.by_group.index)  # sorted, so draws do not depend on input order
    rng = np.random.default_rng(seed)
    boot = {}
    for name in names:
        members = scores[(features == name).to_numpy()]
        boot[name] = members[rng.integers(0, members.size, size=(resamples, members.size))].mean(axis=1)
    result: dict[str, Any] = {
        "overall": _number(frame.overall),
        "by_group": {name: {"value": _number(frame.by_group[name]), "ci": _interval(boot[name], confidence)}
                     for name in names},
        "compared_groups": [name for name in names if name in compared],
        "difference": None, "difference_ci": [None, None], "ratio": None, "ratio_ci": [None, None],
    }
    if len(result["compared_groups"]) < 2:
        return result
    mask = features.isin(compared).to_numpy()
    between = MetricFrame(metrics=_mean, y_true=scores[mask], y_pred=scores[mask],
                          sensitive_features=features[mask].reset_index(drop=True))
    stacked = np.vstack([boot[name] for name in result["compared_groups"]])
    highest, lowest = stacked.max(axis=0), stacked.min(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(highest > 0, lowest / highest, np.nan)
    result.update(difference=_number(between.difference()), difference_ci=_interval(highest - lowest, confidence),
                  # fairlearn divides by zero when every compared group scores 0; no ratio exists then.
                  ratio=_number(between.ratio()) if between.group_max() > 0 else None,
                  ratio_ci=_interval(ratios, confidence))
    return result
