"""Fine-tuning the base model with TRL's SFTTrainer: LoRA, QLoRA (4-bit base, CUDA only) or full.

Records are formatted with the tokenizer's chat template when it has one, with the alpaca layout of
fttool.data.records.prompt_and_response otherwise, and tokenized here, so that the labels are explicit:
prompt tokens are masked (-100) unless `train_on_inputs`, and a dataset with no token left to train
on fails before the model is loaded. Checkpoints go to the stage's work directory, which the runner
keys by the stage fingerprint and keeps after a failure, so `fttool run --resume` continues from the
last one with the optimizer, scheduler and RNG states it saved. The stage writes the adapter (or the
full model) and the tokenizer to model/, fails when training left every trained weight unchanged,
and reports what a reviewer needs: the base model and its licence, the method and hyperparameters,
the precision, the share of tokens trained on and the loss curves. The run is tracked with MLflow
(fttool.training.tracking) in mlruns/, the stage's second artifact, or at the recipe's tracking URI; with
compute.num_processes above 1 the stage launches itself through accelerate (fttool.training.launch).
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fttool.pipeline.plan import thaw
from fttool.pipeline.stage import Stage, StageContext, StageResult
from fttool.training.demo_model import DEMO_LABEL
from fttool.training.examples import tokenized_examples, trained_token_share
from fttool.training.model_ref import is_local_model
from fttool.training.modeling import is_demo_model, load_causal_lm, load_tokenizer, quiet_libraries, resolve_base_model

# At most about this many points in the reported loss curve, whatever the run length.
LOSS_POINTS = 25
# Validation loss is measured about this many times a run (at every checkpoint with early stopping instead).
VALIDATION_POINTS = 5
# FTTOOL_FAULT=train_step:N makes training fail right after optimizer step N (and its checkpoint, if one is due),
# to test that --resume continues where a crashed run stopped.
FAULT_ENV = "FTTOOL_FAULT"
FAULT_KIND = "train_step"
CHECKPOINT_DIR = "checkpoints"
QLORA_QUANTIZATION = {"bits": 4, "quant_type": "nf4", "double_quant": True}


class InjectedFault(RuntimeError):
    """The failure FTTOOL_FAULT asked for."""


@dataclass
class TrainingRun:
    trainer: Any
    resumed_from: str | None  # the checkpoint directory training continued from
    initial_norms: dict[str, float]
    seconds: float


def qlora_requirements_unmet(params: Mapping[str, Any]) -> list[str]:
    """Why this machine cannot run a QLoRA recipe (no CUDA GPU, no bitsandbytes); empty otherwise."""
    if params["method"] != "qlora":
        return []
    import importlib.util

    import torch

    problems = []
    if not torch.cuda.is_available():
        problems.append("no CUDA GPU is visible")
    if importlib.util.find_spec("bitsandbytes") is None:
        problems.append("bitsandbytes is not installed")
    if not problems:
        return []
    return [f"method qlora loads the base model in 4 bits with bitsandbytes, which needs a CUDA GPU and the "
            f"bitsandbytes package, but {' and '.join(problems)}. Run it on a machine with both, or use "
            "train.method: lora"]


def fault_step() -> int | None:
    """The step FTTOOL_FAULT=train_step:N names, or None; faults meant for other stages are ignored."""
    value = os.environ.get(FAULT_ENV, "")
    kind, _, step = value.partition(":")
    if kind != FAULT_KIND:
        return None
    if not step.isdigit() or int(step) < 1:
        raise ValueError(f"{FAULT_ENV}={value!r}: expected {FAULT_KIND}:N with N a step number from 1")
    return int(step)


def base_model_summary(model_params: Mapping[str, Any]) -> dict:
    """The report's account of the base model: name, licence, revision, remote code, and whether it is the demo."""
    demo = is_demo_model(model_params)
    summary = {"name": model_params["base"], "demo": demo, "license": model_params.get("license"),
               "revision": model_params.get("revision"),
               "trust_remote_code": bool(model_params.get("trust_remote_code", False))}
    if demo:
        summary["note"] = DEMO_LABEL
    return summary


