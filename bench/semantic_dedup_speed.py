"""Semantic dedup: fttool's dedup stage (1 and 2 worker processes) against a plain encode-and-compare script.

Input: the first N questions and answers of GSM8K's train file (../shared/data/external/gsm8k), as alpaca records
in fttool's internal shape. Each side runs in a fresh process on the same file, alternating the order each round:

- plain: every text in memory, embedded at once with the same encoder code (fttool.data.embeddings.embed, MiniLM
  with mean pooling), then each kept only when no earlier kept text has a cosine similarity above the threshold;
- fttool: the dedup stage as a run compiles it (semantic only), with `data.workers` 1 and 2.

All sides must keep the same records (the script exits 2 otherwise). Whole-process wall time, best of the rounds.

    .venv/bin/python bench/semantic_dedup_speed.py --records 2000 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GSM8K = ROOT.parent / "shared" / "data" / "external" / "gsm8k" / "train.jsonl"
THRESHOLD = 0.95  # the recipe schema's default semantic_threshold
SIDES = ("plain", "fttool-1", "fttool-2")


def prepare(path: Path, n: int) -> None:
    from fttool.data.normalise import record_id

    with open(GSM8K, encoding="utf-8") as source, open(path, "w", encoding="utf-8") as out:
        for line, _ in zip(source, range(n)):
            row = json.loads(line)
            fields = {"instruction": row["question"], "input": "", "output": row["answer"]}
            record = {"id": record_id(fields), "source": "bench", "format": "alpaca", **fields, "meta": {}}
            out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def plain(records_path: Path, out: Path) -> None:
    from fttool.data.embeddings import embed

    records = [json.loads(line) for line in open(records_path, encoding="utf-8")]
    vectors = embed(["\n".join(r[k] for k in ("instruction", "input", "output") if r[k]) for r in records])
    kept: list[int] = []
    for row in range(len(records)):
        if not kept or not (vectors[kept] @ vectors[row] > THRESHOLD).any():
            kept.append(row)
    out.write_text("\n".join(records[row]["id"] for row in kept))


def fttool_dedup(records_path: Path, out: Path, workers: int) -> None:
    from fttool.pipeline.stage import StageContext
    from fttool.recipe import compile_recipe
    from fttool.stages import stage_class

    recipe = records_path.parent / f"recipe-{workers}.yaml"
    recipe.write_text(json.dumps({"name": "semantic-speed", "data": {
        "sources": [{"path": records_path.name, "format": "alpaca"}], "workers": workers,
        "dedup": {"exact": False, "near": False, "semantic": True, "semantic_threshold": THRESHOLD}}}))
    spec = next(stage for stage in compile_recipe(recipe).stages if stage.name == "dedup")
    work = out.parent / f"work-{workers}"
    work.mkdir(exist_ok=True)
    written = out.parent / f"dedup-{workers}.jsonl"
    stage_class("dedup")().run(StageContext(params=spec.params, inputs={"records": records_path},
                                            outputs={"records": written}, recipe_dir=records_path.parent,
                                            work_dir=work))
    out.write_text("\n".join(json.loads(line)["id"] for line in open(written, encoding="utf-8")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "RECORDS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, records_path, out = args.child[0], Path(args.child[1]), Path(args.child[2])
        if side == "plain":
            plain(records_path, out)
        else:
            fttool_dedup(records_path, out, int(side.split("-")[1]))
        return 0
    best = {side: float("inf") for side in SIDES}
    with tempfile.TemporaryDirectory() as directory:
        records_path = Path(directory) / "records.jsonl"
        prepare(records_path, args.records)
        for round_number in range(args.rounds):
            kept = {}
            for side in SIDES if round_number % 2 == 0 else reversed(SIDES):
                out = Path(directory) / f"kept-{side}.txt"
                started = time.perf_counter()
                subprocess.run([sys.executable, __file__, "--child", side, str(records_path), str(out)], check=True)
                best[side] = min(best[side], time.perf_counter() - started)
                kept[side] = out.read_text().split("\n")
            if len({tuple(ids) for ids in kept.values()}) != 1:
                print(json.dumps({side: len(ids) for side, ids in kept.items()}), file=sys.stderr)
                return 2
    print(json.dumps({"records": args.records, "kept": len(kept["plain"]),
                      "seconds": {side: round(s, 2) for side, s in best.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
