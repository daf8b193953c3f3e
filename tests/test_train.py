"""The train stage: real LoRA fine-tuning with TRL on a tiny Llama, on CPU, and the demo model it starts from."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from conftest import alpaca
from fttool.demo_model import build_demo_model
from fttool.stages.train import TrainStage

TOPICS = ["savings account", "credit card", "home insurance", "mortgage", "pension plan", "travel insurance"]
ACTIONS = ["open", "close", "change", "review", "cancel", "renew"]


def records(n: int, offset: int = 0) -> list[dict]:
    pairs = [(action, topic) for action in ACTIONS for topic in TOPICS][offset:offset + n]
    return [alpaca(f"How do I {action} my {topic}?", f"To {action} your {topic}, open the app and follow the steps.")
            for action, topic in pairs]


def train_params(base: str, **overrides) -> dict:
    """The train section with the schema's defaults filled in, as the compiler passes it."""
    return {"method": "lora",
            "lora": {"r": 4, "alpha": 8, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
            "epochs": 1, "max_steps": 8, "learning_rate": 0.01, "batch_size": 4, "gradient_accumulation_steps": 1,
            "max_seq_length": 64, "seed": 7,
            "model": {"base": base, "license": "apache-2.0", "trust_remote_code": False}} | overrides


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_demo_model_build_is_deterministic_and_labelled(tmp_path):
    first, second = build_demo_model(tmp_path / "a"), build_demo_model(tmp_path / "b")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert sha256(first / name) == sha256(second / name), name
    config = json.loads((first / "config.json").read_text())
    assert "untrained random demo model" in config["fttool_demo_model"]
    assert "untrained" in (first / "README.md").read_text().lower()
    assert config["hidden_size"] == 64 and config["num_hidden_layers"] == 2 and config["num_attention_heads"] == 4
    assert 1500 <= config["vocab_size"] <= 2000


def test_external_inputs_name_only_local_base_models():
    assert TrainStage.external_inputs({"model": {"base": "./models/base"}}) == ["./models/base"]
    assert TrainStage.external_inputs({"model": {"base": "org/some-model"}}) == []
    assert TrainStage.external_inputs({"model": {"base": "demo:tiny-llama"}}) == []


@pytest.mark.slow
def test_lora_training_writes_an_adapter_that_loads_and_moved(run_stage, tmp_path, capfd):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    # A local base directory, named relative to the recipe directory (tmp_path), like a recipe would.
    build_demo_model(tmp_path / "models" / "base")
    result, outputs = run_stage("train", train_params("./models/base"),
                                {"train": records(24), "validation": records(6, offset=24)})
    assert capfd.readouterr().out == ""  # progress goes to stderr; stdout is the CLI's

    model_dir = outputs["model"]
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (model_dir / name).is_file(), name
    # The adapter names the base as the recipe does, not the scratch directory it was loaded from.
    assert json.loads((model_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == "./models/base"
    card = (model_dir / "README.md").read_text()
    assert "`./models/base`" in card and "apache-2.0" in card and str(tmp_path) not in card

    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "models" / "base"), model_dir)
    lora_b = {name: p for name, p in tuned.named_parameters() if "lora_B" in name}
    assert lora_b and all(torch.count_nonzero(p) > 0 for p in lora_b.values()), "LoRA B starts at zero and must move"

    summary = result.summary
    assert summary["method"] == "lora" and summary["steps"] == 8
    assert summary["base_model"] == {"name": "./models/base", "demo": False, "license": "apache-2.0",
                                     "revision": None, "trust_remote_code": False}
    assert summary["lora"]["updated_tensors"] == summary["lora"]["adapter_tensors"] == 8
    assert 0 < summary["trainable_parameters"] < summary["total_parameters"]
    # Prompt tokens are masked, response tokens are not.
    assert 0 < summary["trained_token_share"] < 1
    history = summary["loss_history"]
    assert history and [entry["step"] for entry in history] == sorted({entry["step"] for entry in history})
    assert all(math.isfinite(entry["loss"]) for entry in history)
    assert math.isfinite(summary["train_loss"]) and math.isfinite(summary["validation_loss"])
    assert history[-1]["loss"] < history[0]["loss"]
    assert summary["train_examples"] == 24 and summary["dropped_examples"] == 0
    assert summary["device"] == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.slow
def test_training_refuses_when_no_response_token_fits(run_stage):
    long_prompt = alpaca("Please describe, step by step and in detail, how I open a new savings account today.",
                         "Use the app.")
    params = train_params("demo:tiny-llama", max_seq_length=16)
    with pytest.raises(ValueError, match="no response token is left to train on"):
        run_stage("train", params, {"train": [long_prompt] * 4, "validation": records(2)})
