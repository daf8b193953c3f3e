"""A small tracked training project and a reader of its MLflow store, for the tracking and launch tests."""
from __future__ import annotations

import os
from pathlib import Path

from conftest import write_support_project

from fttool.training.tracking import FILE_STORE_ENV

TRACKED_RECIPE = """
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


def make_project(root: Path, extra: str = "") -> Path:
    """A recipe on 36 support questions (with the text of each answer: what must never reach a log)."""
    return write_support_project(root, TRACKED_RECIPE + extra)


def client_for(store: Path):
    from mlflow.tracking import MlflowClient

    os.environ.setdefault(FILE_STORE_ENV, "true")  # MLflow 3 asks every reader of a file store to opt in
    return MlflowClient(tracking_uri=store.resolve().as_uri())
