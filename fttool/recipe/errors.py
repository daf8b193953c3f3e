"""Recipe errors carry the file, line, column and JSON path, and are reported together."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RecipeError:
    file: str
    line: int
    column: int
    message: str
    json_path: str = ""

    def __str__(self) -> str:
        where = f" (at {self.json_path})" if self.json_path else ""
        return f"{self.file}:{self.line}:{self.column}: {self.message}{where}"


class RecipeInvalid(Exception):
    """Every error found in one recipe, so the user fixes them in one pass."""

    def __init__(self, errors: list[RecipeError]):
        self.errors = sorted(errors, key=lambda e: (e.file, e.line, e.column, e.message))
        super().__init__("\n".join(str(e) for e in self.errors))
