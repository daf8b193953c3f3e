"""DP-SGD with opacus over source-record units: the `dp_sft` backend, chosen when train.privacy is enabled.

What the privacy unit is, how delta is chosen and how epsilon is accounted for is in
fttool/training/private.py and docs/privacy.md. Here:
- Poisson sampling picks units (opacus' DPDataLoader over the unit numbers), each with probability
  q = expected units per step / N; a unit's examples are read from the memory-mapped train split
  (fttool.training.arrow_examples, where each example carries its unit) when a batch holds it;
- a unit's gradient is the sum of its examples' per-example gradients (opacus computes those; they are
  summed per unit before its DPOptimizer clips, so the optimizer sees one gradient per unit);
- noise and accounting are opacus' own, for that q; the loop stops before a step whose epsilon would
  exceed the budget.

Known traps, handled here: the model goes to its device before `get_peft_model` (opacus#820), and the
run fails if any LoRA tensor did not change; only LoRA tensors may be trainable, so a tied embedding
matrix, shared by two modules, is never given per-example gradients; a trainable layer with no opacus
grad sampler is an error naming the layer, raised before training.

Data preparation is fttool.training.examples' (prompt tokens masked unless train_on_inputs); the loss of
an example is the mean over its response tokens, as per-example clipping needs one loss per example.
Validation loss is measured about as often as the SFT backend measures it, for the report's curve.
DP training keeps no checkpoint: an interrupted run starts again from step 0, and says so.
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

from fttool.training.arrow_examples import SplitCounts, load_splits, write_tokenized_splits
from fttool.training.backends.sft import lora_config
from fttool.training.device import device, load_dtype, training_precision
from fttool.training.faults import FAULT_ENV, InjectedFault, fault_step
from fttool.training.job import TrainJob, TrainOutcome
from fttool.training.modeling import load_causal_lm, training_tokenizer
from fttool.training.private import (
    ACCOUNTANTS,
    SAMPLER,
    default_delta,
    delta_warning,
    epsilon_of,
    steps_within_budget,
)
from fttool.training.quiet import quiet_libraries
from fttool.training.settings import LoraSettings, PrivacySettings, TrainParams

LORA_MARK = "lora_"
# At most about this many points in the loss curve, and this many validation measurements, as in the SFT backend.
LOSS_POINTS = 25
VALIDATION_POINTS = 5
ATTEMPT_MARKER = "dp-attempt-started"


def check_trainable_layers(model) -> None:
    """Only LoRA tensors train, and opacus can compute per-example gradients for every layer that owns one."""
    from opacus.grad_sample import GradSampleModule
    from opacus.utils.module_utils import trainable_modules

    not_lora = [name for name, p in model.named_parameters() if p.requires_grad and LORA_MARK not in name]
    if not_lora:
        raise ValueError(f"train.privacy: only LoRA weights may train with differential privacy, but "
                         f"{', '.join(not_lora)} would too (a tied embedding is shared by two modules, which opacus "
                         "cannot give per-example gradients); keep base weights frozen")
    unsupported = [f"{name} ({type(module).__name__})" for name, module in trainable_modules(model)
                   if type(module) not in GradSampleModule.GRAD_SAMPLERS]
    if unsupported:
        raise ValueError(f"train.privacy: opacus has no per-example gradient (grad sampler) for the layer "
                         f"{', '.join(unsupported)}; remove the module it adapts from train.lora.target_modules "
                         "(Linear layers are supported)")


def lora_model(model, lora: LoraSettings, device: str):
    """The base model on `device`, then wrapped with LoRA: in this order, or opacus may update stale copies."""
    from peft import get_peft_model

    model.to(device)
    return get_peft_model(model, lora_config(lora))


def collate_units(units: Sequence[list[dict]], pad_id: int):
    """A batch of unit indices -> padded rows of all their examples, with the unit of each row."""
    import torch

    def collate(batch):
        rows = [(position, example) for position, (index,) in enumerate(batch) for example in units[int(index)]]
        length = max(len(example["input_ids"]) for _, example in rows)
        input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), length), -100, dtype=torch.long)
        attention = torch.zeros((len(rows), length), dtype=torch.long)
        for row, (_, example) in enumerate(rows):
            size = len(example["input_ids"])
            input_ids[row, :size] = torch.tensor(example["input_ids"])
            labels[row, :size] = torch.tensor(example["labels"])
            attention[row, :size] = 1
        unit_of_row = torch.tensor([position for position, _ in rows], dtype=torch.long)
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention, "unit_of_row": unit_of_row}

    return collate


def example_losses(logits, labels):
    """Mean next-token loss over each row's labelled tokens: one loss per example."""
    import torch.nn.functional as F

    targets = labels[:, 1:]
    tokens = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets, ignore_index=-100, reduction="none")
    counted = (targets != -100).sum(dim=1).clamp(min=1)
    return tokens.sum(dim=1) / counted


