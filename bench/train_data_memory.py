"""Peak memory and time of the train stage with its examples in Arrow files against the Python lists it held before.

The data: every alpaca record of ../shared/data/external/alpaca-cleaned-ext (GPTeacher roleplay and toolformer,
GSM8K train in alpaca form; 18,292 records, about 9 MB of text), the last 5% as the validation split. The model:
fttool's tiny demo Llama (hidden 64, 2 layers), LoRA r 8 on q_proj and v_proj, --steps steps of batch 8, max length
--max-seq-length, on the CPU. So the model is small and the data is not: the run measures what holding the data
costs, which a real model would add to rather than hide.

Each run is a fresh Python process that imports fttool from a source tree, runs `TrainStage.run` once (the train stage
as the runner calls it: it tokenises the splits, trains, measures validation loss along the way, saves the adapter)
and reports the stage's wall time and the process's peak RSS (and, with --processes above 1, the largest peak of the
processes it launched). The baseline is the train stage of an earlier commit, exported with

    git archive d492408 fttool | tar -x -C /tmp/baseline       # the last commit that trained on lists

and run the same way: `--baseline-tree /tmp/baseline`. Runs alternate which tree goes first; both must report the
same losses (the Arrow examples are the same examples). Writes the section "## Training data in Arrow (memory)" of
docs/benchmarks.md unless --no-write.

    python bench/train_data_memory.py --baseline-tree /tmp/baseline
    python bench/train_data_memory.py --baseline-tree /tmp/baseline --processes 2 --runs 2 --no-write
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTERNAL = ROOT.parent / "shared" / "data" / "external" / "alpaca-cleaned-ext"
FILES = ("gpteacher_roleplay.json", "gpteacher_toolformer.json", "gsm_8k_train.alpaca.json")
SECTION = "## Training data in Arrow (memory)"
VALIDATION_SHARE = 0.05
LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}


def write_splits(directory: Path) -> tuple[int, int]:
    """The alpaca records in fttool's internal shape (as ingest writes them) as train and validation JSONL."""
    records = []
    for name in FILES:
        for number, raw in enumerate(json.loads((EXTERNAL / name).read_text(encoding="utf-8"))):
            records.append({"id": f"{name}-{number}", "source": name, "format": "alpaca",
                            "instruction": raw["instruction"], "input": raw.get("input") or "",
                            "output": raw["output"], "meta": {}})
    cut = len(records) - int(len(records) * VALIDATION_SHARE)
    for split, part in (("train", records[:cut]), ("validation", records[cut:])):
        with (directory / f"{split}.jsonl").open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(record) + "\n" for record in part)
    return cut, len(records) - cut


def child(args: argparse.Namespace) -> None:
    """One train stage in this process, from the source tree first on sys.path; its figures as JSON on stdout."""
    from fttool.pipeline.params import build
    from fttool.pipeline.stage import StageContext
    from fttool.stages.train import TrainStage
    from fttool.training.quiet import quiet_libraries
    from fttool.training.settings import TrainParams

    quiet_libraries()
    data, out = Path(args.data), Path(args.out)
    settings = {
        "method": "lora", "lora": LORA, "epochs": 1, "max_steps": args.steps, "learning_rate": 0.001,
        "lr_scheduler_type": "linear", "warmup_ratio": 0, "warmup_steps": 0, "weight_decay": 0, "batch_size": 8,
        "gradient_accumulation_steps": 1, "max_seq_length": args.max_seq_length, "train_on_inputs": False,
        "packing": False, "gradient_checkpointing": False, "save_steps": 10_000, "save_total_limit": 2, "seed": 42,
        "early_stopping": None, "privacy": None, "save_only_model": False, "optimizer": "adamw_torch",
        "precision": "auto", "tf32": False, "load_in_8bit": False, "logging_steps": None, "eval_steps": None,
        "evals_per_epoch": None, "max_samples": None, "chat_template": None, "chat_template_file": None,
        "objective": "sft", "preference": None,
        "model": {"base": str(Path(args.base)), "revision": None, "license": "apache-2.0", "trust_remote_code": False},
        "compute": {"num_processes": args.processes, "num_machines": 1, "machine_rank": 0, "main_process_ip": None,
                    "main_process_port": None, "strategy": "ddp", "deepspeed": None, "threads": None},
        "tracking": {"enabled": False, "uri": None, "experiment": "bench"}}
    params = build(TrainParams, {key: value for key, value in settings.items() if key in args.keys.split(",")},
                   "train")
    ctx = StageContext(params=params, inputs={"train": data / "train.jsonl", "validation": data / "validation.jsonl"},
                       outputs={"model": out / "model", "tracking": out / "mlruns"}, recipe_dir=data,
                       work_dir=out / "work" / "train", run_dir=out)
    (out / "work" / "train").mkdir(parents=True)
    started = time.perf_counter()
    summary = TrainStage().run(ctx).summary
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "largest_child_peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                      "train_examples": summary["train_examples"], "steps": summary["steps"],
                      "losses": [point["loss"] for point in summary["loss_history"]],
                      "validation_loss": summary["validation_loss"]}))


def run_tree(tree: Path, data: Path, out: Path, args: argparse.Namespace, keys: str) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--data", str(data), "--out", str(out),
               "--base", str(args.base),
               "--steps", str(args.steps), "--max-seq-length", str(args.max_seq_length),
               "--processes", str(args.processes), "--keys", keys]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the train stage from {tree} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def train_keys(tree: Path) -> str:
    """The train parameters the tree's TrainParams has (an earlier tree may lack later ones)."""
    code = ("import dataclasses, sys; sys.path.insert(0, sys.argv[1]); from fttool.training.settings import "
            "TrainParams; print(','.join(f.name for f in dataclasses.fields(TrainParams)))")
    return subprocess.run([sys.executable, "-c", code, str(tree)], capture_output=True, text=True,
                          check=True).stdout.strip()


