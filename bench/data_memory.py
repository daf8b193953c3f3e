"""Peak memory of the data stages (ingest, dedup, split) as the number of records grows.

For each N this generates a synthetic alpaca JSONL file of N lines in a temporary directory, writes a
data-only recipe (ingest, dedup with exact and near on, split with its leakage check), and runs
`python -m fttool run` on it in a fresh subprocess. The peak RSS of that subprocess is read from
os.wait4's rusage (ru_maxrss: the child's own high-water mark, interpreter and imports included), so
the generator running in this process never counts.

The figure checked is peak RSS at the largest N divided by peak RSS at the smallest; the script exits 1
when it exceeds --max-ratio (default 1.3), 2 when a run fails.

    python bench/data_memory.py                    # N = 50000, 200000; exact + near dedup
    python bench/data_memory.py --sizes 50000 100000 200000 --config both

Synthetic data: each record has 40-120 words (instruction, optional input, output) drawn with a Zipf-like
skew from a vocabulary of 30k generated words, so 3-gram shingles are varied and MinHash LSH has real
work. About 1% of lines repeat an earlier record exactly (with case and whitespace changed), about 1%
are near duplicates of an earlier record (one or two words replaced), and about 0.5% are malformed
(broken JSON or a missing field). The data depend only on --seed and N.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou", "ea")]
VOCABULARY_SIZE = 30_000
EXACT_SHARE, NEAR_SHARE, MALFORMED_SHARE = 0.01, 0.01, 0.005
CONFIGS = {"near": {"exact": True, "near": True}, "exact": {"exact": True, "near": False}}


def vocabulary(rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < VOCABULARY_SIZE:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def sentence(rng: random.Random, words: list[str], cumulative: list[float], n: int) -> str:
    return " ".join(rng.choices(words, cum_weights=cumulative, k=n)).capitalize() + "."


def generate(path: Path, n: int, seed: int) -> dict[str, int]:
    """Write n lines of alpaca JSONL to path; returns how many of each kind were planted."""
    rng = random.Random(seed)
    words = vocabulary(rng)
    cumulative, total = [], 0.0
    for rank in range(1, len(words) + 1):  # Zipf-like, exponent 1: common words recur, rare ones are rare
        total += 1.0 / rank
        cumulative.append(total)
    recent: list[dict] = []  # a bounded pool of earlier records to duplicate, so the generator stays small too
    planted = {"unique": 0, "exact": 0, "near": 0, "malformed": 0}
    with open(path, "w", encoding="utf-8") as out:
        for _ in range(n):
            roll = rng.random()
            if roll < MALFORMED_SHARE:
                planted["malformed"] += 1
                if rng.random() < 0.5:
                    line = '{"instruction": "' + sentence(rng, words, cumulative, 8)  # cut off mid-string
                else:
                    line = json.dumps({"instruction": sentence(rng, words, cumulative, 8)})  # no output
            elif recent and roll < MALFORMED_SHARE + EXACT_SHARE:
                planted["exact"] += 1
                original = rng.choice(recent)
                copy = {key: "  ".join(value.upper().split()) if key != "region" else value
                        for key, value in original.items()}
                line = json.dumps(copy)
            elif recent and roll < MALFORMED_SHARE + EXACT_SHARE + NEAR_SHARE:
                planted["near"] += 1
                copy = dict(rng.choice(recent))
                tokens = copy["output"].split()
                for _ in range(rng.randint(1, 2)):
                    tokens[rng.randrange(len(tokens))] = rng.choice(words)
                copy["output"] = " ".join(tokens)
                line = json.dumps(copy)
            else:
                planted["unique"] += 1
                total_words = rng.randint(40, 120)
                instruction = rng.randint(6, 16)
                input_words = rng.choice((0, 0, rng.randint(5, 20)))
                output_words = max(total_words - instruction - input_words, 10)
                record = {"instruction": sentence(rng, words, cumulative, instruction),
                          "input": sentence(rng, words, cumulative, input_words) if input_words else "",
                          "output": " ".join(sentence(rng, words, cumulative, k)
                                             for k in _chunks(rng, output_words)),
                          "region": rng.choice(("north", "south", "east", "west"))}
                if len(recent) < 2000:
                    recent.append(record)
                else:
                    recent[rng.randrange(len(recent))] = record
                line = json.dumps(record)
            out.write(line + "\n")
    return planted


def _chunks(rng: random.Random, n: int) -> list[int]:
    sizes = []
    while n > 0:
        size = min(n, rng.randint(6, 18))
        sizes.append(size)
        n -= size
    return sizes


def write_recipe(directory: Path, data_file: Path, config: str) -> Path:
    dedup = CONFIGS[config]
    recipe = directory / "recipe.yaml"
    recipe.write_text(
        "name: data-memory-bench\n"
        "data:\n"
        f"  sources:\n    - {{path: {data_file.name}, format: alpaca, tag: synthetic}}\n"
        f"  dedup: {{exact: {str(dedup['exact']).lower()}, near: {str(dedup['near']).lower()}, near_threshold: 0.8}}\n"
        "  split: {train: 0.7, validation: 0.15, test: 0.15, seed: 42, on_leak: move, leak_threshold: 0.8}\n")
    return recipe


def _scratch_bytes(work: Path) -> int:
    """Bytes in the stages' scratch directories (where dedup and split keep their on-disk state)."""
    total = 0
    for scratch in work.glob("*/scratch*"):  # work/<stage>/scratch-<fingerprint>
        for folder, _, files in os.walk(scratch):
            for name in files:
                try:
                    total += os.stat(os.path.join(folder, name)).st_size
                except FileNotFoundError:  # deleted while we looked
                    pass
    return total


