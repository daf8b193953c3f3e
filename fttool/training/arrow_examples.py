"""Training examples as Arrow files that every training process memory-maps, instead of Python lists.

A list of tokenised examples holds each token as a Python int (about 36 bytes with its list slot) in every training
process; an Arrow file holds 4 bytes a token, and the processes of a launch share its pages through the OS cache.
So the process that starts training (the train stage's, which launches the others when there are several) writes the
splits once, streaming, into the job's work directory (`examples/`: private to the stage's fingerprint and deleted
with work/ when the run succeeds); every training process opens them with `datasets.Dataset.from_file`, which maps
the file instead of reading it. Each backend decides what a row is (`TrainingBackend.prepare`): tokenised examples
for supervised and DP training, TRL's text rows for the preference objectives (TRL tokenises those; on a mapped
dataset its tokenised copy is cached beside the file by the first process and read by the others).

A split is written to a temporary directory that replaces the previous one whole, so a process never opens a split
half written or left by an attempt on other data.
"""
from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fttool.data.records import read_jsonl
from fttool.training.examples import tokenized_example, trained_token_share
from fttool.training.job import TrainJob
from fttool.training.private import unit_keys

EXAMPLES_DIR = "examples"
SPLIT_FILE = "{split}.arrow"
COUNTS_FILE = "counts.json"
WRITER_BATCH_ROWS = 1000  # rows held in memory before they are written out
TOKEN_ID_TYPE = "int32"  # every vocabulary fits; torch gets int64 tensors from the collator all the same


@dataclass
class SplitCounts:
    """What writing a split counted: rows written, records dropped with no label left (or no room for a response),
    labelled and all tokens of the rows written, and train records beyond train.max_samples."""

    rows: int = 0
    dropped: int = 0
    trained_tokens: int = 0
    total_tokens: int = 0
    records_left_out: int = 0


@dataclass
class ExampleSplits:
    """The train and validation splits as memory-mapped datasets, with what writing them counted."""

    train: Any  # datasets.Dataset
    validation: Any
    counts: dict[str, SplitCounts]


def examples_dir(work_dir: Path) -> Path:
    return work_dir / EXAMPLES_DIR


def token_features(with_unit: bool = False):
    """input_ids and labels as lists of token ids; `unit`, the privacy unit's index, for DP training."""
    from datasets import Features, List, Value

    columns: dict[str, Any] = {"input_ids": List(Value(TOKEN_ID_TYPE)), "labels": List(Value(TOKEN_ID_TYPE))}
    if with_unit:
        columns["unit"] = Value("int32")
    return Features(columns)


def capped(records: Iterable[dict], cap: int | None, counts: SplitCounts) -> Iterator[dict]:
    """The first `cap` records (all without a cap); the others are read, to be counted in `counts`."""
    for index, record in enumerate(records):
        if cap is not None and index >= cap:
            counts.records_left_out += 1
        else:
            yield record


def unit_indices(records: Iterable[dict]) -> list[int]:
    """Each record's privacy unit (fttool.training.private.unit_keys) as a number, in order of first appearance."""
    keys = unit_keys([{"id": record["id"], "parent_id": record.get("parent_id")} for record in records])
    numbers: dict[str, int] = {}
    return [numbers.setdefault(key, len(numbers)) for key in keys]


def tokenized_rows(records: Iterable[dict], tokenizer, max_seq_length: int, train_on_inputs: bool,
                   counts: SplitCounts, units: Iterable[int] | None = None) -> Iterator[dict]:
    """The records' examples (fttool.training.examples), with their unit when `units` are given; those with no
    label left are dropped and counted in `counts`, with the tokens of the others."""
    unit_of = iter(units) if units is not None else None
    for record in records:
        unit = next(unit_of) if unit_of is not None else None
        example = tokenized_example(tokenizer, record, max_seq_length, train_on_inputs)
        if example is None:
            counts.dropped += 1
            continue
        trained, total = trained_token_share([example])
        counts.trained_tokens += trained
        counts.total_tokens += total
        yield example if unit is None else {**example, "unit": unit}


