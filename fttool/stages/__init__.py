"""Stages, in pipeline order. Each module defines one Stage subclass named STAGE."""
from __future__ import annotations

import importlib

from fttool.pipeline.stage import Stage

STAGE_ORDER = ("ingest", "dedup", "split", "pii", "bias", "augment", "canaries", "train", "evaluate",
               "memorisation")


def stage_class(name: str) -> type[Stage]:
    return importlib.import_module(f"fttool.stages.{name}").STAGE
