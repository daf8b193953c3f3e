"""The audit report: report.json (validated against schemas/report.schema.json), HTML, Markdown and MODEL_CARD.md.

build assembles report.json from a run; reader is its one reader; format, charts, html and markdown
render it for people; model_card writes MODEL_CARD.md; verdict sums it up as pass, warn or fail.
"""
from __future__ import annotations

import json
from pathlib import Path

from fttool.governance.evidence import require_report_unchanged, write_digests
from fttool.report.build import build_report
from fttool.report.model_card import write_model_card
from fttool.report.reader import REPORT_FILE, ReportInvalid, read_report, validate_report
from fttool.report.render import write_renderings

__all__ = ["ReportInvalid", "read_report", "rerender", "validate_report", "write_report", "write_report_files"]


def write_report(plan, state, records, lineage, run_dir: Path) -> dict:
    report = build_report(plan, state, records, lineage, run_dir)
    write_report_files(report, run_dir)
    return report


def write_report_files(report: dict, run_dir: Path) -> None:
    """Validate `report`, write report.json, its renderings and MODEL_CARD.md, then their digests."""
    validate_report(report, run_dir / REPORT_FILE)
    text = json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False)  # strict JSON: no NaN, no Infinity
    (run_dir / REPORT_FILE).write_text(text + "\n", encoding="utf-8")
    write_renderings(report, run_dir, report["recipe"]["resolved"]["report"]["formats"])
    write_model_card(report, run_dir)
    write_digests(run_dir)


def rerender(run_dir: Path) -> list[Path]:
    """`fttool report`: render HTML, Markdown and MODEL_CARD.md again from an existing report.json.

    Refused (EvidenceError) when report.json is not the one report.sha256 recorded: new digests must not bless an edit.
    """
    report = read_report(run_dir)
    require_report_unchanged(run_dir)
    written = write_renderings(report, run_dir, ["html", "md"])
    written.append(write_model_card(report, run_dir))
    write_digests(run_dir)
    return written