def measure(recipe: Path, run_dir: Path) -> tuple[float, float, float, dict]:
    """(peak RSS MiB, wall seconds, peak scratch disk MiB, report.json) of `fttool run` in a fresh child process."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "fttool", "run", str(recipe), "--output-dir", str(run_dir)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    disk = [0]
    done = threading.Event()

    def watch_disk() -> None:  # sampled twice a second; the child's memory is read exactly, from wait4
        while not done.wait(0.5):
            disk[0] = max(disk[0], _scratch_bytes(run_dir / "work"))

    watcher = threading.Thread(target=watch_disk, daemon=True)
    watcher.start()
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    watcher.join()
    child.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait for it again
    if child.returncode != 0:
        sys.stderr.write(output.decode("utf-8", "replace"))
        raise SystemExit(f"fttool run failed with exit code {child.returncode}")
    report = json.loads((run_dir / "report.json").read_text())
    return usage.ru_maxrss / 1024, wall, disk[0] / 2**20, report  # ru_maxrss is in KiB on Linux


def run_one(n: int, config: str, seed: int, keep: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"fttool-mem-{n}-") as tmp:
        directory = keep / f"{config}-{n}" if keep else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        data_file = directory / "data.jsonl"
        planted = generate(data_file, n, seed)
        recipe = write_recipe(directory, data_file, config)
        rss, wall, disk, report = measure(recipe, directory / "run")
    data = report["data"]
    return {"n": n, "config": config, "rss_mib": rss, "wall_s": wall, "scratch_disk_mib": disk, "planted": planted,
            "kept": data["counts"]["kept"], "splits": data["splits"],
            "dedup_removed": {rule: entry["removed"] for rule, entry in data["dedup"]["rules"].items()},
            "leakage": data["split"]["leakage"],
            "stage_s": {stage["name"]: stage["seconds"] for stage in report["stages"]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--config", choices=["near", "exact", "both"], default="near",
                        help="near: exact + near dedup (default); exact: exact dedup only; both: each in turn")
    parser.add_argument("--max-ratio", type=float, default=1.3)
    parser.add_argument("--base", type=int, default=50_000,
                        help="the N that ratios are taken to (default 50000; the smallest N when not measured)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="keep the data and run directories under this directory")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes)
    configs = ["near", "exact"] if args.config == "both" else [args.config]

    base_n = args.base if args.base in sizes else sizes[0]
    results, failed = [], False
    for config in configs:
        rows = []
        for n in sizes:
            print(f"[{config}] N={n} ...", file=sys.stderr, flush=True)
            rows.append(run_one(n, config, args.seed, args.keep))
        base = next(row["rss_mib"] for row in rows if row["n"] == base_n)
        dedup = "exact + near" if CONFIGS[config]["near"] else "exact only"
        print(f"\ndedup: {dedup}; split with its leakage check (exact key + MinHash)")
        print(f"{'N':>8} {'peak RSS MiB':>13} {'ratio to ' + str(base_n):>15} {'wall s':>7}"
              f"  {'ingest/dedup/split s':>20} {'scratch disk MiB':>16}  kept  removed")
        for row in rows:
            row["ratio"] = row["rss_mib"] / base
            removed = ", ".join(f"{k} {v}" for k, v in row["dedup_removed"].items())
            stages = "/".join(f"{row['stage_s'][name]:.1f}" for name in ("ingest", "dedup", "split"))
            print(f"{row['n']:>8} {row['rss_mib']:>13.1f} {row['ratio']:>15.2f} {row['wall_s']:>7.1f}"
                  f"  {stages:>20} {row['scratch_disk_mib']:>16.0f}  {row['kept']}  {removed};"
                  f" moved by leak check {row['leakage']['moved']}")
        worst = rows[-1]["ratio"]
        verdict = "PASS" if worst <= args.max_ratio else "FAIL"
        print(f"{verdict}: peak RSS at N={sizes[-1]} is {worst:.2f}x that at N={base_n} (limit {args.max_ratio}x)")
        failed |= worst > args.max_ratio
        results.extend(rows)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
