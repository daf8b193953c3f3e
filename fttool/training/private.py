"""Differentially private LoRA fine-tuning (DP-SGD with opacus), run by the train stage when
`train.privacy.enabled` is true.

Privacy unit: the source record. The augment stage adds reworded copies of train records, each with
`parent_id` naming the record it came from; a copy is not an independent example, since removing a
person's record also removes its copies. So every train example is grouped with its source record
(`parent_id` followed to a record without one) into one unit, and DP-SGD runs on units, not examples:
- Poisson sampling picks units (opacus' DPDataLoader over the list of units): each step includes each
  unit with probability q = expected units per step / N, N the number of units trained on;
- a unit's gradient is the sum of its examples' per-example gradients, and that sum is clipped to
  `max_grad_norm` (opacus computes per-example gradients; they are summed per unit before its
  DPOptimizer clips, so the optimizer sees one gradient per unit);
- noise and accounting are opacus' own, for that q.
The (epsilon, delta) guarantee is therefore exact for adding or removing one source record with all
its copies, and `target_epsilon` is calibrated for that unit; no group-privacy conversion is needed.
Without augmentation every unit is one record. The report states the unit, N and the largest number of
examples in one unit. What the guarantee covers is the training steps given the prepared train split:
steps that look across records before training (dedup, the split, which records augmentation picks)
and what the report shows about the data (counts, the loss curve, validation loss) are outside it.

delta: when the recipe leaves it out, min(1e-5, 1/(10 N)), so below 1/N as it must be (a delta of
1/N allows a mechanism that publishes one unit in full). A recipe's delta at or above 1/N is kept but
warned about, on stderr and in the report; `fttool validate` cannot know N and prints the rule.

Accounting: PRV (default) or RDP, as `accountant` says; the report gives both epsilons for the same
steps, and the budget (`target_epsilon`) applies to the chosen one. The noise multiplier is
calibrated for the planned steps. Before training, the accountant gives the number of steps whose
epsilon stays within the budget (epsilon only grows with each step at a fixed noise and sample rate;
checking the next step's epsilon at every step would cost about 0.3 s per step with PRV), and the loop
stops before the step that would exceed it; the report says when it stopped early.

Known traps, handled here: the model goes to its device before `get_peft_model` (opacus#820), and the
run fails if any LoRA tensor did not change; only LoRA tensors may be trainable, so a tied embedding
matrix, shared by two modules, is never given per-example gradients; a trainable layer with no opacus
grad sampler is an error naming the layer, raised before training.

Data preparation is the train stage's (prompt tokens masked unless train_on_inputs); the loss of an
example is the mean over its response tokens, as per-example clipping needs one loss per example.
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the compiler imports this module
    from fttool.pipeline.stage import StageResult
    from fttool.recipe.errors import RecipeError

DELTA_CAP = 1e-5
ACCOUNTANTS = ("prv", "rdp")
# RDP orders: opacus' default range stops at 63, too low for the small sample rates of large datasets.
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [80, 96, 128, 192, 256, 512]
SAMPLER = "poisson"
LORA_MARK = "lora_"


def default_delta(units: int) -> float:
    return min(DELTA_CAP, 1 / (10 * units))


def delta_warning(delta: float, units: int) -> str | None:
    if delta * units < 1:
        return None
    return (f"train.privacy.delta {delta:g} is not below 1/N = {1 / units:.4g} (N = {units} privacy units): "
            "such a delta allows publishing a unit in full; leave delta out for the default, or set it below 1/N")


def privacy_errors(loaded, train: Mapping[str, Any]) -> list[RecipeError]:
    """Recipe settings that DP training cannot run with; called by the compiler."""
    privacy = train.get("privacy")
    if not privacy or not privacy["enabled"]:
        return []
    errors = []
    modes = [key for key in ("target_epsilon", "noise_multiplier") if key in privacy]
    if len(modes) != 1:
        errors.append(loaded.error(("train", "privacy"), "set exactly one of target_epsilon (the budget: the noise "
                                   "is calibrated to it) or noise_multiplier (epsilon is then measured after the "
                                   f"run); found {' and '.join(modes) if modes else 'neither'}"))
    if train["method"] != "lora":
        errors.append(loaded.error(("train", "method"), f"differentially private training supports method lora "
                                   f"only, not {train['method']}: set train.method: lora or turn privacy off"))
    if train.get("packing"):
        errors.append(loaded.error(("train", "packing"), "packing puts examples of several records into one "
                                   "sequence, which then has no single privacy unit; turn packing off with privacy"))
    if train.get("gradient_checkpointing"):
        errors.append(loaded.error(("train", "gradient_checkpointing"), "opacus computes per-example gradients "
                                   "from hooks that activation recomputation bypasses; turn it off with privacy"))
    if "early_stopping" in train:
        errors.append(loaded.error(("train", "early_stopping"), "early stopping is not available with privacy: "
                                   "the privacy budget, not validation loss, decides the steps; remove it",
                                   at_key=True))
    return errors


def delta_rule(train: Mapping[str, Any]) -> str | None:
    """What decides delta, for `fttool validate`, which cannot know N (the train units counted at run time)."""
    privacy = train.get("privacy")
    if not privacy or not privacy["enabled"]:
        return None
    if "delta" in privacy:
        return (f"train.privacy.delta {privacy['delta']:g} must stay below 1/N, N the number of source records in "
                f"the train split (counted at run time): a run with N >= {math.ceil(1 / privacy['delta'])} "
                "warns")
    return ("train.privacy.delta will be min(1e-5, 1/(10 N)), N the number of source records in the train split "
            "(counted at run time)")


def unit_keys(records: list[dict]) -> list[str]:
    """For each record, the id of the source record it derives from (its own id when it has no parent_id)."""
    parent = {record["id"]: record.get("parent_id") for record in records}
    keys = []
    for record in records:
        key, seen = record["id"], set()
        while parent.get(key) and key not in seen:
            seen.add(key)
            key = parent[key]
        keys.append(key)
    return keys


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


def lora_model(model, lora: Mapping[str, Any], device: str):
    """The base model on `device`, then wrapped with LoRA: in this order, or opacus may update stale copies."""
    from peft import LoraConfig, get_peft_model

    model.to(device)
    config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                        target_modules=lora["target_modules"], bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def epsilon_after(steps: int, noise_multiplier: float, sample_rate: float, delta: float, accountant: str) -> float:
    from opacus.accountants import create_accountant

    counter = create_accountant(accountant)
    counter.history = [(noise_multiplier, sample_rate, steps)]
    return _epsilon(counter, delta)


def _epsilon(counter, delta: float) -> float:
    if counter.mechanism() == "rdp":
        return float(counter.get_epsilon(delta, alphas=RDP_ORDERS))
    with warnings.catch_warnings():
        # PRV bounds its numerical domain with a rough RDP epsilon over opacus' default orders, which warns.
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(counter.get_epsilon(delta))


def steps_within_budget(planned: int, noise_multiplier: float, sample_rate: float, delta: float, accountant: str,
                        budget: float | None) -> int:
    """The most steps, up to `planned`, whose epsilon stays within `budget` (epsilon grows with every step)."""
    if budget is None or epsilon_after(planned, noise_multiplier, sample_rate, delta, accountant) <= budget:
        return planned
    low, high = 0, planned  # epsilon_after(low) <= budget < epsilon_after(high)
    while high - low > 1:
        middle = (low + high) // 2
        if epsilon_after(middle, noise_multiplier, sample_rate, delta, accountant) <= budget:
            low = middle
        else:
            high = middle
    return low


@dataclass
class DPRun:
    steps: int
    stopped_by_budget: bool
    sample_rate: float
    expected_units_per_step: float
    epsilon: float
    epsilons: dict  # accountant -> epsilon for the same steps
    loss_history: list
    seconds: float


def collate_units(units: list[list[dict]], pad_id: int):
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


def run_dp_sgd(model, units: list[list[dict]], *, pad_id: int, batch_size: int, gradient_accumulation_steps: int,
               learning_rate: float, planned_steps: int, noise_multiplier: float, max_grad_norm: float,
               delta: float, accountant: str, epsilon_budget: float | None, seed: int, weight_decay: float = 0.0,
               lr_scheduler_type: str = "linear", warmup_steps: int = 0) -> DPRun:
    """DP-SGD over `units` (lists of tokenized examples) with opacus; `model` is a LoRA model on its device.

    A logical batch samples batch_size x gradient_accumulation_steps units in expectation, processed
    batch_size units at a time by opacus' BatchMemoryManager. Stops after `planned_steps`, or before a
    step whose epsilon would exceed `epsilon_budget`. AdamW and the learning-rate schedule are those of
    the non-private path.
    """
    import torch
    from opacus import PrivacyEngine
    from opacus.accountants import create_accountant
    from opacus.utils.batch_memory_manager import BatchMemoryManager
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import get_scheduler

    torch.manual_seed(seed)
    device = next(model.parameters()).device
    logical_batch = batch_size * gradient_accumulation_steps
    loader = DataLoader(TensorDataset(torch.arange(len(units))), batch_size=logical_batch,
                        collate_fn=collate_units(units, pad_id))
    sample_rate = 1 / len(loader)  # what opacus' Poisson sampler uses
    allowed = steps_within_budget(planned_steps, noise_multiplier, sample_rate, delta, accountant, epsilon_budget)
    if allowed == 0:
        raise ValueError(f"train.privacy: one step with noise multiplier {noise_multiplier:g} at sample rate "
                         f"{sample_rate:.4g} already spends more than epsilon {epsilon_budget:g}")

    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=weight_decay)
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
    from fttool.stages.train import InjectedFault, fault_step

    crash_after = fault_step()
    steps, stopped_by_budget, history, step_losses = 0, False, [], []
    log_every = max(1, math.ceil(planned_steps / 25))
    started = time.perf_counter()
    with BatchMemoryManager(data_loader=private_loader, max_physical_batch_size=batch_size,
                            optimizer=optimizer) as physical_loader, warnings.catch_warnings():
        # Frozen embeddings mean no module input needs a gradient; opacus' backward hooks still see the outputs'.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        while steps < allowed:
            for batch in physical_loader:
                optimizer.zero_grad()
                empty = isinstance(batch, list) or batch["input_ids"].shape[0] == 0
                if empty:  # Poisson sampling drew no unit: the step still adds noise
                    for p in trainable:
                        p.grad_sample = p.new_zeros((0, *p.shape))
                else:
                    batch = {key: value.to(device) for key, value in batch.items()}
                    logits = private_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                    losses = example_losses(logits, batch["labels"])
                    losses.mean().backward()  # opacus' "mean" reduction turns this back into per-example gradients
                    step_losses += losses.detach().tolist()
                    per_unit_grad_samples(trainable, batch["unit_of_row"], int(batch["unit_of_row"].max()) + 1)
                if optimizer._check_skip_next_step(pop_next=False):  # more physical batches in this logical one
                    optimizer.step()
                    continue
                optimizer.step()
                schedule.step()
                steps += 1
                if step_losses and (steps % log_every == 0 or steps == 1 or steps == allowed):
                    history.append({"step": steps, "loss": sum(step_losses) / len(step_losses)})
                    print(f"train step {steps}/{planned_steps} (DP): loss {history[-1]['loss']:.4f}",
                          file=sys.stderr, flush=True)
                step_losses = []
                if steps == crash_after:
                    raise InjectedFault(f"FTTOOL_FAULT asked training to fail after step {steps} (DP keeps no checkpoint)")
                if steps >= allowed:
                    break
    seconds = time.perf_counter() - started
    stopped_by_budget = steps < planned_steps
    epsilons = {}
    for name in ACCOUNTANTS:
        counter = create_accountant(name)
        counter.history = list(engine.accountant.history)
        epsilons[name] = _epsilon(counter, delta)
    model.eval()
    return DPRun(steps=steps, stopped_by_budget=stopped_by_budget, sample_rate=sample_rate,
                 expected_units_per_step=sample_rate * len(units), epsilon=epsilons[accountant], epsilons=epsilons,
                 loss_history=history, seconds=seconds)


def unchanged_tensors(initial: dict, model) -> list[str]:
    """Names of trainable tensors still equal to their value in `initial` (name -> tensor)."""
    import torch

    return [name for name, p in model.named_parameters() if p.requires_grad and torch.equal(p.detach(), initial[name])]


def validation_loss(model, examples: list[dict], pad_id: int, batch_size: int) -> float | None:
    """Mean loss over the validation examples' labelled tokens, computed as the evaluate stage computes it."""
    from fttool.evaluation.losses import labelled_token_losses, mean_token_loss

    return mean_token_loss(labelled_token_losses(model, pad_id, [(e["input_ids"], e["labels"]) for e in examples],
                                                 batch_size))


