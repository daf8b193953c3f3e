"""Differentially private LoRA training with real opacus, on tiny models and data (CPU, seconds)."""
from __future__ import annotations

import dataclasses
import json
import math
import random
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ACTIONS, TOPICS, write_support_project

from fttool.cli import cli
from fttool.data.records import read_jsonl
from fttool.pipeline.plan import thaw
from fttool.recipe import compile_recipe
from fttool.report import validate_report
from fttool.training.backends.dp_sgd import (
    check_trainable_layers,
    lora_model,
    per_unit_grad_samples,
    run_dp_sgd,
    unchanged_tensors,
)
from fttool.training.private import default_delta, epsilon_after, unit_keys
from fttool.training.settings import LoraSettings

LORA = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj"))


def tiny_llama(tied: bool):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                         tie_word_embeddings=tied, pad_token_id=0)
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def token_units(count: int) -> list[list[dict]]:
    """One random 12-token example per unit, its first 4 tokens masked like a prompt."""
    generator = random.Random(0)
    units = []
    for _ in range(count):
        ids = [generator.randrange(1, 64) for _ in range(12)]
        units.append([{"input_ids": ids, "labels": [-100] * 4 + ids[4:]}])
    return units


def dp_sgd(model, units, **overrides):
    settings = dict(pad_id=0, batch_size=4, gradient_accumulation_steps=2, learning_rate=0.01, planned_steps=6,
                    noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5, accountant="prv", epsilon_budget=None,
                    seed=0)
    return run_dp_sgd(model, units, **(settings | overrides))


def test_tied_embeddings_stay_frozen_and_only_lora_weights_move():
    import torch

    model = tiny_llama(tied=True)
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    embedding = model.get_input_embeddings().weight.detach().clone()
    adapted = lora_model(model, LORA, "cpu")
    check_trainable_layers(adapted)
    initial = {name: p.detach().clone() for name, p in adapted.named_parameters() if p.requires_grad}
    assert sorted(unchanged_tensors(initial, adapted)) == sorted(initial)  # the check sees untouched weights

    run = dp_sgd(adapted, token_units(20))
    assert run.steps == 6 and not run.stopped_by_budget
    assert unchanged_tensors(initial, adapted) == []
    assert torch.equal(model.get_input_embeddings().weight, embedding)
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight

    model.get_input_embeddings().weight.requires_grad_(True)
    with pytest.raises(ValueError, match=r"only LoRA weights may train.*embed_tokens.*tied embedding"):
        check_trainable_layers(adapted)


def test_a_layer_without_grad_sampler_is_named():
    lora = dataclasses.replace(LORA, target_modules=("embed_tokens", "q_proj"))
    adapted = lora_model(tiny_llama(tied=False), lora, "cpu")
    with pytest.raises(ValueError, match=r"no per-example gradient.*model\.embed_tokens\.lora_embedding_A"
                                         r".*train\.lora\.target_modules"):
        check_trainable_layers(adapted)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # the inputs need no gradient here
def test_a_units_examples_are_one_gradient_for_clipping():
    """opacus' per-example gradients of the mean loss are each example's own gradient; a unit gets their sum."""
    import torch
    from opacus import GradSampleModule

    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    inputs, targets = torch.randn(4, 3), torch.randn(4, 2)
    own = []
    for row in range(4):  # each example's gradient, one at a time
        layer.zero_grad()
        ((layer(inputs[row:row + 1]) - targets[row:row + 1]) ** 2).sum().backward()
        own.append(layer.weight.grad.clone())
    model = GradSampleModule(layer, loss_reduction="mean")
    ((model(inputs) - targets) ** 2).sum(dim=1).mean().backward()
    per_unit_grad_samples([layer.weight], torch.tensor([0, 0, 1, 0]), 2)
    assert layer.weight.grad_sample.shape == (2, 2, 3)
    assert torch.allclose(layer.weight.grad_sample[0], own[0] + own[1] + own[3], atol=1e-6)
    assert torch.allclose(layer.weight.grad_sample[1], own[2], atol=1e-6)


def test_training_stops_before_the_budget_is_exceeded():
    units = token_units(40)
    run = dp_sgd(lora_model(tiny_llama(tied=False), LORA, "cpu"), units, planned_steps=40, epsilon_budget=5.0)
    sample_rate = 1 / math.ceil(40 / 8)
    assert run.sample_rate == sample_rate
    assert run.stopped_by_budget and 0 < run.steps < 40
    assert run.epsilon <= 5.0
    assert epsilon_after(run.steps + 1, 1.0, sample_rate, 1e-5, "prv") > 5.0
    assert run.epsilons["rdp"] >= run.epsilons["prv"]  # RDP's bound is the looser one


