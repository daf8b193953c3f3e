"""The train stage: real fine-tuning with TRL on a tiny Llama, on CPU, and the demo model it starts from."""
from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import pytest
from conftest import ACTIONS, TOPICS, alpaca, report_of, write_support_project
from support.training import train_params

from fttool.data.records import write_jsonl
from fttool.pipeline.layout import cache_dir
from fttool.pipeline.params import build
from fttool.pipeline.runner import RunError, run_plan
from fttool.recipe import compile_recipe
from fttool.stages.train import TrainStage
from fttool.training.checkpoint_seal import CHECKPOINT_SEALS
from fttool.training.demo_model import build_demo_model
from fttool.training.examples import prompt_and_sequence_ids, tokenized_examples, trained_token_share
from fttool.training.settings import TrainParams

# A minimal chat template in the usual shape: turns wrapped in role markers, each closed by EOS.
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def records(n: int, offset: int = 0) -> list[dict]:
    pairs = [(action, topic) for action in ACTIONS for topic in TOPICS][offset:offset + n]
    return [alpaca(f"How do I {action} my {topic}?", f"To {action} your {topic}, open the app and follow the steps.")
            for action, topic in pairs]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def demo_tokenizers(tmp_path_factory):
    """The demo model's tokenizer as it is (no chat template) and with a chat template."""
    from transformers import AutoTokenizer

    base = build_demo_model(tmp_path_factory.mktemp("demo") / "base")
    plain = AutoTokenizer.from_pretrained(base)
    chat = AutoTokenizer.from_pretrained(base)
    chat.chat_template = CHAT_TEMPLATE
    return plain, chat


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
    def inputs(base: str) -> list[str]:
        return TrainStage.external_inputs(build(TrainParams, train_params(base)))

    assert inputs("./models/base") == ["./models/base"]
    assert inputs("org/some-model") == []
    assert inputs("demo:tiny-llama") == []


def test_prompts_use_the_chat_template_when_the_tokenizer_has_one_and_alpaca_otherwise(demo_tokenizers):
    plain, chat = demo_tokenizers
    record = alpaca("How do I open my savings account?", "Open the app.", input_text="I am a new customer.")

    prompt, full = prompt_and_sequence_ids(plain, record)
    assert plain.decode(prompt) == ("<s>### Instruction:\nHow do I open my savings account?\n\n"
                                    "### Input:\nI am a new customer.\n\n### Response:\n")
    assert plain.decode(full[len(prompt):]) == "Open the app.</s>"

    prompt, full = prompt_and_sequence_ids(chat, record)
    assert chat.decode(prompt) == ("<|user|>\nHow do I open my savings account?\n\nI am a new customer.</s>"
                                   "<|assistant|>\n")
    assert chat.decode(full[len(prompt):]) == "Open the app.</s>"
    assert full.count(chat.bos_token_id) == 0, "the template writes its own special tokens; none is added"

    conversation = {"id": "c", "source": "t", "format": "chat", "meta": {},
                    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                 {"role": "assistant", "content": "Hello."}]}
    prompt, full = prompt_and_sequence_ids(chat, conversation)
    assert chat.decode(prompt) == "<|system|>\nBe brief.</s><|user|>\nHi</s><|assistant|>\n"
    assert chat.decode(full) == chat.decode(prompt) + "Hello.</s>"


def test_train_on_inputs_trains_on_prompt_tokens_too(demo_tokenizers, tmp_path):
    plain, _ = demo_tokenizers
    write_jsonl(tmp_path / "train.jsonl", records(6))
    masked, _ = tokenized_examples(tmp_path / "train.jsonl", plain, 64, train_on_inputs=False)
    unmasked, _ = tokenized_examples(tmp_path / "train.jsonl", plain, 64, train_on_inputs=True)
    trained_masked, total = trained_token_share(masked)
    trained_unmasked, total_unmasked = trained_token_share(unmasked)
    assert total == total_unmasked and trained_unmasked == total
    assert 0 < trained_masked < total / 2  # the responses are shorter than the alpaca prompts
    # The masked labels are the response (and EOS) at the end of each sequence.
    for example in masked:
        first = next(i for i, label in enumerate(example["labels"]) if label != -100)
        assert example["labels"][first:] == example["input_ids"][first:]


