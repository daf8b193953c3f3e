"""Dedup (exact + near) then split: fttool against a plain in-memory datasketch script, alternated in one run.

The benchmark generates N alpaca records in fttool's internal shape (as ingest writes them): 80% distinct, 10%
exact copies of an earlier record (case and spacing changed) and 10% near copies (one word of the output
replaced). Each round runs both sides in fresh processes on the same file, alternating which goes first:

- plain: reads every record into memory; an exact key in a Python set; datasketch's MinHashLSH with the
  bands fttool uses for the threshold, each candidate confirmed by estimated Jaccard (`MinHash.jaccard`);
  then sorts the kept ids, shuffles them with the seed, cuts them 70/15/15 and writes the three splits.
- fttool: the dedup and split stages as a run compiles them (`compile_recipe` on a data-only recipe,
  `Stage.run` on a StageContext), with their scratch state on disk.

Whole-process wall time, and peak memory of the process tree: RSS summed over the child and its worker
processes, sampled every 50 ms, or the child's own high-water mark (os.wait4) when that is higher. Both sides
must keep exactly the same records in the same splits (the script exits 2 otherwise); it exits 1 when fttool's
median time is over --max-ratio (default 1.2) times the plain script's, or its peak memory over --max-rss-mib.

    python bench/dedup_speed.py                          # N = 100000, 3 rounds
    python bench/dedup_speed.py --records 20000 --profile profile.txt
    python bench/dedup_speed.py --records 1000000 --rounds 1 --only fttool
    python bench/dedup_speed.py --rounds 1 --only fttool --engine ray   # Ray's processes count in the tree
"""
from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

THRESHOLD = 0.8  # dedup's near_threshold and split's leak_threshold
RATIOS = {"train": 0.7, "validation": 0.15, "test": 0.15}
SEED = 42
EXACT_SHARE, NEAR_SHARE = 0.1, 0.1
SPLIT_NAMES = ("train", "validation", "test")


def generate(path: Path, n: int, seed: int = 0) -> dict[str, int]:
    """n records in fttool's internal alpaca shape; how many of each kind were planted."""
    from data_memory import _chunks, sentence, vocabulary

    from fttool.data.normalise import record_id

    rng = random.Random(seed)
    words = vocabulary(rng)
    cumulative, total = [], 0.0
    for rank in range(1, len(words) + 1):
        total += 1.0 / rank
        cumulative.append(total)
    recent: list[dict] = []
    planted = {"distinct": 0, "exact": 0, "near": 0}
    with open(path, "w", encoding="utf-8") as out:
        for _ in range(n):
            roll = rng.random()
            if recent and roll < EXACT_SHARE:
                planted["exact"] += 1
                fields = {key: "  ".join(value.upper().split()) for key, value in rng.choice(recent).items()}
            elif recent and roll < EXACT_SHARE + NEAR_SHARE:
                planted["near"] += 1
                fields = dict(rng.choice(recent))
                tokens = fields["output"].split()
                tokens[rng.randrange(len(tokens))] = rng.choice(words)
                fields["output"] = " ".join(tokens)
            else:
                planted["distinct"] += 1
                instruction, input_words = rng.randint(6, 16), rng.choice((0, 0, rng.randint(5, 20)))
                output_words = max(rng.randint(40, 120) - instruction - input_words, 10)
                fields = {"instruction": sentence(rng, words, cumulative, instruction),
                          "input": sentence(rng, words, cumulative, input_words) if input_words else "",
                          "output": " ".join(sentence(rng, words, cumulative, k) for k in _chunks(rng, output_words))}
                if len(recent) < 2000:
                    recent.append(fields)
                else:
                    recent[rng.randrange(len(recent))] = fields
            record = {"id": record_id(fields), "source": "bench", "format": "alpaca", **fields,
                      "meta": {"region": rng.choice(("north", "south", "east", "west"))}}
            out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    return planted


# -- the plain script ----------------------------------------------------------------------------------------