def precision() -> str:
    """bf16 on GPUs that support it, fp16 (mixed, fp32 weights) on older GPUs, fp32 on CPU."""
    import torch

    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def model_card(model_params: Mapping[str, Any], params: Mapping[str, Any], steps: int) -> str:
    base, method = model_params["base"], params["method"]
    revision = f" at revision `{model_params['revision']}`" if model_params.get("revision") else ""
    lines = [f"# {'Full fine-tune' if method == 'full' else method.upper() + ' adapter'} trained by fttool", "",
             f"- Base model: `{base}`{revision}",
             f"- Base model licence: {model_params.get('license') or 'not stated in the recipe'}"]
    if method == "full":
        load = "Load it with `transformers.AutoModelForCausalLM.from_pretrained(this_directory)`."
    else:
        lora, targets = params["lora"], params["lora"]["target_modules"]
        lines.append(f"- LoRA: r={lora['r']}, alpha={lora['alpha']}, dropout={lora['dropout']}, "
                     f"target modules: {targets if isinstance(targets, str) else ', '.join(targets)}")
        if method == "qlora":
            lines.append("- Base model quantized to 4 bits (NF4, double quantization) during training")
        load = "Load it with `peft.PeftModel.from_pretrained(base_model, this_directory)`."
    lines += [f"- Steps: {steps}, seed: {params['seed']}", "",
              f"{load} The run's report.json records the data, checks and evaluation behind it."]
    if is_demo_model(model_params):
        lines[1:1] = ["", f"**The base is an {DEMO_LABEL}: this model is for pipeline demos only.**"]
    return "\n".join(lines) + "\n"


