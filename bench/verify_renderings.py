"""What rendering report.html, report.md and MODEL_CARD.md again costs `fttool verify`, on an existing run.

verify renders the three renderings from report.json and signoff.json and compares them with the files
(fttool.governance.evidence._check_renderings). This times verify on RUN_DIR with that check and with it
replaced by one that finds nothing, alternated in one process, and prints the medians.

    python bench/verify_renderings.py RUN_DIR [--rounds 6]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from fttool.governance import evidence


def timed_verify(run_dir: Path) -> float:
    started = time.perf_counter()
    problems = evidence.verify(run_dir)
    elapsed = time.perf_counter() - started
    if problems:
        raise SystemExit(f"{run_dir} does not verify: {problems[0]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    rendering_check = evidence._check_renderings
    sides = {"with the rendering check": rendering_check, "without": lambda *arguments: []}
    times: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(args.rounds):
        for side, check in sides.items():
            evidence._check_renderings = check
            times[side].append(timed_verify(args.run_dir))
    evidence._check_renderings = rendering_check
    size = sum((args.run_dir / name).stat().st_size for name in ("report.html", "report.md", "MODEL_CARD.md")
               if (args.run_dir / name).is_file())
    print(f"verify {args.run_dir} (renderings {size} bytes), median of {args.rounds} alternated rounds:")
    for side, values in times.items():
        print(f"  {side}: {statistics.median(values) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
