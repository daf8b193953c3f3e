"""Per-record stages with 1 and 2 worker processes: ingest, the bias audit and synonym augmentation, alternated.

Each case runs in a fresh process (imports and worker start-up count), on the library the stage calls, with the
thresholds the stage uses. Rounds alternate which worker count goes first, so drift in machine load hits both.

- ingest: N synthetic alpaca JSONL lines (bench/data_memory.py's generator: 0.5% malformed, duplicates planted)
  through fttool.data.ingest.ingest_source.
- bias: the N records ingest kept, as the train split, audited by `region` and by all four mention categories
  (fttool.fairness.audit.audit_files).
- augment: synonym augmentation of C candidates drawn from the GSM8K train set in alpaca form
  (../shared/data/external/alpaca-cleaned-ext/gsm_8k_train.alpaca.json, 7,473 records of real English: synthetic
  words have no WordNet synonyms), with its similarity and PII checks (the augment stage's run).

Every case must produce the same bytes (records, quarantine, summaries) with 1 and 2 workers: the script exits 2
otherwise. Wall time is the child's whole process; CPU time is the child's and its workers' (os.wait4 rusage).

    python bench/per_record_speed.py                              # N = 100000, C = 1000, 2 rounds
    python bench/per_record_speed.py --stages ingest bias --rounds 3
    python bench/per_record_speed.py --write-docs                 # the section of docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchmarks_doc import cpu_model, write_section  # noqa: E402 (bench/ is on sys.path when run as a script)

SECTION = "## Per-record stages in parallel"
GSM8K = ROOT.parent / "shared" / "data" / "external" / "alpaca-cleaned-ext" / "gsm_8k_train.alpaca.json"
STAGES = ("ingest", "bias", "augment")


def _engine(workers: int):
    from fttool.data.settings import EngineSettings, RaySettings

    return EngineSettings("local", workers, RaySettings("", None))


def child_ingest(data: Path, out: Path, workers: int) -> str:
    import io

    from fttool.data.ingest import Quarantine, ingest_source, open_source
    from fttool.data.settings import SourceSettings, resolved_source

    source = SourceSettings(**resolved_source({"path": str(data / "raw.jsonl"), "format": "alpaca",
                                               "assistant_turns": "all"}))
    quarantined = io.BytesIO()
    quarantine = Quarantine(quarantined, "quarantine.jsonl")
    with open(out / "records.jsonl", "wb") as records:
        summary = ingest_source(source, open_source(source, Path), 100_000, records, quarantine, _engine(workers))
    digest = hashlib.sha256((out / "records.jsonl").read_bytes() + quarantined.getvalue())
    digest.update(json.dumps([summary, quarantine.summary()], sort_keys=True).encode())
    return digest.hexdigest()


def child_bias(data: Path, out: Path, workers: int) -> str:
    from fttool.data.records import SPLITS, count_lines, read_lines
    from fttool.fairness.audit import audit_files
    from fttool.fairness.lexicon import CATEGORIES
    from fttool.fairness.settings import BiasParams

    records = data / "records.jsonl"
    params = BiasParams(("region",), CATEGORIES, 0.05, 10, 5.0, None, None, 5, _engine(workers))
    lines = ((split, read_lines(records) if split == "train" else iter(())) for split in SPLITS)
    summary = audit_files(lines, params, count_lines(records))
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


def child_augment(data: Path, out: Path, workers: int, candidates: int) -> str:
    from fttool.augment.settings import AugmentMethod, AugmentParams, method_params
    from fttool.pii.settings import PiiParams, resolved_pii
    from fttool.pipeline.params import build
    from fttool.pipeline.plan import thaw
    from fttool.pipeline.stage import StageContext
    from fttool.recipe.schema import apply_defaults, load_schema
    from fttool.stages.augment import AugmentStage

    schema = load_schema()["properties"]
    entry = {"method": "synonym", "count": candidates, "fields": ["instruction", "output"]}
    method = method_params(apply_defaults(entry, schema["augment"]["items"]))
    pii = resolved_pii(apply_defaults({}, schema["pii"]), {"engine": "local", "ray": {"address": ""}})
    params = build(AugmentParams, {"methods": [method], "pii": pii, "compute": thaw(_engine(workers))}, "augment")
    assert isinstance(params.methods[0], AugmentMethod) and isinstance(params.pii, PiiParams)
    (out / "work").mkdir()
    inputs = {split: data / f"{split}.jsonl" for split in ("train", "validation", "test")}
    ctx = StageContext(params=params, inputs=inputs, outputs={"train": out / "train.jsonl"}, recipe_dir=data,
                       work_dir=out / "work", run_dir=out)
    result = AugmentStage().run(ctx)
    digest = hashlib.sha256((out / "train.jsonl").read_bytes())
    digest.update(json.dumps([result.summary, result.added], sort_keys=True).encode())
    return digest.hexdigest()


def prepare(data: Path, records: int) -> dict:
    """The inputs: raw alpaca lines, the records ingest keeps of them, and GSM8K's splits for augment."""
    from data_memory import generate

    from fttool.data.normalise import record_id
    from fttool.data.records import write_jsonl

    planted = generate(data / "raw.jsonl", records, seed=0)
    child_ingest(data, data, 1)
    rows = json.loads(GSM8K.read_text(encoding="utf-8"))
    gsm = []
    for row in rows:
        fields = {"instruction": row["instruction"], "input": row.get("input") or "", "output": row["output"]}
        gsm.append({"id": record_id(fields), "source": "gsm8k", "format": "alpaca", **fields, "meta": {}})
    write_jsonl(data / "train.jsonl", gsm)
    write_jsonl(data / "validation.jsonl", [])
    write_jsonl(data / "test.jsonl", [])
    return planted


