"""Small projects for tests of the runner and of a run's evidence (verify, sign-off, export)."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from conftest import write_support_project

DATA_ONLY = """
name: data-only
data:
  sources:
    - {path: records.jsonl, format: alpaca, tag: t}
  split: {train: 0.6, validation: 0.2, test: 0.2, seed: 3}
"""

LORA = """
name: tracked
data:
  sources:
    - {path: records.jsonl, format: alpaca, tag: t}
  split: {train: 0.7, validation: 0.3, test: 0.0, seed: 3}
  dedup: {exact: true, near: false}
model: {base: "demo:tiny-llama", license: apache-2.0}
train:
  lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}
  max_steps: 4
  batch_size: 4
  learning_rate: 0.005
  max_seq_length: 64
  seed: 11
"""


def data_project(root: Path, n: int = 20, extra: str = "") -> Path:
    """A data-only recipe on `n` questions plus one duplicate and one malformed line; the recipe's path."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"instruction": f"Question number {i} about accounts?", "output": f"Answer {i}."})
             for i in range(n)]
    lines += [lines[0], "{not json"]
    (root / "records.jsonl").write_text("\n".join(lines) + "\n")
    recipe = root / "recipe.yaml"
    recipe.write_text(textwrap.dedent(DATA_ONLY).lstrip() + extra)
    return recipe


def lora_project(root: Path, extra: str = "") -> Path:
    """A LoRA recipe on the demo model, 4 steps on 36 support questions (with the text of each answer: what must
    never reach a log); the recipe's path."""
    return write_support_project(root, LORA + extra)
