"""Every path of a run directory, in one place: what the runner writes, what the report and verify read.

```
RUN_DIR/
  recipe.yaml, plan.json, run_state.json   what ran, from what, and the state --resume continues from
  report.json, report.html, report.md, MODEL_CARD.md   the report files
  report.sha256                            digests of the report and run files, and the run digest
  signoff.json                             approvals (volatile: added after the run)
  data/, quarantine.jsonl, model/, ...     stage outputs, each in the lineage
  work/<stage>/                            intermediates and scratch; deleted when the run succeeds
  logs/                                    tracebacks of failed stage attempts (volatile)
  review/review.csv, export/               written by later commands (volatile)
  .fttool.lock                             locked while a command writes into the directory (volatile)
```

Volatile files are the ones `fttool verify` does not vouch for: they are written after the run, by commands
that say what they wrote. Every other file must be in the report's lineage or among the report and run files.
"""
from __future__ import annotations

import datetime as dt
import errno
import fcntl
import fnmatch
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from fttool.pipeline.errors import RunError

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
MODEL_CARD = "MODEL_CARD.md"
# The report and its renderings: always checked by verify, whichever of them report.sha256 lists.
REPORT_FILES = (REPORT_JSON, REPORT_HTML, REPORT_MD, MODEL_CARD)
RECIPE_COPY = "recipe.yaml"
PLAN = "plan.json"
STATE = "run_state.json"
# What ran and from what; covered by the run digest like the report files.
RUN_FILES = (RECIPE_COPY, PLAN, STATE)
DIGESTS = "report.sha256"
SIGNOFFS = "signoff.json"
LOCK = ".fttool.lock"
WORK = "work"
DATA = "data"
LOGS = "logs"
EXPORT = "export"
REVIEW_SHEET = "review/review.csv"
# Files verify ignores, as run-relative glob patterns: approvals, failure logs, the lock, and the outputs of
# `fttool export` and `fttool review export`, which are written after the run.
VOLATILE = (SIGNOFFS, LOCK, f"{LOGS}/*", f"{EXPORT}/*", REVIEW_SHEET, f"{STATE}.tmp")
# Where the stage cache goes unless FTTOOL_CACHE_DIR says otherwise: beside the run directories.
CACHE_ENV = "FTTOOL_CACHE_DIR"
CACHE_DIR_NAME = ".fttool-cache"


def is_volatile(rel: str) -> bool:
    return any(fnmatch.fnmatchcase(rel, pattern) for pattern in VOLATILE)


def cache_dir(run_dir: Path) -> Path:
    """The stage cache: $FTTOOL_CACHE_DIR, else .fttool-cache beside the run directory."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser().resolve() if configured else Path(run_dir).parent / CACHE_DIR_NAME


@dataclass(frozen=True)
class RunLayout:
    root: Path

    def __truediv__(self, rel: str) -> Path:
        return self.root / rel

    @property
    def report(self) -> Path:
        return self.root / REPORT_JSON

    @property
    def digests(self) -> Path:
        return self.root / DIGESTS

    @property
    def signoffs(self) -> Path:
        return self.root / SIGNOFFS

    @property
    def plan(self) -> Path:
        return self.root / PLAN

    @property
    def recipe(self) -> Path:
        return self.root / RECIPE_COPY

    @property
    def state(self) -> Path:
        return self.root / STATE

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def work(self) -> Path:
        return self.root / WORK

    def work_dir(self, stage: str, fingerprint: str) -> Path:
        """A stage's private scratch directory, keyed by fingerprint so a retry only reuses it for the same inputs."""
        return self.root / WORK / stage / f"scratch-{fingerprint[:16]}"

    def error_log(self, stage: str) -> Path:
        return self.root / LOGS / f"{stage}.error.log"

    def split(self, name: str) -> Path:
        return self.root / DATA / f"{name}.jsonl"

    def relative(self, path: Path) -> str:
        return Path(path).relative_to(self.root).as_posix()

    def files(self) -> list[str]:
        """Every file in the run directory, run-relative, sorted; symbolic links count as files."""
        found = []
        for directory, subdirs, names in os.walk(self.root):
            subdirs.sort()
            for name in names + [d for d in subdirs if os.path.islink(os.path.join(directory, d))]:
                found.append(Path(directory, name).relative_to(self.root).as_posix())
        return sorted(found)



class RunLock:
    """An exclusive lock on a run directory while a command writes there (a run, a sign-off, a review import).

    A second command is refused at once, naming the holder. The lock file stays: removing it would let a
    waiting process lock a file that a third one no longer sees.
    """

    def __init__(self, layout: RunLayout, command: str, advice: str = ""):
        self.layout, self.command, self.advice = layout, command, advice
        self.handle: TextIO | None = None

    def __enter__(self) -> RunLock:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        lock = self.layout.lock
        try:  # never through a link: a planted .fttool.lock -> ~/file would have fttool overwrite that file
            descriptor = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            why = "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be opened ({exc.strerror})"
            raise RunError(f"{lock} {why}; fttool locks a file of the run directory itself: remove it") from None
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise RunError(f"{lock} is not a regular file; fttool locks a file of the run directory itself: remove it")
        handle = os.fdopen(descriptor, "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunError(f"{self.layout.root} is in use by another fttool command ({holder}); wait for it to "
                           f"finish {self.advice}".rstrip()) from None
        handle.seek(0)
        handle.truncate()
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        handle.write(f"{self.command}, pid {os.getpid()}, since {now}\n")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc_info) -> None:
        if self.handle is not None:
            self.handle.close()