@pytest.mark.slow
def test_lora_training_writes_an_adapter_that_loads_and_moved(run_stage, tmp_path, capfd):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    # A local base directory, named relative to the recipe directory (tmp_path), like a recipe would.
    build_demo_model(tmp_path / "models" / "base")
    result, outputs = run_stage("train", train_params("./models/base", save_steps=4),
                                {"train": records(24), "validation": records(6, offset=24)})
    assert capfd.readouterr().out == ""  # progress goes to stderr; stdout is the CLI's

    model_dir = outputs["model"]
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (model_dir / name).is_file(), name
    # The adapter names the base as the recipe does, not the scratch directory it was loaded from.
    assert json.loads((model_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == "./models/base"
    card = (model_dir / "README.md").read_text()
    assert "`./models/base`" in card and "apache-2.0" in card and str(tmp_path) not in card
    assert not (tmp_path / "scratch" / "checkpoints").exists(), "checkpoints are removed once the model is saved"

    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "models" / "base"), model_dir)
    lora_b = {name: p for name, p in tuned.named_parameters() if "lora_B" in name}
    assert lora_b and all(torch.count_nonzero(p) > 0 for p in lora_b.values()), "LoRA B starts at zero and must move"

    summary = result.summary
    assert summary["method"] == "lora" and summary["steps"] == 8 and summary["resumed_from_step"] is None
    assert summary["base_model"] == {"name": "./models/base", "demo": False, "license": "apache-2.0",
                                     "revision": None, "trust_remote_code": False}
    assert summary["updated_tensors"] == summary["trained_tensors"] == 8  # q and v, A and B, 2 layers
    assert 0 < summary["trainable_parameters"] < summary["total_parameters"]
    assert summary["prompt_format"] == "alpaca" and summary["quantization"] is None
    assert summary["precision"] == ("fp32" if not torch.cuda.is_available() else summary["precision"])
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
def test_full_fine_tuning_writes_the_whole_model(run_stage, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    base_dir = build_demo_model(tmp_path / "models" / "base")
    params = train_params("./models/base", method="full", learning_rate=0.001, max_steps=4)
    result, outputs = run_stage("train", params, {"train": records(16), "validation": records(4, offset=16)})
    model_dir = outputs["model"]
    assert (model_dir / "model.safetensors").is_file() and not (model_dir / "adapter_config.json").exists()
    tuned = AutoModelForCausalLM.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    moved = [name for (name, p), (_, q) in zip(tuned.named_parameters(), base.named_parameters())
             if not torch.equal(p, q)]
    assert len(moved) == len(list(base.parameters()))  # every weight was trained
    summary = result.summary
    assert summary["method"] == "full" and summary["lora"] is None and summary["steps"] == 4
    assert summary["trainable_parameters"] == summary["total_parameters"] == sum(p.numel() for p in base.parameters())
    assert "Full fine-tune" in (model_dir / "README.md").read_text()


@pytest.mark.slow
def test_all_linear_lora_with_a_chat_template(run_stage, tmp_path, demo_tokenizers):
    _, chat = demo_tokenizers
    base_dir = build_demo_model(tmp_path / "models" / "base")
    chat.save_pretrained(base_dir)  # the same tokenizer, now with a chat template
    params = train_params("./models/base", max_steps=3,
                          lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"})
    result, outputs = run_stage("train", params, {"train": records(12), "validation": records(4, offset=12)})
    summary = result.summary
    # q, k, v, o, gate, up and down projections (never the output layer) in 2 layers, A and B each.
    assert summary["trained_tensors"] == summary["updated_tensors"] == 7 * 2 * 2
    assert summary["prompt_format"] == "chat_template"
    assert json.loads((outputs["model"] / "tokenizer_config.json").read_text()).get("chat_template") \
        or (outputs["model"] / "chat_template.jinja").is_file()


@pytest.mark.slow
def test_early_stopping_stops_when_validation_loss_stops_improving(run_stage):
    # No fall of validation loss counts as an improvement, so training stops `patience` checkpoints after the first.
    params = train_params("demo:tiny-llama", max_steps=40, save_steps=2,
                          early_stopping={"patience": 2, "min_delta": 1000.0})
    result, _ = run_stage("train", params, {"train": records(24), "validation": records(6, offset=24)})
    summary = result.summary
    assert summary["steps"] == 6
    assert summary["early_stopping"]["stopped_early"] is True
    evaluations = summary["validation_loss_history"][:3]
    assert [entry["step"] for entry in evaluations] == [2, 4, 6]
    # The weights kept are those of the checkpoint with the lowest validation loss.
    assert summary["early_stopping"]["best_step"] == min(evaluations, key=lambda entry: entry["loss"])["step"]
    assert summary["validation_loss"] == pytest.approx(summary["early_stopping"]["best_validation_loss"])


@pytest.mark.slow
def test_training_refuses_when_no_response_token_fits(run_stage):
    long_prompt = alpaca("Please describe, step by step and in detail, how I open a new savings account today.",
                         "Use the app.")
    params = train_params("demo:tiny-llama", max_seq_length=16)
    with pytest.raises(ValueError, match="no response token is left to train on"):
        run_stage("train", params, {"train": [long_prompt] * 4, "validation": records(2)})


# -- through the runner: QLoRA's hardware check, crash and resume ----------------------------------------------------

RECIPE = """
name: train-resume
data:
  sources:
    - {path: records.jsonl, format: alpaca, tag: t}
  split: {train: 0.7, validation: 0.3, test: 0.0, seed: 3}
  dedup: {exact: true, near: false}
model: {base: "demo:tiny-llama", license: apache-2.0}
train:
  lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}
  method: METHOD
  max_steps: 10
  save_steps: 3
  batch_size: 4
  learning_rate: 0.005
  max_seq_length: 64
  seed: 11
"""


def make_project(root: Path, method: str = "lora") -> Path:
    return write_support_project(root, RECIPE.replace("METHOD", method))


def test_contradicting_train_settings_are_reported_together_with_their_position(tmp_path):
    from fttool.recipe import RecipeInvalid

    recipe = make_project(tmp_path, method="full")  # the recipe also sets lora, which full does not use
    recipe.write_text(recipe.read_text() + "  warmup_ratio: 0.1\n  warmup_steps: 5\n")
    with pytest.raises(RecipeInvalid) as info:
        compile_recipe(recipe)
    messages = str(info.value)
    assert "recipe.yaml:9:3: lora settings do not apply to method: full" in messages
    assert "recipe.yaml:18:3: set either warmup_ratio or warmup_steps, not both" in messages


@pytest.mark.slow
def test_a_full_fine_tune_is_evaluated_against_a_separate_base(tmp_path):
    recipe = make_project(tmp_path, method="full")
    text = recipe.read_text().replace("  lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}\n", "")
    recipe.write_text(text.replace("test: 0.0", "test: 0.15").replace("validation: 0.3", "validation: 0.15")
                      + "evaluate: {max_new_tokens: 4}\n")
    evaluation = report_of(run_plan(compile_recipe(recipe), tmp_path / "run"))["evaluation"]
    # Base and tuned are different weights here, so their test losses differ; training lowered it.
    assert evaluation["tuned"]["test_loss"] < evaluation["base"]["test_loss"]
    assert evaluation["primary_metric"]["improved"] is True


def test_qlora_compiles_everywhere_but_stops_before_any_stage_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU; the check is for machines without one")
    plan = compile_recipe(make_project(tmp_path, method="qlora"))  # validate and plan pass
    run_dir = tmp_path / "runs" / "a"
    with pytest.raises(RunError, match="stage train: method qlora .* needs a CUDA GPU and the bitsandbytes "
                                       "package, but no CUDA GPU is visible.*use train.method: lora"):
        run_plan(plan, run_dir)
    assert not run_dir.exists(), "nothing ran"


def test_packing_without_flash_attention_stops_before_any_stage(tmp_path):
    import importlib.util

    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("this machine has FlashAttention; the check is for machines without it")
    recipe = make_project(tmp_path)
    recipe.write_text(recipe.read_text() + "  packing: true\n")
    run_dir = tmp_path / "runs" / "a"
    with pytest.raises(RunError, match="stage train: train.packing needs FlashAttention .* set train.packing: false"):
        run_plan(compile_recipe(recipe), run_dir)
    assert not run_dir.exists(), "nothing ran"


@pytest.mark.slow
def test_a_crashed_run_resumed_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    recipe = make_project(tmp_path / "project")
    whole = run_plan(compile_recipe(recipe), tmp_path / "a" / "run")

    crashed = tmp_path / "b" / "run"
    monkeypatch.setenv("FTTOOL_FAULT", "train_step:6")
    with pytest.raises(RunError, match="stage train failed: InjectedFault: .*after step 6"):
        run_plan(compile_recipe(recipe), crashed)
    # The checkpoint due at step 6 was written before the fault, in the run directory.
    checkpoints = sorted(p.name for p in crashed.glob("work/train/scratch-*/checkpoints/checkpoint-*"))
    assert checkpoints == ["checkpoint-3", "checkpoint-6"]

    monkeypatch.delenv("FTTOOL_FAULT")
    run_plan(compile_recipe(recipe), crashed, resume=True)
    resumed, uninterrupted = report_of(crashed), report_of(whole)
    assert {row["name"]: row["status"] for row in resumed["stages"]} == {
        "ingest": "resumed", "dedup": "resumed", "split": "resumed", "train": "ran"}
    assert resumed["training"]["resumed_from_step"] == 6 and uninterrupted["training"]["resumed_from_step"] is None
    assert resumed["training"]["steps"] == uninterrupted["training"]["steps"] == 10
    for loss in ("train_loss", "validation_loss"):
        assert resumed["training"][loss] == pytest.approx(uninterrupted["training"][loss], rel=0.01), loss
    assert not list(crashed.glob("work/train/scratch-*/checkpoints")), "checkpoints are removed once saved"


@pytest.mark.slow
def test_training_continues_only_from_checkpoints_as_fttool_wrote_them(tmp_path, monkeypatch):
    recipe = make_project(tmp_path / "project")
    run_dir = tmp_path / "runs" / "a"
    monkeypatch.setenv("FTTOOL_FAULT", "train_step:6")
    with pytest.raises(RunError, match="InjectedFault"):
        run_plan(compile_recipe(recipe), run_dir)
    monkeypatch.delenv("FTTOOL_FAULT")
    [checkpoints] = run_dir.glob("work/train/scratch-*/checkpoints")
    adapter = checkpoints / "checkpoint-6" / "adapter_model.safetensors"
    original = adapter.read_bytes()

    adapter.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # a colleague's edit to the weights
    with pytest.raises(RunError, match=rf"UnsealedCheckpoint: .*\n  {re.escape(str(adapter))}: differs from what "
                                       rf"training wrote\nrestore them, or delete {re.escape(str(checkpoints))}"):
        run_plan(compile_recipe(recipe), run_dir, resume=True)
    adapter.write_bytes(original)

    shutil.copytree(checkpoints / "checkpoint-6", checkpoints / "checkpoint-9")  # the last one, so it would be used
    with pytest.raises(RunError, match=r"checkpoint-9: not in the seal of this run's checkpoints"):
        run_plan(compile_recipe(recipe), run_dir, resume=True)
    shutil.rmtree(checkpoints / "checkpoint-9")

    run_plan(compile_recipe(recipe), run_dir, resume=True)
    assert report_of(run_dir)["training"]["resumed_from_step"] == 6
    assert not list((cache_dir(run_dir) / CHECKPOINT_SEALS).iterdir()), "the seal goes with the checkpoints"


@pytest.mark.slow
def test_resume_is_refused_when_the_recipe_or_the_data_changed(tmp_path, monkeypatch):
    recipe = make_project(tmp_path)
    run_dir = tmp_path / "runs" / "a"
    monkeypatch.setenv("FTTOOL_FAULT", "train_step:3")
    with pytest.raises(RunError, match="InjectedFault"):
        run_plan(compile_recipe(recipe), run_dir)
    monkeypatch.delenv("FTTOOL_FAULT")

    original = recipe.read_text()
    recipe.write_text(original.replace("learning_rate: 0.005", "learning_rate: 0.001"))
    with pytest.raises(RunError, match="the recipe changed since this run started"):
        run_plan(compile_recipe(recipe), run_dir, resume=True)

    recipe.write_text(original)
    data = tmp_path / "records.jsonl"
    data.write_text(data.read_text().replace("open the app", "call us"))
    with pytest.raises(RunError, match="the inputs of stage ingest changed since this run started"):
        run_plan(compile_recipe(recipe), run_dir, resume=True)


# -- settings from axolotl and LLaMA-Factory ---------------------------------------------------------------------------

def test_trainer_arguments_follow_the_optimizer_schedule_and_checkpoint_settings(tmp_path):
    from fttool.training.backends.sft import trainer_config, validation_interval

    params = build(TrainParams, train_params("demo:tiny-llama", optimizer="adafactor", save_only_model=True,
                                             logging_steps=3, eval_steps=7))
    config = trainer_config(params, tmp_path, (10, 40), validate=True)
    assert config.optim == "adafactor" and config.save_only_model is True
    assert config.logging_steps == 3 and config.eval_steps == 7 and config.eval_strategy == "steps"
    assert config.bf16 is False and config.fp16 is False
    default = trainer_config(build(TrainParams, train_params("demo:tiny-llama")), tmp_path, (10, 40), validate=True)
    assert default.optim != "adafactor" and default.save_only_model is False
    assert default.logging_steps == 2 and default.eval_steps == 8  # about 25 loss points and 5 evaluations

    per_epoch = build(TrainParams, train_params("demo:tiny-llama", evals_per_epoch=3))
    assert validation_interval(per_epoch, steps_per_epoch=10, planned_steps=40) == 4
    stopping = build(TrainParams, train_params("demo:tiny-llama", save_steps=5,
                                               early_stopping={"patience": 1, "min_delta": 0.0}))
    assert validation_interval(stopping, steps_per_epoch=10, planned_steps=40) == 5


def test_torch_threads_leave_a_core_free_and_are_shared_between_processes(monkeypatch):
    import os

    from fttool.training.device import torch_threads

    assert torch_threads(3, 2) == 3  # the recipe's setting, as it is
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(9)))
    assert torch_threads(None, 1) == 8 and torch_threads(None, 2) == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert torch_threads(None, 1) == 1


