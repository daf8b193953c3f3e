"""What the recipe says about its base model, as stage parameters.

A light module (no torch, no transformers): the compiler builds `ModelParams` for every stage that
loads the base model (train, evaluate, memorisation), and those stages' parameter dataclasses embed it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelParams:
    """The base model a run tunes and evaluates.

    Fields:
        base: a local directory (relative to the recipe file), a Hugging Face hub id, or "demo:tiny-llama" for
            the offline demo model fttool builds.
        revision: the hub revision (branch, tag or commit) to load; None loads the default branch.
        license: the SPDX id of the base model's licence as the recipe declares it; None when not declared.
        trust_remote_code: run code shipped with the model when loading it (off unless the recipe turns it on).
    """

    base: str
    revision: str | None
    license: str | None
    trust_remote_code: bool
