"""Progress lines for logs: when stderr is not a terminal (CI, nohup), a long step prints a line every so often,
so that it does not look dead. Each line names the step, the records done, the rate and, when the total is known,
the time left."""
from __future__ import annotations

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
    rate = done / elapsed if elapsed > 0 else 0.0
    of = f" of {total:,}" if total is not None else ""
    if total is not None and rate > 0:
        left = f", about {_duration(max(total - done, 0) / rate)} left"
    else:
        left = ", time left unknown" if total is None else ""
    return f"{desc}: {done:,}{of} records, {rate:,.1f} records/s{left}"


def progress_lines(iterable: Iterable, desc: str, total: int | None, interval_s: float, stream: TextIO,
                   clock: Callable[[], float] = time.monotonic) -> Iterator:
    """The items of `iterable`, writing a progress line to `stream` whenever `interval_s` has passed since the
    last one (measured when the consumer asks for the next item, so its own work counts)."""
    start = last = clock()
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = clock()
        if now - last >= interval_s:
            last = now
            stream.write(progress_line(desc, done, now - start, total) + "\n")
            stream.flush()
