"""The PII stage's engine settings: compiled from the recipe (the data section's engine, pii.workers), recorded in
the plan as the other stages' are, and left out of the stage's fingerprint, which its output does not depend on
(tests/test_ray_engine.py checks the output on a Ray cluster byte for byte)."""
from __future__ import annotations

import json

from fttool.data.settings import EngineSettings, RaySettings
from fttool.pipeline.runner import Runner
from fttool.recipe import compile_recipe

RECIPE = """name: pii-engine
data:
  sources:
    - {{path: records.jsonl, format: alpaca}}
{data}pii:
{pii}"""


def _pii_stage(tmp_path, data: str, pii: str) -> tuple[str, object]:
    """(the PII stage's fingerprint in a run of this recipe, its parameters), over the same split files."""
    (tmp_path / "records.jsonl").write_text(json.dumps({"instruction": "Call Maria.", "output": "No."}) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(data=data, pii=pii or "  enabled: true\n"), encoding="utf-8")
    plan = compile_recipe(recipe)
    spec = next(stage for stage in plan.stages if stage.name == "pii")
    run_dir = tmp_path / "run"
    for rel in spec.inputs.values():
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / rel).write_text('{"id": "a", "format": "alpaca", "instruction": "Call Maria."}\n')
    return Runner(plan, run_dir, tmp_path / "cache", resume=False).fingerprint(spec), spec.params


def test_the_pii_stage_runs_on_the_data_engine_with_its_own_workers(tmp_path):
    _, params = _pii_stage(tmp_path, "  workers: 3\n  engine: ray\n  ray: {address: '10.0.0.5:6379', num_cpus: 8}\n",
                           "  workers: 2\n")
    assert params.compute == EngineSettings("ray", 2, RaySettings("10.0.0.5:6379", 8))
    _, params = _pii_stage(tmp_path, "", "")
    assert params.compute == EngineSettings("local", None, RaySettings("", None))


def test_the_engine_is_left_out_of_the_pii_fingerprint_and_nothing_else_is(tmp_path):
    local, _ = _pii_stage(tmp_path, "", "")
    assert _pii_stage(tmp_path, "  engine: ray\n  ray: {num_cpus: 2}\n", "  workers: 2\n")[0] == local
    assert _pii_stage(tmp_path, "", "  entities: [PERSON]\n")[0] != local
    assert _pii_stage(tmp_path, "  workers: 1\n  engine: ray\n", "  workers: 1\n")[0] == local
