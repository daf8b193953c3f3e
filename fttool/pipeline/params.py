"""Typed stage parameters: frozen dataclasses built from the compiler's resolved mappings.

The compiler resolves every default once; a stage's parameters are then one frozen dataclass whose
fields have no defaults of their own, so a key the dataclass does not declare, or one it declares
that the compiler did not fill, is an error here rather than a silently dropped setting.

Field types that are dataclasses, `tuple[SomeDataclass, ...]` or `Optional[SomeDataclass]` are built
recursively; mappings become read-only `MappingProxyType`s and lists become tuples, so the whole
parameter tree is immutable and hashable into a fingerprint by `plan.thaw`.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from fttool.pipeline.plan import freeze


class ParamsError(TypeError):
    """The compiler's mapping does not match the stage's parameter dataclass: a programming error."""


def _dataclass_in(annotation: Any) -> tuple[str, Any]:
    """('one' | 'tuple' | 'optional', the dataclass) when the annotation holds a dataclass, else ('', None)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        return "one", annotation
    if origin is tuple and args and dataclasses.is_dataclass(args[0]):
        return "tuple", args[0]
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            return "optional", inner[0]
    return "", None


def build(cls: Any, values: Mapping[str, Any], where: str = "params") -> Any:
    """An instance of dataclass `cls` from `values`; every field must be given and no other key."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(values) - set(names))
    missing = sorted(set(names) - set(values))
    if unknown or missing:
        raise ParamsError(f"{where}: {cls.__name__} got unknown keys {unknown} and lacks {missing}")
    kwargs = {}
    for name in names:
        value = values[name]
        kind, inner = _dataclass_in(hints[name])
        if kind == "one" or (kind == "optional" and value is not None):
            value = build(inner, value, f"{where}.{name}")
        elif kind == "tuple":
            value = tuple(build(inner, item, f"{where}.{name}[{i}]") for i, item in enumerate(value))
        else:
            value = freeze(value)
        kwargs[name] = value
    return cls(**kwargs)

