"""`fttool run --resume` reuses a stage's outputs only as the seal outside the run directory records them.

Each attack edits a run directory the way a colleague with write access to it could (docs/security.md), then
resumes the run.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.runs import data_project

from fttool.pipeline.digest import sha256_file
from fttool.pipeline.layout import cache_dir
from fttool.pipeline.resume_seal import seal_path
from fttool.pipeline.runner import RunError, run_plan
from fttool.recipe import compile_recipe

PLANTED = "Send your card PIN to help@evil.example."


@pytest.fixture
def project(tmp_path):
    recipe = data_project(tmp_path)
    return recipe, run_plan(compile_recipe(recipe), tmp_path / "runs" / "a")


def plant(run_dir: Path, rel: str = "data/train.jsonl", state_too: bool = True) -> Path:
    """Edit one record of a stage output; with `state_too`, also its sha256 in run_state.json, as a forger would."""
    path = run_dir / rel
    lines = path.read_text().splitlines()
    record = json.loads(lines[0])
    record["output"] = PLANTED
    path.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    if state_too:
        state = json.loads((run_dir / "run_state.json").read_text())
        state["stages"]["split"]["outputs"][rel] = sha256_file(path)
        (run_dir / "run_state.json").write_text(json.dumps(state, indent=2))
    return path


def statuses(run_dir: Path) -> dict:
    return {s["name"]: s["status"] for s in json.loads((run_dir / "report.json").read_text())["stages"]}


def test_an_output_edited_with_its_digest_in_run_state_is_refused_naming_both(project):
    recipe, run_dir = project
    edited = plant(run_dir)
    with pytest.raises(RunError) as refused:
        run_plan(compile_recipe(recipe), run_dir, resume=True)
    message = str(refused.value)
    assert f"{edited}: sha256 differs from what stage split wrote" in message
    assert f"{run_dir / 'run_state.json'}: the record of stage split differs from the sealed one" in message
    assert "start a new run" in message
    assert PLANTED in edited.read_text(), "refused before any stage ran: nothing was rewritten"


def test_an_output_edited_alone_is_refused_not_silently_recomputed(project):
    recipe, run_dir = project
    edited = plant(run_dir, "data/test.jsonl", state_too=False)
    with pytest.raises(RunError, match=f"{edited}: sha256 differs from what stage split wrote"):
        run_plan(compile_recipe(recipe), run_dir, resume=True)


def test_a_stage_record_added_to_run_state_is_refused(project):
    """The runner seals before it writes run_state.json: a record the seal lacks was written by someone else."""
    recipe, run_dir = project
    state = json.loads((run_dir / "run_state.json").read_text())
    state["stages"]["pii"] = {**state["stages"]["split"], "name": "pii"}
    (run_dir / "run_state.json").write_text(json.dumps(state, indent=2))
    with pytest.raises(RunError, match="run_state.json: the record of stage pii is not in the seal"):
        run_plan(compile_recipe(recipe), run_dir, resume=True)


def test_an_untouched_run_resumes_from_the_seal(project):
    recipe, run_dir = project
    run_plan(compile_recipe(recipe), run_dir, resume=True)
    # split's outputs are in the run directory; ingest and dedup wrote only to work/, deleted when the run succeeded.
    assert statuses(run_dir) == {"ingest": "cached", "dedup": "cached", "split": "resumed"}


def test_without_a_seal_nothing_is_taken_from_the_run_directory(project, tmp_path, monkeypatch):
    """The run moved or the cache is another: run_state.json alone vouches for nothing."""
    recipe, run_dir = project
    edited = plant(run_dir)
    monkeypatch.setenv("FTTOOL_CACHE_DIR", str(tmp_path / "other-cache"))
    run_plan(compile_recipe(recipe), run_dir, resume=True)
    assert statuses(run_dir) == {"ingest": "ran", "dedup": "ran", "split": "ran"}
    assert PLANTED not in edited.read_text()
    sealed = json.loads(seal_path(tmp_path / "other-cache", run_dir).read_text())["stages"]
    assert sealed["split"]["outputs"]["data/train.jsonl"] == sha256_file(edited)


def test_a_seal_others_could_write_is_not_trusted(project):
    recipe, run_dir = project
    seals = seal_path(cache_dir(run_dir), run_dir).parent
    seals.chmod(0o777)
    with pytest.raises(RunError, match="is not a file that only you can write"):
        run_plan(compile_recipe(recipe), run_dir, resume=True)
