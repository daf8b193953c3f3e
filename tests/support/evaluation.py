"""Records and a trained adapter for the evaluation tests, built from the train stage's own compiled parameters."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from conftest import ACTIONS, TOPICS, alpaca

from fttool.data.records import write_jsonl
from fttool.pipeline.stage import StageContext
from fttool.recipe import compile_recipe
from fttool.stages import stage_class


def support_records(n: int, offset: int = 0) -> list[dict]:
    """`n` distinct support questions and answers, starting at `offset` of the 36 there are."""
    pairs = [(action, topic) for action in ACTIONS for topic in TOPICS][offset:offset + n]
    return [alpaca(f"How do I {action} my {topic}?", f"To {action} your {topic}, open the app and follow the steps.")
            for action, topic in pairs]


def compiled_train_params(root: Path, train: str, model: str = '{base: "demo:tiny-llama", license: apache-2.0}'):
    """The train stage's parameters as the compiler builds them for a recipe with `train` and `model` (YAML)."""
    (root / "d.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    (root / "train-recipe.yaml").write_text(textwrap.dedent(f"""\
        name: evaluation-fixture
        data:
          sources: [{{path: d.jsonl, format: alpaca}}]
          split: {{train: 0.6, validation: 0.2, test: 0.2}}
        model: {model}
        train: {train}
        tracking: {{enabled: false}}
        """))
    plan = compile_recipe(root / "train-recipe.yaml")
    return next(stage.params for stage in plan.stages if stage.name == "train")


def run_stage_in(root: Path, name: str, params, inputs: dict, tag: str) -> tuple:
    """Run stage `name` under root/tag on record lists or paths; (its result, its output paths)."""
    cls = stage_class(name)
    in_paths = {}
    for logical, value in inputs.items():
        in_paths[logical] = value if not isinstance(value, list) else root / tag / "in" / f"{logical}.jsonl"
        if isinstance(value, list):
            write_jsonl(in_paths[logical], value)
    outputs = {**{w: root / tag / f"{w}.jsonl" for w in cls.writes},
               **{a: root / tag / rel for a, rel in cls.artifacts.items()}}
    for path in outputs.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    (root / tag / "scratch").mkdir(parents=True, exist_ok=True)
    ctx = StageContext(params=params, inputs=in_paths, outputs=outputs, recipe_dir=root,
                       work_dir=root / tag / "scratch", run_dir=root / tag)
    return cls().run(ctx), outputs
