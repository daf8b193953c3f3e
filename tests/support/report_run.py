"""A small run with every check on (PII policy, bias, memorisation canaries, a report policy), for report tests.

Every run of the same recipe under the same root after the first is served from the stage cache, so
the pipeline trains only once a session however many tests ask for a run directory.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from click.testing import CliRunner
from conftest import ACTIONS, TOPICS

from fttool.cli import cli
from fttool.report.verdict import verdict

REGULATED = Path(__file__).resolve().parents[2] / "policies" / "regulated.yaml"
RECIPE = f"""
name: browser
description: Answers retail-banking support questions (test run).
allow_paths_outside_recipe_dir: true  # the policy is the repository's
data:
  sources:
    - {{path: records.jsonl, format: alpaca, tag: unit}}
  split: {{train: 0.6, validation: 0.2, test: 0.2, seed: 1}}
  dedup: {{exact: true, near: false}}
bias: {{fields: [region]}}
model: {{base: "demo:tiny-llama", license: apache-2.0}}
train:
  lora: {{r: 4, alpha: 8, target_modules: [q_proj, v_proj]}}
  max_steps: 6
  batch_size: 4
  max_seq_length: 96
evaluate: {{max_new_tokens: 8, batch_size: 8}}
memorisation: {{canaries: 3, repetitions: 2, references: 127, max_exposure_bits: 6}}
report: {{policy: {REGULATED}}}
"""


def small_run(root: Path, name: str) -> Path:
    """Run the small recipe into root/runs/<name> (the project is written on first use) and return the run dir."""
    if not (root / "recipe.yaml").is_file():
        root.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"instruction": f"How do I {action} my {topic} quickly?",
                             "output": f"To {action} your {topic}, open the app and follow the steps.",
                             "region": region})
                 for action in ACTIONS for topic, region in zip(TOPICS, ["north", "south"] * 3)]
        (root / "records.jsonl").write_text("\n".join(lines) + "\n")
        (root / "recipe.yaml").write_text(textwrap.dedent(RECIPE).lstrip())
    run_dir = root / "runs" / name
    result = CliRunner().invoke(cli, ["run", str(root / "recipe.yaml"), "--output-dir", str(run_dir)])
    # The recipe has no pii section, so the regulated policy's PII-101 fails: the verdict is fail and the run exits 1
    # after writing its report, as every run with a failed policy does.
    report = json.loads((run_dir / "report.json").read_text()) if (run_dir / "report.json").is_file() else None
    assert report is not None and result.exit_code == (1 if verdict(report).status == "fail" else 0), (
        result.output + str(result.exception))
    return run_dir
