"""The renderings of report.json for people: which file each format writes, and the function that writes it."""
from __future__ import annotations

from pathlib import Path

from fttool.report.html import render_html
from fttool.report.markdown import render_markdown

RENDERINGS = {"html": ("report.html", render_html), "md": ("report.md", render_markdown)}


def write_renderings(report: dict, run_dir: Path, formats) -> list[Path]:
    """Write the HTML and Markdown renderings that `formats` asks for; report.json is always kept."""
    written = []
    for fmt in formats:
        if fmt in RENDERINGS:
            filename, render = RENDERINGS[fmt]
            (run_dir / filename).write_text(render(report), encoding="utf-8")
            written.append(run_dir / filename)
    return written
