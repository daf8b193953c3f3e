"""Preference tuning with TRL: DPO (DPOTrainer), KTO (KTOTrainer) and ORPO (ORPOTrainer), with LoRA, QLoRA or full.

Records are `preference` pairs or `kto` responses (fttool.data.preference). Each prompt is formatted as for
supervised training: through the tokenizer's chat template (TRL's conversational format, the template applied by
TRL) or, without one, fttool's plain chat layout, with EOS after each response. KTO takes a pair as one desirable
and one undesirable response. With LoRA the reference model of DPO and KTO is the base with the adapter switched off
(TRL does so when it is given no reference model), so no second copy of the weights is held; a full fine-tune gets
a copy of the base. Checkpoints, resume, the fault hook, tracking and multi-process launch are the SFT backend's
(fttool.training.backends.sft): the Trainer arguments are the same, the TRL trainer differs.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, ClassVar

from fttool.data.preference import pair_statistics, response_record
from fttool.data.records import chat_prefix, read_jsonl
from fttool.training.arrow_examples import SplitCounts, capped, write_dataset, write_splits
from fttool.training.backends.sft import (
    PreparedData,
    SFTBackend,
    TrainingRun,
    _callbacks,
    finish,
    load_model,
    lora_config,
    planned_steps,
    prepared_data,
    trained_tensor_norms,
    trainer_config,
)
from fttool.training.checkpoint_seal import sealed_last_checkpoint
from fttool.training.examples import prompt_and_sequence_ids, response_start, template_messages
from fttool.training.job import TrainJob, TrainOutcome
from fttool.training.machines import launch_callbacks
from fttool.training.modeling import training_tokenizer
from fttool.training.preference_settings import WITH_REFERENCE
from fttool.training.quiet import quiet_libraries

# Trainer log keys of the implicit rewards (DPO, KTO) or ORPO's log-odds rewards, kept as the report's reward curves.
REWARD_PREFIX = "rewards/"


def _rows(record: dict, tokenizer, objective: str) -> list[dict]:
    """The TRL rows of one record: a pair, or for KTO one row per response with its label."""
    if record["format"] == "kto":
        responses = [(record["completion"], record["label"])]
    else:
        responses = [(record["chosen"], True), (record["rejected"], False)]
    # TRL's conversational form (messages, a list of turns per answer) or plain text
    prompt: list[dict] | str
    answers: list[Any]
    if tokenizer.chat_template:
        prompt = template_messages(tokenizer, record["messages"], record.get("tools"))
        as_turn = [{"role": "assistant", "content": text} for text, _ in responses]
        answers = [[turn] for turn in as_turn]
    else:
        prompt = chat_prefix(record, record["messages"]) + "<|assistant|>\n"
        answers = [text for text, _ in responses]
    if objective == "kto":
        return [{"prompt": prompt, "completion": answer, "label": label}
                for answer, (_, label) in zip(answers, responses)]
    if record["format"] == "kto":
        raise ValueError(f"train: record {record['id']} is a KTO response (one response and a label); objective "
                         f"{objective} needs pairs (format preference or sharegpt_preference), or use objective: kto")
    return [{"prompt": prompt, "chosen": answers[0], "rejected": answers[1]}]


def _token_counts(record: dict, tokenizer, max_length: int) -> tuple[bool, int, int]:
    """(whether the prompt leaves room for a response, response tokens, all tokens) within max_length."""
    fits, trained, total = True, 0, 0
    responses = [record["completion"]] if record["format"] == "kto" else [record["chosen"], record["rejected"]]
    for response in responses:
        prompt_ids, ids = prompt_and_sequence_ids(tokenizer, response_record(record, response))
        start, kept = response_start(prompt_ids, ids), min(len(ids), max_length)
        fits = fits and start < max_length
        trained += max(0, kept - start)
        total += kept
    return fits, trained, total


def write_pairs(job: TrainJob, tokenizer) -> None:
    """TRL rows of the train and validation splits (train.max_samples applied as for SFT) as Arrow files; a record
    whose prompt fills max_seq_length is dropped and counted. Fails when no train record is left."""
    from datasets import Dataset

    objective, length = job.params.objective, job.params.max_seq_length
    counts = {"train": SplitCounts(), "validation": SplitCounts()}

    def writer(split: str, source: Path, cap: int | None):
        def write(path: Path) -> int:
            rows, split_counts = [], counts[split]
            for record in capped(read_jsonl(source), cap, split_counts):
                fits, record_trained, record_total = _token_counts(record, tokenizer, length)
                if not fits:
                    split_counts.dropped += 1
                    continue
                rows += _rows(record, tokenizer, objective)
                split_counts.trained_tokens += record_trained
                split_counts.total_tokens += record_total
            # Nested chat rows take their Arrow types from every row together, as Dataset.from_list infers them.
            return write_dataset(path, Dataset.from_list(rows))
        return write

    write_splits(job.work_dir, {"train": writer("train", job.train_data, job.params.max_samples),
                                "validation": writer("validation", job.validation_data, None)}, counts)
    if not counts["train"].rows:
        raise ValueError(f"train: no preference record is left to train on ({counts['train'].dropped} dropped because "
                         f"the prompt fills max_seq_length {length}); raise train.max_seq_length or check the train "
                         "split")


def preference_config(job: TrainJob, rows: int, validate: bool):
    """TRL's config for the objective: the SFT backend's Trainer arguments plus the preference settings."""
    from transformers import TrainingArguments

    params, settings = job.params, job.params.preference
    assert settings is not None, "a preference objective always has preference settings (compiler)"
    common = trainer_config(params, job.checkpoint_dir, planned_steps(params, rows), validate)
    arguments = {field.name: getattr(common, field.name) for field in dataclasses.fields(TrainingArguments)
                 if field.init}
    arguments["gradient_checkpointing"] = params.gradient_checkpointing
    if params.objective == "orpo":
        from trl.experimental.orpo import ORPOConfig

        return ORPOConfig(**arguments, beta=settings.beta, max_length=params.max_seq_length)
    reference: dict[str, Any] = {
        "precompute_ref_log_probs": settings.precompute_ref_log_probs, "sync_ref_model": settings.sync_ref_model,
        "ref_model_mixup_alpha": settings.ref_model_mixup_alpha, "ref_model_sync_steps": settings.ref_model_sync_steps}
    loss_type = settings.loss_type
    assert loss_type is not None, "preference settings name a loss type for DPO and KTO (preference_settings)"
    if params.objective == "kto":
        from trl import KTOConfig

        if loss_type == "kto":  # its KL term is estimated from neighbours in a fixed-order batch
            arguments["train_sampling_strategy"] = "sequential"
        return KTOConfig(**arguments, **reference, beta=settings.beta, loss_type=loss_type,
                         desirable_weight=settings.desirable_weight, undesirable_weight=settings.undesirable_weight,
                         max_length=params.max_seq_length)
    from trl import DPOConfig

    return DPOConfig(**arguments, **reference, beta=settings.beta, loss_type=[loss_type],
                     label_smoothing=settings.label_smoothing, max_length=params.max_seq_length)


def _trainer_class(objective: str):
    if objective == "dpo":
        from trl import DPOTrainer

        return DPOTrainer
    if objective == "kto":
        from trl import KTOTrainer

        return KTOTrainer
    from trl.experimental.orpo import ORPOTrainer

    return ORPOTrainer


def _reference_model(job: TrainJob):
    """A frozen copy of the base for a full fine-tune; None with LoRA, where TRL switches the adapter off instead."""
    if job.params.objective not in WITH_REFERENCE or job.params.lora is not None:
        return None
    return load_model(job).eval()


def fit_preference(job: TrainJob, tokenizer, model, data: PreparedData, tracker=None) -> TrainingRun:
    """Train with the objective's TRL trainer, continuing from the last checkpoint when a failed run left one."""
    import transformers

    params = job.params
    resume_from = sealed_last_checkpoint(job)
    peft_config = None if params.method == "full" else lora_config(params.lora)
    validate = len(data.validation) > 0
    args = preference_config(job, len(data.train), validate=validate)
    extra = {} if params.objective == "orpo" else {"ref_model": _reference_model(job)}
    trainer = _trainer_class(params.objective)(
        model=model, args=args, processing_class=tokenizer, peft_config=peft_config,
        train_dataset=data.train, eval_dataset=data.validation if validate else None,
        callbacks=_callbacks(job) + launch_callbacks(job) + ([tracker.callback()] if tracker else []), **extra)
    trainer.remove_callback(transformers.PrinterCallback)
    initial_norms = trained_tensor_norms(trainer.model)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    return TrainingRun(trainer, resume_from, initial_norms, time.perf_counter() - started)


