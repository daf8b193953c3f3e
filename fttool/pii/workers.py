"""Where texts are analysed: in the calling process for a small run, otherwise in worker processes (the local
engine) or on the actors of the ray engine (`data.engine: ray`), each with its own engines, with the outcomes one
process would give.

`analysis(params, records)` yields an Analysis: `start(texts)` starts analysing a list of texts and returns a
function that waits for their outcomes; `call(function, *args)` gives function(scrubber, *args) computed where the
scrubber is (a record's type resolution, fttool.pii.records.resolved_outcomes). Texts go to the analyzer NLP_BATCH
at a time wherever they are analysed, so the outcomes do not depend on it.

When workers or actors analyse, the calling process builds no scrubber: it never imports presidio, spaCy or torch,
and each worker loads its engines once (a local worker as soon as it starts, while the calling process reads its
first records; an actor at its first task) and keeps them for the stage.
"""
from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from functools import lru_cache

from fttool.data.engines import available_cores, ray_tasks
from fttool.pii.scrubber import NLP_BATCH, TextOutcome, TextScrubber, check_settings, key_digests
from fttool.pii.settings import PiiParams
from fttool.pipeline.params import build
from fttool.pipeline.plan import thaw

# Below this many records (about twice as many texts) the calling process analyses them itself: starting a
# worker and loading its engines takes seconds, and a small run is usually a test whose process has them loaded.
MIN_RECORDS_FOR_WORKERS = 1000

Start = Callable[[list[str]], Callable[[], list[TextOutcome]]]


def _block_torch(ner_engine: str) -> None:
    """With spaCy's NER, make torch and transformers unimportable in this worker: presidio imports transformers and
    thinc imports torch at import time although a spaCy engine never uses them, which costs a worker several
    seconds to start. presidio and thinc treat a module that fails to import as not installed. A transformers NER
    engine (pii.ner) needs both."""
    if ner_engine == "spacy":
        for name in ("torch", "transformers"):
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: the import system's "not found"


@lru_cache(maxsize=1)
def _worker_scrubber(params_json: str) -> TextScrubber:
    """A worker's scrubber, built once and kept for the rest of its tasks."""
    return TextScrubber(build(PiiParams, json.loads(params_json), "pii"))


def _start_worker(params_json: str, ner_engine: str) -> None:
    """Load the engines before the first task arrives. A scrubber that cannot be built is built again by the
    first task, whose exception (a missing model, an unknown entity) reaches the calling process; raised here, it
    would only break the pool."""
    _block_torch(ner_engine)
    try:
        _worker_scrubber(params_json)
    except Exception:  # noqa: BLE001 - raised again, with its message, by the first task
        pass


def call_in_worker(params_json: str, function: Callable, *args):
    """function(the worker's scrubber, *args); `function` is named by its module, which the worker imports."""
    return function(_worker_scrubber(params_json), *args)


def _outcomes_of(scrubber: TextScrubber, texts: list[str]) -> list[TextOutcome]:
    return scrubber.outcomes(texts)


def _on_actor(task: tuple[Callable, tuple], setup: tuple[str, str, tuple]):
    """A ray engine actor's task (function, args): function(the actor's scrubber, *args); `setup` is what
    `_actor_scrubber` takes."""
    function, args = task
    return function(_actor_scrubber(*setup), *args)


@lru_cache(maxsize=1)
def _actor_scrubber(params_json: str, ner_engine: str, keys: tuple[tuple[str, str], ...]) -> TextScrubber:
    """An actor's scrubber. An actor is a process of its own that runs only this stage's tasks, so torch is blocked
    there as in a local worker. A node's environment is its own: a hash key (its keyed digest, `keys`) that differs
    from the calling process's, which the stage's fingerprint holds, would write other pseudonyms."""
    _block_torch(ner_engine)
    mine = key_digests(build(PiiParams, json.loads(params_json), "pii"))
    for variable, digest in keys:
        if mine.get(variable) != digest:
            raise ValueError(f"pii.operators: the hash key in {variable} on a Ray node ({socket.gethostname()}) is "
                             f"{'not set' if mine.get(variable) == 'unset' else 'not the one set where fttool runs'}; "
                             f"set the same {variable} on every node of the cluster before `ray start`")
    return _worker_scrubber(params_json)


def _batches(texts: list[str]) -> list[list[str]]:
    return [texts[start:start + NLP_BATCH] for start in range(0, len(texts), NLP_BATCH)]


class HereAnalysis:
    """Analyses texts in the calling process, with a scrubber built here."""

    def __init__(self, scrubber: TextScrubber):
        self.scrubber = scrubber

    def start(self, texts: list[str]) -> Callable[[], list[TextOutcome]]:
        return lambda: [outcome for batch in _batches(texts) for outcome in self.scrubber.outcomes(batch)]

    def call(self, function: Callable, *args):
        return function(self.scrubber, *args)


class WorkerAnalysis:
    """Analyses texts in worker processes; the calling process holds no scrubber."""

    def __init__(self, params: PiiParams, executor):
        self.params_json = json.dumps(thaw(params))
        self.executor = executor

    def submit(self, function: Callable, *args) -> Future:
        """function(the params as JSON, *args) in a worker."""
        return self.executor.submit(function, self.params_json, *args)

    def start(self, texts: list[str]) -> Callable[[], list[TextOutcome]]:
        futures = [self.submit(call_in_worker, _outcomes_of, batch) for batch in _batches(texts)]
        return lambda: [outcome for future in futures for outcome in future.result()]

    def call(self, function: Callable, *args):
        return self.submit(call_in_worker, function, *args).result()


class RayAnalysis:
    """Analyses texts on the ray engine's actors (fttool.data.engines.ray_tasks); the calling process holds no
    scrubber. The texts' batches and the record resolutions are the local workers' tasks, in the same order."""

    def __init__(self, submit: Callable[[tuple[Callable, tuple]], Callable]):
        self.submit = submit

    def start(self, texts: list[str]) -> Callable[[], list[TextOutcome]]:
        waits = [self.submit((_outcomes_of, (batch,))) for batch in _batches(texts)]
        return lambda: [outcome for wait in waits for outcome in wait()]

    def call(self, function: Callable, *args):
        return self.submit((function, args))()


Analysis = HereAnalysis | WorkerAnalysis | RayAnalysis


@contextmanager
def analysis(params: PiiParams, records: int) -> Iterator[Analysis]:
    """Where the texts of a run of `records` records are analysed. Settings that need no model (hash keys, the
    allow list) are checked here before any work; a missing model or an unknown entity fails the first analysis."""
    if records < MIN_RECORDS_FOR_WORKERS:
        yield HereAnalysis(TextScrubber(params))
        return
    check_settings(params)
    params_json = json.dumps(thaw(params))
    if params.compute.engine == "ray":
        keys = tuple(sorted(key_digests(params).items()))
        with ray_tasks(_on_actor, (params_json, params.ner.engine, keys), params.compute) as submit:
            yield RayAnalysis(submit)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    count = params.compute.workers or available_cores()
    # spawn: a forked child would inherit whatever threads (BLAS, torch) earlier stages left in this process.
    executor = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(params_json, params.ner.engine))
    for _ in range(count):
        executor.submit(int)  # starts every worker now (the pool starts one per task), to load while records are read
    try:
        yield WorkerAnalysis(params, executor)
    except BrokenProcessPool as exc:
        raise RuntimeError("a PII worker process stopped unexpectedly (out of memory, or a script that runs fttool "
                           "without an `if __name__ == '__main__':` guard)") from exc
    finally:
        executor.shutdown(cancel_futures=True)