def run_case(stage: str, workers: int, data: Path, candidates: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="per-record-") as out:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, __file__, "--child", stage, str(workers), str(data), out,
                                    str(candidates)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        output = process.stdout.read() if process.stdout else ""
        if status != 0:
            raise SystemExit(f"{stage} with {workers} worker(s) failed")
        return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "digest": output.strip().splitlines()[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=1000, help="augment: synonym candidates")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stage, workers, data, out, candidates = args.child
        extra = (int(candidates),) if stage == "augment" else ()
        print(globals()[f"child_{stage}"](Path(data), Path(out), int(workers), *extra))
        return
    os.environ.setdefault("FTTOOL_CACHE", tempfile.mkdtemp(prefix="fttool-cache-"))
    with tempfile.TemporaryDirectory(prefix="per-record-data-") as directory:
        data = Path(directory)
        planted = prepare(data, args.records)
        if "augment" in args.stages:  # fills the WordNet index cache, as any earlier run on the machine would
            run_case("augment", 1, data, 10)
        results: dict[str, dict[int, list[dict]]] = {stage: {1: [], 2: []} for stage in args.stages}
        for round_number in range(args.rounds):
            for stage in args.stages:
                for workers in ((1, 2) if round_number % 2 == 0 else (2, 1)):
                    results[stage][workers].append(run_case(stage, workers, data, args.candidates))
                    print(stage, workers, results[stage][workers][-1], file=sys.stderr, flush=True)
    identical = all(len({run["digest"] for runs in by_workers.values() for run in runs}) == 1
                    for by_workers in results.values())
    text = report(results, args, planted, identical)
    print(text)
    if args.write_docs:
        write_section(text)
    if not identical:
        raise SystemExit(2)


def report(results: dict, args, planted: dict, identical: bool) -> str:
    what = {"ingest": f"{args.records:,} alpaca lines", "bias": f"{args.records - planted['malformed']:,} records, "
            "region + 4 mention categories", "augment": f"synonym, {args.candidates:,} candidates from GSM8K"}
    rows = []
    for stage, by_workers in results.items():
        wall = {w: statistics.median(run["wall_s"] for run in by_workers[w]) for w in (1, 2)}
        cpu = {w: statistics.median(run["cpu_s"] for run in by_workers[w]) for w in (1, 2)}
        runs = " / ".join(", ".join(f"{run['wall_s']:.1f}" for run in by_workers[w]) for w in (1, 2))
        rows.append(f"| {stage} | {what[stage]} | {wall[1]:.1f} | {wall[2]:.1f} | {wall[1] / wall[2]:.2f}x | "
                    f"{cpu[1]:.1f} / {cpu[2]:.1f} | {runs} |")
    return "\n".join([
        SECTION, "",
        f"{dt.date.today().isoformat()}, {cpu_model()}, {os.cpu_count()} cores shared with other work; "
        f"`python bench/per_record_speed.py --records {args.records} --candidates {args.candidates} --rounds "
        f"{args.rounds}`. Median whole-process wall seconds (each case a fresh process, rounds alternating which "
        "worker count goes first); CPU seconds of the process and the workers it waited for (os.wait4); outputs "
        f"byte-identical with 1 and 2 workers: {'yes' if identical else 'NO'}.", "",
        "| stage | input | 1 worker (s) | 2 workers (s) | speed-up | CPU s, 1 / 2 | runs (s), 1 / 2 |",
        "|---|---|---|---|---|---|---|",
        *rows, ""])


if __name__ == "__main__":
    main()
