"""How every rendering of report.json writes a value: numbers, shares, signed changes, digests and counts.

The HTML page, the Markdown summary and MODEL_CARD.md all format through these functions, so one
figure reads the same in each: integers with thousands separators, floats to four significant
digits (one decimal with separators from 1,000 up), a missing value as an em dash unless the caller
names its own wording.
"""
from __future__ import annotations

import math
from html import escape
from typing import TypeGuard

MISSING = "—"
SHORT_DIGEST = 12


def get(value, *keys):
    """Walk nested mappings; None as soon as a level is missing, so null sections need no checks."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def is_number(value) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt(value, missing: str = MISSING) -> str:
    if value is None or value == "":
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(item, missing) for item in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{key}={fmt(item, missing)}" for key, item in value.items()) or "none"
    return str(value)


def fmt_percent(share) -> str:
    return f"{share * 100:.3g}%" if is_number(share) else MISSING


def fmt_signed(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:+,}"
    return f"{value:+.4g}" if is_number(value) else MISSING


def short_digest(digest) -> str:
    """The first characters of a sha256, for screens; print shows the full value beside it."""
    return digest[:SHORT_DIGEST] if isinstance(digest, str) else MISSING


def counts_text(counts) -> str:
    """'A 3, B 1' from a {key: n} mapping, in the report's order; an empty mapping means none."""
    if not isinstance(counts, dict):
        return MISSING
    if not counts:
        return "none"
    return ", ".join(f"{key} {fmt(value)}" for key, value in counts.items())


def launch_text(launch: dict) -> str:
    """How the train stage launched its processes: '2 on 2 machines, 1 each (ddp, accelerate launch)'."""
    machines = launch.get("machines", 1)
    spread = (f" on {fmt(machines)} machines, {fmt(launch.get('processes_per_machine'))} each"
              if is_number(machines) and machines > 1 else "")
    return f"{fmt(launch.get('num_processes'))}{spread} ({fmt(launch.get('strategy'))}, accelerate launch)"


def processes_text(training: dict) -> str:
    """How many processes trained and where, from the training section's launch: 'one (the fttool process, not
    launched)', or each machine's ranks and devices as the processes reported them ('machine 0: ranks 0, 1 (cpu);
    machine 1: ranks 2, 3 (cpu)'), or the count alone for a report from before ranks were recorded."""
    launch = training.get("launch")
    if not isinstance(launch, dict):
        return "one (the fttool process, not launched)"
    ranks = launch.get("ranks")
    if not isinstance(ranks, list) or not ranks:
        return f"{fmt(launch.get('num_processes'))} (accelerate launch)"
    by_machine: dict = {}
    for process in ranks:
        by_machine.setdefault(process.get("machine"), []).append(process)
    return "; ".join(f"machine {fmt(machine)}: rank{'s' if len(processes) > 1 else ''} "
                     f"{', '.join(fmt(process.get('rank')) for process in processes)} "
                     f"({', '.join(sorted({str(process.get('device')) for process in processes}))})"
                     for machine, processes in by_machine.items())


def html_value(value) -> str:
    """A formatted value, escaped for HTML text or attributes."""
    return escape(fmt(value), quote=True)


def md_cell(value) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")