def per_unit_grad_samples(parameters, unit_of_row, units_in_batch: int) -> None:
    """Replace each per-example gradient batch by per-unit sums, so that the optimizer clips units."""
    for p in parameters:
        samples = p.grad_sample
        merged = samples.new_zeros((units_in_batch, *samples.shape[1:]))
        p.grad_sample = merged.index_add_(0, unit_of_row.to(samples.device), samples)


def unchanged_tensors(initial: dict, model) -> list[str]:
    """Names of trainable tensors still equal to their value in `initial` (name -> tensor)."""
    import torch

    return [name for name, p in model.named_parameters() if p.requires_grad and torch.equal(p.detach(), initial[name])]


def validation_loss(model, examples: list[dict], pad_id: int, batch_size: int) -> float | None:
    """Mean loss over the validation examples' labelled tokens, computed as the evaluate stage computes it."""
    from fttool.evaluation.losses import labelled_token_losses, mean_token_loss

    return mean_token_loss(labelled_token_losses(model, pad_id, [(e["input_ids"], e["labels"]) for e in examples],
                                                 batch_size))


def unit_rows(units: Iterable[int]) -> list[list[int]]:
    """The rows of each unit, given each row's unit, units in order of their first row."""
    by_unit: dict[int, list[int]] = {}
    for row, unit in enumerate(units):
        by_unit.setdefault(unit, []).append(row)
    return list(by_unit.values())


class MappedUnits(Sequence):
    """Units over a memory-mapped split: unit i is the list of its examples, read from the file when asked, so
    the examples are never all held in memory."""

    def __init__(self, examples, rows: list[list[int]]):
        self.examples, self.rows = examples, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        columns = self.examples[self.rows[index]]
        return [{"input_ids": ids, "labels": labels} for ids, labels in zip(columns["input_ids"], columns["labels"])]

    @classmethod
    def of(cls, examples) -> MappedUnits:
        return cls(examples, unit_rows(examples.data.column("unit").to_pylist()))


@dataclass
class DPRun:
    steps: int
    stopped_by_budget: bool
    sample_rate: float
    expected_units_per_step: float
    epsilon: float
    epsilons: dict  # accountant -> epsilon for the same steps
    loss_history: list
    validation_loss_history: list
    seconds: float


@dataclass
class _Curves:
    """The loss curves as the loop measures them: mean train loss every few steps, validation loss about
    VALIDATION_POINTS times and at the last step; each point goes to `on_log` (the tracker) as it is made."""

    planned: int
    last: int
    log_every: int
    validate_every: int
    validate: Callable[[], float | None] | None
    on_log: Callable[[dict, int], None] | None
    losses: list = field(default_factory=list)
    validation: list = field(default_factory=list)
    pending: list = field(default_factory=list)  # per-example losses since the last point

    def step_done(self, step: int) -> None:
        if self.pending and (step % self.log_every == 0 or step in (1, self.last)):
            self.losses.append({"step": step, "loss": sum(self.pending) / len(self.pending)})
            print(f"train step {step}/{self.planned} (DP): loss {self.losses[-1]['loss']:.4f}", file=sys.stderr,
                  flush=True)
            self._log({"train_loss": self.losses[-1]["loss"]}, step)
        self.pending = []
        if self.validate and (step % self.validate_every == 0 or step == self.last):
            loss = self.validate()
            if loss is not None:
                self.validation.append({"step": step, "loss": loss})
                self._log({"validation_loss": loss}, step)

    def _log(self, values: dict, step: int) -> None:
        if self.on_log:
            self.on_log(values, step)


