"""Typed parameters of the data stages (ingest, dedup, split), built once by the recipe compiler.

Light on purpose: the compiler imports it, so nothing heavy is imported here. Every field is resolved by the
compiler (see `resolved_source`); the stages read attributes and never apply defaults of their own.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fttool.data.containers import source_container, source_tag

# The file key each canonical field is read from unless a source's `fields` maps it elsewhere. ShareGPT exports
# keep their turns in `conversations`, and may carry a `system` prompt and `tools` beside them.
INPUT_FIELDS: dict[str, dict[str, str]] = {
    "alpaca": {"instruction": "instruction", "input": "input", "output": "output"},
    "prompt_completion": {"prompt": "prompt", "completion": "completion"},
    "chat": {"messages": "messages", "tools": "tools"},
    "sharegpt": {"messages": "conversations", "system": "system", "tools": "tools"},
    "text": {"text": "text"},
    # Preference data (fttool.data.preference): pairs, LLaMA-Factory's ShareGPT pairs, and KTO's labelled responses.
    "preference": {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected", "system": "system"},
    "sharegpt_preference": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected",
                            "system": "system", "tools": "tools"},
    "kto": {"messages": "messages", "prompt": "prompt", "completion": "completion", "label": "label",
            "system": "system", "tools": "tools"},
}
# Input formats whose records become `chat` records.
CHAT_FORMATS = ("chat", "sharegpt")
ASSISTANT_TURNS = ("all", "last")


@dataclass(frozen=True)
class SourceSettings:
    """One data source, with every default resolved.

    Attributes:
        path: the file, relative to the recipe; None for a hub source.
        hub: the Hugging Face dataset id (`org/name`) of a hub source; None for a file.
        revision: the hub dataset's revision (a branch, tag or commit) as the recipe pins it; None for a file.
        split: the hub dataset's split to read (e.g. `train`); None for a file.
        format: the input format: alpaca, prompt_completion, chat, sharegpt or text.
        container: how the file is stored (jsonl, json, csv, parquet); None for a hub source.
        tag: the label every record of the source keeps.
        fields: canonical field name -> the key it is read from, for every field of the format.
        assistant_turns: for chats, which assistant turns are trained on: `all` or only the `last`.
    """

    path: str | None
    hub: str | None
    revision: str | None
    split: str | None
    format: str
    container: str | None
    tag: str
    fields: Mapping[str, str]
    assistant_turns: str

    @property
    def where(self) -> str:
        """How messages name the source: its path, or hub id, revision and split."""
        return self.path if self.path else f"{self.hub}@{self.revision}:{self.split}"


def resolved_source(source: Mapping[str, Any]) -> dict:
    """A recipe source (schema defaults applied) with every SourceSettings field filled in."""
    mapping = source.get("fields") or {}
    return {
        "path": source.get("path"), "hub": source.get("hub"), "revision": source.get("revision"),
        "split": source.get("split"), "format": source["format"],
        "container": source_container(source) if source.get("path") else None, "tag": source_tag(source),
        "fields": {canonical: mapping.get(canonical, default)
                   for canonical, default in INPUT_FIELDS[source["format"]].items()},
        "assistant_turns": source["assistant_turns"],
    }


@dataclass(frozen=True)
class IngestParams:
    """Parameters of the ingest stage.

    Attributes:
        sources: the sources, read in this order.
        max_chars: records whose text is longer than this are quarantined.
        compute: where records are normalised (each source is read, and its records written, in the stage's
            process, in order).
    """

    sources: tuple[SourceSettings, ...]
    max_chars: int
    compute: EngineSettings


@dataclass(frozen=True)
class RaySettings:
    """Where the Ray engine runs.

    Attributes:
        address: the address of a running Ray cluster (`ray start --head` prints it, e.g. `10.0.0.5:6379`, or
            `auto`), of which the machine that runs fttool is a node; empty to start a local cluster for each stage
            that uses the engine and stop it after the stage.
        num_cpus: CPUs of the local cluster when `address` is empty, and the number of actors (one CPU and one
            batch at a time each); None for all the cores available (the cluster's CPUs).
    """

    address: str
    num_cpus: int | None


@dataclass(frozen=True)
class EngineSettings:
    """How the per-record work of a data stage is spread; the output does not depend on it.

    Attributes:
        engine: `local` (this machine, in `workers` processes) or `ray` (the cluster `ray` names).
        workers: processes of the local engine; 1 computes in the stage's own process; None for the cores available.
        ray: the cluster of the ray engine.
    """

    engine: str
    workers: int | None
    ray: RaySettings


@dataclass(frozen=True)
class DedupParams:
    """Parameters of the dedup stage.

    Attributes:
        exact: drop records identical after case and whitespace normalisation.
        near: drop near duplicates found by MinHash LSH.
        near_threshold: estimated Jaccard similarity of word 3-grams from which records are near duplicates.
        semantic: drop records whose sentence embeddings are closer than `semantic_threshold` to a kept one.
        semantic_threshold: cosine similarity above which records are semantic duplicates.
        compute: where records are cleaned, keyed and signed (the index pass stays in the stage's process, in order).
    """

    exact: bool
    near: bool
    near_threshold: float
    semantic: bool
    semantic_threshold: float
    compute: EngineSettings


def engine_settings(data: Mapping[str, Any]) -> dict:
    """The EngineSettings fields from the recipe's data section (defaults applied): every per-record stage (ingest,
    dedup, the bias audit, augment) spreads its work this way."""
    return {"engine": data["engine"], "workers": data.get("workers"), "ray": {"num_cpus": None, **data["ray"]}}


def dedup_params(data: Mapping[str, Any]) -> dict:
    """The dedup stage's parameters from the recipe's data section (defaults applied)."""
    return {**data["dedup"], "compute": engine_settings(data)}


@dataclass(frozen=True)
class SplitParams:
    """Parameters of the split stage.

    Attributes:
        train: share of records (or groups' records) for training.
        validation: share for validation.
        test: share for the test split.
        seed: seed of the shuffle that assigns units to splits.
        stratify: a meta field whose every value is split by the ratios on its own; None for no strata.
        group_by: a meta field whose records all land in one split; None to split record by record.
        on_leak: `move` held-out duplicates of records in another split into train, or `fail` the run.
        leak_threshold: estimated Jaccard similarity from which records in different splits are near duplicates.
        deduplicated_exact: dedup's exact or near pass removed every exact duplicate from the split's input.
        deduplicated_near_threshold: the near_threshold at which dedup removed near duplicates from the split's
            input; None when its near pass is off.
    """

    train: float
    validation: float
    test: float
    seed: int
    stratify: str | None
    group_by: str | None
    on_leak: str
    leak_threshold: float
    deduplicated_exact: bool
    deduplicated_near_threshold: float | None


def split_params(data: Mapping[str, Any]) -> dict:
    """The split stage's parameters from the recipe's data section (defaults applied): what dedup, which runs just
    before it, already guarantees lets the leakage check skip its pass (fttool.data.split)."""
    dedup = data["dedup"]
    return {"stratify": None, "group_by": None, **data["split"], "deduplicated_exact": dedup["exact"] or dedup["near"],
            "deduplicated_near_threshold": dedup["near_threshold"] if dedup["near"] else None}
