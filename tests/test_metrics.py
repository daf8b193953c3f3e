"""Generation, label and per-group metrics against hand-computed values."""
from __future__ import annotations

import pytest

from fttool.evaluation.metrics import (
    CLASSIFICATION_METRICS,
    EXAMPLE_METRICS,
    GENERATION_METRICS,
    GROUP_METRICS,
    classification_metrics,
    direction,
    example_scores,
    generation_metrics,
    match_label,
    metric_by_group,
    normalise,
    token_f1,
)


def test_normalise_follows_squad():
    assert normalise("The  Card, is BLOCKED!") == "card is blocked"


def test_token_f1_by_hand():
    # prediction: card is blocked (3 tokens), reference: your card is now blocked (5); overlap 3
    assert token_f1("The card is blocked.", "Your card is now blocked") == pytest.approx(2 * 1 * 0.6 / 1.6)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0


def test_identical_texts_score_perfectly_and_unrelated_ones_do_not():
    references = ["your card is blocked until you call us", "the refund arrives within five working days"]
    perfect = generation_metrics(references, references)
    assert perfect == pytest.approx({"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0, "bleu": 100.0, "exact_match": 1.0,
                                     "token_f1": 1.0})
    unrelated = generation_metrics(["purple elephants sing", "quantum soup"], references)
    assert unrelated["exact_match"] == 0.0 and unrelated["token_f1"] == 0.0 and unrelated["rouge1"] == 0.0
    assert unrelated["bleu"] < 1.0


def test_partial_overlap_is_between():
    scores = generation_metrics(["your card is blocked"], ["your card is blocked until you call us"])
    assert scores["exact_match"] == 0.0
    assert 0.0 < scores["rougeL"] < 1.0 and scores["rouge1"] == pytest.approx(2 * 1 * 0.5 / 1.5)


def test_nothing_to_score():
    assert generation_metrics([], []) == dict.fromkeys(GENERATION_METRICS)


# -- labels --------------------------------------------------------------------------------------
def test_match_label_normalises_and_prefers_the_longest_label():
    labels = ["refund", "refund denied", "complaint"]
    assert match_label("Refund!", labels) == "refund"
    assert match_label("The refund denied, sorry", labels) == "refund denied"  # articles and punctuation ignored
    assert match_label("complaint about fees", labels) == "complaint"
    assert match_label("refunds", labels) is None and match_label("", labels) is None


def test_classification_metrics_by_hand():
    # expected a b b b, predicted a b (none) a. Precision: a 1/2, b 1/1; recall: a 1/1, b 1/3.
    scores = classification_metrics(["a", "b", None, "a"], ["a", "b", "b", "b"], ["a", "b"])
    f1_a, f1_b = 2 * 0.5 * 1 / 1.5, 2 * 1 * (1 / 3) / (4 / 3)
    assert scores == pytest.approx({"accuracy": 0.5, "precision_macro": 0.75, "recall_macro": (1 + 1 / 3) / 2,
                                    "f1_macro": (f1_a + f1_b) / 2, "unmatched": 0.25})
    assert classification_metrics([], [], ["a", "b"]) == dict.fromkeys(CLASSIFICATION_METRICS)


def test_directions():
    assert direction("test_loss") == direction("perplexity") == direction("unmatched") == "lower"
    assert direction("rougeL") == direction("f1_macro") == "higher"


def test_schema_offers_exactly_the_metrics_computed():
    from fttool.evaluation.comparison import LOSS_METRICS
    from fttool.recipe.schema import load_schema
    from fttool.training.preference_settings import PER_PAIR_METRICS

    evaluate = load_schema()["properties"]["evaluate"]["properties"]
    assert evaluate["primary_metric"]["enum"] == [*LOSS_METRICS, *GENERATION_METRICS, *CLASSIFICATION_METRICS,
                                                  *PER_PAIR_METRICS]
    assert evaluate["groups"]["properties"]["metrics"]["items"]["enum"] == [*GROUP_METRICS, *PER_PAIR_METRICS]


def test_example_scores_average_to_the_generation_metrics():
    predictions, references = ["your card is blocked", "refund soon"], ["your card is blocked now", "refund soon"]
    scores, means = example_scores(predictions, references), generation_metrics(predictions, references)
    assert scores["exact_match"] == [0.0, 1.0] and scores["token_f1"] == pytest.approx([2 * 1 * 0.8 / 1.8, 1.0])
    for name in EXAMPLE_METRICS:
        assert means[name] == pytest.approx(sum(scores[name]) / 2)


# -- groups ----------------------------------------------------------------------------------------
VALUES = [1.0, 0.0, 1.0, 1.0, 0.5, 0.5, 0.0, 0.2, 0.9]
GROUPS = ["a", "a", "a", "a", "b", "b", "b", "b", "c"]  # a: mean 0.75, b: mean 0.3, c: one record


def test_metric_by_group_by_hand():
    result = metric_by_group(VALUES, GROUPS, {"a", "b"}, resamples=500, confidence=0.95, seed=0)
    assert result["overall"] == pytest.approx(sum(VALUES) / len(VALUES))
    assert {g: v["value"] for g, v in result["by_group"].items()} == pytest.approx({"a": 0.75, "b": 0.3, "c": 0.9})
    # Only the compared groups enter the difference and ratio, so c (0.9) does not.
    assert result["compared_groups"] == ["a", "b"]
    assert result["difference"] == pytest.approx(0.45) and result["ratio"] == pytest.approx(0.4)
    for point in result["by_group"].values():
        low, high = point["ci"]
        assert low <= point["value"] <= high
    assert result["by_group"]["c"]["ci"] == [0.9, 0.9]  # one record: every resample is the same
    a_low, a_high = result["by_group"]["a"]["ci"]
    assert 0.0 <= a_low < 0.75 < a_high <= 1.0  # resampling {1, 0, 1, 1} varies the mean
    low, high = result["difference_ci"]
    assert low <= 0.45 <= high
    low, high = result["ratio_ci"]
    assert 0.0 <= low <= 0.4 <= high <= 1.0


def test_metric_by_group_is_seeded():
    first = metric_by_group(VALUES, GROUPS, {"a", "b"}, resamples=300, confidence=0.9, seed=7)
    assert metric_by_group(VALUES, GROUPS, {"a", "b"}, resamples=300, confidence=0.9, seed=7) == first
    other = metric_by_group(VALUES, GROUPS, {"a", "b"}, resamples=300, confidence=0.9, seed=8)
    assert other["by_group"]["a"]["ci"] != first["by_group"]["a"]["ci"] or \
        other["difference_ci"] != first["difference_ci"]


def test_metric_by_group_without_two_compared_groups_or_with_all_zero_scores():
    single = metric_by_group(VALUES, GROUPS, {"a"}, resamples=100, confidence=0.95, seed=0)
    assert single["difference"] is None and single["ratio"] is None and single["difference_ci"] == [None, None]
    zeros = metric_by_group([0.0] * 4, ["a", "a", "b", "b"], {"a", "b"}, resamples=100, confidence=0.95, seed=0)
    assert zeros["difference"] == 0.0 and zeros["ratio"] is None and zeros["ratio_ci"] == [None, None]
