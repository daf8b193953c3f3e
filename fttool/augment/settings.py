"""The augment stage's parameters, as the compiler builds them from the recipe's `augment` list.

A light module: the compiler imports it to resolve each method's own defaults, which live here because
the recipe schema can give only one default per key for every method (its descriptions name them).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from fttool.data.settings import EngineSettings
from fttool.pii.settings import PiiParams

# Defaults of method-specific settings, by method; a setting a method does not take stays None.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "synonym": {"aug_p": 0.2},
    "random": {"action": "swap", "aug_p": 0.2},
    # A small top_k keeps to the words the model finds likely, which more often keep the meaning.
    "contextual": {"aug_p": 0.2, "top_k": 20, "batch_size": 32},
    "back_translation": {"batch_size": 32, "max_length": 300},
}


@dataclass(frozen=True)
class AugmentMethod:
    """One entry of the augment list; settings the method does not take are None.

    Fields:
        method: "synonym", "random", "contextual" or "back_translation".
        ratio: new records per train record; None when `count` is given.
        count: new candidate records in all; None when `ratio` is given.
        fields: the record fields reworded.
        min_similarity: candidates less similar than this to their parent (MiniLM cosine) are rejected.
        seed: seed of the choice of parents and of every rewrite.
        aug_p: synonym, random, contextual: share of words changed in one text.
        action: random: "swap", "delete" or "crop".
        model_path: contextual: masked language model (local directory relative to the recipe, or hub id).
        top_k: contextual: each new word is drawn from the model's k likeliest.
        from_model: back_translation: model into the pivot language.
        to_model: back_translation: model back from the pivot language.
        batch_size: contextual, back_translation: texts per model call.
        max_length: back_translation: most tokens generated per line.
    """

    method: str
    ratio: float | None
    count: int | None
    fields: tuple[str, ...]
    min_similarity: float
    seed: int
    aug_p: float | None
    action: str | None
    model_path: str | None
    top_k: int | None
    from_model: str | None
    to_model: str | None
    batch_size: int | None
    max_length: int | None

    def candidates(self, n_train: int) -> int:
        """New candidate records in all, for a train split of n_train records: count, or ratio times n_train."""
        if self.count is not None:
            return self.count
        if self.ratio is None:
            raise ValueError(f"augment method {self.method} needs ratio or count")
        return round(self.ratio * n_train)

    def settings(self) -> dict[str, Any]:
        """The settings this method takes, as recorded on each new record (the method name apart)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "method" and getattr(self, f.name) is not None}


@dataclass(frozen=True)
class AugmentParams:
    """Fields:
        methods: the augment list, in order.
        pii: the PII settings augmented text is scanned with: the recipe's, or the schema's defaults when the
            recipe has no enabled pii section.
        compute: where word methods (synonym, random) rewrite texts; the checks, and model methods, stay in the
            stage's process.
    """

    methods: tuple[AugmentMethod, ...]
    pii: PiiParams
    compute: EngineSettings


def method_params(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Every field of AugmentMethod from an entry with the schema's defaults applied: the method's own
    defaults for settings left out, None for settings it does not take."""
    names = [f.name for f in fields(AugmentMethod)]
    return {**dict.fromkeys(names), **METHOD_DEFAULTS[entry["method"]], **entry}
