"""The train stage's typed parameters: what the compiler resolves from a recipe's train, model, compute and
tracking sections, every default filled in (see schemas/recipe.schema.json for ranges and defaults).

Light on purpose (no torch): the compiler builds these for every recipe with a train section.
"""
from __future__ import annotations

from dataclasses import dataclass

from fttool.training.model_identity import ModelParams
from fttool.training.preference_settings import PreferenceSettings


@dataclass(frozen=True)
class LoraSettings:
    """The LoRA adapter (methods lora and qlora).

    r: rank of the adapter matrices.
    alpha: scaling; the update is multiplied by alpha / r.
    dropout: dropout on the adapter's input.
    target_modules: module names to adapt, or "all-linear" for every linear layer but the output layer.
    """

    r: int
    alpha: float
    dropout: float
    target_modules: tuple[str, ...] | str


@dataclass(frozen=True)
class EarlyStoppingSettings:
    """Stop when validation loss has not improved for `patience` checkpoints in a row; keep the best.

    patience: checkpoints without improvement before training stops.
    min_delta: the smallest fall of validation loss that counts as an improvement.
    """

    patience: int
    min_delta: float


@dataclass(frozen=True)
class PrivacySettings:
    """Differentially private training (DP-SGD with opacus) of the LoRA weights; see docs/privacy.md.

    enabled: train with differential privacy.
    target_epsilon: the epsilon budget per source record (noise calibrated to it); None with noise_multiplier.
    noise_multiplier: noise standard deviation over max_grad_norm; None with target_epsilon.
    delta: the delta of (epsilon, delta)-DP; None for min(1e-5, 1/(10 N)), N the train units.
    max_grad_norm: clipping norm of each source record's gradient.
    accountant: "prv" or "rdp", the accountant whose epsilon the budget and the report use.
    """

    enabled: bool
    target_epsilon: float | None
    noise_multiplier: float | None
    delta: float | None
    max_grad_norm: float
    accountant: str


@dataclass(frozen=True)
class DeepSpeedSettings:
    """DeepSpeed ZeRO (compute.strategy deepspeed).

    zero_stage: 1 shards the optimizer state across the processes, 2 also the gradients, 3 also the parameters.
    """

    zero_stage: int


@dataclass(frozen=True)
class ComputeSettings:
    """How training runs.

    num_processes: training processes on each machine; with more than one process in all the stage launches
        itself with `accelerate launch`.
    num_machines: machines that train together, each running num_processes processes.
    machine_rank: this machine's rank (0 to num_machines - 1); machine 0 saves the model and writes the report.
    main_process_ip: the address of machine 0; None for 127.0.0.1 (one machine).
    main_process_port: the rendezvous port on machine 0; None for a free port of this machine (one machine).
    strategy: "ddp", "fsdp" or "deepspeed" across the processes.
    deepspeed: the ZeRO settings with strategy deepspeed; None otherwise.
    threads: CPU threads torch uses in each process; None for the cores available less one, shared among
        the machine's processes.
    """

    num_processes: int
    num_machines: int
    machine_rank: int
    main_process_ip: str | None
    main_process_port: int | None
    strategy: str
    deepspeed: DeepSpeedSettings | None
    threads: int | None

    @property
    def total_processes(self) -> int:
        return self.num_processes * self.num_machines

    @property
    def launched(self) -> bool:
        """Whether training runs in processes launched through accelerate rather than in the fttool process."""
        return self.total_processes > 1


@dataclass(frozen=True)
class TrackingSettings:
    """MLflow tracking of the training run.

    enabled: track the run.
    uri: an MLflow tracking URI; None for the file store in the run directory (mlruns/).
    experiment: the MLflow experiment name (the recipe name unless the recipe sets one).
    """

    enabled: bool
    uri: str | None
    experiment: str


@dataclass(frozen=True)
class TrainParams:
    """Fine-tuning settings.

    objective: "sft" (supervised), or preference tuning: "dpo", "kto" or "orpo".
    preference: the preference objective's settings; None for sft.
    method: "lora", "qlora" (LoRA on a 4-bit base, CUDA only) or "full".
    lora: the adapter; None with method full (which ignores it).
    epochs: passes over the train split (ignored when max_steps is above 0).
    max_steps: optimizer steps to train for; overrides epochs when above 0 (-1: off).
    learning_rate: peak learning rate.
    lr_scheduler_type: how the learning rate changes after warmup (a transformers scheduler name).
    warmup_ratio: share of the steps over which the learning rate rises from 0 (or 0).
    warmup_steps: steps over which the learning rate rises from 0 (or 0).
    weight_decay: AdamW weight decay.
    batch_size: examples per device per forward pass.
    gradient_accumulation_steps: forward passes per optimizer step.
    max_seq_length: tokens per example; examples are cut at the end.
    train_on_inputs: compute the loss on prompt tokens too.
    packing: pack several examples into one sequence (needs FlashAttention).
    gradient_checkpointing: recompute activations in the backward pass.
    save_steps: checkpoint every this many steps (validation loss too, with early stopping).
    save_total_limit: most recent checkpoints kept.
    save_only_model: checkpoints hold the weights only (no optimizer, scheduler or RNG state).
    optimizer: "adamw_torch", "adamw_8bit" (bitsandbytes, CUDA) or "adafactor".
    precision: "auto" (bf16 or fp16 on a GPU, fp32 on CPU), "bf16", "fp16" or "fp32".
    tf32: allow TensorFloat-32 matrix multiplications (CUDA, compute capability 8.0 or newer).
    load_in_8bit: load the base model in 8 bits (bitsandbytes, CUDA) and train LoRA on it.
    logging_steps: record the training loss every this many steps; None for about 25 points a run.
    eval_steps: measure validation loss every this many steps; None for evals_per_epoch or about 5 a run.
    evals_per_epoch: validation measurements per epoch; None unless set.
    max_samples: train on at most this many train records (the first); None for all.
    chat_template: "chatml", "llama3", "tokenizer_default", or None (the tokenizer's own).
    chat_template_file: a Jinja template file relative to the recipe, or None.
    early_stopping: None when off.
    privacy: None unless the recipe has a privacy section.
    seed: seed of initialisation, data order and dropout.
    model: the base model.
    compute: processes and strategy.
    tracking: MLflow tracking.
    """

    objective: str
    preference: PreferenceSettings | None
    method: str
    lora: LoraSettings | None
    epochs: float
    max_steps: int
    learning_rate: float
    lr_scheduler_type: str
    warmup_ratio: float
    warmup_steps: int
    weight_decay: float
    batch_size: int
    gradient_accumulation_steps: int
    max_seq_length: int
    train_on_inputs: bool
    packing: bool
    gradient_checkpointing: bool
    save_steps: int
    save_total_limit: int
    save_only_model: bool
    optimizer: str
    precision: str
    tf32: bool
    load_in_8bit: bool
    logging_steps: int | None
    eval_steps: int | None
    evals_per_epoch: int | None
    max_samples: int | None
    chat_template: str | None
    chat_template_file: str | None
    early_stopping: EarlyStoppingSettings | None
    privacy: PrivacySettings | None
    seed: int
    model: ModelParams
    compute: ComputeSettings
    tracking: TrackingSettings

    @property
    def private(self) -> bool:
        return self.privacy is not None and self.privacy.enabled

