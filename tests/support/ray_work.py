"""Batch functions for the Ray engine's tests. Ray's actors import this module as a stage's function module is
imported on a node, so it must be importable there (tests/ on the workers' PYTHONPATH)."""
from __future__ import annotations

import os
import time
from functools import lru_cache

_BUILDS: list[int] = []  # one entry each time this process builds its state


@lru_cache(maxsize=1)
def _state() -> int:
    """A process's expensive state, built lazily as a stage builds its engine: how many builds this process did."""
    _BUILDS.append(os.getpid())
    return len(_BUILDS)


def doubled(batch: list[int], delays: tuple[float, ...]) -> tuple[list[int], int, int]:
    """The batch doubled, with the process that computed it and its state's build count. Batch i sleeps
    delays[i % len(delays)] seconds first, so that batches finish out of their input order."""
    time.sleep(delays[batch[0] % len(delays)])
    return [2 * value for value in batch], os.getpid(), _state()


class RecordRefused(ValueError):
    """An error whose constructor pickle cannot call again with its message alone (two arguments)."""

    def __init__(self, path: str, line: int):
        super().__init__(f"{path}:{line}: not a JSON object; fix the line or remove it")


def refusing(batch: list[int], bad: int) -> list[int]:
    """The batch, or ValueError naming the record when it holds `bad`."""
    if bad in batch:
        raise ValueError(f"record {bad} is not a JSON object: fix line {bad + 1} of records.jsonl")
    return batch


def refusing_with_two_arguments(batch: list[int], bad: int) -> list[int]:
    if bad in batch:
        raise RecordRefused("records.jsonl", bad + 1)
    return batch


def scrubber_builds(scrubber) -> tuple[int, int, bool]:
    """(this process, how many scrubbers the PII actor code built in it, whether torch was imported here): run on an
    actor by the PII stage's ray analysis (fttool.pii.workers.RayAnalysis.call)."""
    import sys

    from fttool.pii import workers

    return os.getpid(), workers._worker_scrubber.cache_info().misses, sys.modules.get("torch") is not None
