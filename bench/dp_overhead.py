"""What differential privacy costs in training time, on CPU: DP-SGD against the same loop without DP.

Both train the same LoRA adapter (r 8 on q_proj and v_proj) of the offline demo model
(`demo:tiny-llama`) on the same tokenized synthetic alpaca records, for the same number of optimizer
steps, with the same physical and logical batch sizes, loss (mean over each example's response
tokens), AdamW and linear learning-rate decay:

    dp:     fttool.training.backends.dp_sgd.run_dp_sgd (opacus: Poisson sampling, per-example gradients,
            clipping, noise, accounting hook) with a fixed noise multiplier
    non-dp: the same loop in plain PyTorch: shuffled fixed-size batches, one gradient per batch

Runs alternate (non-dp, dp, non-dp, dp, ...) after one untimed warm-up of each, so drift in machine
load hits both alike. The time is the training loop's wall clock only (model loading, tokenization
and the privacy accountant's epsilon, which is computed once per run, are left out and reported
apart). Writes the section "## DP overhead (CPU)" of docs/benchmarks.md with --write-docs.

    python bench/dp_overhead.py                       # 3 runs of each, 30 steps: about 4 minutes on 2 busy cores
    python bench/dp_overhead.py --runs 5 --steps 60 --write-docs
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks_doc import BENCHMARKS, cpu_model, write_section  # noqa: E402 (bench/ is on sys.path when run as a script)

from fttool.training.backends.dp_sgd import (  # noqa: E402
    collate_units,
    example_losses,
    lora_model,
    run_dp_sgd,
)
from fttool.training.demo_model import build_demo_model  # noqa: E402
from fttool.training.examples import tokenized_example  # noqa: E402
from fttool.training.private import epsilon_after  # noqa: E402
from fttool.training.settings import LoraSettings  # noqa: E402

SECTION = "## DP overhead (CPU)"
LORA = LoraSettings(r=8, alpha=16, dropout=0.0, target_modules=("q_proj", "v_proj"))
TOPICS = ["savings account", "credit card", "home insurance", "mortgage", "pension plan", "travel insurance",
          "car loan", "debit card", "student loan", "business account"]
ACTIONS = ["open", "close", "change", "review", "cancel", "renew", "transfer", "update", "freeze", "report"]
CHANNELS = ["in the app", "online", "at a branch", "by phone"]


def records() -> list[dict]:
    """400 synthetic alpaca records (no personal data)."""
    out = []
    for index, (action, topic, channel) in enumerate(
            (a, t, c) for a in ACTIONS for t in TOPICS for c in CHANNELS):
        out.append({"id": f"r{index}", "format": "alpaca", "instruction": f"How do I {action} my {topic} {channel}?",
                    "input": "", "output": f"To {action} your {topic} {channel}, sign in, choose {topic} and "
                                           f"follow the steps; it takes a few minutes."})
    return out


def train_without_dp(model, units, *, pad_id, batch_size, gradient_accumulation_steps, learning_rate, steps,
                     seed) -> float:
    """The non-private loop: seconds for `steps` optimizer steps over shuffled fixed-size batches."""
    import torch
    from transformers import get_scheduler

    torch.manual_seed(seed)
    collate = collate_units(units, pad_id)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate)
    schedule = get_scheduler("linear", optimizer, num_warmup_steps=0, num_training_steps=steps)
    logical = batch_size * gradient_accumulation_steps
    model.train()
    started = time.perf_counter()
    order: list[int] = []
    for _ in range(steps):
        if len(order) < logical:
            order += torch.randperm(len(units)).tolist()
        batch_units, order = order[:logical], order[logical:]
        optimizer.zero_grad()
        for start in range(0, logical, batch_size):
            batch = collate([(index,) for index in batch_units[start:start + batch_size]])
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            (example_losses(logits, batch["labels"]).sum() / logical).backward()
        optimizer.step()
        schedule.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (after one warm-up of each)")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per run")
    parser.add_argument("--batch-size", type=int, default=8, help="examples (units) per forward pass")
    parser.add_argument("--accumulation", type=int, default=2, help="forward passes per step (DP: expected)")
    parser.add_argument("--noise-multiplier", type=float, default=1.0)
    parser.add_argument("--write-docs", action="store_true", help="write the section of docs/benchmarks.md")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(os.cpu_count() or 1)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        base = build_demo_model(Path(scratch) / "base")
        tokenizer = AutoTokenizer.from_pretrained(base)
        # Every record is its own privacy unit (none is derived from another).
        units = [[example] for example in (tokenized_example(tokenizer, record, 128, train_on_inputs=False)
                                           for record in records()) if example is not None]
        settings = dict(pad_id=tokenizer.pad_token_id, batch_size=args.batch_size,
                        gradient_accumulation_steps=args.accumulation, learning_rate=1e-3, seed=0)

        def fresh_model():
            torch.manual_seed(0)
            return lora_model(AutoModelForCausalLM.from_pretrained(base), LORA, "cpu")

        def dp_run() -> float:
            run = run_dp_sgd(fresh_model(), units, planned_steps=args.steps, noise_multiplier=args.noise_multiplier,
                             max_grad_norm=1.0, delta=1e-5, accountant="prv", epsilon_budget=None, **settings)
            assert run.steps == args.steps
            return run.seconds

        def plain_run() -> float:
            return train_without_dp(fresh_model(), units, steps=args.steps, **settings)

        plain_run(), dp_run()  # warm-up: allocator, kernels, opacus' first hooks
        plain, private = [], []
        for _ in range(args.runs):
            plain.append(plain_run())
            private.append(dp_run())
        sample_rate = 1 / math.ceil(len(units) / (args.batch_size * args.accumulation))
        accounting_started = time.perf_counter()
        epsilon = epsilon_after(args.steps, args.noise_multiplier, sample_rate, 1e-5, "prv")
        accounting = time.perf_counter() - accounting_started
    total = time.perf_counter() - began

    ratio = statistics.median(private) / statistics.median(plain)
    tokens = sum(len(example["input_ids"]) for unit in units for example in unit) / len(units)
    command = "python bench/dp_overhead.py" + "".join(
        f" --{name.replace('_', '-')} {value}" for name, value in (
            ("runs", args.runs), ("steps", args.steps), ("batch_size", args.batch_size),
            ("accumulation", args.accumulation), ("noise_multiplier", args.noise_multiplier)))
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("torch", "opacus", "peft", "transformers"))
    text = "\n".join([
        SECTION,
        "",
        f"Command: `{command}` ({args.runs} timed runs of each after one warm-up of each, alternated; "
        f"{total / 60:.1f} min in all).",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.platform()}, Python "
        f"{platform.python_version()}; {versions}. Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"load average {load} (1 / 5 / 15 min; other work shared the machine).",
        "",
        f"Setup: demo:tiny-llama (hidden 64, 2 layers), LoRA r {LORA.r} on q_proj and v_proj; {len(units)} "
        f"records of {tokens:.0f} tokens on average; {args.steps} optimizer steps of {args.accumulation} forward "
        f"passes of {args.batch_size} records (DP: Poisson sampling with that expected batch, sample rate "
        f"{sample_rate:.3g}, noise multiplier {args.noise_multiplier:g}, clipping norm 1).",
        "",
        "| | median | min | max | per step (median) |",
        "|---|---|---|---|---|",
        *(f"| {label} | {statistics.median(times):.2f} s | {min(times):.2f} s | {max(times):.2f} s | "
          f"{statistics.median(times) / args.steps * 1000:.0f} ms |"
          for label, times in (("non-DP loop", plain), ("DP-SGD (opacus)", private))),
        "",
        f"DP-SGD takes **{ratio:.2f}x** the non-private loop's time (median over median; "
        f"{min(private) / min(plain):.2f}x fastest over fastest, the run least disturbed by other load). "
        "The privacy accountant's epsilon for "
        f"the run (PRV, delta 1e-5: {epsilon:.2f}) took {accounting:.2f} s on top, once per run; calibrating "
        "the noise to a target epsilon (opacus' binary search) costs several such evaluations.",
        "",
    ])
    print(text)
    if args.write_docs:
        write_section(text)
        print(f"written to {BENCHMARKS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
