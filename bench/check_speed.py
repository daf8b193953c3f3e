"""Start-up time of `fttool check` against the bare imports it cannot avoid.

`fttool check` runs in pre-commit hooks and on every pull request, so it must stay close to the cost
of starting Python with its three dependencies. This times, in fresh processes and alternating so that
drift in machine load hits both alike:

    baseline:  python -c "import yaml, jsonschema, click"
    check:     python -m fttool check recipes/quickstart.yaml --policy policies/regulated.yaml

After one untimed warm-up run of each, it takes --runs wall-clock timings of each (default 15), compares
the medians, writes the section "## fttool check: start-up time" of docs/benchmarks.md (replacing only that
section) and exits 1 when the ratio is above --max-ratio (default 2.0), 2 when the check itself fails.

    python bench/check_speed.py
    python bench/check_speed.py --runs 30 --no-write
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from benchmarks_doc import BENCHMARKS, cpu_model, write_section  # noqa: E402 (bench/ is on sys.path when run as a script)

SECTION = "## fttool check: start-up time"
BASELINE = ["-c", "import yaml, jsonschema, click"]
CHECK = ["-m", "fttool", "check", "recipes/quickstart.yaml", "--policy", "policies/regulated.yaml"]


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        print(f"{shlex.join(['python', *args])} exited {result.returncode}:\n{result.stdout}{result.stderr}",
              file=sys.stderr)
        raise SystemExit(2)
    return elapsed


def section_text(baseline: list[float], check: list[float], ratio: float, max_ratio: float) -> str:
    def row(label: str, args: list[str], times: list[float]) -> str:
        return (f"| {label} | `{shlex.join(['python', *args])}` | {statistics.median(times) * 1000:.0f} ms "
                f"| {min(times) * 1000:.0f} ms | {max(times) * 1000:.0f} ms |")

    return "\n".join([
        SECTION,
        "",
        f"Measured by `python bench/check_speed.py` on {dt.date.today().isoformat()}: {len(check)} runs of each "
        "command in fresh processes, alternating, after one untimed warm-up run of each; wall-clock time.",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}.",
        "",
        "| | command | median | min | max |",
        "|---|---|---|---|---|",
        row("baseline", BASELINE, baseline),
        row("check", CHECK, check),
        "",
        f"`fttool check` takes **{ratio:.2f}x** the baseline's median (the limit is {max_ratio:g}x). It loads the "
        "policy and the recipe (safe YAML with positions), validates both against their JSON Schemas and applies "
        "the rules; training, PII and fairness libraries are never imported.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command (at least 10)")
    parser.add_argument("--max-ratio", type=float, default=2.0)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args()
    if args.runs < 10:
        parser.error("--runs must be at least 10")

    for command in (BASELINE, CHECK):
        timed(command)  # warm-up: file system caches and .pyc files
    baseline, check = [], []
    for run in range(args.runs):
        # Alternate which goes first, so neither always follows the other.
        pair = ((BASELINE, baseline), (CHECK, check)) if run % 2 == 0 else ((CHECK, check), (BASELINE, baseline))
        for command, times in pair:
            times.append(timed(command))

    ratio = statistics.median(check) / statistics.median(baseline)
    text = section_text(baseline, check, ratio, args.max_ratio)
    print(text)
    if not args.no_write:
        write_section(text)
        print(f"written to {BENCHMARKS.relative_to(ROOT)}")
    if ratio > args.max_ratio:
        print(f"fttool check is {ratio:.2f}x the baseline, above {args.max_ratio:g}x", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
