"""The audit report: report.json (validated against schemas/report.schema.json), HTML and Markdown."""
from __future__ import annotations

import json
from pathlib import Path

from fttool.governance.evidence import write_digests
from fttool.recipe.schema import load_schema
from fttool.report.build import build_report
from fttool.report.model_card import write_model_card

RENDERERS = {"html": ("report.html", "render_html"), "md": ("report.md", "render_markdown")}


def validate_report(report: dict) -> None:
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(load_schema("report")).iter_errors(report), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(f"{'.'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in errors[:10])
        raise ValueError(f"report.json does not match schemas/report.schema.json: {details}")


def write_renderings(report: dict, run_dir: Path, formats) -> list[Path]:
    """Write the HTML and Markdown renderings that `formats` asks for; report.json is always kept."""
    from fttool.report import render as renderers  # the submodule

    written = []
    for fmt in formats:
        if fmt in RENDERERS:
            filename, function = RENDERERS[fmt]
            (run_dir / filename).write_text(getattr(renderers, function)(report), encoding="utf-8")
            written.append(run_dir / filename)
    return written


def write_report(plan, state, records, lineage, run_dir: Path) -> dict:
    report = build_report(plan, state, records, lineage, run_dir)
    write_report_files(report, run_dir)
    return report


def write_report_files(report: dict, run_dir: Path) -> None:
    """Validate `report`, write report.json, its renderings and MODEL_CARD.md, then their digests."""
    validate_report(report)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_renderings(report, run_dir, report["recipe"]["resolved"]["report"]["formats"])
    write_model_card(report, run_dir)
    write_digests(run_dir)


def rerender(run_dir: Path) -> list[Path]:
    """`fttool report`: render HTML, Markdown and MODEL_CARD.md again from an existing report.json."""
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    validate_report(report)
    written = write_renderings(report, run_dir, ["html", "md"])
    written.append(write_model_card(report, run_dir))
    write_digests(run_dir)
    return written
