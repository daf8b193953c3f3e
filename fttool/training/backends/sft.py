"""Supervised fine-tuning with TRL's SFTTrainer: LoRA, QLoRA (4-bit base, CUDA only) or full.

Records are formatted and tokenized by fttool.training.examples, so that the labels are explicit: prompt
tokens are masked unless `train_on_inputs`, and a dataset with no token left to train on fails before the
model is loaded. The examples are written once as Arrow files (`prepare`, fttool.training.arrow_examples) and
every training process memory-maps them. Checkpoints go to the job's work directory, which outlives a failed
attempt, so a resumed run continues from the last one with the optimizer, scheduler and RNG states it saved. The
backend writes the adapter (or the full model) and the tokenizer, and fails when training left every trained weight
unchanged.
"""
from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from fttool.training.arrow_examples import load_splits, write_tokenized_splits
from fttool.training.checkpoint_seal import forget_checkpoints, sealed_last_checkpoint, sealing_callback
from fttool.training.device import device, load_dtype, training_precision
from fttool.training.faults import FAULT_ENV, InjectedFault, fault_step
from fttool.training.job import TrainJob, TrainOutcome
from fttool.training.machines import launch_callbacks
from fttool.training.modeling import load_causal_lm, training_tokenizer
from fttool.training.quiet import quiet_libraries
from fttool.training.settings import LoraSettings, TrainParams
from fttool.training.summary import QLORA_QUANTIZATION

# At most about this many points in the reported loss curve, whatever the run length.
LOSS_POINTS = 25
# Validation loss is measured about this many times a run unless the recipe says otherwise.
VALIDATION_POINTS = 5
# The recipe's optimizers by transformers' names; adamw_torch is transformers' default (torch's AdamW, fused
# where torch supports it).
OPTIMIZERS = {"adamw_8bit": "adamw_bnb_8bit", "adafactor": "adafactor"}


@dataclass
class PreparedData:
    train: Any  # datasets.Dataset, memory-mapped (fttool.training.arrow_examples)
    validation: Any
    dropped: int
    trained_tokens: int
    total_tokens: int
    prompt_format: str
    records_left_out: int = 0  # train records beyond train.max_samples


@dataclass
class TrainingRun:
    trainer: Any
    resumed_from: str | None  # the checkpoint directory training continued from
    initial_norms: dict[str, float]
    seconds: float


def prepared_data(job: TrainJob, tokenizer) -> PreparedData:
    """The splits the job's examples were written into (TrainingBackend.prepare), memory-mapped, with their counts."""
    splits = load_splits(job.work_dir)
    train = splits.counts["train"]
    return PreparedData(splits.train, splits.validation, train.dropped, train.trained_tokens, train.total_tokens,
                        "chat_template" if tokenizer.chat_template else "alpaca", train.records_left_out)


def _callbacks(job: TrainJob) -> list:
    from transformers import EarlyStoppingCallback, TrainerCallback

    params = job.params

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
        """The Trainer checkpoints the last step; the model is saved right after, so that would only cost
        time and disk (optimizer state included). Early stopping keeps it: the last evaluation may be the best."""

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_save = False

    # Before FailAfterStep, so that the checkpoint a fault follows is sealed as a crash's would be.
    callbacks: list[Any] = [StderrProgress(), sealing_callback(job)]
    if params.early_stopping:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=params.early_stopping.patience,
                                               early_stopping_threshold=params.early_stopping.min_delta))
    else:
        callbacks.append(NoCheckpointAtTheEnd())
    step = fault_step()
    if step is not None:
        callbacks.append(FailAfterStep(step))
    return callbacks


def load_model(job: TrainJob):
    params = job.params
    attention = "flash_attention_2" if params.packing else None  # see device.packing_requirements_unmet
    precision = training_precision(params.precision)
    if params.method != "qlora" and not params.load_in_8bit:
        return load_causal_lm(job.base_path, params.model, attn_implementation=attention,
                              dtype=load_dtype(precision))
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    if params.load_in_8bit:
        quantization = BitsAndBytesConfig(load_in_8bit=True)
    else:
        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=QLORA_QUANTIZATION["quant_type"],
            bnb_4bit_use_double_quant=QLORA_QUANTIZATION["double_quant"],
            bnb_4bit_compute_dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return prepare_model_for_kbit_training(load_causal_lm(job.base_path, params.model,
                                                          quantization_config=quantization,
                                                          attn_implementation=attention),
                                           use_gradient_checkpointing=params.gradient_checkpointing)


def validation_interval(params: TrainParams, steps_per_epoch: int, planned_steps: int) -> int:
    """Steps between validation measurements: at every checkpoint with early stopping, else the recipe's
    eval_steps or evals_per_epoch, else about VALIDATION_POINTS a run."""
    if params.early_stopping is not None:
        return params.save_steps
    if params.eval_steps is not None:
        return params.eval_steps
    if params.evals_per_epoch is not None:
        return max(1, math.ceil(steps_per_epoch / params.evals_per_epoch))
    return max(1, math.ceil(planned_steps / VALIDATION_POINTS))


