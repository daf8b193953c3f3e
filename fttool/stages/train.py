"""LoRA fine-tuning of the base model with TRL's SFTTrainer.

Records become prompt/completion pairs (fttool.records.prompt_and_response), so TRL computes the
loss on the response tokens only. The stage writes the adapter and the tokenizer to model/, fails
when training did not move the LoRA weights or when no token is left to train on, and reports what
a reviewer needs: the base model and its licence, the LoRA settings, the share of tokens trained on
and the loss curve.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any, Mapping

from fttool.demo_model import DEMO_LABEL
from fttool.modeling import (is_demo_model, load_causal_lm, load_tokenizer, quiet_libraries, resolve_base_model,
                             use_bf16)
from fttool.recipe.compiler import is_local_model
from fttool.recipe.plan import thaw
from fttool.records import prompt_and_response, read_jsonl
from fttool.stages.base import Stage, StageContext, StageResult

# At most about this many points in the reported loss curve, whatever the run length.
LOSS_POINTS = 25


def prompt_completion_examples(path) -> list[dict]:
    examples = []
    for record in read_jsonl(path):
        prompt, response = prompt_and_response(record)
        examples.append({"prompt": prompt, "completion": response})
    return examples


def trained_token_share(dataset) -> tuple[int, int]:
    """(tokens with a label, all tokens) over a prepared dataset, before padding is added."""
    trained = total = 0
    for labels in dataset["labels"]:
        trained += sum(1 for label in labels if label != -100)
        total += len(labels)
    return trained, total


def model_card(model_params: Mapping[str, Any], lora: Mapping[str, Any], steps: int, seed: int) -> str:
    base = model_params["base"]
    targets = lora["target_modules"]
    lines = ["# LoRA adapter trained by fttool", "",
             f"- Base model: `{base}`" + (f" at revision `{model_params['revision']}`" if model_params.get("revision")
                                          else ""),
             f"- Base model licence: {model_params.get('license') or 'not stated in the recipe'}",
             f"- LoRA: r={lora['r']}, alpha={lora['alpha']}, dropout={lora['dropout']}, "
             f"target modules: {targets if isinstance(targets, str) else ', '.join(targets)}",
             f"- Steps: {steps}, seed: {seed}", "",
             "Load it with `peft.PeftModel.from_pretrained(base_model, this_directory)`. The run's report.json "
             "records the data, checks and evaluation behind it."]
    if is_demo_model(model_params):
        lines[1:1] = ["", f"**The base is an {DEMO_LABEL}: this adapter is for pipeline demos only.**"]
    return "\n".join(lines) + "\n"


def _progress_callback():
    from transformers import TrainerCallback

    class StderrProgress(TrainerCallback):
        """Loss lines on stderr: the Trainer's own printers write to stdout, which the CLI keeps for results."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                print(f"train step {state.global_step}/{state.max_steps}: loss {logs['loss']:.4f}",
                      file=sys.stderr, flush=True)

    return StderrProgress()


