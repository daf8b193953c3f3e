"""The ray engine's Ray Data pipeline: batches fed from the stage's process, computed by a pool of actors, in order.

Imported only when `data.engine` is ray (fttool.data.engines), so the local engine needs no Ray.

The stage's process puts each batch, pickled, into a Ray queue. One read task turns each into a block of one row,
so the queue's order is the blocks' order. `map_batches` hands every block to one of a fixed pool of actors
(`BatchWorker`), each a process that lives for the whole stage: whatever the stage's function builds lazily in
its module (an lru_cache'd engine or encoder) is built once per actor and reused for every batch it computes.
Ray Data returns the blocks in input order (`preserve_order`). An exception the function raises comes back as
the outcome of its batch, so the stage's process raises the stage's own error at that batch (and Ray Data
never sees it, so it neither retries the batch nor logs a traceback of its own).
"""
from __future__ import annotations

import functools
import logging
import os
import pickle
import traceback
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import ray
import ray.data
from ray.data import ActorPoolStrategy, Datasource, ReadTask
from ray.data.block import BlockMetadata
from ray.util.queue import Queue

END_OF_BATCHES = b""  # what the stage's process puts after the last batch; a pickled batch is never empty


class BatchWorker:
    """One actor of the pool: the stage's function and its argument, received once, applied to each batch."""

    def __init__(self, function: Callable[[Any, Any], Any], argument: Any):
        self.function = function
        self.argument = argument

    def __call__(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"outcome": np.array([self._outcome(payload) for payload in columns["batch"]], dtype=object)}

    def _outcome(self, payload: bytes) -> bytes:
        """(result, None) or (the exception raised, its traceback here), pickled."""
        try:
            return pickle.dumps((self.function(pickle.loads(payload), self.argument), None),
                                protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            return _pickled_error(error, f"on a Ray worker (pid {os.getpid()}):\n{traceback.format_exc()}")


def _pickled_error(error: Exception, where: str) -> bytes:
    """The exception pickled so that it unpickles; otherwise (a custom __init__ that pickle cannot call again)
    a RuntimeError with its type and message."""
    try:
        pickled = pickle.dumps((error, where))
        pickle.loads(pickled)
        return pickled
    except Exception:
        return pickle.dumps((RuntimeError(f"{type(error).__name__}: {error}"), where))


class WorkerTraceback(Exception):
    """Where a batch's exception was raised, as the cause of the exception the stage's process raises (the
    stage's error log shows it; its one-line message stays the function's), as concurrent.futures does."""


class FedBatches(Datasource):
    """The batches put into `feed`, one block each, in the order they were put, until END_OF_BATCHES."""

    def __init__(self, feed):
        super().__init__()
        self.feed = feed

    def estimate_inmemory_data_size(self) -> int | None:
        return None  # unknown until the stage has read its input

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list[ReadTask]:
        # A single read task: several would take batches from the queue in no fixed order.
        metadata = BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None)
        return [ReadTask(functools.partial(_blocks_of, self.feed), metadata)]


def _blocks_of(feed) -> Iterator[pa.Table]:
    while (payload := feed.get()) != END_OF_BATCHES:
        yield pa.table({"batch": pa.array([payload], pa.binary())})


def dataset(feed, function: Callable[[Any, Any], Any], argument: Any, actors: int) -> ray.data.Dataset:
    """function(batch, argument) for each batch put into `feed`, on `actors` actors of one CPU each."""
    fed = ray.data.read_datasource(FedBatches(feed), override_num_blocks=1, num_cpus=0)  # it mostly waits
    context = fed.context  # this dataset's copy, which the datasets derived from it share
    context.execution_options.preserve_order = True
    # Emit every block as soon as it is read: the default (128 MiB) would hold back the blocks of the batches
    # in flight, whose results the stage's process waits for before it feeds the next batches.
    context.target_max_block_size = 1
    # The pipeline idles whenever the stage's own process is busy with earlier results: not a hang.
    context.execution_no_progress_timeout_s = -1
    context.enable_progress_bars = False
    _keep_ray_data_logs_in_their_file()
    # Ray restarts an actor that dies (a lost node) and computes its batches again: the results do not change.
    return fed.map_batches(BatchWorker, fn_constructor_args=(function, argument), batch_size=1, batch_format="numpy",
                           compute=ActorPoolStrategy(size=actors), num_cpus=1)


def _keep_ray_data_logs_in_their_file() -> None:
    """Ray Data logs every execution and its settings to the console as well as to ray-data.log in Ray's session
    directory; keep fttool's output to fttool's messages and errors."""
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler):  # the console; the file handler is not one
            handler.setLevel(logging.ERROR)


def _outcomes(data: ray.data.Dataset) -> Generator[Any, None, None]:
    """The function's results in input order; the exception it raised for a batch is raised here at that batch.
    Nothing is prefetched: Ray Data's default waits for the next block before it hands over the current one, and a
    stage may wait for the result of the last batch it put before it puts another (fttool.data.engines.ray_tasks)."""
    for columns in data.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
        for payload in columns["outcome"]:
            value, raised_where = pickle.loads(payload)
            if raised_where is not None:
                raise value from WorkerTraceback(raised_where)
            yield value


class Pipeline:
    """A stage's pipeline on the cluster: put batches in, take their results out in the same order."""

    def __init__(self, function: Callable[[Any, Any], Any], argument: Any, actors: int):
        self.feed = Queue(actor_options={"num_cpus": 0})
        try:
            self.results = _outcomes(dataset(self.feed, function, argument, actors))
        except BaseException:
            self.feed.shutdown(force=True)  # an existing cluster would keep the queue's actor otherwise
            raise

    def put(self, batch: Any) -> None:
        self.feed.put(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))

    def end(self) -> None:
        """No batches follow: the read task, and with it the dataset, finishes."""
        self.feed.put(END_OF_BATCHES)

    def next_result(self, _submitted: None = None) -> Any:
        return next(self.results)

    def close(self) -> None:
        """Stop the dataset (its actors) and the queue, whether or not every batch was computed."""
        self.results.close()
        self.feed.shutdown(force=True)
