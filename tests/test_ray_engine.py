"""The ray engine (fttool.data.engines on Ray Data) on one local cluster of 2 CPUs for the module: results in input
order whatever order batches finish in, per-process state built once per actor, a bounded number of batches in
flight, and a batch's error raised as the function's own. Dedup's output on it is checked byte for byte in
tests/test_data_scale.py; the PII stage's here, with its analysis and record resolution on the actors."""
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest
from support import ray_work
from support.pii import pii_params

from fttool.data.engines import BATCHES_IN_FLIGHT_PER_WORKER, in_order
from fttool.data.settings import EngineSettings, RaySettings
from fttool.pii import records, scrubber, workers
from fttool.pii.settings import PiiParams
from fttool.pipeline.params import build

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


# -- the PII stage on the actors ------------------------------------------------------------------------------------
RAY_DATA = {"engine": "ray", "ray": {"address": ""}}  # the module's cluster: one actor per CPU
PII_TEXTS = ["Call Maria Lopez on 212-555-0199 or mail maria.lopez@example.org about the refund.",
             "Natalia sold clips to 48 of her friends in April.",
             "My social security number is 536-22-8191 and I live at 1600 Pennsylvania Avenue, Washington.",
             "Dear Mr. Tanaka, the parts ship next week. Kind regards,\nIngrid Bergström",
             "Explain how photosynthesis works.",
             "Charge card 4111 1111 1111 1111 and text +44 20 7946 0958 when done."]


def _pii_splits() -> dict[str, list[dict]]:
    """Records whose texts repeat across splits and chunks, with chats, meta, and records that need their types
    resolved over the record ("Georgia" a person in one field and a place in the other)."""
    made = [{"id": f"r{index}", "format": "alpaca", "instruction": PII_TEXTS[index % 6],
             "input": "", "output": PII_TEXTS[(index * 5 + 1) % 6], "meta": {"ticket": f"T-{index}"}}
            for index in range(24)]
    made += [{"id": f"g{index}", "format": "alpaca", "instruction": "Georgia said she would call back.",
              "input": "", "output": "Please send the parcel to Georgia."} for index in range(4)]
    made.append({"id": "chat", "format": "chat", "messages": [
        {"role": "user", "content": PII_TEXTS[0]}, {"role": "assistant", "content": "I will call Maria Lopez."}]})
    return {"train": made[::2], "validation": made[1::4], "test": made[3::4]}


def test_the_pii_stage_on_ray_writes_what_the_local_engine_writes(run_stage, monkeypatch):
    splits = _pii_splits()

    def run(data: dict) -> tuple:
        result, outputs = run_stage("pii", pii_params(data, entities=["PERSON", "LOCATION", "EMAIL_ADDRESS",
                                                                        "PHONE_NUMBER", "US_SSN", "CREDIT_CARD"]),
                                    splits)
        return (result.summary, result.removed,
                {name: path.read_bytes() for name, path in outputs.items() if path.is_file()})

    local = run({"engine": "local", "ray": {"address": ""}})  # a run this small: in the stage's own process
    # On the actors however few the records, in small chunks and batches: texts repeat across chunks still in
    # flight, and each actor gets several batches and record resolutions.
    monkeypatch.setattr(workers, "MIN_RECORDS_FOR_WORKERS", 1)
    monkeypatch.setattr(records, "CHUNK_RECORDS", 3)
    monkeypatch.setattr(workers, "NLP_BATCH", 2)

    def not_in_this_process(*args):
        raise AssertionError("texts were analysed or resolved in the stage's own process")

    monkeypatch.setattr(scrubber.TextScrubber, "outcomes", not_in_this_process)
    monkeypatch.setattr(scrubber.TextScrubber, "outcomes_with", not_in_this_process)
    on_ray = run(RAY_DATA)
    assert set(on_ray[2]) == {"train", "validation", "test", "findings"}
    assert on_ray == local
    georgia = on_ray[2]["train"].decode().splitlines()[-3]  # g0 resolved: a person in both fields
    assert '"id": "g0"' in georgia and "Georgia" not in georgia, georgia
    assert _cpus_free_again()


def test_each_pii_actor_builds_its_scrubber_once_without_torch():
    params = build(PiiParams, pii_params(RAY_DATA), "pii")
    here = scrubber.TextScrubber(params).outcomes(PII_TEXTS)
    with workers.analysis(params, workers.MIN_RECORDS_FOR_WORKERS) as analyser:
        assert isinstance(analyser, workers.RayAnalysis)
        assert analyser.start(PII_TEXTS * 4)() == here * 4
        builds = [analyser.call(ray_work.scrubber_builds) for _ in range(8)]
    assert os.getpid() not in {pid for pid, _, _ in builds}
    assert {(count, torch) for _, count, torch in builds} == {(1, False)}


def test_a_hash_key_missing_on_the_nodes_fails_naming_it(monkeypatch):
    monkeypatch.setenv("FTTOOL_TEST_RAY_PII_KEY", "k" * 32)  # here only: the cluster's processes started before
    params = build(PiiParams, pii_params(RAY_DATA, operators={"PERSON": {"type": "hash",
                                                                          "salt_env": "FTTOOL_TEST_RAY_PII_KEY"}}),
                   "pii")
    with pytest.raises(ValueError, match=r"FTTOOL_TEST_RAY_PII_KEY on a Ray node \(.*\) is not set; set the same"):
        with workers.analysis(params, workers.MIN_RECORDS_FOR_WORKERS) as analyser:
            analyser.start(PII_TEXTS)()
    assert _cpus_free_again()