def plain(records_path: Path, out_dir: Path) -> None:
    """Everything in memory: the baseline fttool is measured against."""
    import re

    from datasketch import MinHash, MinHashLSH

    whitespace = re.compile(r"\s+")
    records = [json.loads(line) for line in open(records_path, encoding="utf-8")]
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=128, weights=(0.1, 0.9))
    signatures: dict[int, MinHash] = {}
    seen: set[bytes] = set()
    kept = []
    for i, record in enumerate(records):
        texts = [(name, record[name]) for name in ("instruction", "input", "output") if record[name]]
        key = hashlib.sha256(json.dumps(
            [[name, whitespace.sub(" ", text.casefold()).strip()] for name, text in texts]).encode()).digest()
        if key in seen:
            continue
        seen.add(key)
        words = "\n".join(text for _, text in texts).casefold().split()
        minhash = MinHash(num_perm=128)
        minhash.update_batch([" ".join(words[j:j + 3]).encode() for j in range(max(len(words) - 2, 1))])
        if any(minhash.jaccard(signatures[other]) >= THRESHOLD for other in lsh.query(minhash)):
            continue
        lsh.insert(i, minhash)
        signatures[i] = minhash
        kept.append(record)
    order = sorted({record["id"] for record in kept})
    random.Random(SEED).shuffle(order)
    validation = round(len(order) * RATIOS["validation"])
    test = min(round(len(order) * RATIOS["test"]), len(order) - validation)
    train = len(order) - validation - test
    split_of = {record_id: "train" if position < train else "validation" if position < train + validation else "test"
                for position, record_id in enumerate(order)}
    files = {name: open(out_dir / f"{name}.jsonl", "w", encoding="utf-8") for name in SPLIT_NAMES}
    for record in kept:
        files[split_of[record["id"]]].write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    for handle in files.values():
        handle.close()


# -- fttool ----------------------------------------------------------------------------------------------------

def fttool_stages(records_path: Path, out_dir: Path, workers: int | None, engine: str = "local") -> None:
    """fttool's dedup and split stages as a run compiles and calls them, on data.engine `engine` (ray: a local
    cluster of the cores available, started by the dedup stage and stopped after it)."""
    from fttool.pipeline.stage import StageContext
    from fttool.recipe import compile_recipe
    from fttool.stages import stage_class

    data = {"sources": [{"path": records_path.name, "format": "alpaca"}],
            "dedup": {"exact": True, "near": True, "near_threshold": THRESHOLD},
            "split": {**RATIOS, "seed": SEED, "on_leak": "move", "leak_threshold": THRESHOLD}}
    if workers is not None:
        data["workers"] = workers
    data["engine"] = engine
    recipe = records_path.parent / f"recipe-{out_dir.name}.yaml"  # beside the records it names
    recipe.write_text(json.dumps({"name": "dedup-speed", "data": data}))
    plan = compile_recipe(recipe)
    wired = {"records": records_path}
    for name in ("dedup", "split"):
        spec = next(stage for stage in plan.stages if stage.name == name)
        outputs = {logical: out_dir / (f"{name}.jsonl" if logical == "records" else f"{logical}.jsonl")
                   for logical in spec.outputs}
        work = out_dir / f"work-{name}"
        work.mkdir()
        stage_class(name)().run(StageContext(params=spec.params, inputs=dict(wired), outputs=outputs,
                                             recipe_dir=out_dir, work_dir=work))
        wired = {"records": outputs.get("records")}


# -- measuring -------------------------------------------------------------------------------------------------