def section_text(results: dict[str, list[dict]], args: argparse.Namespace, splits: tuple[int, int],
                 load: tuple[tuple[float, ...], tuple[float, ...]], command: str) -> str:
    def mib(kib: float) -> str:
        return f"{kib / 1024:.0f} MiB"

    def row(label: str, runs: list[dict]) -> str:
        peaks = [run["peak_kib"] for run in runs]
        children = [run["largest_child_peak_kib"] for run in runs]
        seconds = [run["seconds"] for run in runs]
        launched = f" | {mib(statistics.median(children))}" if args.processes > 1 else ""
        return (f"| {label} | {mib(statistics.median(peaks))} ({mib(min(peaks))}–{mib(max(peaks))}){launched} "
                f"| {statistics.median(seconds):.1f} s ({min(seconds):.1f}–{max(seconds):.1f}) |")

    lists, arrow = results["lists"], results["arrow"]
    same = all(a["losses"] == b["losses"] and a["validation_loss"] == b["validation_loss"]
               for a, b in zip(lists, arrow))
    peak_ratio = statistics.median(r["peak_kib"] for r in arrow) / statistics.median(r["peak_kib"] for r in lists)
    time_ratio = statistics.median(r["seconds"] for r in arrow) / statistics.median(r["seconds"] for r in lists)
    header = "| | peak RSS, median (min–max) | " + ("largest rank's peak RSS | " if args.processes > 1 else "")
    return "\n".join([
        SECTION, "",
        f"Measured by `{command}` on {dt.date.today().isoformat()}: the train stage (`TrainStage.run`, in a fresh "
        f"process per run) on the {splits[0]:,} train and {splits[1]:,} validation alpaca records of "
        "`../shared/data/external/alpaca-cleaned-ext` (GPTeacher roleplay and toolformer, GSM8K train), fttool's "
        f"tiny demo Llama with LoRA r {LORA['r']}, {args.steps} steps of batch 8, max length {args.max_seq_length}, "
        f"{args.processes} process(es), fp32 on the CPU. Baseline: the same stage at commit d492408, which held the "
        "tokenised examples as Python lists (and TRL's in-memory copy of them); now they are written once to Arrow "
        f"files and memory-mapped. {len(arrow)} runs of each, alternating which goes first. Time is the stage's "
        "wall time (tokenising, loading the model, training, validation passes along the way: about 5, at most "
        "one a step; saving); peak RSS is the stage process's"
        + (", and the largest of the training processes it launched" if args.processes > 1 else "") + ".",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.platform()}, Python "
        f"{platform.python_version()}, shared with other work: load average (1, 5, 15 min) "
        f"{', '.join(f'{v:.2f}' for v in load[0])} before and {', '.join(f'{v:.2f}' for v in load[1])} after.",
        "",
        header + "stage time, median (min–max) |",
        "|---|---|" + ("---|" if args.processes > 1 else "") + "---|",
        row("lists (d492408)", lists),
        row("Arrow, memory-mapped", arrow),
        "",
        f"Peak RSS **{peak_ratio:.2f}x** the baseline's, stage time {time_ratio:.2f}x. Peak RSS counts the mapped "
        "file's pages a process has touched; those are shared between the processes of a launch and the kernel can "
        "drop them. Same losses in every pair of runs (train curve and validation loss): "
        f"{'yes' if same else 'NO'}.",
        "",
    ])


def cpu_model() -> str:
    sys.path.insert(0, str(ROOT / "bench"))
    from benchmarks_doc import cpu_model as model

    return model()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-tree", type=Path, help="a source tree of the list path (see the docstring)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--max-seq-length", type=int, default=512)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--keys", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.baseline_tree is None or not (args.baseline_tree / "fttool").is_dir():
        parser.error("--baseline-tree must name a directory holding the baseline's fttool package")

    sys.path.insert(0, str(ROOT))
    from fttool.training.demo_model import build_demo_model

    trees = {"lists": args.baseline_tree.resolve(), "arrow": ROOT}
    with tempfile.TemporaryDirectory(prefix="fttool-train-data-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        args.base = build_demo_model(Path(tmp) / "base")
        splits = write_splits(data)
        keys = {name: train_keys(tree) for name, tree in trees.items()}
        load_before = os.getloadavg()
        results: dict[str, list[dict]] = {"lists": [], "arrow": []}
        for run in range(args.runs):
            for name in (("lists", "arrow") if run % 2 == 0 else ("arrow", "lists")):
                figures = run_tree(trees[name], data, data / f"{name}-{run}", args, keys[name])
                results[name].append(figures)
                print(f"run {run + 1}/{args.runs} {name}: {figures['seconds']:.1f} s, peak "
                      f"{figures['peak_kib'] / 1024:.0f} MiB", file=sys.stderr, flush=True)
        load_after = os.getloadavg()
    command = "python bench/train_data_memory.py --baseline-tree /tmp/baseline" + "".join(
        f" {flag} {value}" for flag, value, default in (("--runs", args.runs, 3), ("--steps", args.steps, 20),
                                                   ("--max-seq-length", args.max_seq_length, 512),
                                                   ("--processes", args.processes, 1)) if value != default)
    text = section_text(results, args, splits, (load_before, load_after), command)
    print(text)
    if not args.no_write:
        from benchmarks_doc import write_section

        write_section(text)


if __name__ == "__main__":
    main()
