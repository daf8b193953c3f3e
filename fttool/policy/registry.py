"""Check kinds by name: a policy names a kind, the registry gives the function that checks it.

Like presidio's RecognizerRegistry, the registry is the one place where a kind is tied to code, so
policies stay data and new kinds are added without touching the loader or the engine.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fttool.recipe.loader import LoadedDocument

TARGET_KINDS = ("recipe", "report")


@dataclass(frozen=True)
class Violation:
    message: str
    at: tuple = ()  # JSON path of the offending value in the checked document; positions come from it


@dataclass(frozen=True)
class Target:
    """One checked file: a recipe with its schema defaults filled in, or a report.json."""
    kind: str  # one of TARGET_KINDS
    document: LoadedDocument  # the file as written, with the position of each key and value
    data: dict  # what rules read
    names: tuple[str, ...]  # what a waiver's target glob is matched against
    at: tuple = ()  # where `data` sits in the document: () for a file, ("recipe", "resolved") for a report's recipe
    # The allowed signers file (git's format) whose keys may sign off a report (fttool check --allowed-signers).
    allowed_signers: Path | None = None

    @property
    def file(self) -> str:
        return str(self.document.path)


CheckFunction = Callable[[Target, dict], list[Violation]]


@dataclass(frozen=True)
class RegisteredCheck:
    kind: str
    targets: frozenset[str]  # the target kinds the check can read
    function: CheckFunction


class CheckRegistry:
    def __init__(self) -> None:
        self._checks: dict[str, RegisteredCheck] = {}

    def register(self, kind: str, targets: tuple[str, ...] = TARGET_KINDS) -> Callable[[CheckFunction], CheckFunction]:
        def add(function: CheckFunction) -> CheckFunction:
            if kind in self._checks:
                raise ValueError(f"check kind '{kind}' is already registered")
            self._checks[kind] = RegisteredCheck(kind, frozenset(targets), function)
            return function

        return add

    def get(self, kind: str) -> RegisteredCheck:
        return self._checks[kind]

    def kinds(self) -> list[str]:
        return sorted(self._checks)

    def run(self, spec: dict, target: Target) -> list[Violation]:
        """Apply one check spec ({kind, ...parameters}) from a policy to `target`."""
        params = {key: value for key, value in spec.items() if key != "kind"}
        return self._checks[spec["kind"]].function(target, params)
