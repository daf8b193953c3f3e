"""Settings of preference tuning (train.objective dpo, kto or orpo), named as TRL's DPOConfig, KTOConfig and
ORPOConfig name them. Light on purpose (no torch): the compiler builds these for every recipe with a train section.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

OBJECTIVES = ("sft", "dpo", "kto", "orpo")
PREFERENCE_OBJECTIVES = ("dpo", "kto", "orpo")
# TRL's loss types per objective, the first its default; ORPO has one loss (its odds-ratio term weighted by beta).
LOSS_TYPES = {
    "dpo": ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
            "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm"),
    "kto": ("kto", "apo_zero_unpaired"),
    "orpo": (),
}
# What evaluate measures on preference data, by direction; the per-pair ones can be compared between groups.
PREFERENCE_METRICS = {"preference_accuracy": "higher", "reward_margin": "higher", "log_likelihood_margin": "higher",
                      "test_loss": "lower", "validation_loss": "lower"}
PER_PAIR_METRICS = ("preference_accuracy", "reward_margin", "log_likelihood_margin")
# Objectives that compare the policy with a reference model (ORPO needs none).
WITH_REFERENCE = ("dpo", "kto")


@dataclass(frozen=True)
class PreferenceSettings:
    """Preference tuning with TRL (see docs of DPOConfig, KTOConfig, ORPOConfig).

    beta: how far the policy may move from the reference (DPO, KTO); ORPO's weight of the odds-ratio term.
    loss_type: TRL's loss type (DPO: sigmoid, ipo, hinge, ...; KTO: kto or apo_zero_unpaired); None for ORPO.
    label_smoothing: DPO's probability that a preference label is flipped (robust and exo_pair losses).
    precompute_ref_log_probs: compute the reference model's log-probabilities once before training.
    sync_ref_model: move the reference towards the policy during training (TR-DPO); full fine-tuning only.
    ref_model_mixup_alpha: with sync_ref_model, the policy's share in each update of the reference.
    ref_model_sync_steps: with sync_ref_model, optimizer steps between updates of the reference.
    desirable_weight: KTO's weight of desirable responses' losses.
    undesirable_weight: KTO's weight of undesirable responses' losses.
    """

    beta: float
    loss_type: str | None
    label_smoothing: float
    precompute_ref_log_probs: bool
    sync_ref_model: bool
    ref_model_mixup_alpha: float
    ref_model_sync_steps: int
    desirable_weight: float
    undesirable_weight: float


def preference_params(train: Mapping) -> dict | None:
    """The train section's preference settings with the objective's default loss type; None for sft."""
    objective = train["objective"]
    if objective not in PREFERENCE_OBJECTIVES:
        return None
    settings = dict(train["preference"])
    if settings.get("loss_type") is None:
        settings["loss_type"] = LOSS_TYPES[objective][0] if LOSS_TYPES[objective] else None
    return settings
