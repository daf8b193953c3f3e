"""Whole-process time of the PII stage on the local engine against the ray engine, on the first N GSM8K test records.

Each run is a fresh `python bench/pii_engine_speed.py --child ENGINE ...` process that runs the PII stage (schema
defaults) on the records and prints a digest of what it wrote (the three splits, pii/findings.jsonl, the summary):
the local engine with pii.workers W, or the ray engine with an empty data.ray.address, so the stage starts a local
Ray cluster of C CPUs (C actors) and stops it, as `fttool run` would. Engines alternate (local, ray, ray, local,
...); every run must write the same digest (exit 2 otherwise). The load average is printed before each run.

    python bench/pii_engine_speed.py --records 1000 --workers 2 --num-cpus 2 --rounds 2
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GSM8K_TEST = Path(__file__).resolve().parents[2] / "shared/data/external/gsm8k/test.jsonl"


def write_splits(records: int, directory: Path) -> None:
    """The first `records` GSM8K test records as prepared alpaca records, every tenth in validation or test."""
    with open(GSM8K_TEST, encoding="utf-8") as source:
        rows = [json.loads(line) for _, line in zip(range(records), source)]
    splits: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for index, row in enumerate(rows):
        split = "validation" if index % 10 == 8 else "test" if index % 10 == 9 else "train"
        splits[split].append(json.dumps({"id": f"gsm8k-{index}", "source": "gsm8k", "format": "alpaca",
                                         "instruction": row["question"], "input": "", "output": row["answer"],
                                         "meta": {}}, ensure_ascii=False))
    directory.mkdir(parents=True, exist_ok=True)
    for split, lines in splits.items():
        (directory / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def child(engine: str, workers: int, num_cpus: int, inputs: Path, out: Path) -> str:
    """Run the PII stage on the engine; the sha256 over its outputs and summary."""
    from fttool.pii.settings import PiiParams, resolved_pii
    from fttool.pipeline.params import build
    from fttool.pipeline.stage import StageContext
    from fttool.recipe.schema import apply_defaults, load_schema
    from fttool.stages import stage_class

    section = apply_defaults({"workers": workers}, load_schema()["properties"]["pii"])
    params = build(PiiParams, resolved_pii(section, {"engine": engine, "ray": {"address": "", "num_cpus": num_cpus}}),
                   "pii")
    cls = stage_class("pii")
    outputs = {**{split: out / f"{split}.jsonl" for split in cls.writes},
               **{name: out / rel for name, rel in cls.artifacts.items()}}
    for path in outputs.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    (out / "scratch").mkdir(exist_ok=True)
    ctx = StageContext(params=params, inputs={split: inputs / f"{split}.jsonl" for split in cls.reads},
                       outputs=outputs, recipe_dir=out, work_dir=out / "scratch", run_dir=out)
    result = cls().run(ctx)
    digest = hashlib.sha256()
    for name in sorted(outputs):
        digest.update(outputs[name].read_bytes())
    digest.update(json.dumps([result.summary, result.removed], sort_keys=True).encode())
    return digest.hexdigest()


def run(engine: str, args: argparse.Namespace, inputs: Path, work: Path) -> dict:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", engine, str(args.workers), str(args.num_cpus),
                           str(inputs), str(work)], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the {engine} run failed:\n{done.stderr[-4000:]}")
    return {"engine": engine, "seconds": round(seconds, 2), "load_before": round(load, 2),
            "digest": done.stdout.split()[-1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="pii.workers of the local engine")
    parser.add_argument("--num-cpus", type=int, default=2, help="data.ray.num_cpus of the ray engine")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each engine, alternated")
    parser.add_argument("--json", type=Path, help="write the runs here")
    parser.add_argument("--child", nargs=5, metavar=("ENGINE", "WORKERS", "NUM_CPUS", "INPUTS", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        engine, workers, num_cpus, inputs, out = args.child
        print(child(engine, int(workers), int(num_cpus), Path(inputs), Path(out)))
        return 0
    with tempfile.TemporaryDirectory(prefix="fttool-pii-engines-") as tmp:
        inputs = Path(tmp) / "in"
        write_splits(args.records, inputs)
        runs = []
        for round_number in range(args.rounds):
            for engine in (("local", "ray") if round_number % 2 == 0 else ("ray", "local")):
                runs.append(run(engine, args, inputs, Path(tmp) / f"run-{len(runs)}"))
                print(json.dumps(runs[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"records": args.records, "workers": args.workers, "num_cpus": args.num_cpus,
                                         "runs": runs}, indent=2) + "\n")
    if len({entry["digest"] for entry in runs}) != 1:
        print("the engines wrote different outputs", file=sys.stderr)
        return 2
    for engine in ("local", "ray"):
        times = [entry["seconds"] for entry in runs if entry["engine"] == engine]
        print(f"{engine}: {', '.join(f'{t:.2f} s' for t in times)} (best {min(times):.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