def trainer_config(params: TrainParams, checkpoint_dir: Path, steps: tuple[int, int], validate: bool):
    """The SFTConfig for `params`; `steps` are (optimizer steps per epoch, planned steps)."""
    from trl import SFTConfig

    early_stopping = params.early_stopping is not None
    precision = training_precision(params.precision)
    steps_per_epoch, planned = steps
    on_gpu = device() == "cuda"
    optimizer: dict[str, Any] = {"optim": OPTIMIZERS[params.optimizer]} if params.optimizer in OPTIMIZERS else {}
    return SFTConfig(
        output_dir=str(checkpoint_dir),
        num_train_epochs=params.epochs,
        max_steps=params.max_steps,
        learning_rate=params.learning_rate,
        lr_scheduler_type=params.lr_scheduler_type,
        # transformers reads a value below 1 as a share of the steps.
        warmup_steps=params.warmup_ratio or params.warmup_steps,
        weight_decay=params.weight_decay,
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=params.batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps,
        seed=params.seed,
        max_length=params.max_seq_length,
        packing=params.packing,
        save_strategy="steps",
        save_steps=params.save_steps,
        save_total_limit=params.save_total_limit,
        save_only_model=params.save_only_model,
        # Validation loss for the report's curve; early stopping measures it at every checkpoint and keeps the best.
        eval_strategy="steps" if validate else "no",
        eval_steps=validation_interval(params, steps_per_epoch, planned),
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        restore_callback_states_from_checkpoint=early_stopping,  # the patience counter resumes too
        logging_strategy="steps",
        logging_steps=params.logging_steps or max(1, math.ceil(planned / LOSS_POINTS)),
        logging_first_step=True,
        report_to="none",
        disable_tqdm=True,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        tf32=params.tf32 or None,  # None leaves torch's setting as it is
        **optimizer,
        # The examples are tokenised, cut to max_seq_length and all have a label: TRL's preparation would only copy
        # them (into a cache file beside the mapped split). Packing is TRL's to do.
        dataset_kwargs=None if params.packing else {"skip_prepare_dataset": True},
        # TRL turns checkpointing on by default; it trades speed for memory, so the recipe decides.
        activation_checkpointing=params.gradient_checkpointing,
        dataloader_pin_memory=on_gpu,
        # Without a GPU, processes launched by accelerate join a gloo group on the CPU instead of looking for GPUs.
        use_cpu=not on_gpu,
    )


def trained_tensor_norms(model) -> dict:
    """A norm per trained tensor: enough to tell that it moved, without a second copy of the weights."""
    return {name: p.detach().float().norm().item() for name, p in model.named_parameters() if p.requires_grad}


def planned_steps(params: TrainParams, train_examples: int) -> tuple[int, int]:
    """(optimizer steps per epoch, steps planned for the run) in this process."""
    per_epoch = math.ceil(train_examples / params.batch_size) / params.gradient_accumulation_steps
    return (max(1, math.ceil(per_epoch)),
            params.max_steps if params.max_steps > 0 else math.ceil(per_epoch * params.epochs))


def fit(job: TrainJob, tokenizer, model, data: PreparedData, tracker=None) -> TrainingRun:
    """Train, continuing from the last checkpoint in the work directory when a failed run left one."""
    import transformers
    from trl import SFTTrainer

    params = job.params
    resume_from = sealed_last_checkpoint(job)
    peft_config = None if params.method == "full" else lora_config(params.lora)
    validate = len(data.validation) > 0
    args = trainer_config(params, job.checkpoint_dir, planned_steps(params, len(data.train)), validate=validate)
    trainer = SFTTrainer(
        model=model, args=args, processing_class=tokenizer, peft_config=peft_config,
        train_dataset=data.train, eval_dataset=data.validation if validate else None,
        callbacks=_callbacks(job) + launch_callbacks(job) + ([tracker.callback()] if tracker else []))
    trainer.remove_callback(transformers.PrinterCallback)

    # Measured before a checkpoint is loaded, so a resumed run is compared with the same starting point.
    initial_norms = trained_tensor_norms(trainer.model)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    return TrainingRun(trainer, resume_from, initial_norms, time.perf_counter() - started)


def lora_config(lora: LoraSettings | None):
    """peft's LoraConfig for the recipe's train.lora, which the compiler gives every lora and qlora run."""
    if lora is None:
        raise ValueError("a lora or qlora run needs adapter settings (train.lora)")
    from peft import LoraConfig

    targets = lora.target_modules if isinstance(lora.target_modules, str) else list(lora.target_modules)
    # peft annotates lora_alpha as int but only divides by it; the recipe allows any positive number.
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,  # type: ignore[arg-type]
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")


def _final_validation_loss(trainer, early_stopping: bool) -> float | None:
    """TRL may pack or drop validation examples; evaluate whatever it kept. An evaluation at the last step
    measured these weights already, unless early stopping has since loaded the best checkpoint back."""
    last = next((entry for entry in reversed(trainer.state.log_history) if "eval_loss" in entry), None)
    if last and last["step"] == trainer.state.global_step and not early_stopping:
        return last["eval_loss"]
    return trainer.evaluate()["eval_loss"] if trainer.eval_dataset is not None and len(trainer.eval_dataset) else None


