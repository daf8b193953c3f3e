"""Engines that spread the per-record work of a data stage over processes or a Ray cluster, in input order.

A stage hands `in_order` a function of one batch of records and a stream of batches; it gets the results back in
the order of the batches, whichever engine computed them, so the stage's sequential pass (dedup's index) sees
exactly what one process would have computed. At most a few batches per worker are in flight, so memory does not
grow with the data.

- local, 1 worker (or a single batch): the batches are computed in the stage's own process.
- local, N workers: a pool of N spawned processes (spawned, not forked: the runner may hold threads of torch or
  tokenizers, which a fork would copy half-initialised).
- ray: Ray Data on the cluster `address` names, or on a local cluster started for the stage and stopped after it
  (fttool.data.ray_engine): `map_batches` over a fixed pool of actors, one per CPU, each building the function's
  per-process state once; the same few batches per actor in flight. Ray is an optional extra
  (`pip install fttool[ray]`); the function and its arguments must be importable and picklable on every node, so
  install the same fttool there.

`ray_tasks` puts batches on the same Ray Data pipeline one at a time and waits for each result when asked, for a
stage whose next batches depend on earlier results (the PII stage's record resolution); the local engine's
counterpart for that stage is its own process pool (fttool.pii.workers).
"""
from __future__ import annotations

import importlib.util
import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from fttool.data.settings import EngineSettings

Batch = TypeVar("Batch")
Result = TypeVar("Result")
BATCHES_IN_FLIGHT_PER_WORKER = 2
RAY_DATA_MODULES = ("ray", "pyarrow", "pandas")  # Ray Data needs the latter two, which plain `pip install ray` lacks


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class EngineUnavailable(RuntimeError):
    """The recipe names an engine this machine cannot run."""


def engine_problems(settings: EngineSettings) -> list[str]:
    """Why this machine cannot run the engine, each saying what to do; empty if it can."""
    if settings.engine == "ray" and any(importlib.util.find_spec(name) is None for name in RAY_DATA_MODULES):
        return ["data.engine is ray, but Ray Data is not installed here: pip install 'fttool[ray]', or set "
                "data.engine: local"]
    return []


def in_order(function: Callable[[Batch, Any], Result], batches: Iterable[Batch], argument: Any,
             settings: EngineSettings) -> Iterator[Result]:
    """function(batch, argument) for every batch, in the order of the batches."""
    if settings.engine == "ray":
        return _on_ray(function, batches, argument, settings)
    batches = iter(batches)
    first_two = list(itertools.islice(batches, 2))
    workers = settings.workers or available_cores()
    if workers == 1 or len(first_two) < 2:  # a single batch is not worth starting processes for
        return (function(batch, argument) for batch in itertools.chain(first_two, batches))
    return _in_processes(function, itertools.chain(first_two, batches), argument, workers)


def _windowed(submit: Callable[[Any], Any], collect: Callable[[Any], Result], batches: Iterable,
              in_flight: int) -> Iterator[Result]:
    window: deque = deque()
    for batch in batches:
        window.append(submit(batch))
        if len(window) >= in_flight:
            yield collect(window.popleft())
    while window:
        yield collect(window.popleft())


def _in_processes(function, batches, argument, workers: int) -> Iterator:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, available_cores() // workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_share_cores,
                             initargs=(threads,)) as pool:
        yield from _windowed(lambda batch: pool.submit(function, batch, argument), lambda future: future.result(),
                             batches, workers * BATCHES_IN_FLIGHT_PER_WORKER)


def _share_cores(threads: int) -> None:
    """A worker's share of the cores for the threads of numeric libraries (torch, numpy's BLAS), set before they
    load: each would otherwise start a thread per core, and N workers would run N times more threads than cores."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)


def _on_ray(function, batches, argument, settings: EngineSettings) -> Iterator:
    with _ray_pipeline(function, argument, settings) as (pipeline, actors):
        yield from _windowed(pipeline.put, pipeline.next_result, _followed_by(batches, pipeline.end),
                             actors * BATCHES_IN_FLIGHT_PER_WORKER)


@contextmanager
def ray_tasks(function: Callable[[Batch, Any], Result], argument: Any, settings: EngineSettings
              ) -> Iterator[Callable[[Batch], Callable[[], Result]]]:
    """On the ray engine, `submit(batch)`: puts the batch on the actors that compute function(batch, argument) and
    returns a function that waits for its result (once). For a stage whose next batches depend on the results
    of earlier ones, which in_order's stream cannot express (the PII stage resolves a record's types from its
    texts' outcomes). Results come back in the order the batches were put, so waiting for one takes, and keeps,
    the results of those put before it; the caller bounds how many are in flight."""
    with _ray_pipeline(function, argument, settings) as (pipeline, _):
        put, taken = itertools.count(), itertools.count()
        results: dict[int, Any] = {}

        def submit(batch: Batch) -> Callable[[], Result]:
            pipeline.put(batch)
            ticket = next(put)

            def wait() -> Result:
                while ticket not in results:
                    results[next(taken)] = pipeline.next_result()
                return results.pop(ticket)

            return wait

        yield submit


@contextmanager
def _ray_pipeline(function, argument, settings: EngineSettings) -> Iterator[tuple[Any, int]]:
    """(the Ray Data pipeline of fttool.data.ray_engine computing function(batch, argument), its actors), on the
    cluster of `settings`: started here, and stopped afterwards, when the address is empty."""
    try:
        import ray

        from fttool.data.ray_engine import Pipeline
    except ImportError:
        raise EngineUnavailable("data.engine is ray, but Ray Data is not installed: pip install 'fttool[ray]' (or "
                                "set data.engine: local)") from None

    address = settings.ray.address
    started_here = not ray.is_initialized()
    if started_here:
        # An empty address starts a local cluster of num_cpus CPUs for this stage ("local": not the cluster that
        # RAY_ADDRESS or a `ray start` on this machine names, as ray.init's default would); otherwise num_cpus is
        # the cluster's to know, and only bounds the actors below.
        ray.init(address=address or "local", num_cpus=None if address else settings.ray.num_cpus or available_cores(),
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        actors = settings.ray.num_cpus or max(int(ray.cluster_resources().get("CPU", 1)), 1)
        pipeline = Pipeline(function, argument, actors)
        try:
            yield pipeline, actors
        except ray.exceptions.RayError as exc:
            raise RuntimeError(f"data.engine ray: the cluster failed to compute a batch ({type(exc).__name__}; "
                               "Ray's account follows in the traceback). Install the same fttool on every node "
                               "(pip install 'fttool[ray]'), or set data.engine: local") from exc
        finally:
            pipeline.close()
    finally:
        if started_here:
            ray.shutdown()


def _followed_by(batches: Iterable, end: Callable[[], None]) -> Iterator:
    yield from batches
    end()
