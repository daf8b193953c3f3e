"""Differential privacy for LoRA fine-tuning: the privacy unit, delta, the recipe rules and the accounting.
The DP-SGD loop itself (opacus) is the dp_sft backend, fttool/training/backends/dp_sgd.py; this module is
light (no torch at import), since the recipe rules and `fttool validate` use it.

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
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the recipe rules import this module
    from fttool.recipe.errors import RecipeError

DELTA_CAP = 1e-5
ACCOUNTANTS = ("prv", "rdp")
# RDP orders: opacus' default range stops at 63, too low for the small sample rates of large datasets.
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [80, 96, 128, 192, 256, 512]
SAMPLER = "poisson"


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
    if train.get("optimizer", "adamw_torch") != "adamw_torch":
        errors.append(loaded.error(("train", "optimizer"), "differentially private training uses adamw_torch "
                                   "(opacus wraps it to clip and add noise); set train.optimizer: adamw_torch"))
    if train.get("load_in_8bit"):
        errors.append(loaded.error(("train", "load_in_8bit"), "opacus computes per-example gradients of "
                                   "full-precision layers; turn load_in_8bit off with privacy"))
    if train.get("precision") == "fp16":
        errors.append(loaded.error(("train", "precision"), "DP-SGD trains without fp16 mixed precision (no "
                                   "gradient scaler around opacus' clipping); use precision auto, bf16 or fp32"))
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


def epsilon_after(steps: int, noise_multiplier: float, sample_rate: float, delta: float, accountant: str) -> float:
    from opacus.accountants import create_accountant

    counter = create_accountant(accountant)
    counter.history = [(noise_multiplier, sample_rate, steps)]
    return epsilon_of(counter, delta)


def epsilon_of(counter, delta: float) -> float:
    """The epsilon an opacus accountant gives for its history, over orders wide enough for small sample rates."""
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
