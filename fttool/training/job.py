"""What a training backend is given (TrainJob) and what it returns (TrainOutcome).

A job is built once, by the train stage, from its typed parameters and its wired paths; it is plain data,
so `launch` can write it to JSON for the processes it starts. A backend turns a job into a trained model in
`job.model_dir` and an outcome; fttool.training.summary turns any outcome into the report's training section
and the model card, so every backend reports the same things.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from fttool.pipeline.params import build
from fttool.pipeline.plan import thaw
from fttool.training.settings import TrainParams

CHECKPOINT_DIR = "checkpoints"
_PATH_FIELDS = ("train_data", "validation_data", "model_dir", "work_dir", "checkpoint_seal", "tracking_store",
                "run_dir")


def objective_of(params: TrainParams) -> str:
    """The backend a job needs: the recipe's objective (sft, dpo, kto, orpo), with DP-SGD when privacy is on
    (validation refuses privacy with a preference objective)."""
    return "dp_sft" if params.private else params.objective


@dataclass(frozen=True)
class TrainJob:
    """One training run, fully resolved.

    objective: the key of the backend that runs it (fttool.training.backends).
    params: the train stage's parameters.
    base_path: the base model to load: a directory (the demo model already built) or a hub id.
    train_data, validation_data: the prepared JSONL splits.
    model_dir: where the adapter (or whole model) and tokenizer are written.
    work_dir: private to this stage and kept after a failure: checkpoints and launch files.
    checkpoint_seal: the file, in a directory only the operator can write, that holds the digests of the checkpoints
        (fttool.training.checkpoint_seal), so that a resumed run continues only from what training wrote.
    tracking_store: MLflow's file store in the run directory (used unless tracking.uri names a server).
    run_dir: the run directory, where a multi-process launch runs and which report paths are relative to.
    run_name: the run's name (its directory name), for MLflow.
    chat_template: the Jinja chat template to set on the tokenizer (params.chat_template resolved); None
        keeps the tokenizer's own.
    """

    objective: str
    params: TrainParams
    base_path: str
    train_data: Path
    validation_data: Path
    model_dir: Path
    work_dir: Path
    checkpoint_seal: Path
    tracking_store: Path
    run_dir: Path
    run_name: str
    chat_template: str | None

    @property
    def checkpoint_dir(self) -> Path:
        return self.work_dir / CHECKPOINT_DIR

    def to_json(self) -> str:
        values = thaw(self)
        for name in _PATH_FIELDS:
            values[name] = str(values[name])
        return json.dumps(values, indent=2)

    @classmethod
    def from_json(cls, text: str) -> TrainJob:
        values = json.loads(text)
        return cls(**{**values, "params": build(TrainParams, values["params"], "train"),
                      **{name: Path(values[name]) for name in _PATH_FIELDS}})


@dataclass
class TrainOutcome:
    """What a backend reports about the run it made; summary.training_summary turns it into the report section.

    steps: optimizer steps taken (those before a resume included).
    epochs: passes over the train split those steps made.
    loss_history, validation_loss_history: [{"step", "loss"}], a point every few steps.
    validation_loss: after training, on the weights saved; None without validation examples.
    trainable_parameters, total_parameters: of the model as trained.
    updated_tensors, trained_tensors: trained tensors that changed, of all trained tensors.
    train_examples, dropped_examples: examples trained on, and those with no token left to train on.
    trained_tokens, total_tokens: tokens with a label, of all tokens in the train examples.
    prompt_format: "chat_template" or "alpaca".
    device, precision: where and in which precision it trained.
    seconds: training time.
    records_left_out: train records beyond train.max_samples, not trained on.
    resumed_from_step: the checkpoint step an interrupted run continued from.
    early_stopping: settings and result, when on.
    extras: backend-specific report sections, such as "privacy".
    card_notes: paragraphs the backend adds to the model card.
    """

    steps: int
    epochs: float
    loss_history: list[dict]
    validation_loss_history: list[dict]
    validation_loss: float | None
    trainable_parameters: int
    total_parameters: int
    updated_tensors: int
    trained_tensors: int
    train_examples: int
    dropped_examples: int
    trained_tokens: int
    total_tokens: int
    prompt_format: str
    device: str
    precision: str
    seconds: float
    records_left_out: int = 0
    resumed_from_step: int | None = None
    early_stopping: dict | None = None
    extras: dict = field(default_factory=dict)
    card_notes: list[str] = field(default_factory=list)


class TrainingBackend(Protocol):
    """Trains `job`'s model into job.model_dir (on the main process) and says how it went.

    `prepare` writes the job's examples (fttool.training.arrow_examples) with the job's tokenizer, once: in the
    process that launches the training processes, or in the one process that trains (`train` calls it then); it
    fails when nothing is left to train on. `tracker` (fttool.training.tracking.Tracker, or None when tracking is
    off or on other processes) takes the loss curves as they are measured. `hyperparameters` are the settings the
    backend uses, for the report.
    """

    objective: ClassVar[str]
    hyperparameters: ClassVar[tuple[str, ...]]

    def prepare(self, job: TrainJob, tokenizer) -> None: ...

    def train(self, job: TrainJob, tracker) -> TrainOutcome: ...