def test_hardware_the_recipe_asks_for_is_refused_cleanly_without_a_gpu():
    import torch

    from fttool.training.device import bitsandbytes_requirements_unmet, precision_requirements_unmet

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU; the check is for machines without one")
    assert precision_requirements_unmet("auto", False) == precision_requirements_unmet("fp32", False) == []
    (bf16,) = precision_requirements_unmet("bf16", False)
    assert "bf16 needs a CUDA GPU that supports bfloat16" in bf16 and "no CUDA GPU" in bf16
    assert "fp16 (mixed precision) needs a CUDA GPU" in precision_requirements_unmet("fp16", False)[0]
    assert "tf32 needs a CUDA GPU of compute capability 8.0" in precision_requirements_unmet("fp32", True)[0]
    problems = bitsandbytes_requirements_unmet("lora", True, "adamw_8bit")
    assert len(problems) == 2 and "load_in_8bit loads the base model in 8 bits" in problems[0]
    assert "adamw_8bit" in problems[1] and "no CUDA GPU is visible" in problems[1]
    assert bitsandbytes_requirements_unmet("lora", False, "adafactor") == []


def test_a_precision_the_machine_lacks_stops_the_run_before_any_stage(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU; the check is for machines without one")
    recipe = make_project(tmp_path)
    recipe.write_text(recipe.read_text() + "  precision: bf16\n  optimizer: adamw_8bit\n")
    run_dir = tmp_path / "runs" / "a"
    with pytest.raises(RunError, match="stage train: optimizer adamw_8bit .* needs a CUDA GPU.*"
                                       "train.precision bf16 needs a CUDA GPU that supports bfloat16"):
        run_plan(compile_recipe(recipe), run_dir)
    assert not run_dir.exists(), "nothing ran"


def test_contradicting_new_settings_are_reported_at_validation(tmp_path):
    from fttool.recipe import RecipeInvalid

    recipe = make_project(tmp_path, method="full")
    text = recipe.read_text().replace("  lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}\n", "")
    recipe.write_text(text + "  eval_steps: 2\n  evals_per_epoch: 3\n  load_in_8bit: true\n"
                      "  chat_template: chatml\n  chat_template_file: missing.jinja\n")
    with pytest.raises(RecipeInvalid) as info:
        compile_recipe(recipe)
    messages = str(info.value)
    assert "set either eval_steps or evals_per_epoch, not both" in messages
    assert "load_in_8bit trains LoRA on an 8-bit base, so it needs method lora, not full" in messages
    assert "set either chat_template (a built-in name) or chat_template_file, not both" in messages
    assert "chat template file not found" in messages and "missing.jinja" in messages

    private = make_project(tmp_path / "private")
    private.write_text(private.read_text() + "  optimizer: adafactor\n  privacy: {noise_multiplier: 1.0}\n")
    with pytest.raises(RecipeInvalid, match="differentially private training uses adamw_torch"):
        compile_recipe(private)


def test_a_template_file_is_an_input_of_the_stage_and_its_text_goes_to_the_tokenizer(tmp_path):
    from fttool.training.templates import CHAT_TEMPLATES, chat_template_source

    (tmp_path / "support.jinja").write_text(CHAT_TEMPLATE)
    params = build(TrainParams, train_params("demo:tiny-llama", chat_template_file="support.jinja"))
    assert TrainStage.external_inputs(params) == ["support.jinja"]
    assert chat_template_source(None, "support.jinja", tmp_path) == CHAT_TEMPLATE
    assert chat_template_source("chatml", None, tmp_path) == CHAT_TEMPLATES["chatml"]
    assert chat_template_source("tokenizer_default", None, tmp_path) is None


@pytest.mark.slow
def test_settings_from_other_tools_shape_the_run(run_stage):
    """Adafactor, a cap on the train records, ChatML, explicit logging and evaluation steps and one thread."""
    params = train_params("demo:tiny-llama", max_steps=6, optimizer="adafactor", max_samples=20, logging_steps=2,
                          eval_steps=3, chat_template="chatml", save_only_model=True,
                          compute={"num_processes": 1, "num_machines": 1, "machine_rank": 0,
                                   "main_process_ip": None, "main_process_port": None, "strategy": "ddp",
                                   "deepspeed": None, "threads": 1})
    import torch

    threads_before = torch.get_num_threads()
    result, outputs = run_stage("train", params, {"train": records(24), "validation": records(6, offset=24)})
    assert torch.get_num_threads() == threads_before, "the thread count applies to training only"
    summary = result.summary
    assert summary["train_examples"] == 20 and summary["records_beyond_max_samples"] == 4
    assert summary["hyperparameters"]["optimizer"] == "adafactor" and summary["hyperparameters"]["max_samples"] == 20
    assert [point["step"] for point in summary["loss_history"]] == [1, 2, 4, 6]  # the first step, then every 2
    assert [point["step"] for point in summary["validation_loss_history"]] == [3, 6]
    assert summary["prompt_format"] == "chat_template" and summary["threads"] == 1
    assert summary["updated_tensors"] == summary["trained_tensors"] == 8
    saved = json.loads((outputs["model"] / "tokenizer_config.json").read_text()).get("chat_template") or \
        (outputs["model"] / "chat_template.jinja").read_text()
    assert "<|im_start|>" in saved, "the model's tokenizer carries the template it was trained with"


@pytest.mark.slow
def test_bf16_training_on_a_gpu(run_stage):
    import torch

    if not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        pytest.skip("bf16 training needs a CUDA GPU that supports bfloat16")
    result, _ = run_stage("train", train_params("demo:tiny-llama", max_steps=4, precision="bf16", tf32=True),
                          {"train": records(16), "validation": records(4, offset=16)})
    assert result.summary["precision"] == "bf16" and result.summary["device"] == "cuda"
    assert math.isfinite(result.summary["train_loss"])