@dataclass
class _PrivateTraining:
    """What opacus' make_private returns, with the schedule and the steps the budget allows."""

    model: Any
    optimizer: Any
    loader: Any
    engine: Any
    schedule: Any
    sample_rate: float
    allowed: int


def _make_private(model, units, *, pad_id, batch_size, gradient_accumulation_steps, learning_rate, planned_steps,
                  noise_multiplier, max_grad_norm, delta, accountant, epsilon_budget, weight_decay,
                  lr_scheduler_type, warmup_steps) -> _PrivateTraining:
    import torch
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import get_scheduler

    logical_batch = batch_size * gradient_accumulation_steps
    loader = DataLoader(TensorDataset(torch.arange(len(units))), batch_size=logical_batch,
                        collate_fn=collate_units(units, pad_id))
    sample_rate = 1 / len(loader)  # what opacus' Poisson sampler uses
    allowed = steps_within_budget(planned_steps, noise_multiplier, sample_rate, delta, accountant, epsilon_budget)
    if allowed == 0:
        raise ValueError(f"train.privacy: one step with noise multiplier {noise_multiplier:g} at sample rate "
                         f"{sample_rate:.4g} already spends more than epsilon {epsilon_budget:g}")
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate,
                                  weight_decay=weight_decay)
    with warnings.catch_warnings():
        # opacus warns that its noise comes from torch's generator, not a cryptographic one (secure_mode);
        # docs/privacy.md says so once instead of every run.
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=accountant)
        private_model, optimizer, private_loader = engine.make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm, poisson_sampling=True, grad_sample_mode="hooks")
    schedule = get_scheduler(lr_scheduler_type, optimizer.original_optimizer, num_warmup_steps=warmup_steps,
                             num_training_steps=planned_steps)
    return _PrivateTraining(private_model, optimizer, private_loader, engine, schedule, sample_rate, allowed)


def _physical_step(private: _PrivateTraining, trainable: list, batch, curves: _Curves) -> None:
    """Forward and backward over one physical batch: per-example gradients, summed per unit."""
    if isinstance(batch, list) or batch["input_ids"].shape[0] == 0:  # Poisson sampling drew no unit
        for p in trainable:  # the step still adds noise
            p.grad_sample = p.new_zeros((0, *p.shape))
        return
    target = next(p.device for p in trainable)
    batch = {key: value.to(target) for key, value in batch.items()}
    logits = private.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    losses = example_losses(logits, batch["labels"])
    losses.mean().backward()  # opacus' "mean" reduction turns this back into per-example gradients
    curves.pending += losses.detach().tolist()
    per_unit_grad_samples(trainable, batch["unit_of_row"], int(batch["unit_of_row"].max()) + 1)


def _train_steps(private: _PrivateTraining, trainable: list, batch_size: int, curves: _Curves) -> int:
    """Logical steps until the budget's last allowed one; FTTOOL_FAULT stops after the step it names."""
    from opacus.utils.batch_memory_manager import BatchMemoryManager

    crash_after, steps, optimizer = fault_step(), 0, private.optimizer
    with BatchMemoryManager(data_loader=private.loader, max_physical_batch_size=batch_size,
                            optimizer=optimizer) as physical_loader, warnings.catch_warnings():
        # Frozen embeddings mean no module input needs a gradient; opacus' backward hooks still see the outputs'.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        while steps < private.allowed:
            for batch in physical_loader:
                optimizer.zero_grad()
                _physical_step(private, trainable, batch, curves)
                if optimizer._check_skip_next_step(pop_next=False):  # more physical batches in this logical one
                    optimizer.step()
                    continue
                optimizer.step()
                private.schedule.step()
                steps += 1
                curves.step_done(steps)
                if steps == crash_after:
                    raise InjectedFault(f"{FAULT_ENV} asked training to fail after step {steps} "
                                        "(DP keeps no checkpoint)")
                if steps >= private.allowed:
                    break
    return steps


