"""Wall time of fttool's train stage against a plain TRL SFTTrainer script doing the same training.

Both fine-tune the same local tiny Llama (fttool's demo model, built once into a temporary directory)
with LoRA (r 8, q_proj and v_proj) for the same number of steps on the same 200 alpaca records of
recipes/data/support.jsonl (validation: the next 40), with the same prompts, seed, batch size and
sequence length, on the CPU:

    plain:   load tokenizer and model, SFTTrainer on prompt/completion pairs, train, evaluate on the
             validation set, save the adapter and tokenizer (what a hand-written script does)
    fttool:  TrainStage.run on the same records as the runner would call it (its own tokenization and
             masking, checkpoint directory, weight-moved check, validation loss, adapter, model card)

Both run in this one process, after one untimed warm-up run of each (imports, first-call costs), then
--runs times each, alternating which goes first. It prints the medians and their ratio, writes the
section "## Training overhead (CPU)" of docs/benchmarks.md (replacing only that section) and exits 1
when fttool's median is above --max-ratio (default 1.10) times the plain script's.

    python bench/train_overhead.py                # 5 runs of each, 60 steps: a few minutes on 2 cores
    python bench/train_overhead.py --runs 9 --steps 100 --no-write
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks_doc import BENCHMARKS, cpu_model, write_section  # noqa: E402 (bench/ is on sys.path when run as a script)

from fttool.data.records import write_jsonl  # noqa: E402
from fttool.pipeline.params import build  # noqa: E402
from fttool.pipeline.stage import StageContext  # noqa: E402
from fttool.stages.train import TrainStage  # noqa: E402
from fttool.training.demo_model import build_demo_model  # noqa: E402
from fttool.training.settings import TrainParams  # noqa: E402

SECTION = "## Training overhead (CPU)"
DATA = ROOT / "recipes" / "data" / "support.jsonl"
TRAIN_RECORDS, VALIDATION_RECORDS = 200, 40
BATCH_SIZE, MAX_SEQ_LENGTH, LEARNING_RATE, SEED = 8, 256, 0.001, 42
LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}


def alpaca_records() -> list[dict]:
    """The support records in fttool's internal alpaca shape (as the ingest stage writes them)."""
    records = []
    for number, line in enumerate(DATA.read_text(encoding="utf-8").splitlines()):
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            continue  # the quickstart data has planted broken lines
        if not isinstance(raw, dict):
            continue
        fields = (raw.get("instruction"), raw.get("input") or "", raw.get("output"))
        if all(isinstance(value, str) for value in fields) and fields[0] and fields[2]:  # planted bad types too
            records.append({"id": f"r{number}", "source": "support", "format": "alpaca", "instruction": fields[0],
                            "input": fields[1], "output": fields[2], "meta": {}})
    return records


def alpaca_prompt(record: dict) -> str:
    """The alpaca layout, written out as a user's script would."""
    if record["input"]:
        return (f"### Instruction:\n{record['instruction']}\n\n### Input:\n{record['input']}\n\n"
                "### Response:\n")
    return f"### Instruction:\n{record['instruction']}\n\n### Response:\n"


def plain_trl(base: Path, train: list[dict], validation: list[dict], steps: int, out: Path) -> None:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)

    def pairs(records):
        return datasets.Dataset.from_list([{"prompt": alpaca_prompt(r), "completion": r["output"]} for r in records])

    config = SFTConfig(output_dir=str(out / "trainer"), max_steps=steps, learning_rate=LEARNING_RATE,
                       per_device_train_batch_size=BATCH_SIZE, per_device_eval_batch_size=BATCH_SIZE, seed=SEED,
                       max_length=MAX_SEQ_LENGTH, save_strategy="no", eval_strategy="no", report_to="none",
                       logging_steps=max(1, math.ceil(steps / 25)), disable_tqdm=True, bf16=False,
                       activation_checkpointing=False, dataloader_pin_memory=False)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=config, processing_class=tokenizer, peft_config=peft_config,
                         train_dataset=pairs(train), eval_dataset=pairs(validation))
    trainer.remove_callback(PrinterCallback)  # as fttool does: printing logs is not what is measured
    trainer.train()
    trainer.evaluate()
    trainer.model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")


def fttool_stage(base: Path, train_path: Path, validation_path: Path, steps: int, out: Path,
                 threads: int | None) -> None:
    params = build(TrainParams, {
        "method": "lora", "lora": LORA, "epochs": 1, "max_steps": steps, "learning_rate": LEARNING_RATE,
        "lr_scheduler_type": "linear", "warmup_ratio": 0, "warmup_steps": 0, "weight_decay": 0,
        "batch_size": BATCH_SIZE, "gradient_accumulation_steps": 1, "max_seq_length": MAX_SEQ_LENGTH,
        "train_on_inputs": False, "packing": False, "gradient_checkpointing": False,
        # The schema's defaults: no checkpoint falls within a short benchmark run, as in the plain script.
        "save_steps": 100, "save_total_limit": 2, "seed": SEED, "early_stopping": None, "privacy": None,
        "save_only_model": False, "optimizer": "adamw_torch", "precision": "auto", "tf32": False,
        "load_in_8bit": False, "logging_steps": None, "eval_steps": None, "evals_per_epoch": None,
        "max_samples": None, "chat_template": None, "chat_template_file": None, "objective": "sft", "preference": None,
        "model": {"base": str(base), "revision": None, "license": "apache-2.0", "trust_remote_code": False},
        "compute": {"num_processes": 1, "strategy": "ddp", "threads": threads},
        "tracking": {"enabled": False, "uri": None, "experiment": "bench"}})
    (out / "scratch").mkdir(parents=True)
    ctx = StageContext(params=params, inputs={"train": train_path, "validation": validation_path},
                       outputs={"model": out / "model", "tracking": out / "mlruns"}, recipe_dir=out,
                       work_dir=out / "scratch", run_dir=out)
    TrainStage().run(ctx)


