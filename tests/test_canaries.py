"""Memorisation canaries: planting them in the train split, the exposure measure, and real memorisation.

The memorisation test trains a tiny Llama whose weights are initialised large enough for LoRA to move
its predictions within a few dozen steps (the demo model's tiny initial weights cap every logit near
zero, so it cannot memorise anything quickly), and checks that heavily repeated canaries end up far
more exposed than secrets that were never planted.
"""
from __future__ import annotations

import math
import textwrap

import pytest
from conftest import alpaca
from support.evaluation import compiled_train_params

from fttool.data.records import read_jsonl
from fttool.evaluation.canaries import CANARY_SOURCE, SECRET_SPACE, draw_secrets, exposures, planted_counts, secret_text
from fttool.evaluation.settings import CanaryParams, MemorisationParams
from fttool.pipeline.params import build
from fttool.recipe import RecipeInvalid, compile_recipe
from fttool.recipe.schema import load_schema

PARAMS = CanaryParams(canaries=3, repetitions=4, references=63, max_exposure_bits=5, seed=11)


def records(n: int) -> list[dict]:
    return [alpaca(f"How do I renew card number {i}?", f"Open the app and renew card {i} in settings.")
            for i in range(n)]


def test_secrets_are_seeded_distinct_and_canaries_are_never_references():
    canaries, controls, references = draw_secrets(3, 5, 200)
    assert (canaries, controls, references) == draw_secrets(3, 5, 200)
    assert draw_secrets(4, 5, 200)[0] != canaries
    everything = canaries + controls + references
    assert len(everything) == len(set(everything)) == 210 and all(0 <= s < SECRET_SPACE for s in everything)
    assert secret_text(7391) == "My account code is 0 0 7 3 9 1."


def test_canaries_are_added_to_train_repeated_with_ids_that_hide_the_secret(run_stage):
    train = records(5)
    result, outputs = run_stage("canaries", PARAMS, {"train": train})
    written = list(read_jsonl(outputs["train"]))
    assert written[:5] == train
    planted = written[5:]
    assert result.added == {"canary": 12} and len(planted) == 12
    assert planted_counts(outputs["train"]) == {0: 4, 1: 4, 2: 4}
    canaries, _, _ = draw_secrets(PARAMS.seed, 3, 63)
    for record in planted:
        secret = secret_text(canaries[record["meta"]["canary"]])
        assert record["source"] == CANARY_SOURCE and record["completion"] == secret
        digits = secret.split(" is ")[1].replace(" ", "").rstrip(".")
        assert digits not in record["id"]
    assert len({record["id"] for record in planted}) == 12


def test_exposure_is_log2_of_the_reference_count_minus_log2_of_the_rank():
    references = [float(value) for value in range(1, 8)]  # 7 references: at most log2(8) = 3 bits
    (top, bottom, tied) = exposures([0.5, 100.0, 3.0], references)
    assert top == (1, 3.0)
    assert bottom == (8, 0.0)
    assert tied == (3.5, pytest.approx(3 - math.log2(3.5)))  # two references likelier, one tied: mid-rank
    (flat,) = exposures([2.0], [2.0] * 7)  # a model that cannot tell the secrets apart
    assert flat == (4.5, pytest.approx(3 - math.log2(4.5)))


RECIPE = """
name: canaries
data:
  sources: [{path: records.jsonl, format: alpaca}]
  split: {train: 0.6, validation: 0.2, test: 0.2}
augment: [{method: synonym, ratio: 0.5}]
model: {base: "demo:tiny-llama"}
train: {max_steps: 2}
evaluate: {}
"""


