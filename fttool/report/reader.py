"""The one reader of report.json: load it, check it against schemas/report.schema.json, say what is wrong.

Every command that reads a finished run's report (render, model card, review, export, verify,
`fttool check`) reads it here. A file that is missing, not UTF-8, not strict JSON or not a valid
report raises `ReportInvalid`, whose errors read `FILE:LINE:COL: problem`, instead of a traceback.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from fttool.pipeline.layout import REPORT_JSON
from fttool.recipe.errors import RecipeError, RecipeInvalid
from fttool.recipe.loader import LoadedDocument, index_positions
from fttool.recipe.schema import load_schema, schema_errors

REPORT_FILE = REPORT_JSON


class ReportInvalid(RecipeInvalid, ValueError):
    """report.json cannot be read or does not match its schema; every problem is in `errors`."""


def report_path(path: Path | str) -> Path:
    """report.json itself, given either the file or the run directory holding it."""
    path = Path(path)
    return path / REPORT_FILE if path.is_dir() else path


def _invalid(path: Path, line: int, column: int, message: str) -> ReportInvalid:
    return ReportInvalid([RecipeError(str(path), line, column, message)])


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _parse(path: Path, text: str) -> dict:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _invalid(path, exc.lineno, exc.colno, f"not valid JSON: {exc.msg}") from None
    except ValueError as exc:  # NaN or Infinity, which Python writes but JSON does not allow
        raise _invalid(path, 1, 1, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not {"schema_version", "run"} <= set(data):
        raise _invalid(path, 1, 1, "not an fttool report (no object with schema_version and run); "
                                   "name the report.json of a finished run")
    return data


def report_document(path: Path | str, text: str | None = None) -> LoadedDocument:
    """report.json (or `text` as if read from `path`) with the position of every key, checked against its schema.

    Raises ReportInvalid naming the file, line and column of each problem.
    """
    path = report_path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise _invalid(path, 0, 0, "file not found; is this a finished run's directory?") from None
        except UnicodeDecodeError as exc:
            raise _invalid(path, 1, 1, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    document = LoadedDocument(path=path, data=_parse(path, text))
    try:
        # JSON is YAML as far as node positions go; report.json written by fttool has no duplicate keys.
        index_positions(document, yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        pass  # without positions, errors point at line 1
    errors = schema_errors(document, load_schema("report"))
    if errors:
        raise ReportInvalid(errors)
    return document


def read_report(path: Path | str) -> dict:
    """The report of a run directory (or a report.json file), validated; raises ReportInvalid."""
    return report_document(path).data


def validate_report(report: dict, path: Path | str = REPORT_FILE) -> None:
    """Raise ReportInvalid unless `report` (built in memory, not yet written) matches schemas/report.schema.json."""
    errors = schema_errors(LoadedDocument(path=Path(path), data=report), load_schema("report"))
    if errors:
        raise ReportInvalid(errors)
