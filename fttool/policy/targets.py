"""Read the files `fttool check` is given: recipes (YAML) and run reports (report.json).

A recipe is validated as `fttool validate` does and checked with its schema defaults filled in. A
report is validated against schemas/report.schema.json. Both keep the position of every key, so a
finding points at the line to fix.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from fttool.pipeline.layout import DIGESTS, REPORT_JSON
from fttool.policy.registry import Target
from fttool.recipe.compiler import validated_recipe
from fttool.recipe.errors import RecipeError, RecipeInvalid
from fttool.recipe.loader import load_recipe_file
from fttool.report.reader import report_document

REPORT_FILE = REPORT_JSON


def _path_forms(path: Path) -> list[str]:
    """The path as given and relative to the working directory, so a waiver's glob can be written either way."""
    return [path.as_posix(), Path(os.path.relpath(path.resolve())).as_posix()]


def load_recipe_target(path: Path) -> Target:
    document = load_recipe_file(path)
    recipe = validated_recipe(document)
    return Target("recipe", document, recipe, tuple(_path_forms(path) + [recipe["name"]]))


def load_report_target(path: Path, text: str) -> Target:
    """A report as `fttool check` sees it, read by fttool.report's one reader (positions kept for findings)."""
    document = report_document(path, text)
    report = document.data
    recipe_path = path.parent / report["recipe"]["path"]
    names = _path_forms(path) + [report["run"]["name"]] + _path_forms(Path(os.path.normpath(recipe_path)))
    _require_readable_evidence(path.parent)
    return Target("report", document, report, tuple(names))


def _require_readable_evidence(run_dir: Path) -> None:
    """RecipeInvalid when report.sha256 or signoff.json beside the report is garbage: invalid input, not a finding."""
    from fttool.governance.evidence import EvidenceError, read_digests, read_signoffs

    try:
        if (run_dir / DIGESTS).exists():
            read_digests(run_dir)
        read_signoffs(run_dir)
    except EvidenceError as exc:
        raise RecipeInvalid([RecipeError(str(exc.file or run_dir), exc.line, 1, str(exc).split(": ", 1)[-1])]) from None


def require_allowed_signers(path: Path) -> None:
    """RecipeInvalid when the allowed signers file (fttool check --allowed-signers) cannot be read: invalid input."""
    from fttool.governance.signing import SignatureError, read_allowed_signers

    try:
        read_allowed_signers(path)
    except SignatureError as exc:
        reason = str(exc).removeprefix(f"{path}:{exc.line}: " if exc.line else f"{path}: ")
        raise RecipeInvalid([RecipeError(str(path), exc.line, 1 if exc.line else 0, reason)]) from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number; a report holds finite numbers only")


def load_target(path: str | Path, allowed_signers: Path | None = None) -> Target:
    """A recipe or a report: a run directory or a .json file holding an fttool report is a report, whose sign-offs
    are checked against `allowed_signers` (git's allowed_signers file) when given.

    Raises RecipeInvalid, with FILE:LINE:COL errors, when the file cannot be read or is not valid.
    """
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_FILE
    if path.suffix != ".json":
        return load_recipe_target(path)
    if path.exists() and not path.is_file():  # reading a FIFO would wait for a writer forever
        raise RecipeInvalid([RecipeError(str(path), 0, 0, "not a regular file; name a report.json or a recipe")])
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text, parse_constant=_reject_constant)
    except FileNotFoundError:
        raise RecipeInvalid([RecipeError(str(path), 0, 0, "file not found; check the path")]) from None
    except OSError as exc:  # a file this user may not read
        raise RecipeInvalid([RecipeError(str(path), 0, 0, f"file cannot be read ({exc.strerror})")]) from None
    except UnicodeDecodeError as exc:
        message = f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
        raise RecipeInvalid([RecipeError(str(path), 1, 1, message)]) from None
    except json.JSONDecodeError as exc:
        raise RecipeInvalid([RecipeError(str(path), exc.lineno, exc.colno, f"not valid JSON: {exc.msg}")]) from None
    except ValueError as exc:  # NaN or Infinity, an integer too long to read
        raise RecipeInvalid([RecipeError(str(path), 1, 1, f"not valid JSON: {exc}")]) from None
    except RecursionError:  # json's decoder recurses once per nested array or object
        raise RecipeInvalid([RecipeError(str(path), 1, 1, "nested too deep to be a report or a recipe")]) from None
    is_report = isinstance(data, dict) and "schema_version" in data and "lineage" in data
    # A recipe may be written in JSON, which is YAML too.
    if not is_report:
        return load_recipe_target(path)
    return replace(load_report_target(path, text), allowed_signers=allowed_signers)
