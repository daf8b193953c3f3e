"""Shared helpers: tests build their own tiny fixtures and never read ../shared/data."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from fttool.data.records import write_jsonl
from fttool.pipeline.params import build
from fttool.pipeline.stage import StageContext
from fttool.stages import stage_class

TOPICS = ["savings account", "credit card", "home insurance", "mortgage", "pension plan", "travel insurance"]
ACTIONS = ["open", "close", "change", "review", "cancel", "renew"]


def write_support_project(root: Path, recipe: str) -> Path:
    """`recipe` (dedented) as root/recipe.yaml beside records.jsonl, 36 alpaca support questions; the recipe's path."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"instruction": f"How do I {action} my {topic}?",
                         "output": f"To {action} your {topic}, open the app and follow the steps."})
             for action in ACTIONS for topic in TOPICS]
    (root / "records.jsonl").write_text("\n".join(lines) + "\n")
    (root / "recipe.yaml").write_text(textwrap.dedent(recipe).lstrip())
    return root / "recipe.yaml"


def report_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def alpaca(instruction: str, output: str, input_text: str = "", **meta) -> dict:
    """A record in fttool's internal shape, as the ingest stage writes it."""
    import hashlib
    import json

    fields = {"instruction": instruction, "input": input_text, "output": output}
    rid = "r" + hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    return {"id": rid, "source": "test", "format": "alpaca", **fields, "meta": meta}


@pytest.fixture
def run_stage(tmp_path: Path):
    """Run one stage directly on record lists: run_stage(name, params, {logical: records or path})."""

    def _run(name: str, params: dict, inputs: dict, outputs: dict | None = None):
        cls = stage_class(name)
        in_paths = {}
        for logical, value in inputs.items():
            if isinstance(value, Path):
                in_paths[logical] = value
            else:
                in_paths[logical] = tmp_path / "in" / f"{logical}.jsonl"
                write_jsonl(in_paths[logical], value)
        out_paths = outputs or {**{w: tmp_path / "out" / f"{w}.jsonl" for w in cls.writes},
                                **{a: tmp_path / "out" / rel for a, rel in cls.artifacts.items()}}
        for path in out_paths.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        work = tmp_path / "scratch"
        work.mkdir(exist_ok=True)
        if cls.Params is not None and isinstance(params, dict):
            params = build(cls.Params, params, name)  # every field given, as the compiler would
        ctx = StageContext(params=params, inputs=in_paths, outputs=out_paths, recipe_dir=tmp_path, work_dir=work,
                           run_dir=tmp_path / "out")
        return cls().run(ctx), out_paths

    return _run