def _callbacks(params: Mapping[str, Any]) -> list:
    from transformers import EarlyStoppingCallback, TrainerCallback

    class StderrProgress(TrainerCallback):
        """Loss lines on stderr: the Trainer's own printers write to stdout, which the CLI keeps for results."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs and state.is_world_process_zero:
                print(f"train step {state.global_step}/{state.max_steps}: loss {logs['loss']:.4f}",
                      file=sys.stderr, flush=True)

    class FailAfterStep(TrainerCallback):
        """Raises after optimizer step N: in on_save when a checkpoint is due at N (so it is written first)."""

        def __init__(self, step: int):
            self.step = step

        def on_step_end(self, args, state, control, **kwargs):
            # The Trainer saves after on_step_end, when should_save is set (by the callback that runs first).
            if state.global_step == self.step and not control.should_save:
                raise InjectedFault(f"{FAULT_ENV} asked training to fail after step {self.step}")

        def on_save(self, args, state, control, **kwargs):
            if state.global_step == self.step:
                raise InjectedFault(f"{FAULT_ENV} asked training to fail after step {self.step} (checkpoint written)")

    class NoCheckpointAtTheEnd(TrainerCallback):
        """The Trainer checkpoints the last step; the stage saves the model right after, so that would only cost
        time and disk (optimizer state included). Early stopping keeps it: the last evaluation may be the best."""

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_save = False

    callbacks = [StderrProgress()]
    if params.get("early_stopping"):
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=params["early_stopping"]["patience"],
                                               early_stopping_threshold=params["early_stopping"]["min_delta"]))
    else:
        callbacks.append(NoCheckpointAtTheEnd())
    step = fault_step()
    if step is not None:
        callbacks.append(FailAfterStep(step))
    return callbacks


def packing_requirements_unmet(params: Mapping[str, Any]) -> list[str]:
    """Why this machine cannot pack examples without them attending to each other; empty otherwise.

    TRL packs examples into one row and marks their boundaries with position ids. Only FlashAttention's
    variable-length kernels honour those boundaries; the CPU's eager and SDPA attention let each packed
    example see the ones before it, which would silently change what is trained.
    """
    if not params["packing"]:
        return []
    import importlib.util

    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return []
    return ["train.packing needs FlashAttention (the flash-attn package on a CUDA GPU) to keep packed examples "
            "from attending to each other, and this machine lacks it. Run on a machine with both, or set "
            "train.packing: false"]


def _load_model(base_path: str, model_params: Mapping[str, Any], params: Mapping[str, Any]):
    attention = "flash_attention_2" if params["packing"] else None  # see packing_requirements_unmet
    if params["method"] != "qlora":
        return load_causal_lm(base_path, model_params, attn_implementation=attention)
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    compute_dtype = torch.bfloat16 if precision() == "bf16" else torch.float16
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=QLORA_QUANTIZATION["quant_type"],
                                      bnb_4bit_use_double_quant=QLORA_QUANTIZATION["double_quant"],
                                      bnb_4bit_compute_dtype=compute_dtype)
    return prepare_model_for_kbit_training(load_causal_lm(base_path, model_params, quantization_config=quantization,
                                                          attn_implementation=attention),
                                           use_gradient_checkpointing=params["gradient_checkpointing"])


def _trainer_config(params: Mapping[str, Any], checkpoint_dir: Path, planned_steps: int, mixed_precision: str,
                    validate: bool):
    import torch
    from trl import SFTConfig

    early_stopping = bool(params.get("early_stopping"))
    return SFTConfig(
        output_dir=str(checkpoint_dir),
        num_train_epochs=params["epochs"],
        max_steps=params["max_steps"],
        learning_rate=params["learning_rate"],
        lr_scheduler_type=params["lr_scheduler_type"],
        # transformers reads a value below 1 as a share of the steps.
        warmup_steps=params["warmup_ratio"] or params["warmup_steps"],
        weight_decay=params["weight_decay"],
        per_device_train_batch_size=params["batch_size"],
        per_device_eval_batch_size=params["batch_size"],
        gradient_accumulation_steps=params["gradient_accumulation_steps"],
        seed=params["seed"],
        max_length=params["max_seq_length"],
        packing=params["packing"],
        save_strategy="steps",
        save_steps=params["save_steps"],
        save_total_limit=params["save_total_limit"],
        # Validation loss for the report's curve; early stopping measures it at every checkpoint and keeps the best.
        eval_strategy="steps" if validate else "no",
        eval_steps=params["save_steps"] if early_stopping else max(1, math.ceil(planned_steps / VALIDATION_POINTS)),
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        restore_callback_states_from_checkpoint=early_stopping,  # the patience counter resumes too
        logging_strategy="steps",
        logging_steps=max(1, math.ceil(planned_steps / LOSS_POINTS)),
        logging_first_step=True,
        report_to="none",
        disable_tqdm=True,
        bf16=mixed_precision == "bf16",
        fp16=mixed_precision == "fp16",
        # TRL turns checkpointing on by default; it trades speed for memory, so the recipe decides.
        activation_checkpointing=params["gradient_checkpointing"],
        dataloader_pin_memory=torch.cuda.is_available(),
        # Without a GPU, processes launched by accelerate join a gloo group on the CPU instead of looking for GPUs.
        use_cpu=not torch.cuda.is_available(),
    )


def _trained_tensor_norms(model) -> dict:
    """A norm per trained tensor: enough to tell that it moved, without a second copy of the weights."""
    return {name: p.detach().float().norm().item() for name, p in model.named_parameters() if p.requires_grad}


def _save_model(trainer, tokenizer, model_params: Mapping[str, Any], params: Mapping[str, Any], out: Path,
                state_dict=None) -> None:
    model = trainer.model
    if params["method"] == "full":
        model.save_pretrained(out, state_dict=state_dict)
    else:
        # Name the base as the recipe does, not the scratch directory it was loaded from, so the
        # adapter files are the same in every run and say which model they belong to.
        model.peft_config["default"].base_model_name_or_path = model_params["base"]
        # The vocabulary is never resized, so no embedding weights need saving (and peft need not look the base up).
        model.save_pretrained(out, state_dict=state_dict, save_embedding_layers=False)
    tokenizer.save_pretrained(out)
    # Replaces the library's boilerplate card, which names the scratch directory the base was loaded from.
    (out / "README.md").write_text(model_card(model_params, params, trainer.state.global_step), encoding="utf-8")


class TrainStage(Stage):
    name = "train"
    version = 4  # 4: packing loads FlashAttention, and is refused without it
    reads = ("train", "validation")
    writes = ()
    # mlruns/ is MLflow's local store; the MLflow run has ended when the stage returns, so it is hashed whole.
    artifacts = {"model": "model", "tracking": "mlruns"}
    report_section = "training"

    @classmethod
    def external_inputs(cls, params: Mapping[str, Any]) -> list[str]:
        base = params["model"]["base"]
        return [base] if is_local_model(base) else []

    @classmethod
    def unmet_requirements(cls, params: Mapping[str, Any]) -> list[str]:
        from fttool.training.launch import launch_requirements_unmet

        return (qlora_requirements_unmet(params) + packing_requirements_unmet(params)
                + launch_requirements_unmet(params.get("compute")))

    def prepare_data(self, ctx: StageContext, params: Mapping[str, Any], tokenizer) -> dict:
        """Tokenized train and validation examples; fails when nothing is left to train on."""
        length, on_inputs = params["max_seq_length"], params["train_on_inputs"]
        train, dropped = tokenized_examples(ctx.inputs["train"], tokenizer, length, on_inputs)
        validation, _ = tokenized_examples(ctx.inputs["validation"], tokenizer, length, on_inputs)
        if not train:
            raise ValueError(
                f"train: no response token is left to train on ({dropped} examples, max_seq_length {length}): "
                "the train split is empty, every prompt fills the sequence, or every response is empty. "
                "Raise train.max_seq_length or shorten the prompts." if dropped else
                "train: the train split is empty; there is nothing to fine-tune on")
        if params.get("early_stopping") and not validation:
            raise ValueError("train: early stopping needs validation examples, but none has a token to score "
                             "within max_seq_length; raise train.max_seq_length or remove train.early_stopping")
        trained, total = trained_token_share(train)
        return {"train": train, "validation": validation, "dropped": dropped, "trained_tokens": trained,
                "total_tokens": total,
                "prompt_format": "chat_template" if tokenizer.chat_template else "alpaca"}

    def run(self, ctx: StageContext) -> StageResult:
        problems = self.unmet_requirements(ctx.params)
        if problems:
            raise RuntimeError("train: " + "; ".join(problems))
        # The declared artifact exists even when nothing is tracked in it (tracking off, or another store).
        ctx.outputs["tracking"].mkdir(parents=True, exist_ok=True)
        compute = ctx.params.get("compute")
        if compute and compute["num_processes"] > 1:
            from fttool.training.launch import launch_training

            quiet_libraries()
            # Built or found once, here, so that the launched processes do not each write the demo model.
            base_path = resolve_base_model(ctx.params["model"], ctx.work_dir, ctx.recipe_dir)
            run_dir = ctx.outputs["tracking"].parent  # artifacts have fixed run-relative paths
            return StageResult(summary=launch_training(ctx, run_dir, base_path, precision()))
        return self.train_here(ctx)

    def train_here(self, ctx: StageContext, base_path: str | None = None) -> StageResult:
        """Train in this process (one of several when launched), tracked when the recipe says so."""
        from fttool.training.tracking import open_tracker

        params = thaw(ctx.params)
        store = ctx.outputs["tracking"]
        tracker = open_tracker(params, store, self.artifacts["tracking"], run_name=store.parent.name)
        try:
            if params.get("privacy", {}).get("enabled"):  # DP-SGD needs its own loop with opacus
                from fttool.training.private import train_privately

                result = train_privately(ctx)
                if tracker:
                    tracker.log_loss_history(result.summary)
            else:
                quiet_libraries()
                model_params = params["model"]
                base_path = base_path or resolve_base_model(model_params, ctx.work_dir, ctx.recipe_dir)
                tokenizer = load_tokenizer(base_path, model_params)
                data = self.prepare_data(ctx, params, tokenizer)
                model = _load_model(base_path, model_params, params)
                run = self.fit(ctx, params, tokenizer, model, data, tracker)
                result = StageResult(summary=self.finish(ctx, params, tokenizer, data, run))
        except BaseException:
            if tracker:
                tracker.fail()
            raise
        result.summary["tracking"] = tracker.finish(result.summary, ctx.outputs["model"]) if tracker else None
        return result

    def fit(self, ctx: StageContext, params: Mapping[str, Any], tokenizer, model, data: dict,
            tracker=None) -> TrainingRun:
        """Train, continuing from the last checkpoint in the work directory when a failed run left one."""
        import datasets
        import transformers
        from peft import LoraConfig
        from transformers.trainer_utils import get_last_checkpoint
        from trl import SFTTrainer

        checkpoint_dir = ctx.work_dir / CHECKPOINT_DIR
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        resume_from = get_last_checkpoint(str(checkpoint_dir))
        batches_per_epoch = math.ceil(len(data["train"]) / params["batch_size"])
        planned_steps = (params["max_steps"] if params["max_steps"] > 0 else
                         math.ceil(batches_per_epoch / params["gradient_accumulation_steps"] * params["epochs"]))
        peft_config = None
        if params["method"] != "full":
            lora = params["lora"]
            peft_config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                     target_modules=lora["target_modules"], bias="none", task_type="CAUSAL_LM")
        trainer = SFTTrainer(
            model=model, args=_trainer_config(params, checkpoint_dir, planned_steps, precision(),
                                              validate=bool(data["validation"])),
            processing_class=tokenizer, peft_config=peft_config,
            train_dataset=datasets.Dataset.from_list(data["train"]),
            eval_dataset=datasets.Dataset.from_list(data["validation"]) if data["validation"] else None,
            callbacks=_callbacks(params) + ([tracker.callback()] if tracker else []))
        trainer.remove_callback(transformers.PrinterCallback)

        # Measured before a checkpoint is loaded, so a resumed run is compared with the same starting point.
        initial_norms = _trained_tensor_norms(trainer.model)
        started = time.perf_counter()
        trainer.train(resume_from_checkpoint=resume_from)
        return TrainingRun(trainer, resume_from, initial_norms, time.perf_counter() - started)

    def finish(self, ctx: StageContext, params: Mapping[str, Any], tokenizer, data: dict, run: TrainingRun) -> dict:
        """Check that training moved the weights, save the model, and summarise the run for the report."""
        model_params, trainer, resume_from = params["model"], run.trainer, run.resumed_from
        final = _trained_tensor_norms(trainer.model)
        changed = [name for name, norm in final.items() if norm != run.initial_norms.get(name)]
        if not changed:
            raise RuntimeError(f"train: {trainer.state.global_step} steps left every trained weight at its initial "
                               "value; check train.learning_rate and that the data has response tokens")
        # TRL may pack or drop validation examples; evaluate whatever it kept. An evaluation at the last step
        # measured these weights already, unless early stopping has since loaded the best checkpoint back.
        last = next((entry for entry in reversed(trainer.state.log_history) if "eval_loss" in entry), None)
        if last and last["step"] == trainer.state.global_step and not params.get("early_stopping"):
            validation_loss = last["eval_loss"]
        else:
            validation_loss = (trainer.evaluate()["eval_loss"]
                               if trainer.eval_dataset is not None and len(trainer.eval_dataset) else None)
        # Under FSDP each process holds a shard: every process takes part in gathering the whole weights.
        state_dict = trainer.accelerator.get_state_dict(trainer.model) if trainer.is_fsdp_enabled else None
        if trainer.is_world_process_zero():  # the one process that saves, when several were launched
            _save_model(trainer, tokenizer, model_params, params, ctx.outputs["model"], state_dict)
            # The model is saved: the checkpoints were only there to resume an interrupted run.
            shutil.rmtree(ctx.work_dir / CHECKPOINT_DIR, ignore_errors=True)

        state, method = trainer.state, params["method"]
        log = state.log_history
        loss_history = [{"step": entry["step"], "loss": entry["loss"]} for entry in log if "loss" in entry]
        trainable, total_parameters = (trainer.model.get_nb_trainable_parameters() if method != "full" else
                                       (sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
                                        sum(p.numel() for p in trainer.model.parameters())))
        base_model = base_model_summary(model_params)
        early_stopping = None
        if params.get("early_stopping"):
            best_step = (int(Path(state.best_model_checkpoint).name.rsplit("-", 1)[1])
                         if state.best_model_checkpoint else None)
            early_stopping = {**params["early_stopping"], "stopped_early": state.global_step < state.max_steps,
                              "best_step": best_step, "best_validation_loss": state.best_metric}
        return {
            "method": method,
            "base_model": base_model,
            "lora": params["lora"] if method != "full" else None,
            "quantization": QLORA_QUANTIZATION if method == "qlora" else None,
            "precision": precision(),
            "prompt_format": data["prompt_format"],
            "train_on_inputs": params["train_on_inputs"],
            "hyperparameters": {key: params[key] for key in (
                "learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "weight_decay", "epochs",
                "max_steps", "batch_size", "gradient_accumulation_steps", "max_seq_length", "packing",
                "gradient_checkpointing", "save_steps", "save_total_limit", "seed")},
            "trainable_parameters": trainable,
            "total_parameters": total_parameters,
            "updated_tensors": len(changed),
            "trained_tensors": len(final),
            "steps": state.global_step,
            "epochs": round(state.epoch or 0.0, 4),
            "resumed_from_step": (int(Path(resume_from).name.rsplit("-", 1)[1]) if resume_from else None),
            "early_stopping": early_stopping,
            "train_examples": len(data["train"]),
            "dropped_examples": data["dropped"],
            "train_loss": loss_history[-1]["loss"] if loss_history else None,
            "validation_loss": validation_loss,
            "loss_history": loss_history,
            # By step: the final evaluation above repeats the last periodic one when they fall on the same step.
            "validation_loss_history": [{"step": step, "loss": loss} for step, loss in
                                        {entry["step"]: entry["eval_loss"] for entry in log if "eval_loss" in entry}
                                        .items()],
            "trained_tokens": data["trained_tokens"],
            "trained_token_share": round(data["trained_tokens"] / data["total_tokens"], 6),
            "device": trainer.args.device.type,
            "seconds": round(run.seconds, 3),
        }


STAGE = TrainStage