def _in_eval_mode(model, validate: Callable[[], float | None]) -> float | None:
    """validate() with the model in eval mode (no dropout), back in train mode afterwards."""
    model.eval()
    try:
        return validate()
    finally:
        model.train()


def run_dp_sgd(model, units: Sequence[list[dict]], *, pad_id: int, batch_size: int, gradient_accumulation_steps: int,
               learning_rate: float, planned_steps: int, noise_multiplier: float, max_grad_norm: float,
               delta: float, accountant: str, epsilon_budget: float | None, seed: int, weight_decay: float = 0.0,
               lr_scheduler_type: str = "linear", warmup_steps: int = 0,
               validate: Callable[[], float | None] | None = None,
               on_log: Callable[[dict, int], None] | None = None, log_every: int | None = None,
               validate_every: int | None = None) -> DPRun:
    """DP-SGD over `units` (lists of tokenized examples) with opacus; `model` is a LoRA model on its device.

    A logical batch samples batch_size x gradient_accumulation_steps units in expectation, processed
    batch_size units at a time by opacus' BatchMemoryManager. Stops after `planned_steps`, or before a
    step whose epsilon would exceed `epsilon_budget`. AdamW and the learning-rate schedule are those of
    the SFT backend. `validate` measures validation loss (model in eval mode) every `validate_every` steps
    (default: about VALIDATION_POINTS a run) and after the last; the mean train loss is recorded every
    `log_every` steps (default: about LOSS_POINTS a run); `on_log(metrics, step)` receives every point.
    """
    import torch
    from opacus.accountants import create_accountant

    torch.manual_seed(seed)
    private = _make_private(
        model, units, pad_id=pad_id, batch_size=batch_size, gradient_accumulation_steps=gradient_accumulation_steps,
        learning_rate=learning_rate, planned_steps=planned_steps, noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm, delta=delta, accountant=accountant, epsilon_budget=epsilon_budget,
        weight_decay=weight_decay, lr_scheduler_type=lr_scheduler_type, warmup_steps=warmup_steps)

    curves = _Curves(planned_steps, private.allowed, log_every or max(1, math.ceil(planned_steps / LOSS_POINTS)),
                     validate_every or max(1, math.ceil(planned_steps / VALIDATION_POINTS)),
                     partial(_in_eval_mode, model, validate) if validate else None, on_log)
    started = time.perf_counter()
    steps = _train_steps(private, [p for p in model.parameters() if p.requires_grad], batch_size, curves)
    seconds = time.perf_counter() - started
    epsilons = {}
    for name in ACCOUNTANTS:
        counter = create_accountant(name)
        counter.history = list(private.engine.accountant.history)
        epsilons[name] = epsilon_of(counter, delta)
    model.eval()
    return DPRun(steps=steps, stopped_by_budget=steps < planned_steps, sample_rate=private.sample_rate,
                 expected_units_per_step=private.sample_rate * len(units), epsilon=epsilons[accountant],
                 epsilons=epsilons, loss_history=curves.losses, validation_loss_history=curves.validation,
                 seconds=seconds)


@dataclass
class _Budget:
    """The DP settings a run resolves before training: delta, noise and the steps planned."""

    delta: float
    noise_multiplier: float
    planned_steps: int
    steps_per_epoch: int
    warnings: list[str]


def _dp_settings(params: TrainParams) -> tuple[PrivacySettings, LoraSettings]:
    """The privacy and adapter settings a dp_sft job always has (validation refuses DP without LoRA)."""
    if params.privacy is None or params.lora is None:
        raise ValueError("train: the dp_sft backend trains LoRA weights with train.privacy; this job lacks "
                         f"{'train.privacy' if params.privacy is None else 'LoRA settings'}")
    return params.privacy, params.lora


