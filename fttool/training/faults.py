"""FTTOOL_FAULT=train_step:N makes training fail right after optimizer step N (and its checkpoint, if one is
due), so that tests can check that --resume continues where a crashed run stopped. Every backend honours it."""
from __future__ import annotations

import os

FAULT_ENV = "FTTOOL_FAULT"
FAULT_KIND = "train_step"


class InjectedFault(RuntimeError):
    """The failure FTTOOL_FAULT asked for."""


def fault_step() -> int | None:
    """The step FTTOOL_FAULT=train_step:N names, or None; faults meant for other stages are ignored."""
    value = os.environ.get(FAULT_ENV, "")
    kind, _, step = value.partition(":")
    if kind != FAULT_KIND:
        return None
    if not step.isdigit() or int(step) < 1:
        raise ValueError(f"{FAULT_ENV}={value!r}: expected {FAULT_KIND}:N with N a step number from 1")
    return int(step)
