"""Generation metrics against hand-computed values."""
from __future__ import annotations

import pytest

from fttool.metrics import GENERATION_METRICS, generation_metrics, normalise, token_f1


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