def _budget(params: TrainParams, unit_count: int) -> _Budget:
    privacy, _ = _dp_settings(params)
    delta = privacy.delta or default_delta(unit_count)
    found = [w for w in [delta_warning(delta, unit_count)] if w]
    for warning in found:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    steps_per_epoch = math.ceil(unit_count / (params.batch_size * params.gradient_accumulation_steps))
    planned = params.max_steps if params.max_steps > 0 else math.ceil(steps_per_epoch * params.epochs)
    if privacy.noise_multiplier is not None:  # validation allows it or target_epsilon, never both
        return _Budget(delta, privacy.noise_multiplier, planned, steps_per_epoch, found)
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")  # see private.epsilon_of
        noise = get_noise_multiplier(target_epsilon=privacy.target_epsilon, target_delta=delta,
                                     sample_rate=1 / steps_per_epoch, steps=planned, accountant=privacy.accountant)
    return _Budget(delta, noise, planned, steps_per_epoch, found)


def _privacy_section(privacy: PrivacySettings, budget: _Budget, run: DPRun, unit_sizes: list[int],
                     batch_size: int, trainable: int) -> dict:
    """The report's top-level privacy section; `unit_sizes`: the examples of each unit."""
    largest_unit = max(unit_sizes)
    per_unit = Counter(unit_sizes)
    return {
        "enabled": True,
        "epsilon": run.epsilon,
        "delta": budget.delta,
        "delta_source": "recipe" if privacy.delta else "default",
        "target_epsilon": privacy.target_epsilon,
        "accountant": privacy.accountant,
        "epsilons": run.epsilons,
        "noise_multiplier": budget.noise_multiplier,
        "noise_source": "calibrated" if privacy.target_epsilon is not None else "recipe",
        "max_grad_norm": privacy.max_grad_norm,
        "sample_rate": run.sample_rate,
        "sampler": SAMPLER,
        "expected_units_per_step": run.expected_units_per_step,
        "physical_batch_units": batch_size,
        "steps": run.steps,
        "planned_steps": budget.planned_steps,
        "stopped_by_budget": run.stopped_by_budget,
        "unit": "source record" if largest_unit > 1 else "record",
        "units": len(unit_sizes),
        "examples": sum(unit_sizes),
        "max_examples_per_unit": largest_unit,
        "units_by_examples": {str(size): count for size, count in sorted(per_unit.items())},
        "trainable_parameters": trainable,
        "warnings": budget.warnings,
    }


def _say_if_restarted(job: TrainJob) -> None:
    # The work directory outlives a failed attempt, so a marker left there means this one is a restart.
    marker = job.work_dir / ATTEMPT_MARKER
    if marker.exists():
        print("train: an earlier differentially private attempt of this stage did not finish; DP training keeps "
              "no checkpoint, so it starts again from step 0 (the unfinished attempt's model was never written)",
              file=sys.stderr, flush=True)
    marker.touch()


def _train_model(job: TrainJob, model, units: MappedUnits, validation: MappedUnits, pad_id: int, budget: _Budget,
                 tracker) -> DPRun:
    params, (privacy, _) = job.params, _dp_settings(job.params)

    def validate() -> float | None:
        # Read from the mapped split at each measurement, and let go after it.
        return validation_loss(model, [example for unit in validation for example in unit], pad_id, params.batch_size)

    run = run_dp_sgd(
        model, units, pad_id=pad_id, batch_size=params.batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps, learning_rate=params.learning_rate,
        planned_steps=budget.planned_steps, noise_multiplier=budget.noise_multiplier,
        max_grad_norm=privacy.max_grad_norm, delta=budget.delta, accountant=privacy.accountant,
        epsilon_budget=privacy.target_epsilon, seed=params.seed, weight_decay=params.weight_decay,
        lr_scheduler_type=params.lr_scheduler_type,
        warmup_steps=params.warmup_steps or math.ceil(params.warmup_ratio * budget.planned_steps),
        validate=validate if len(validation) else None,
        on_log=tracker.log_metrics if tracker else None, log_every=params.logging_steps,
        validate_every=params.eval_steps or (math.ceil(budget.steps_per_epoch / params.evals_per_epoch)
                                             if params.evals_per_epoch else None))
    if run.stopped_by_budget:
        budget.warnings.append(f"training stopped after {run.steps} of {budget.planned_steps} steps: one more step "
                               f"would have spent more than epsilon {privacy.target_epsilon:g}")
        print(f"warning: {budget.warnings[-1]}", file=sys.stderr, flush=True)
    return run