def write_rows(path: Path, rows: Iterable[dict], features) -> int:
    """`rows` streamed into an Arrow file at `path`, WRITER_BATCH_ROWS at a time; how many were written."""
    from datasets.arrow_writer import ArrowWriter

    with ArrowWriter(features=features, path=str(path), writer_batch_size=WRITER_BATCH_ROWS) as writer:
        for row in rows:
            writer.write(row)
        written, _ = writer.finalize()
    return written


def write_dataset(path: Path, dataset) -> int:
    """An in-memory `datasets.Dataset` written to an Arrow file at `path`; its row count."""
    from datasets.arrow_writer import ArrowWriter

    with ArrowWriter(features=dataset.features, path=str(path)) as writer:
        writer.write_table(dataset.data.table)
        written, _ = writer.finalize()
    return written


def write_splits(work_dir: Path, write: dict, counts: dict[str, SplitCounts]) -> None:
    """Write each split with `write[split](path)` into a fresh directory, then put it in place of examples/ with the
    counts; `counts[split].rows` is set from what was written."""
    target = examples_dir(work_dir)
    fresh = target.with_name(f"{EXAMPLES_DIR}.tmp-{secrets.token_hex(4)}")
    fresh.mkdir(parents=True)
    try:
        for split, writer in write.items():
            counts[split].rows = writer(fresh / SPLIT_FILE.format(split=split))
        (fresh / COUNTS_FILE).write_text(json.dumps({split: asdict(c) for split, c in counts.items()}, indent=2),
                                         encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        fresh.rename(target)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def load_splits(work_dir: Path) -> ExampleSplits:
    """The splits a training process was given, memory-mapped (fttool.training.arrow_examples)."""
    from datasets import Dataset

    directory = examples_dir(work_dir)
    counts_path = directory / COUNTS_FILE
    if not counts_path.is_file():
        raise RuntimeError(f"train: {directory} holds no prepared examples; the process that starts training writes "
                           "them before any training process starts (TrainingBackend.prepare)")
    counts = {split: SplitCounts(**values)
              for split, values in json.loads(counts_path.read_text(encoding="utf-8")).items()}
    train, validation = (Dataset.from_file(str(directory / SPLIT_FILE.format(split=split)))
                         for split in ("train", "validation"))
    return ExampleSplits(train, validation, counts)


def write_tokenized_splits(job: TrainJob, tokenizer, with_units: bool = False) -> None:
    """The job's train split (up to train.max_samples) and validation split as tokenised examples, each with its
    privacy unit when `with_units`; fails when no train example is left to train on."""
    params = job.params
    counts = {"train": SplitCounts(), "validation": SplitCounts()}

    def writer(split: str, source: Path, cap: int | None):
        def write(path: Path) -> int:
            # Units need every record's parent first: a light first pass, so the records are never all in memory.
            units = unit_indices(capped(read_jsonl(source), cap, SplitCounts())) if with_units else None
            rows = tokenized_rows(capped(read_jsonl(source), cap, counts[split]), tokenizer, params.max_seq_length,
                                  params.train_on_inputs, counts[split], units)
            return write_rows(path, rows, token_features(with_units))
        return write

    write_splits(job.work_dir, {"train": writer("train", job.train_data, params.max_samples),
                                "validation": writer("validation", job.validation_data, None)}, counts)
    train = counts["train"]
    if not train.rows:
        raise ValueError(
            f"train: no response token is left to train on ({train.dropped} examples, max_seq_length "
            f"{params.max_seq_length}): the train split is empty, every prompt fills the sequence, or every response "
            "is empty. Raise train.max_seq_length or shorten the prompts." if train.dropped else
            "train: the train split is empty; there is nothing to fine-tune on")
    if params.early_stopping and not counts["validation"].rows:
        raise ValueError("train: early stopping needs validation examples, but none has a token to score "
                         "within max_seq_length; raise train.max_seq_length or remove train.early_stopping")