def section_text(plain: list[tuple[float, float]], ours: list[tuple[float, float]], ratio: float, max_ratio: float,
                 steps: int, load: tuple[tuple[float, ...], tuple[float, ...]], command: str) -> str:
    def row(label: str, times: list[tuple[float, float]]) -> str:
        walls, cpus = [w for w, _ in times], [c for _, c in times]
        return (f"| {label} | {statistics.median(walls):.2f} s | {min(walls):.2f} s | {max(walls):.2f} s "
                f"| {statistics.median(cpus):.2f} s |")

    cpu_ratio = statistics.median(c for _, c in ours) / statistics.median(c for _, c in plain)

    verdict = "PASS" if ratio <= max_ratio else "FAIL"
    return "\n".join([
        SECTION,
        "",
        f"Measured by `{command}` on {dt.date.today().isoformat()}: fttool's train stage (`TrainStage.run`) "
        f"against a hand-written TRL `SFTTrainer` script, each fine-tuning fttool's tiny demo Llama (hidden 64, "
        f"2 layers, random weights) with LoRA r {LORA['r']} on q_proj and v_proj for {steps} steps, batch "
        f"{BATCH_SIZE}, max length {MAX_SEQ_LENGTH}, on {TRAIN_RECORDS} alpaca records of "
        f"`recipes/data/support.jsonl` (validation loss on the next {VALIDATION_RECORDS}), fp32 on the CPU. "
        f"Both load the model, train, measure validation loss and save the adapter and tokenizer (the plain script "
        f"measures it once at the end; the train stage about 5 times along the way, for the report's curve); "
        f"{len(ours)} runs of each in one process, alternating, after one untimed warm-up run of each; wall-clock "
        "time. torch's CPU threads: the train stage's compute.threads (fttool's default, the cores available less "
        "one, unless --threads is given); the plain script, torch's default (one per core).",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}. The machine was shared with other work: load average "
        f"(1, 5, 15 min) {', '.join(f'{v:.2f}' for v in load[0])} before and "
        f"{', '.join(f'{v:.2f}' for v in load[1])} after.",
        "",
        "| | median wall | min wall | max wall | median CPU |",
        "|---|---|---|---|---|",
        row("plain TRL script", plain),
        row("fttool train stage", ours),
        "",
        f"**{verdict}**: the train stage takes **{ratio:.3f}x** the plain script's median (the target is "
        f"at most {max_ratio:g}x); in CPU time (all threads of the process) {cpu_ratio:.3f}x. Runs that overlap other "
        "work on the machine take several times longer (see max), which the medians absorb only when most runs are "
        "undisturbed. The tiny model keeps runs short, so fixed costs (loading, tokenization, saving) weigh more here "
        "than they would with a real model.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (at least 3)")
    parser.add_argument("--steps", type=int, default=60, help="training steps per run")
    parser.add_argument("--max-ratio", type=float, default=1.10)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    parser.add_argument("--threads", type=int, default=None,
                        help="the train stage's compute.threads (default: fttool's, the cores available less one)")
    args = parser.parse_args()
    if args.runs < 3:
        parser.error("--runs must be at least 3")

    from fttool.training.quiet import quiet_libraries

    quiet_libraries()
    records = alpaca_records()
    train, validation = records[:TRAIN_RECORDS], records[TRAIN_RECORDS:TRAIN_RECORDS + VALIDATION_RECORDS]
    with tempfile.TemporaryDirectory(prefix="fttool-train-bench-") as tmp:
        tmp = Path(tmp)
        base = build_demo_model(tmp / "base")
        write_jsonl(tmp / "train.jsonl", train)
        write_jsonl(tmp / "validation.jsonl", validation)
        runs = iter(range(10 ** 6))

        def timed(which: str) -> tuple[float, float]:
            """(wall-clock seconds, CPU seconds of this process, all threads)."""
            out = tmp / f"run-{next(runs)}"
            wall, cpu = time.perf_counter(), time.process_time()
            if which == "plain":
                plain_trl(base, train, validation, args.steps, out)
            else:
                fttool_stage(base, tmp / "train.jsonl", tmp / "validation.jsonl", args.steps, out, args.threads)
            return time.perf_counter() - wall, time.process_time() - cpu

        load_before = os.getloadavg()
        timed("plain"), timed("fttool")  # warm-up
        plain, ours = [], []
        for run in range(args.runs):
            order = ("plain", "fttool") if run % 2 == 0 else ("fttool", "plain")
            for which in order:
                (plain if which == "plain" else ours).append(timed(which))
                wall, cpu = (plain if which == "plain" else ours)[-1]
                print(f"run {run + 1}/{args.runs} {which}: {wall:.2f} s wall, {cpu:.2f} s CPU", file=sys.stderr,
                      flush=True)
        load_after = os.getloadavg()

    ratio = statistics.median(w for w, _ in ours) / statistics.median(w for w, _ in plain)
    command = "python bench/train_overhead.py" + "".join(
        f" {flag} {value}" for flag, value, default in (("--runs", args.runs, 5), ("--steps", args.steps, 60),
                                                   ("--threads", args.threads, None))
        if value != default)
    text = section_text(plain, ours, ratio, args.max_ratio, args.steps, (load_before, load_after), command)
    print(text)
    if not args.no_write:
        write_section(text)
        print(f"written to {BENCHMARKS.relative_to(ROOT)}")
    if ratio > args.max_ratio:
        print(f"the train stage is {ratio:.3f}x the plain script, above {args.max_ratio:g}x", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