def write_recipe(tmp_path, extra: str):
    (tmp_path / "records.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(RECIPE).lstrip() + textwrap.dedent(extra).lstrip())
    return path


def test_canaries_are_planted_after_augmentation_into_the_final_train_file_only(tmp_path):
    plan = compile_recipe(write_recipe(tmp_path, "memorisation: {canaries: 2}\n"))
    names = [stage.name for stage in plan.stages]
    assert names.index("augment") < names.index("canaries") < names.index("train")
    assert names.index("train") < names.index("memorisation")
    stages = {stage.name: stage for stage in plan.stages}
    assert dict(stages["canaries"].outputs) == {"train": "data/train.jsonl"}
    assert dict(stages["augment"].outputs)["train"].startswith("work/")
    assert dict(stages["train"].inputs)["train"] == "data/train.jsonl"
    assert "data/test.jsonl" == dict(stages["evaluate"].inputs)["test"]
    assert stages["memorisation"].params.canaries == 2 and stages["memorisation"].params.model.base
    assert stages["memorisation"].params.seed == stages["canaries"].params.seed
    assert isinstance(stages["canaries"].params, CanaryParams)

    without = compile_recipe(write_recipe(tmp_path, "memorisation: {enabled: false}\n"))
    assert {"canaries", "memorisation"} <= set(without.skipped)


def test_memorisation_recipe_errors_are_reported_together_with_positions(tmp_path):
    path = write_recipe(tmp_path, "memorisation: {references: 100, max_exposure_bits: 10}\n")
    path.write_text(path.read_text().replace("train: {max_steps: 2}\nevaluate: {}\n", ""))
    with pytest.raises(RecipeInvalid) as caught:
        compile_recipe(path)
    messages = [str(error) for error in caught.value.errors]
    assert any("needs a 'train' section" in m for m in messages), messages
    limit = next(m for m in messages if "could never be reached" in m)
    assert "recipe.yaml:7:28:" in limit and "use at least 1024 references" in limit


def test_memorisation_needs_a_lora_adapter_to_switch_off(tmp_path):
    path = write_recipe(tmp_path, "memorisation: {}\n")
    path.write_text(path.read_text().replace("train: {max_steps: 2}", "train: {max_steps: 2, method: full}"))
    with pytest.raises(RecipeInvalid) as caught:
        compile_recipe(path)
    assert ("the memorisation check compares the LoRA adapter switched on and off, so it needs train.method lora "
            "or qlora, not full") in [error.message for error in caught.value.errors]


@pytest.mark.slow
def test_heavily_repeated_canaries_are_more_exposed_than_unplanted_secrets(run_stage, tmp_path):
    import torch
    from jsonschema import Draft202012Validator
    from transformers import AutoConfig, LlamaForCausalLM

    from fttool.training.demo_model import build_demo_model

    base = build_demo_model(tmp_path / "models" / "base")
    config = AutoConfig.from_pretrained(base)
    config.initializer_range = 0.2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(base)
    model = {"base": "./models/base", "revision": None, "license": "apache-2.0", "trust_remote_code": False}
    params = build(MemorisationParams, {"canaries": 4, "repetitions": 16, "references": 255, "max_exposure_bits": 6,
                                        "seed": 0, "model": model})

    _, planted = run_stage("canaries", params, {"train": records(16)})
    train_params = compiled_train_params(tmp_path, "{max_steps: 16, learning_rate: 0.02, batch_size: 8, "
                                                   "lora: {r: 16, alpha: 32, dropout: 0.0}}",
                                         model='{base: "./models/base", license: apache-2.0}')
    _, trained = run_stage("train", train_params, {"train": planted["train"], "validation": records(4)})
    result, _ = run_stage("memorisation", params, {"train": planted["train"], "model": trained["model"]})

    summary = result.summary
    report_schema = load_schema("report")
    schema = {**report_schema["properties"]["memorisation"], "$defs": report_schema["$defs"]}
    assert not list(Draft202012Validator(schema).iter_errors(summary))
    canary_bits = [c["exposure_bits"] for c in summary["canaries"]]
    assert summary["max_measurable_bits"] == 8.0 and all(0 <= bits <= 8 for bits in canary_bits)
    # Memorised: the planted secrets rank near the top, secrets never seen near the middle.
    assert summary["mean_exposure_bits"] > summary["controls"]["mean_exposure_bits"] + 3, summary
    assert summary["mean_exposure_bits"] > summary["base_model"]["canaries"]["mean_exposure_bits"] + 3, summary
    assert summary["status"] == "fail" and summary["max_exposure_bits"] >= params.max_exposure_bits
    assert "secret" not in str(summary["canaries"]) and len(summary["canaries"]) == 4