def _tree_rss(pid: int) -> int:
    import psutil

    try:
        parent = psutil.Process(pid)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def measure(side: str, records_path: Path, out_dir: Path, workers: int | None, engine: str = "local") -> dict:
    """Wall seconds and peak memory (MiB) of one side in a fresh process."""
    out_dir.mkdir(parents=True)
    command = [sys.executable, __file__, "--child", side, str(records_path), str(out_dir), "--engine", engine]
    if workers is not None:
        command += ["--workers", str(workers)]
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT)
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _tree_rss(child.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{side} failed with exit code {child.returncode}")
    return {"side": side, "wall_s": wall, "peak_mib": max(peak[0] / 2**20, usage.ru_maxrss / 1024)}


def splits_of(out_dir: Path) -> dict[str, list[str]]:
    return {name: [json.loads(line)["id"] for line in open(out_dir / f"{name}.jsonl", encoding="utf-8")]
            for name in SPLIT_NAMES}


def profile(records_path: Path, out: Path, workers: int | None) -> None:
    """cProfile of fttool's two stages in this process, sorted by cumulative and by own time."""
    with tempfile.TemporaryDirectory(prefix="fttool-profile-") as tmp:
        profiler = cProfile.Profile()
        profiler.runcall(fttool_stages, records_path, Path(tmp), workers)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(30)
    out.write_text(text.getvalue())
    print(f"profile written to {out}")


def compare(args: argparse.Namespace, directory: Path, records_path: Path) -> int:
    sides = [args.only] if args.only else ["fttool", "plain"]
    rows: list[dict] = []
    for round_number in range(args.rounds):
        order = sides if round_number % 2 == 0 else sides[::-1]
        for side in order:
            out_dir = directory / f"{side}-{round_number}"
            row = measure(side, records_path, out_dir, args.workers if side == "fttool" else None, args.engine)
            row["splits"] = splits_of(out_dir)
            rows.append(row)
            print(f"round {round_number + 1} {side:>6}: {row['wall_s']:6.1f} s, peak {row['peak_mib']:6.0f} MiB, "
                  f"kept {sum(len(ids) for ids in row['splits'].values())}", flush=True)
    medians = {side: statistics.median(r["wall_s"] for r in rows if r["side"] == side) for side in sides}
    peaks = {side: max(r["peak_mib"] for r in rows if r["side"] == side) for side in sides}
    for side in sides:
        print(f"{side:>6}: median {medians[side]:.1f} s, peak {peaks[side]:.0f} MiB")
    results = {"records": args.records, "rounds": args.rounds, "workers": args.workers, "engine": args.engine,
               "medians_s": medians,
               "peaks_mib": peaks, "runs": [{k: v for k, v in r.items() if k != "splits"} for r in rows],
               "kept": sum(len(ids) for ids in rows[0]["splits"].values())}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if len({json.dumps(r["splits"]) for r in rows}) != 1:
        print("FAIL: the two sides (or two rounds) kept different records or splits")
        return 2
    if args.only:
        return 0
    ratio = medians["fttool"] / medians["plain"]
    results["ratio"] = ratio
    print(f"fttool / plain = {ratio:.2f}x (limit {args.max_ratio}x); fttool peak {peaks['fttool']:.0f} MiB "
          f"(limit {args.max_rss_mib}); same records and splits on both sides")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if ratio > args.max_ratio or peaks["fttool"] > args.max_rss_mib else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, help="data.workers for fttool (default: the recipe default)")
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="data.engine for fttool (ray: a local cluster of the cores available)")
    parser.add_argument("--only", choices=["fttool", "plain"], help="run one side only")
    parser.add_argument("--max-ratio", type=float, default=1.2)
    parser.add_argument("--max-rss-mib", type=float, default=300)
    parser.add_argument("--profile", type=Path, help="profile fttool in this process instead, writing the stats here")
    parser.add_argument("--keep", type=Path, help="generate into and keep this directory")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "RECORDS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, records_path, out_dir = args.child[0], Path(args.child[1]), Path(args.child[2])
        if side == "plain":
            plain(records_path, out_dir)
        else:
            fttool_stages(records_path, out_dir, args.workers, args.engine)
        return 0
    with tempfile.TemporaryDirectory(prefix="fttool-dedup-speed-") as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        records_path = directory / "records.jsonl"
        started = time.perf_counter()
        planted = generate(records_path, args.records)
        print(f"generated {args.records} records in {time.perf_counter() - started:.0f} s: {planted}", flush=True)
        if args.profile:
            profile(records_path, args.profile, args.workers)
            return 0
        return compare(args, directory, records_path)


if __name__ == "__main__":
    sys.exit(main())