def tokenized_units(records: list[dict], tokenizer, max_seq_length: int, train_on_inputs: bool):
    """(units: lists of tokenized examples grouped by source record, examples dropped with no label left)."""
    from fttool.training.examples import tokenized_example

    by_unit: dict[str, list[dict]] = {}
    dropped = 0
    for record, key in zip(records, unit_keys(records)):
        example = tokenized_example(tokenizer, record, max_seq_length, train_on_inputs)
        if example is None:
            dropped += 1
        else:
            by_unit.setdefault(key, []).append(example)
    return list(by_unit.values()), dropped


def train_privately(ctx) -> StageResult:
    """The train stage's run when train.privacy.enabled: DP-SGD on LoRA weights, summary with `privacy`."""
    import torch

    from fttool.data.records import read_jsonl
    from fttool.pipeline.plan import thaw
    from fttool.pipeline.stage import StageResult
    from fttool.stages.train import base_model_summary, model_card, precision
    from fttool.training.examples import trained_token_share
    from fttool.training.modeling import load_causal_lm, load_tokenizer, quiet_libraries, resolve_base_model

    quiet_libraries()
    # The work directory outlives a failed attempt, so a marker left there means this one is a restart.
    attempt_marker = ctx.work_dir / "dp-attempt-started"
    if attempt_marker.exists():
        print("train: an earlier differentially private attempt of this stage did not finish; DP training keeps "
              "no checkpoint, so it starts again from step 0 (the unfinished attempt's model was never written)",
              file=sys.stderr, flush=True)
    attempt_marker.touch()
    params = thaw(ctx.params)
    model_params, lora, privacy = params["model"], params["lora"], params["privacy"]
    train_on_inputs = params["train_on_inputs"]
    base_path = resolve_base_model(model_params, ctx.work_dir, ctx.recipe_dir)
    tokenizer = load_tokenizer(base_path, model_params)
    units, dropped = tokenized_units(list(read_jsonl(ctx.inputs["train"])), tokenizer, params["max_seq_length"],
                                     train_on_inputs)
    if not units:
        raise ValueError("train: no train example has a response token within max_seq_length "
                         f"{params['max_seq_length']} ({dropped} dropped); raise train.max_seq_length")
    validation_units, _ = tokenized_units(list(read_jsonl(ctx.inputs["validation"])), tokenizer,
                                          params["max_seq_length"], train_on_inputs)
    examples = [example for unit in units for example in unit]
    unit_count = len(units)
    delta = privacy.get("delta") or default_delta(unit_count)
    warnings_found = [w for w in [delta_warning(delta, unit_count)] if w]
    for warning in warnings_found:
        print(f"warning: {warning}", file=sys.stderr, flush=True)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(params["seed"])  # the LoRA initialisation
    model = lora_model(load_causal_lm(base_path, model_params), lora, device)
    check_trainable_layers(model)
    initial = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}

    logical_batch = params["batch_size"] * params["gradient_accumulation_steps"]
    steps_per_epoch = math.ceil(unit_count / logical_batch)
    sample_rate = 1 / steps_per_epoch
    planned = params["max_steps"] if params["max_steps"] > 0 else math.ceil(steps_per_epoch * params["epochs"])
    accountant = privacy["accountant"]
    if "target_epsilon" in privacy:
        from opacus.accountants.utils import get_noise_multiplier

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")  # see _epsilon
            noise = get_noise_multiplier(target_epsilon=privacy["target_epsilon"], target_delta=delta,
                                         sample_rate=sample_rate, steps=planned, accountant=accountant)
    else:
        noise = privacy["noise_multiplier"]
    run = run_dp_sgd(model, units, pad_id=tokenizer.pad_token_id, batch_size=params["batch_size"],
                     gradient_accumulation_steps=params["gradient_accumulation_steps"],
                     learning_rate=params["learning_rate"], planned_steps=planned, noise_multiplier=noise,
                     max_grad_norm=privacy["max_grad_norm"], delta=delta, accountant=accountant,
                     epsilon_budget=privacy.get("target_epsilon"), seed=params["seed"],
                     weight_decay=params["weight_decay"], lr_scheduler_type=params["lr_scheduler_type"],
                     warmup_steps=params["warmup_steps"] or math.ceil(params["warmup_ratio"] * planned))
    if run.stopped_by_budget:
        warnings_found.append(f"training stopped after {run.steps} of {planned} steps: one more step would have "
                              f"spent more than epsilon {privacy['target_epsilon']:g}")
        print(f"warning: {warnings_found[-1]}", file=sys.stderr, flush=True)
    unchanged = unchanged_tensors(initial, model)
    if unchanged:
        raise RuntimeError(f"train: {len(unchanged)} of {len(initial)} LoRA tensors did not change in {run.steps} "
                           f"DP-SGD steps (first: {unchanged[0]}); the optimizer did not update the model's weights")

    model.peft_config["default"].base_model_name_or_path = model_params["base"]
    model.save_pretrained(ctx.outputs["model"], save_embedding_layers=False)
    tokenizer.save_pretrained(ctx.outputs["model"])
    largest_unit = max(len(unit) for unit in units)
    unit_name = "source record" if largest_unit > 1 else "record"
    card = model_card(model_params, params, run.steps)
    card += (f"\nTrained with differential privacy: ({run.epsilon:.3g}, {delta:.3g})-DP per {unit_name} "
             f"({accountant.upper()} accountant, {SAMPLER} sampling, noise multiplier {noise:.4g}, clipping norm "
             f"{privacy['max_grad_norm']:g}).\n")
    (ctx.outputs["model"] / "README.md").write_text(card, encoding="utf-8")

    trained, total_tokens = trained_token_share(examples)
    trainable, total_parameters = model.get_nb_trainable_parameters()
    base_model = base_model_summary(model_params)
    per_unit = Counter(len(unit) for unit in units)
    summary = {
        "method": "lora",
        "base_model": base_model,
        "lora": lora,
        "quantization": None,
        "precision": precision(),
        "prompt_format": "chat_template" if tokenizer.chat_template else "alpaca",
        "train_on_inputs": train_on_inputs,
        "hyperparameters": {key: params[key] for key in (
            "learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "weight_decay", "epochs",
            "max_steps", "batch_size", "gradient_accumulation_steps", "max_seq_length", "seed")},
        "trainable_parameters": trainable,
        "total_parameters": total_parameters,
        "updated_tensors": len(initial) - len(unchanged),
        "trained_tensors": len(initial),
        "steps": run.steps,
        "epochs": round(run.steps / steps_per_epoch, 4),
        "resumed_from_step": None,  # a DP run keeps no checkpoint: an interrupted one starts again
        "early_stopping": None,
        "train_examples": len(examples),
        "dropped_examples": dropped,
        "train_loss": run.loss_history[-1]["loss"] if run.loss_history else None,
        "validation_loss": validation_loss(model, [example for unit in validation_units for example in unit],
                                           tokenizer.pad_token_id, params["batch_size"]),
        "loss_history": run.loss_history,
        "trained_tokens": trained,
        "trained_token_share": round(trained / total_tokens, 6),
        "device": device,
        "seconds": round(run.seconds, 3),
        "privacy": {
            "enabled": True,
            "epsilon": run.epsilon,
            "delta": delta,
            "delta_source": "recipe" if privacy.get("delta") else "default",
            "target_epsilon": privacy.get("target_epsilon"),
            "accountant": accountant,
            "epsilons": run.epsilons,
            "noise_multiplier": noise,
            "noise_source": "calibrated" if "target_epsilon" in privacy else "recipe",
            "max_grad_norm": privacy["max_grad_norm"],
            "sample_rate": run.sample_rate,
            "sampler": SAMPLER,
            "expected_units_per_step": run.expected_units_per_step,
            "physical_batch_units": params["batch_size"],
            "steps": run.steps,
            "planned_steps": planned,
            "stopped_by_budget": run.stopped_by_budget,
            "unit": unit_name,
            "units": unit_count,
            "examples": len(examples),
            "max_examples_per_unit": largest_unit,
            "units_by_examples": {str(size): count for size, count in sorted(per_unit.items())},
            "trainable_parameters": trainable,
            "warnings": warnings_found,
        },
    }
    return StageResult(summary=summary)