def _save_model(job: TrainJob, trainer, tokenizer) -> None:
    # Under FSDP each process holds a shard: every process takes part in gathering the whole weights.
    state_dict = trainer.accelerator.get_state_dict(trainer.model) if trainer.is_fsdp_enabled else None
    if not trainer.is_world_process_zero():  # the one process that saves, when several were launched
        return
    model = trainer.model
    if job.params.method == "full":
        model.save_pretrained(job.model_dir, state_dict=state_dict)
    else:
        # Name the base as the recipe does, not the scratch directory it was loaded from, so the
        # adapter files are the same in every run and say which model they belong to.
        model.peft_config["default"].base_model_name_or_path = job.params.model.base
        # The vocabulary is never resized, so no embedding weights need saving (and peft need not look the base up).
        model.save_pretrained(job.model_dir, state_dict=state_dict, save_embedding_layers=False)
    tokenizer.save_pretrained(job.model_dir)
    # The model is saved: the checkpoints were only there to resume an interrupted run.
    shutil.rmtree(job.checkpoint_dir, ignore_errors=True)
    forget_checkpoints(job)


def _early_stopping_result(params: TrainParams, state) -> dict | None:
    if params.early_stopping is None:
        return None
    best_step = int(Path(state.best_model_checkpoint).name.rsplit("-", 1)[1]) if state.best_model_checkpoint else None
    return {"patience": params.early_stopping.patience, "min_delta": params.early_stopping.min_delta,
            "stopped_early": state.global_step < state.max_steps, "best_step": best_step,
            "best_validation_loss": state.best_metric}


def finish(job: TrainJob, tokenizer, data: PreparedData, run: TrainingRun) -> TrainOutcome:
    """Check that training moved the weights, save the model, and say how the run went."""
    trainer, resume_from = run.trainer, run.resumed_from
    final = trained_tensor_norms(trainer.model)
    changed = [name for name, norm in final.items() if norm != run.initial_norms.get(name)]
    if not changed:
        raise RuntimeError(f"train: {trainer.state.global_step} steps left every trained weight at its initial "
                           "value; check train.learning_rate and that the data has response tokens")
    validation_loss = _final_validation_loss(trainer, job.params.early_stopping is not None)
    _save_model(job, trainer, tokenizer)
    state, model = trainer.state, trainer.model
    trainable, total = (model.get_nb_trainable_parameters() if job.params.method != "full" else
                        (sum(p.numel() for p in model.parameters() if p.requires_grad),
                         sum(p.numel() for p in model.parameters())))
    log = state.log_history
    return TrainOutcome(
        steps=state.global_step, epochs=state.epoch or 0.0,
        loss_history=[{"step": entry["step"], "loss": entry["loss"]} for entry in log if "loss" in entry],
        # By step: the final evaluation above repeats the last periodic one when they fall on the same step.
        validation_loss_history=[{"step": step, "loss": loss} for step, loss in
                                 {entry["step"]: entry["eval_loss"] for entry in log if "eval_loss" in entry}.items()],
        validation_loss=validation_loss, trainable_parameters=trainable, total_parameters=total,
        updated_tensors=len(changed), trained_tensors=len(final), train_examples=len(data.train),
        dropped_examples=data.dropped, trained_tokens=data.trained_tokens, total_tokens=data.total_tokens,
        prompt_format=data.prompt_format, device=trainer.args.device.type,
        precision=training_precision(job.params.precision), seconds=run.seconds, records_left_out=data.records_left_out,
        resumed_from_step=int(Path(resume_from).name.rsplit("-", 1)[1]) if resume_from else None,
        early_stopping=_early_stopping_result(job.params, state))


class SFTBackend:
    """Supervised fine-tuning through TRL's SFTTrainer."""

    objective: ClassVar[str] = "sft"
    hyperparameters: ClassVar[tuple[str, ...]] = (
        "learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "weight_decay", "epochs",
        "max_steps", "batch_size", "gradient_accumulation_steps", "max_seq_length", "packing",
        "gradient_checkpointing", "save_steps", "save_total_limit", "seed", "save_only_model", "optimizer",
        "precision", "tf32", "load_in_8bit", "logging_steps", "eval_steps", "evals_per_epoch", "max_samples",
        "chat_template", "chat_template_file")

    def prepare(self, job: TrainJob, tokenizer) -> None:
        write_tokenized_splits(job, tokenizer)

    def train(self, job: TrainJob, tracker=None) -> TrainOutcome:
        quiet_libraries()
        tokenizer = training_tokenizer(job.base_path, job.params.model, job.chat_template)
        if not job.params.compute.launched:  # launched processes read what the launching process prepared
            self.prepare(job, tokenizer)
        data = prepared_data(job, tokenizer)
        model = load_model(job)
        return finish(job, tokenizer, data, fit(job, tokenizer, model, data, tracker))