def test_augmented_copies_belong_to_their_source_record():
    records = [{"id": "a"}, {"id": "b"}, {"id": "a1", "parent_id": "a"}, {"id": "a1x", "parent_id": "a1"},
               {"id": "b1", "parent_id": "b"}, {"id": "c"}]
    assert unit_keys(records) == ["a", "b", "a", "a", "b", "c"]


RECIPE = """\
name: private
data:
  sources:
    - {path: records.jsonl, format: alpaca, tag: faq}
  split: {train: 0.6, validation: 0.2, test: 0.2, seed: 1}
  dedup: {exact: true, near: false}
%s
model: {base: "demo:tiny-llama", license: apache-2.0}
train:
  lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}
  batch_size: 4
  gradient_accumulation_steps: 2
  max_seq_length: 96
"""


def write_recipe(root: Path, train: str, extra: str = "") -> Path:
    """A recipe over 36 FAQ records; `train` adds keys to its train section, `extra` adds sections."""
    return write_support_project(root, RECIPE % extra + textwrap.indent(textwrap.dedent(train).strip(), "  ") + "\n")


def test_recipe_errors_and_the_delta_rule_at_validate_time(tmp_path):
    runner = CliRunner()
    bad = write_recipe(tmp_path, """
    method: full
    privacy: {target_epsilon: 4, noise_multiplier: 1.1}
    """)
    result = runner.invoke(cli, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "supports method lora only, not full" in result.output
    assert "set exactly one of target_epsilon" in result.output and "found target_epsilon and noise_multiplier" \
        in result.output
    assert all(line.startswith(f"{bad}:") for line in result.output.splitlines())

    neither = write_recipe(tmp_path, "privacy: {accountant: rdp}")
    result = runner.invoke(cli, ["validate", str(neither)])
    assert result.exit_code == 2 and "found neither" in result.output and f"{neither}:14:" in result.output

    with_delta = write_recipe(tmp_path, "privacy: {target_epsilon: 4, delta: 0.001}")
    result = runner.invoke(cli, ["validate", str(with_delta)])
    assert result.exit_code == 0
    assert "must stay below 1/N" in result.output and "N >= 1000 warns" in result.output


def test_noise_multiplier_mode_measures_epsilon_and_warns_about_a_large_delta(tmp_path, run_stage, capfd):
    plan = compile_recipe(write_recipe(tmp_path, """
    max_steps: 3
    privacy: {noise_multiplier: 1.2, delta: 0.05, accountant: rdp}
    """))
    params = thaw(next(stage.params for stage in plan.stages if stage.name == "train"))
    train = [{"id": f"r{i}", "source": "faq", "format": "alpaca", "instruction": f"How do I {a} my {t}?",
              "input": "", "output": f"To {a} your {t}, use the app.", "meta": {}}
             for i, (a, t) in enumerate((a, t) for a in ACTIONS for t in TOPICS)]
    result, outputs = run_stage("train", params, {"train": train[:24], "validation": train[24:28]})
    privacy = result.summary["privacy"]
    assert privacy["noise_multiplier"] == 1.2 and privacy["noise_source"] == "recipe"
    assert privacy["target_epsilon"] is None and privacy["steps"] == privacy["planned_steps"] == 3
    assert privacy["units"] == 24 and privacy["unit"] == "record" and privacy["max_examples_per_unit"] == 1
    assert privacy["sample_rate"] == 1 / 3 and privacy["sampler"] == "poisson"
    assert privacy["accountant"] == "rdp" and privacy["epsilon"] == privacy["epsilons"]["rdp"]
    assert privacy["epsilon"] == pytest.approx(epsilon_after(3, 1.2, 1 / 3, 0.05, "rdp"))
    assert privacy["delta"] == 0.05 and privacy["delta_source"] == "recipe"
    assert len(privacy["warnings"]) == 1 and "not below 1/N = 0.04167 (N = 24" in privacy["warnings"][0]
    assert "warning: train.privacy.delta 0.05 is not below 1/N" in capfd.readouterr().err
    assert result.summary["updated_tensors"] == result.summary["trained_tensors"] == 8  # q and v, A and B, 2 layers
    # Validation loss is measured along the way, as for any run: here every step (3 planned, about 5 points a run).
    curve = result.summary["validation_loss_history"]
    assert [point["step"] for point in curve] == [1, 2, 3] and all(math.isfinite(p["loss"]) for p in curve)
    assert result.summary["validation_loss"] == curve[-1]["loss"]
    assert (outputs["model"] / "adapter_model.safetensors").is_file()
    assert "differential privacy" in (outputs["model"] / "README.md").read_text()


def source_units(train_path: Path) -> Counter:
    """Train examples per source record, by following parent_id (independently of fttool's code)."""
    records = {record["id"]: record for record in read_jsonl(train_path)}

    def root(record):
        while record.get("parent_id"):
            record = records[record["parent_id"]]
        return record["id"]

    return Counter(root(record) for record in records.values())


@pytest.mark.slow
def test_augmented_private_run_reports_the_source_record_guarantee(tmp_path):
    recipe = write_recipe(tmp_path, """
    max_steps: 4
    privacy: {target_epsilon: 6}
    """, extra="augment:\n  - {method: synonym, ratio: 1.5, seed: 2}")
    # High-sensitivity data: the regulated policy then requires DP in the recipe and an epsilon in the report.
    recipe.write_text(recipe.read_text().replace("data:\n", "data:\n  sensitivity: high\n"))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", str(recipe), "--output-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "report.json").read_text())
    validate_report(report)
    privacy = report["privacy"]
    assert "privacy" not in report["training"]

    units = source_units(run_dir / "data" / "train.jsonl")
    largest = max(units.values())
    assert largest > 1, "the augment stage gave some record at least one copy"
    assert privacy["unit"] == "source record" and privacy["max_examples_per_unit"] == largest
    assert privacy["units"] == len(units) and privacy["examples"] == sum(units.values())
    assert privacy["units_by_examples"] == {str(size): count for size, count in sorted(Counter(units.values()).items())}
    # Sampling is over source records, so the accountant's epsilon is for a source record with its copies.
    sample_rate = 1 / math.ceil(len(units) / 8)
    assert privacy["sample_rate"] == sample_rate
    assert privacy["delta"] == default_delta(len(units)) < 1 / len(units) and privacy["delta_source"] == "default"
    assert privacy["epsilon"] <= 6 and privacy["target_epsilon"] == 6 and privacy["noise_source"] == "calibrated"
    assert privacy["epsilon"] == pytest.approx(
        epsilon_after(privacy["steps"], privacy["noise_multiplier"], sample_rate, privacy["delta"], "prv"))
    assert privacy["steps"] == 4 and not privacy["stopped_by_budget"] and privacy["warnings"] == []
    assert privacy["trainable_parameters"] == report["training"]["trainable_parameters"] > 0

    html = (run_dir / "report.html").read_text()
    assert "Differential privacy" in html and "source record (with its augmented copies: up to" in html
    markdown = (run_dir / "report.md").read_text()
    assert "**Differential privacy:** (ε " in markdown and "per source record" in markdown

    check = CliRunner().invoke(cli, ["check", str(recipe), str(run_dir), "--policy", "policies/regulated.yaml",
                                     "--format", "json"])
    statuses = {result["rule"]: result["status"] for result in json.loads(check.output)["results"]
                if result["rule"] in ("DP-001", "DP-101")}
    assert statuses == {"DP-001": "passed", "DP-101": "passed"}


def test_a_crashed_private_run_says_it_restarts_from_step_zero_and_finishes(tmp_path, monkeypatch, capfd):
    from fttool.pipeline.runner import RunError, run_plan
    from fttool.recipe import compile_recipe

    recipe = write_recipe(tmp_path, """
    max_steps: 3
    privacy: {noise_multiplier: 1.0}
    """)
    run_dir = tmp_path / "run"
    monkeypatch.setenv("FTTOOL_FAULT", "train_step:2")
    with pytest.raises(RunError, match="after step 2 \\(DP keeps no checkpoint\\)"):
        run_plan(compile_recipe(recipe), run_dir)
    monkeypatch.delenv("FTTOOL_FAULT")
    capfd.readouterr()
    run_plan(compile_recipe(recipe), run_dir, resume=True)
    assert "starts again from step 0" in capfd.readouterr().err
    report = json.loads((run_dir / "report.json").read_text())
    assert report["privacy"]["steps"] == 3 and report["training"]["resumed_from_step"] is None
