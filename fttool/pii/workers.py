"""Spread the analysis of texts over worker processes, each with its own engines, with one process's outcomes.

`analysis(scrubber, records)` yields a function that starts analysing a list of texts and returns a
function that waits for their outcomes. Texts go to the analyzer NLP_BATCH at a time whether or not
workers run, so the outcomes do not depend on them.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

from fttool.pii.scrubber import NLP_BATCH, TextOutcome, TextScrubber
from fttool.pipeline.params import build
from fttool.pipeline.plan import thaw

# Each worker loads the spaCy model before its first task (seconds); below this many records (about twice
# as many texts) one process finishes sooner.
MIN_RECORDS_FOR_WORKERS = 1000

Start = Callable[[list[str]], Callable[[], list[TextOutcome]]]


def _start_worker(ner_engine: str) -> None:
    """With spaCy's NER, make torch and transformers unimportable here: presidio imports transformers (and with it
    torch) at import time although a spaCy engine never uses them, which costs a worker ten seconds or more to
    start. presidio and thinc treat a module that fails to import as not installed. A transformers NER engine
    (pii.ner) needs both, and the worker builds the same engine as the calling process."""
    if ner_engine == "spacy":
        for name in ("torch", "transformers"):
            sys.modules.setdefault(name, None)


@lru_cache(maxsize=1)
def _worker_scrubber(params_json: str) -> TextScrubber:
    """A worker's scrubber, built on its first task and kept for the rest."""
    from fttool.pii.settings import PiiParams

    return TextScrubber(build(PiiParams, json.loads(params_json), "pii"))


def _outcomes_in_worker(params_json: str, texts: list[str]) -> list[TextOutcome]:
    return _worker_scrubber(params_json).outcomes(texts)


def _batches(texts: list[str]) -> list[list[str]]:
    return [texts[start:start + NLP_BATCH] for start in range(0, len(texts), NLP_BATCH)]


@contextmanager
def analysis(scrubber: TextScrubber, records: int) -> Iterator[Start]:
    """A function that starts analysing a list of texts and returns a function that waits for the outcomes."""
    workers = scrubber.params.workers
    if workers == 1 or records < MIN_RECORDS_FOR_WORKERS:
        def start_here(texts: list[str]) -> Callable[[], list[TextOutcome]]:
            return lambda: [outcome for batch in _batches(texts) for outcome in scrubber.outcomes(batch)]

        yield start_here
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    params_json = json.dumps(thaw(scrubber.params))
    # spawn: a forked child would inherit whatever threads (BLAS, torch) earlier stages left in this process.
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(scrubber.params.ner.engine,))

    def start(texts: list[str]) -> Callable[[], list[TextOutcome]]:
        futures = [executor.submit(_outcomes_in_worker, params_json, batch) for batch in _batches(texts)]
        return lambda: [outcome for future in futures for outcome in future.result()]

    try:
        yield start
    except BrokenProcessPool as exc:
        raise RuntimeError("a PII worker process stopped unexpectedly (out of memory, or a script that runs fttool "
                           "without an `if __name__ == '__main__':` guard); set pii.workers: 1 to analyse in "
                           "this process") from exc
    finally:
        executor.shutdown(cancel_futures=True)
