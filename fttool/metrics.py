"""Text-generation metrics of predictions against references, each a mean over the examples.

ROUGE through rouge-score and BLEU through sacrebleu, the implementations reviewers know; exact match
and token F1 follow the SQuAD definitions (lower case, no punctuation or articles, whitespace
collapsed), so a reader can reproduce them.
"""
from __future__ import annotations

import re
import string
from collections import Counter

GENERATION_METRICS = ("rouge1", "rouge2", "rougeL", "bleu", "exact_match", "token_f1")
DEFINITIONS = {
    "rouge1": "mean ROUGE-1 F-measure (Porter stemming), rouge-score",
    "rouge2": "mean ROUGE-2 F-measure (Porter stemming), rouge-score",
    "rougeL": "mean ROUGE-L F-measure (Porter stemming), rouge-score",
    "bleu": "corpus BLEU (sacrebleu defaults, 13a tokenisation), 0-100",
    "exact_match": "share of generations equal to the reference after SQuAD normalisation",
    "token_f1": "mean token-overlap F1 after SQuAD normalisation",
}
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


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


def generation_metrics(predictions: list[str], references: list[str]) -> dict[str, float | None]:
    """Every metric in GENERATION_METRICS; None for all when there is nothing to score."""
    if not predictions:
        return dict.fromkeys(GENERATION_METRICS)
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    rouge = [scorer.score(reference, prediction) for prediction, reference in zip(predictions, references)]
    count = len(predictions)
    return {
        **{name: sum(score[name].fmeasure for score in rouge) / count for name in ("rouge1", "rouge2", "rougeL")},
        "bleu": sacrebleu.corpus_bleu(predictions, [references]).score,
        "exact_match": sum(normalise(p) == normalise(r) for p, r in zip(predictions, references)) / count,
        "token_f1": sum(token_f1(p, r) for p, r in zip(predictions, references)) / count,
    }
