"""Progress lines for logs: when stderr is not a terminal (CI, nohup), a long step prints a line every so often,
so that it does not look dead. Each line names the step, the records done, the rate and, when the total is known,
the time left."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

PROGRESS_INTERVAL_S = 30.0


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def progress_line(desc: str, done: int, elapsed: float, total: int | None) -> str:
    of = f" of {total:,}" if total is not None else ""
    if done == 0:
        return f"{desc}: no record finished yet after {_duration(elapsed)}" + (
            f" (of {total:,} records)" if total is not None else "")
    rate = done / elapsed if elapsed > 0 else 0.0
    if total is not None and rate > 0:
        left = f", about {_duration(max(total - done, 0) / rate)} left"
    else:
        left = ", time left unknown" if total is None else ""
    return f"{desc}: {done:,}{of} records, {rate:,.1f} records/s{left}"


def progress_lines(iterable: Iterable, desc: str, total: int | None, interval_s: float, stream: TextIO,
                   clock: Callable[[], float] = time.monotonic) -> Iterator:
    """The items of `iterable`, writing a progress line to `stream` whenever `interval_s` has passed since the
    last one (measured when the consumer asks for the next item, so its own work counts). A step that hands on
    its records in chunks can keep the consumer waiting far longer than that, so a watcher thread also writes
    the line whenever none was written for `interval_s` on the real clock."""
    started = clock()
    state = {"start": started, "last": started, "last_real": time.monotonic(), "done": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def write(now: float) -> None:  # called with the lock held
        state["last"], state["last_real"] = now, time.monotonic()
        stream.write(progress_line(desc, int(state["done"]), now - state["start"], total) + "\n")
        stream.flush()

    def watch() -> None:
        while not stop.wait(interval_s / 4):
            with lock:
                if not stop.is_set() and time.monotonic() - state["last_real"] >= interval_s:
                    write(clock())

    if interval_s > 0:  # 0 asks for a line after every item: nothing to watch for
        threading.Thread(target=watch, name=f"progress {desc}", daemon=True).start()
    try:
        for item in iterable:
            yield item
            with lock:
                state["done"] += 1
                now = clock()
                if now - state["last"] >= interval_s:
                    write(now)
    finally:
        stop.set()
