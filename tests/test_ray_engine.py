"""The ray engine (fttool.data.engines on Ray Data) on one local cluster of 2 CPUs for the module: results in input
order whatever order batches finish in, per-process state built once per actor, a bounded number of batches in
flight, and a batch's error raised as the function's own. Dedup's output on it is checked byte for byte in
tests/test_data_scale.py."""
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest
from support import ray_work

from fttool.data.engines import BATCHES_IN_FLIGHT_PER_WORKER, in_order
from fttool.data.settings import EngineSettings, RaySettings

pytestmark = [pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                                   reason="ray is not installed (pip install 'fttool[ray]')")]
CPUS = 2
ON_RAY = EngineSettings("ray", None, RaySettings("", None))  # the cluster's CPUs: one actor each


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """One local cluster for the module; the engine uses it and leaves it running, as it does a user's cluster."""
    import ray

    tests = Path(__file__).resolve().parent  # where the actors find support.ray_work
    ray.init(address="local", num_cpus=CPUS, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(tests)}})
    yield
    ray.shutdown()


def _cpus_free_again() -> bool:
    """Whether the actors' CPUs come back within a minute (the engine stopped its dataset)."""
    import ray

    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < CPUS:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_results_in_input_order_with_state_built_once_per_actor_and_few_batches_in_flight():
    import ray

    pulled = []

    def batches():
        for i in range(40):
            pulled.append(i)
            yield [i, 1000 + i]

    results, ahead = [], []
    # Every fourth batch is slow, so later batches finish first.
    for result in in_order(ray_work.doubled, batches(), (0.3, 0.0, 0.0, 0.0), ON_RAY):
        results.append(result)
        ahead.append(len(pulled) - len(results))
    assert [values for values, _, _ in results] == [[2 * i, 2000 + 2 * i] for i in range(40)]
    builds_by_process: dict[int, set[int]] = {}
    for _, pid, builds in results:
        builds_by_process.setdefault(pid, set()).add(builds)
    # At most one actor per CPU (how many get work depends on when each has started), none the stage's process.
    assert 1 <= len(builds_by_process) <= CPUS and os.getpid() not in builds_by_process
    assert all(builds == {1} for builds in builds_by_process.values())  # each built its state once, then reused it
    assert max(ahead) <= CPUS * BATCHES_IN_FLIGHT_PER_WORKER  # the input is read a few batches ahead, not all at once
    assert ray.is_initialized() and _cpus_free_again()  # a cluster it did not start is left running, actors gone


def test_a_batch_error_is_the_functions_own_and_the_cluster_is_freed():
    with pytest.raises(ValueError, match=r"^record 13 is not a JSON object: fix line 14 of records.jsonl$") as raised:
        list(in_order(ray_work.refusing, ([i, i + 100] for i in range(30)), 13, ON_RAY))
    assert "refusing" in str(raised.value.__cause__)  # the worker's traceback, for the stage's error log
    assert _cpus_free_again()
    with pytest.raises(RuntimeError, match=r"^RecordRefused: records.jsonl:14: not a JSON object"):
        list(in_order(ray_work.refusing_with_two_arguments, ([i] for i in range(30)), 13, ON_RAY))


def test_stopping_early_stops_the_dataset():
    results = in_order(ray_work.doubled, ([i] for i in range(1000)), (0.0,), ON_RAY)
    assert [next(results)[0] for _ in range(3)] == [[0], [2], [4]]
    results.close()  # as a stage that fails part-way leaves it
    assert _cpus_free_again()
