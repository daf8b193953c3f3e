"""The parameters of the evaluate, canaries and memorisation stages, as the compiler builds them.

A light module (no torch, no fairlearn): the compiler and the stages import it. Every field is filled by
the compiler from the recipe with the schema's defaults resolved; nothing here has a default of its own.
Thresholds must be finite numbers: a NaN limit would make every comparison false, so a check against it
would silently never fire.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from fttool.training.model_identity import ModelParams


def _require_finite(params, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(params, name)
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{type(params).__name__}.{name} is {value}; thresholds must be finite numbers")


@dataclass(frozen=True)
class DecodingParams:
    """How both models generate; the same settings and seed for both.

    Fields:
        strategy: "greedy" (the most likely token each step) or "sample".
        temperature: sampling temperature (used with strategy "sample" only).
        top_p: nucleus sampling mass (used with strategy "sample" only).
        seed: seed of torch's generator, set before each model generates.
    """

    strategy: str
    temperature: float
    top_p: float
    seed: int

    def __post_init__(self):
        _require_finite(self, ("temperature", "top_p"))


@dataclass(frozen=True)
class BootstrapParams:
    """Percentile bootstrap of each group's value, each group resampled within itself.

    Fields:
        resamples: number of resamples.
        confidence: confidence level of the intervals, between 0 and 1.
        seed: seed of the resampling.
    """

    resamples: int
    confidence: float
    seed: int

    def __post_init__(self):
        _require_finite(self, ("confidence",))


@dataclass(frozen=True)
class GroupParams:
    """Per-group comparison of the tuned model (and its base) over the groups of each sensitive field.

    Fields:
        fields: record fields (kept in `meta`) that hold a sensitive attribute; empty: groups are not evaluated.
        metrics: per-example metrics compared between groups (see fttool.evaluation.metrics.GROUP_METRICS).
        min_group_size: groups with fewer test records are named as too small to judge and left out of the
            difference and ratio.
        max_difference: highest minus lowest group value; an interval wholly above it warns, one across it is
            inconclusive.
        min_ratio: lowest over highest group value; an interval wholly below it warns, one across it is
            inconclusive.
        fail_above_difference: a difference interval wholly above it fails; None: no fail limit.
        fail_below_ratio: a ratio interval wholly below it fails; None: no fail limit.
        k_anonymity: groups of fewer test records are not named but reported under numbered labels, since so small
            a group's value can identify people (the bias audit's k_anonymity); 1 names every group.
        bootstrap: how the confidence intervals are drawn.
    """

    fields: tuple[str, ...]
    metrics: tuple[str, ...]
    min_group_size: int
    max_difference: float
    min_ratio: float
    fail_above_difference: float | None
    fail_below_ratio: float | None
    k_anonymity: int
    bootstrap: BootstrapParams

    def __post_init__(self):
        _require_finite(self, ("max_difference", "min_ratio", "fail_above_difference", "fail_below_ratio"))


@dataclass(frozen=True)
class ForgettingParams:
    """Perplexity of both models on general text the recipe ships.

    Fields:
        path: the general text file, relative to the recipe (.txt passages separated by blank lines, or .jsonl
            lines of {"text": ...}).
        max_increase: largest allowed relative increase of perplexity, tuned / base - 1.
        action: the status an increase above max_increase gives: "fail" or "warn".
    """

    path: str
    max_increase: float
    action: str

    def __post_init__(self):
        _require_finite(self, ("max_increase",))


@dataclass(frozen=True)
class EvaluateParams:
    """The evaluate stage: the tuned model against its base on the test split.

    Fields:
        max_new_tokens: tokens generated per test prompt.
        max_samples: cap on the test records generated from; 0: all.
        batch_size: records per forward pass, for losses and generation.
        decoding: how both models generate.
        task: "generation" (free text) or "classification" (each output names one of `labels`).
        labels: the labels of a classification task; None: the distinct test references.
        primary_metric: the metric the tuned model must improve over its base.
        groups: the per-group comparison.
        forgetting: the general-text perplexity check; None: not run.
        model: the base model.
    """

    max_new_tokens: int
    max_samples: int
    batch_size: int
    decoding: DecodingParams
    task: str
    labels: tuple[str, ...] | None
    primary_metric: str
    groups: GroupParams
    forgetting: ForgettingParams | None
    model: ModelParams


@dataclass(frozen=True)
class CanaryParams:
    """The memorisation canaries: which secrets are planted, how often, and what they are ranked against.

    Fields:
        canaries: different secrets planted in the train split.
        repetitions: copies of each canary in the train split.
        references: never-planted secrets each canary is ranked against.
        max_exposure_bits: the check fails when a canary's exposure reaches this many bits.
        seed: seed of the secrets drawn; the canaries and memorisation stages draw the same ones from it.
    """

    canaries: int
    repetitions: int
    references: int
    max_exposure_bits: float
    seed: int

    def __post_init__(self):
        _require_finite(self, ("max_exposure_bits",))


@dataclass(frozen=True)
class MemorisationParams(CanaryParams):
    """The memorisation measurement: the canaries' settings, and the base model the adapter is switched off to.

    Fields:
        (those of CanaryParams)
        model: the base model.
    """

    model: ModelParams
