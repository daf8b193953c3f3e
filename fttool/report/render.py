"""The renderings of report.json for people: which file each format writes, and the function that writes it."""
from __future__ import annotations

from pathlib import Path

from fttool.governance.approvals import given_signoffs
from fttool.pipeline.layout import REPORT_HTML, REPORT_MD
from fttool.report.html import render_html
from fttool.report.markdown import render_markdown

RENDERINGS = {"html": (REPORT_HTML, render_html), "md": (REPORT_MD, render_markdown)}


def write_renderings(report: dict, run_dir: Path, formats) -> list[Path]:
    """Write the HTML and Markdown renderings that `formats` asks for, with the sign-offs given so far.

    report.json must already be written: a sign-off approves its digest.
    """
    signoffs = given_signoffs(run_dir)
    written = []
    for fmt in formats:
        if fmt in RENDERINGS:
            filename, render = RENDERINGS[fmt]
            (run_dir / filename).write_text(render(report, signoffs), encoding="utf-8")
            written.append(run_dir / filename)
    return written
