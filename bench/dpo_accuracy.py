"""Does DPO raise preference accuracy on held-out pairs above the base? The DPO quickstart, measured.

Runs recipes/quickstart-dpo.yaml (the demo model, 239 synthetic support pairs, LoRA DPO, beta 0.1) through the whole
pipeline into a temporary directory, once per --seed (train.seed; the split and everything else stay as the recipe
has them), and reads the evaluation from each report.json: on the test pairs (prompts never seen in training, the
split keeps each prompt's pairs together and checks leakage on prompts), base and tuned preference accuracy (the
implicit reward beta (log p_model - log p_base) ranks chosen above rejected; ties count half, so the base, its own
reference, scores 0.5), reward margin, log-likelihood margin and chosen-response loss. Prints them, writes the
section "## DPO preference accuracy (CPU)" of docs/benchmarks.md unless --no-write, and exits 1 when a run's tuned
accuracy is not above the base's.

    python bench/dpo_accuracy.py                  # one run: about 4 minutes on 2 idle cores
    python bench/dpo_accuracy.py --seeds 42 7 --no-write
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks_doc import cpu_model, write_section  # noqa: E402 (bench/ is on sys.path when run as a script)

from fttool.pipeline.runner import run_plan  # noqa: E402
from fttool.recipe.compiler import compile_recipe  # noqa: E402

RECIPE = ROOT / "recipes" / "quickstart-dpo.yaml"
METRICS = ("preference_accuracy", "reward_margin", "log_likelihood_margin", "test_loss")


def measure(seed: int, work: Path) -> dict:
    """One run of the recipe with train.seed = seed; the evaluation figures and the run's time."""
    recipe = work / f"quickstart-dpo-{seed}.yaml"
    recipe.write_text(RECIPE.read_text().replace("  seed: 42\n", f"  seed: {seed}\n", 1))
    (work / "data").mkdir(exist_ok=True)
    for name in ("support_pairs.jsonl",):
        target = work / "data" / name
        if not target.exists():
            target.write_bytes((RECIPE.parent / "data" / name).read_bytes())
    started = time.perf_counter()
    run_dir = run_plan(compile_recipe(recipe), work / f"run-{seed}")
    seconds = time.perf_counter() - started
    report = json.loads((run_dir / "report.json").read_text())
    evaluation = report["evaluation"]
    return {"seed": seed, "seconds": round(seconds, 1), "test_pairs": evaluation["samples"],
            "train_pairs": report["data"]["split"]["counts"]["train"],
            "base": {name: evaluation["base"][name] for name in METRICS},
            "tuned": {name: evaluation["tuned"][name] for name in METRICS},
            "steps": report["training"]["steps"]}


def head_commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()


def section(results: list[dict], command: str, commit: str) -> str:
    lines = ["## DPO preference accuracy (CPU)", "",
             f"Command: `{command}`, run at commit {commit} on {dt.date.today().isoformat()} ({cpu_model()}, a machine "
             "shared with other work). `recipes/quickstart-dpo.yaml`: fttool's demo model (a tiny, untrained, "
             "random Llama), LoRA r 8 on all linear layers, DPO (sigmoid loss, beta 0.1), 2 epochs at learning rate "
             "0.005, on synthetic support pairs whose chosen response answers and whose rejected one brushes the "
             "customer off. Evaluated on the held-out test pairs, whose prompts no train pair shares. Preference "
             "accuracy: share of test pairs whose chosen response the implicit reward beta (log p_model - "
             "log p_base) ranks above the rejected, ties counting half, so the base (its own reference) scores "
             "0.5. Margins in nats; loss: cross-entropy per token of the chosen responses.", "",
             "| train seed | train / test pairs | steps | preference accuracy base → tuned | reward margin tuned | "
             "log-likelihood margin base → tuned | chosen loss base → tuned | run time |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        base, tuned = r["base"], r["tuned"]
        lines.append(f"| {r['seed']} | {r['train_pairs']} / {r['test_pairs']} | {r['steps']} | "
                     f"{base['preference_accuracy']:.3f} → {tuned['preference_accuracy']:.3f} | "
                     f"{tuned['reward_margin']:.2f} | {base['log_likelihood_margin']:.1f} → "
                     f"{tuned['log_likelihood_margin']:.1f} | {base['test_loss']:.3f} → {tuned['test_loss']:.3f} | "
                     f"{r['seconds']:.0f} s |")
    lines += ["", "The demo model's scores say nothing about language quality: they show that the preference "
              "pipeline moves a model towards the chosen responses on prompts it has not seen."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    commit = head_commit()  # the code measured, before others' commits can land during the run
    with tempfile.TemporaryDirectory(prefix="dpo-bench-") as tmp:
        results = [measure(seed, Path(tmp)) for seed in args.seeds]
    print(json.dumps(results, indent=2))
    command = "python bench/dpo_accuracy.py" + (f" --seeds {' '.join(map(str, args.seeds))}"
                                                if args.seeds != [42] else "")
    if not args.no_write:
        write_section(section(results, command, commit))
    return 0 if all(r["tuned"]["preference_accuracy"] > r["base"]["preference_accuracy"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