class DPSGDBackend:
    """Differentially private supervised fine-tuning of LoRA weights with opacus."""

    objective: ClassVar[str] = "dp_sft"
    hyperparameters: ClassVar[tuple[str, ...]] = (
        "learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "weight_decay", "epochs",
        "max_steps", "batch_size", "gradient_accumulation_steps", "max_seq_length", "seed", "precision", "tf32",
        "logging_steps", "eval_steps", "evals_per_epoch", "max_samples", "chat_template",
        "chat_template_file")

    def prepare(self, job: TrainJob, tokenizer) -> None:
        write_tokenized_splits(job, tokenizer, with_units=True)

    def train(self, job: TrainJob, tracker=None) -> TrainOutcome:
        import torch

        quiet_libraries()
        _say_if_restarted(job)
        params = job.params
        tokenizer = training_tokenizer(job.base_path, params.model, job.chat_template)
        if not params.compute.launched:  # launched processes read what the launching process prepared
            self.prepare(job, tokenizer)
        splits = load_splits(job.work_dir)
        units, validation_units = MappedUnits.of(splits.train), MappedUnits.of(splits.validation)
        budget = _budget(params, len(units))
        torch.manual_seed(params.seed)  # the LoRA initialisation
        model = lora_model(load_causal_lm(job.base_path, params.model,
                                          dtype=load_dtype(training_precision(params.precision))),
                           _dp_settings(params)[1], device())
        check_trainable_layers(model)
        initial = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
        run = _train_model(job, model, units, validation_units, tokenizer.pad_token_id, budget, tracker)
        unchanged = unchanged_tensors(initial, model)
        if unchanged:
            raise RuntimeError(f"train: {len(unchanged)} of {len(initial)} LoRA tensors did not change in "
                               f"{run.steps} DP-SGD steps (first: {unchanged[0]}); the optimizer did not update "
                               "the model's weights")
        model.peft_config["default"].base_model_name_or_path = params.model.base
        model.save_pretrained(job.model_dir, save_embedding_layers=False)
        tokenizer.save_pretrained(job.model_dir)
        return self._outcome(job, model, tokenizer, units, splits.counts["train"], budget, run, len(initial))

    def _outcome(self, job: TrainJob, model, tokenizer, units: MappedUnits, counts: SplitCounts, budget: _Budget,
                 run: DPRun, tensors: int) -> TrainOutcome:
        privacy, _ = _dp_settings(job.params)
        trainable, total_parameters = model.get_nb_trainable_parameters()
        section = _privacy_section(privacy, budget, run, [len(rows) for rows in units.rows], job.params.batch_size,
                                   trainable)
        note = (f"Trained with differential privacy: ({run.epsilon:.3g}, {budget.delta:.3g})-DP per "
                f"{section['unit']} ({privacy.accountant.upper()} accountant, {SAMPLER} sampling, noise multiplier "
                f"{budget.noise_multiplier:.4g}, clipping norm {privacy.max_grad_norm:g}).")
        history = run.validation_loss_history
        return TrainOutcome(
            steps=run.steps, epochs=run.steps / budget.steps_per_epoch, loss_history=run.loss_history,
            validation_loss_history=history, validation_loss=history[-1]["loss"] if history else None,
            trainable_parameters=trainable, total_parameters=total_parameters, updated_tensors=tensors,
            trained_tensors=tensors, train_examples=counts.rows, dropped_examples=counts.dropped,
            trained_tokens=counts.trained_tokens, total_tokens=counts.total_tokens,
            prompt_format="chat_template" if tokenizer.chat_template else "alpaca",
            device=device(), precision=training_precision(job.params.precision), seconds=run.seconds,
            records_left_out=counts.records_left_out,
            extras={"privacy": section}, card_notes=[note])
