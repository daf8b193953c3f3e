"""The compiled plan: an immutable list of stages with resolved parameters and wired paths."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any


def freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain dicts and lists (for JSON and fingerprints) from frozen mappings, tuples and parameter dataclasses."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: thaw(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(thaw(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StageSpec:
    name: str
    params: Any  # the stage's typed parameters (a frozen dataclass), every default resolved
    inputs: Mapping[str, str]  # logical name -> path relative to the run directory
    outputs: Mapping[str, str]

    def to_dict(self) -> dict:
        return {"name": self.name, "params": thaw(self.params), "inputs": thaw(self.inputs),
                "outputs": thaw(self.outputs)}


@dataclass(frozen=True)
class Plan:
    name: str
    recipe_path: Path
    recipe: Mapping[str, Any]  # with defaults resolved
    stages: tuple[StageSpec, ...]
    skipped: Mapping[str, str]  # stage name -> why it does not run

    @property
    def fingerprint(self) -> str:
        """Identifies the resolved recipe; stage fingerprints additionally cover input file contents."""
        return sha256_text(canonical_json(self.recipe))

    def to_dict(self) -> dict:
        return {"name": self.name, "recipe": str(self.recipe_path), "fingerprint": self.fingerprint,
                "stages": [s.to_dict() for s in self.stages], "skipped": thaw(self.skipped)}
