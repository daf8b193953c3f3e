"""The small interface every stage implements.

A stage declares what it reads and writes by logical name; the compiler turns names into paths in
the run directory, and the runner hashes inputs, computes the fingerprint, caches outputs, counts
records and records lineage. A stage only transforms files and returns a summary for the report.

Heavy libraries (torch, transformers, presidio, spaCy) are imported inside `run`, never at module
level, so that compiling and validating a recipe stays fast.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from fttool.data.records import SPLITS
from fttool.pipeline.progress import PROGRESS_INTERVAL_S, progress_lines

# Logical datasets that hold JSONL records; the runner counts them and checks conservation.
RECORD_DATASETS = ("records", *SPLITS)


@dataclass
class StageContext:
    params: Any  # the stage's Params instance (a frozen mapping for stages not yet typed)
    inputs: dict[str, Path]  # logical name -> file or directory to read
    outputs: dict[str, Path]  # logical name -> file or directory to write
    recipe_dir: Path
    # Private to this stage and its fingerprint; kept after a failure, so --resume finds what it left (checkpoints).
    work_dir: Path
    # The run directory that inputs and outputs lie in; None for a stage run on its own, outside a run.
    run_dir: Path | None = None
    # Seconds between progress lines when stderr is not a terminal; tests make it short.
    progress_interval_s: float = PROGRESS_INTERVAL_S

    def resolve(self, path: str) -> Path:
        """A recipe path, which is relative to the recipe file."""
        return (self.recipe_dir / path).resolve()

    def progress(self, iterable: Iterable, total: int | None = None, desc: str = ""):
        """A progress bar on stderr for long steps; when stderr is not a terminal (CI logs, nohup), a line
        every progress_interval_s seconds instead: step, records done, rate and time left."""
        if not sys.stderr.isatty():
            return progress_lines(iterable, desc, total, self.progress_interval_s, sys.stderr)
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False)


@dataclass
class StageResult:
    """What a stage tells the runner.

    `removed` and `added` count records by reason; the runner checks that
    records in - removed + added == records out, so no record disappears unexplained.
    """

    summary: dict = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    records_read: int | None = None  # for stages that read outside sources rather than record datasets


class Stage:
    name: ClassVar[str]
    reads: ClassVar[tuple[str, ...]] = ()  # inputs this stage transforms; counted as records in
    references: ClassVar[tuple[str, ...]] = ()  # inputs only consulted (e.g. to dedup against); not counted
    writes: ClassVar[tuple[str, ...]] = ()  # record datasets this stage produces or rewrites
    artifacts: ClassVar[dict[str, str]] = {}  # other outputs: logical name -> path in the run directory
    # Where this stage's summary goes in report.json.
    report_section: ClassVar[str]
    # The frozen dataclass of this stage's parameters, built once by the compiler (fttool.pipeline.params).
    Params: ClassVar[type | None] = None
    # Fields of Params that say only where the work runs (an engine whose output is the same on every setting): left
    # out of the fingerprint, so that the same work done elsewhere is served from the cache; plan.json keeps them.
    unkeyed_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def external_inputs(cls, params: Any) -> list[str]:
        """Recipe-relative paths (files or directories) this stage reads from outside the run."""
        return []

    @classmethod
    def secret_digests(cls, params: Any) -> dict[str, str]:
        """Keyed digests of secrets the stage reads from outside the recipe (never the secrets): part of its
        fingerprint, so that a changed key does not serve outputs made with the old one from the cache."""
        return {}

    @classmethod
    def cacheable(cls, params: Any) -> bool:
        """Whether the runner may serve this stage from the cache (and store it there); False when running it has
        an effect beyond its outputs that others wait for (training together with other machines)."""
        return True

    @classmethod
    def unmet_requirements(cls, params: Any) -> list[str]:
        """Why this machine cannot run the stage (e.g. it needs a GPU), each saying what to do; empty if it can.

        The runner asks every stage before the first one runs, so no earlier stage's work is wasted.
        """
        return []

    def run(self, ctx: StageContext) -> StageResult:
        raise NotImplementedError
