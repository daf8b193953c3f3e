"""What the benchmarks share to write their sections of docs/benchmarks.md: the section writer and the CPU's name."""
from __future__ import annotations

import platform
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(text: str, path: Path = BENCHMARKS) -> None:
    """Replace the section that `text` heads (its first line, `## ...`), or append it.

    The file is read just before writing, because other benchmarks write their own sections of it.
    """
    heading = text.splitlines()[0].rstrip()
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = current.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        updated = "".join(lines[:start]) + text + ("\n" if end < len(lines) else "") + "".join(lines[end:])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(updated, encoding="utf-8")


def cpu_model() -> str:
    """The CPU's name as the run report gives it, or the machine type."""
    from fttool.report.build import cpu_model as reported_cpu_model

    return reported_cpu_model() or platform.machine()
