"""Per-record work of a stage (ingest, the bias audit, augment) on an engine, kept in the stage's own process while
the records are too few to repay starting workers.

A spawned worker imports its stage's modules before its first batch: a fraction of a second for ingest and the
bias audit, seconds for augment (nlpaug, torch, spaCy). Below a stage's `min_records` that start-up costs more
than the workers save, so those records are computed in the stage's process, in the same batches. Each batch's
result depends on its records alone, so the output is the same wherever a batch is computed (fttool.data.engines).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, TypeVar

from fttool.data.engines import in_order
from fttool.data.settings import EngineSettings

Item = TypeVar("Item")
Batch = TypeVar("Batch", bound=Sized)


def batched(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Lists of `size` consecutive items (the last one shorter)."""
    items = iter(items)
    while batch := list(itertools.islice(items, size)):
        yield batch


def in_order_beyond(function: Callable[[Batch, Any], Any], batches: Iterable[Batch], argument: Any,
                    settings: EngineSettings, min_records: int, records: int | None = None) -> Iterator:
    """function(batch, argument) for every batch, in order, on the engine of `settings` once there are enough
    records: with `records` known, all on the engine from `min_records` up and none below; otherwise (a stream)
    the batches holding the first `min_records` records in this process and the rest on the engine."""
    batches = iter(batches)
    if records is not None:
        if records < min_records:
            yield from (function(batch, argument) for batch in batches)
        else:
            yield from in_order(function, batches, argument, settings)
        return
    counted = 0
    for batch in batches:
        yield function(batch, argument)
        counted += len(batch)
        if counted >= min_records:
            yield from in_order(function, batches, argument, settings)
            return
