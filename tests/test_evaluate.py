"""The evaluate stage: the tuned model against its base, after real LoRA training on the demo model."""
from __future__ import annotations

import math

import pytest

from fttool.demo_model import build_demo_model
from fttool.records import prompt_and_response, read_jsonl
from fttool.stages.evaluate import METRICS, _loss_example
from test_train import records, train_params

MODEL = {"base": "demo:tiny-llama", "license": "apache-2.0", "trust_remote_code": False}


def evaluate_params(**overrides) -> dict:
    return {"max_new_tokens": 6, "max_samples": 0, "batch_size": 4, "model": MODEL} | overrides


def test_loss_masks_the_prompt_and_ends_with_eos(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_demo_model(tmp_path / "demo"))
    prompt, response = prompt_and_response(records(1)[0])
    ids, labels = _loss_example(tokenizer, prompt, response, None)
    prompt_length = len(tokenizer(prompt)["input_ids"])
    assert labels[:prompt_length] == [-100] * prompt_length
    assert labels[prompt_length:] == ids[prompt_length:] and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[prompt_length:], skip_special_tokens=True) == response
    assert _loss_example(tokenizer, prompt, response, 5) == (ids[:5], labels[:5])


@pytest.mark.slow
def test_evaluate_compares_tuned_with_base(run_stage):
    test = records(5, offset=30)
    _, trained = run_stage("train", train_params("demo:tiny-llama", max_steps=12),
                           {"train": records(24), "validation": records(6, offset=24)})
    result, outputs = run_stage("evaluate", evaluate_params(),
                                {"validation": records(6, offset=24), "test": test, "model": trained["model"]})

    summary = result.summary
    assert summary["samples"] == summary["test_records"] == len(test) and summary["test_records_without_prompt"] == 0
    for model in ("base", "tuned"):
        assert set(summary[model]) == set(METRICS)
        assert all(isinstance(v, float) and math.isfinite(v) for v in summary[model].values()), summary[model]
        assert summary[model]["perplexity"] == pytest.approx(math.exp(summary[model]["test_loss"]), rel=1e-4)
        assert 0 <= summary[model]["rougeL"] <= 1
    for metric in METRICS:
        assert summary["delta"][metric] == pytest.approx(summary["tuned"][metric] - summary["base"][metric], abs=1e-5)
    # The adapter is applied to "tuned" only, and training on look-alike records lowers the held-out loss.
    assert summary["tuned"]["test_loss"] < summary["base"]["test_loss"]
    assert summary["decoding"]["strategy"] == "greedy" and summary["decoding"]["max_new_tokens"] == 6

    predictions = list(read_jsonl(outputs["predictions"]))
    assert [p["id"] for p in predictions] == [r["id"] for r in test]
    assert all(p["reference_id"] == p["id"] and isinstance(p["base"], str) and isinstance(p["tuned"], str)
               for p in predictions)

    # max_samples caps generation (and so the predictions), not the losses.
    capped, _ = run_stage("evaluate", evaluate_params(max_samples=2),
                          {"validation": records(6, offset=24), "test": test, "model": trained["model"]})
    assert capped.summary["samples"] == 2 and len(list(read_jsonl(outputs["predictions"]))) == 2
    assert capped.summary["tuned"]["test_loss"] == summary["tuned"]["test_loss"]