def reward_curves(log_history: list[dict]) -> dict:
    """The trainer's reward metrics by step, for training and validation: {train: [...], validation: [...]}."""
    curves: dict[str, list[dict]] = {"train": [], "validation": []}
    for entry in log_history:
        for split, prefix in (("train", REWARD_PREFIX), ("validation", "eval_" + REWARD_PREFIX)):
            point = {key[len(prefix):]: value for key, value in entry.items() if key.startswith(prefix)}
            if point:
                curves[split].append({"step": entry["step"], **point})
    return curves


def preference_summary(job: TrainJob, log_history: list[dict]) -> dict:
    """The training section's account of the objective: its TRL settings, the reference model, the train split's
    pair statistics and the reward curves."""
    params, settings = job.params, job.params.preference
    assert settings is not None
    if params.objective not in WITH_REFERENCE:
        reference = "none (ORPO needs no reference model)"
    elif params.lora is not None:
        reference = "the base model with the LoRA adapter switched off (no second copy)"
    else:
        reference = "a frozen copy of the base model"
    return {"objective": params.objective, "settings": dataclasses.asdict(settings), "reference_model": reference,
            "train_pairs": pair_statistics(read_jsonl(job.train_data)), "reward_curves": reward_curves(log_history)}


class PreferenceBackend:
    """Preference tuning through the TRL trainer of `objective`."""

    objective: ClassVar[str]
    hyperparameters: ClassVar[tuple[str, ...]] = SFTBackend.hyperparameters

    def prepare(self, job: TrainJob, tokenizer) -> None:
        write_pairs(job, tokenizer)

    def train(self, job: TrainJob, tracker=None) -> TrainOutcome:
        quiet_libraries()
        tokenizer = training_tokenizer(job.base_path, job.params.model, job.chat_template)
        if not job.params.compute.launched:  # launched processes read what the launching process prepared
            self.prepare(job, tokenizer)
        data = prepared_data(job, tokenizer)
        run = fit_preference(job, tokenizer, load_model(job), data, tracker)
        log_history = list(run.trainer.state.log_history)
        outcome = finish(job, tokenizer, data, run)
        outcome.extras["preference"] = preference_summary(job, log_history)
        settings = job.params.preference
        assert settings is not None, "a preference objective always has preference settings (compiler)"
        outcome.card_notes.append(f"Trained with preference objective `{job.params.objective}` (TRL, beta "
                                  f"{settings.beta}" + (f", loss {settings.loss_type}" if settings.loss_type else "")
                                  + ").")
        return outcome


class DPOBackend(PreferenceBackend):
    objective: ClassVar[str] = "dpo"


class KTOBackend(PreferenceBackend):
    objective: ClassVar[str] = "kto"


class ORPOBackend(PreferenceBackend):
    objective: ClassVar[str] = "orpo"