class TrainStage(Stage):
    name = "train"
    reads = ("train", "validation")
    writes = ()
    artifacts = {"model": "model"}
    report_section = "training"

    @classmethod
    def external_inputs(cls, params: Mapping[str, Any]) -> list[str]:
        base = params["model"]["base"]
        return [base] if is_local_model(base) else []

    def run(self, ctx: StageContext) -> StageResult:
        import datasets
        import torch
        import transformers
        from peft import LoraConfig
        from trl import SFTConfig, SFTTrainer

        quiet_libraries()
        params = thaw(ctx.params)
        model_params, lora = params["model"], params["lora"]

        train_examples = prompt_completion_examples(ctx.inputs["train"])
        validation_examples = prompt_completion_examples(ctx.inputs["validation"])
        if not train_examples:
            raise ValueError("train: the train split is empty; there is nothing to fine-tune on")

        base_path = resolve_base_model(model_params, ctx.work_dir, ctx.recipe_dir)
        tokenizer = load_tokenizer(base_path, model_params)
        model = load_causal_lm(base_path, model_params)

        batches_per_epoch = math.ceil(len(train_examples) / params["batch_size"])
        planned_steps = (params["max_steps"] if params["max_steps"] > 0 else
                         math.ceil(batches_per_epoch / params["gradient_accumulation_steps"] * params["epochs"]))
        config = SFTConfig(
            output_dir=str(ctx.work_dir / "trainer"),
            num_train_epochs=params["epochs"],
            max_steps=params["max_steps"],
            learning_rate=params["learning_rate"],
            per_device_train_batch_size=params["batch_size"],
            per_device_eval_batch_size=params["batch_size"],
            gradient_accumulation_steps=params["gradient_accumulation_steps"],
            seed=params["seed"],
            max_length=params["max_seq_length"],
            completion_only_loss=True,
            eval_strategy="no",  # validation loss is measured once, after training
            save_strategy="no",
            logging_strategy="steps",
            logging_steps=max(1, math.ceil(planned_steps / LOSS_POINTS)),
            logging_first_step=True,
            report_to="none",
            disable_tqdm=True,
            # TRL turns both on by default: on CPU bf16 is slow and imprecise, and activation checkpointing
            # only trades speed for memory, which matters on a GPU.
            bf16=use_bf16(),
            fp16=False,
            activation_checkpointing=torch.cuda.is_available(),
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        peft_config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                 target_modules=lora["target_modules"], bias="none", task_type="CAUSAL_LM")
        trainer = SFTTrainer(
            model=model, args=config, processing_class=tokenizer, peft_config=peft_config,
            train_dataset=datasets.Dataset.from_list(train_examples),
            eval_dataset=datasets.Dataset.from_list(validation_examples) if validation_examples else None,
            callbacks=[_progress_callback()])
        trainer.remove_callback(transformers.PrinterCallback)

        # TRL drops examples whose response was cut off entirely by max_seq_length; a dataset with no
        # trained token would "train" on nothing and still report a loss.
        trained, total = trained_token_share(trainer.train_dataset)
        if trained == 0:
            raise ValueError(
                f"train: no response token is left to train on ({len(train_examples)} examples, max_seq_length "
                f"{params['max_seq_length']}): every prompt fills the sequence, or every response is empty. "
                "Raise train.max_seq_length or shorten the prompts.")

        adapter = trainer.model
        initial = {name: p.detach().clone() for name, p in adapter.named_parameters() if p.requires_grad}
        started = time.perf_counter()
        output = trainer.train()
        seconds = time.perf_counter() - started
        changed = [name for name, p in adapter.named_parameters()
                   if p.requires_grad and not torch.equal(p.detach(), initial[name])]
        if not changed:
            raise RuntimeError(f"train: {output.global_step} steps left every LoRA weight at its initial value; "
                               "check train.learning_rate and that the data has response tokens")
        # TRL drops validation examples with no response token left, possibly all of them.
        validation_loss = (trainer.evaluate()["eval_loss"]
                           if trainer.eval_dataset is not None and len(trainer.eval_dataset) else None)

        # Name the base as the recipe does, not the scratch directory it was loaded from, so the
        # adapter files are the same in every run and say which model they belong to.
        adapter.peft_config["default"].base_model_name_or_path = model_params["base"]
        # The vocabulary is never resized, so no embedding weights need saving (and peft need not look the base up).
        adapter.save_pretrained(ctx.outputs["model"], save_embedding_layers=False)
        tokenizer.save_pretrained(ctx.outputs["model"])
        # Replaces peft's boilerplate card, which names the scratch directory the base was loaded from.
        (ctx.outputs["model"] / "README.md").write_text(
            model_card(model_params, lora, output.global_step, params["seed"]), encoding="utf-8")

        trainable, total_parameters = adapter.get_nb_trainable_parameters()
        demo = is_demo_model(model_params)
        base_model = {"name": model_params["base"], "demo": demo, "license": model_params.get("license"),
                      "revision": model_params.get("revision"),
                      "trust_remote_code": bool(model_params.get("trust_remote_code", False))}
        if demo:
            base_model["note"] = DEMO_LABEL
        summary = {
            "method": "lora",
            "base_model": base_model,
            "lora": {**lora, "updated_tensors": len(changed), "adapter_tensors": len(initial)},
            "trainable_parameters": trainable,
            "total_parameters": total_parameters,
            "steps": output.global_step,
            "epochs": round(trainer.state.epoch or 0.0, 4),
            "train_examples": len(trainer.train_dataset),
            "dropped_examples": len(train_examples) - len(trainer.train_dataset),
            "train_loss": output.training_loss,
            "validation_loss": validation_loss,
            "loss_history": [{"step": entry["step"], "loss": entry["loss"]}
                             for entry in trainer.state.log_history if "loss" in entry],
            "trained_token_share": round(trained / total, 6),
            "device": trainer.args.device.type,
            "seconds": round(seconds, 3),
        }
        return StageResult(summary=summary)


STAGE = TrainStage
