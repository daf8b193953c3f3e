"""Run tracking with MLflow's local file store (real mlflow, real training on the demo model, CPU)."""
from __future__ import annotations

import json

import pytest
from conftest import ACTIONS, TOPICS, report_of
from support.runs import lora_project as make_project
from support.training import client_for

from fttool.governance.evidence import verify
from fttool.pipeline.digest import files_under, sha256_file
from fttool.pipeline.plan import thaw
from fttool.pipeline.runner import run_plan
from fttool.recipe import RecipeInvalid, compile_recipe
from fttool.training.tracking import TrackingError

# Records as the split stage writes them, for running the train stage alone.
RECORDS = [{"id": f"r{i}", "source": "t", "format": "alpaca", "instruction": f"How do I {a} my {t}?", "input": "",
            "output": f"To {a} your {t}, use the app.", "meta": {}}
           for i, (a, t) in enumerate((a, t) for a in ACTIONS for t in TOPICS)]


def test_a_run_is_tracked_in_its_run_directory_and_the_store_is_in_the_lineage(tmp_path):
    run_dir = run_plan(compile_recipe(make_project(tmp_path / "project")), tmp_path / "run")
    report = report_of(run_dir)
    training, tracking = report["training"], report["training"]["tracking"]
    assert tracking["uri"] == "mlruns"
    client = client_for(run_dir / tracking["uri"])
    run = client.get_run(tracking["run_id"])
    assert run.info.status == "FINISHED" and run.info.experiment_id == tracking["experiment_id"]
    assert client.get_experiment(tracking["experiment_id"]).name == "tracked"  # the recipe name by default
    params = run.data.params
    assert params["lora.r"] == "4" and params["lora.target_modules"] == "q_proj,v_proj"
    assert params["learning_rate"] == "0.005" and params["compute.num_processes"] == "1"

    def history(name):
        return [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, name),
                                                  key=lambda m: (m.step, m.timestamp))]

    assert history("train_loss") == [(p["step"], pytest.approx(p["loss"])) for p in training["loss_history"]]
    assert [step for step, _ in history("learning_rate")] == [p["step"] for p in training["loss_history"]]
    # Validation loss is measured along the way, so the report has a curve for it too.
    assert len(training["validation_loss_history"]) >= 2
    assert {step for step, _ in history("validation_loss")} == {p["step"] for p in training["validation_loss_history"]}
    assert run.data.metrics["final_validation_loss"] == pytest.approx(training["validation_loss"])

    digests = json.loads((run_dir / "mlruns" / tracking["experiment_id"] / tracking["run_id"] / "artifacts"
                          / "model_sha256.json").read_text())
    assert digests == {p.relative_to(run_dir / "model").as_posix(): sha256_file(p)
                       for p in files_under(run_dir / "model")}

    stored = files_under(run_dir / "mlruns")
    texts = " ".join(p.read_text(errors="replace") for p in stored)
    assert "savings account" not in texts and "open the app" not in texts, "no record text is tracked"
    lineage = {a["path"] for a in report["lineage"]["artifacts"] if a["stage"] == "train"}
    assert {p.relative_to(run_dir).as_posix() for p in stored} <= lineage
    assert verify(run_dir) == []

    html = (run_dir / "report.html").read_text()
    assert "<title>Training loss by step</title>" in html and "<title>Validation loss by step</title>" in html
    assert tracking["run_id"] in html


def test_a_store_that_cannot_be_used_fails_the_stage_before_training(tmp_path, run_stage):
    plan = compile_recipe(make_project(tmp_path / "project", "tracking: {uri: 'nosuch://tracking-server'}\n"))
    params = thaw(next(stage.params for stage in plan.stages if stage.name == "train"))
    train = [{"id": "r1", "source": "t", "format": "alpaca", "instruction": "Hi?", "input": "", "output": "Hello.",
              "meta": {}}]
    with pytest.raises(TrackingError, match="tracking: could not connect in the MLflow store at "
                                            "nosuch://tracking-server: .*set tracking.enabled: false"):
        run_stage("train", params, {"train": train, "validation": train})
    assert not (tmp_path / "out" / "model").exists(), "nothing was trained"


def test_a_crashed_training_leaves_its_run_marked_failed(tmp_path, run_stage, monkeypatch):
    from fttool.training.faults import InjectedFault

    plan = compile_recipe(make_project(tmp_path / "project"))
    params = thaw(next(stage.params for stage in plan.stages if stage.name == "train"))
    monkeypatch.setenv("FTTOOL_FAULT", "train_step:3")  # fails at the end of step 3, before its loss is logged
    with pytest.raises(InjectedFault):
        run_stage("train", params, {"train": RECORDS[:24], "validation": RECORDS[24:]})
    client = client_for(tmp_path / "out" / "mlruns")
    (experiment,) = [e for e in client.search_experiments() if e.name == "tracked"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]


def test_tracking_off_tracks_nothing_and_unknown_keys_are_errors(tmp_path, run_stage):
    with pytest.raises(RecipeInvalid,
                       match=r"recipe.yaml:15:12: unknown key 'experimnt'; did you mean 'experiment'"):
        compile_recipe(make_project(tmp_path / "bad", "tracking: {experimnt: x}\n"))
    plan = compile_recipe(make_project(tmp_path / "project", "tracking: {enabled: false}\n"))
    params = thaw(next(stage.params for stage in plan.stages if stage.name == "train"))
    result, outputs = run_stage("train", params | {"max_steps": 2}, {"train": RECORDS[:24], "validation": RECORDS[24:]})
    assert result.summary["tracking"] is None
    assert outputs["tracking"].is_dir() and not list(outputs["tracking"].iterdir())


def test_differentially_private_training_is_tracked_too(tmp_path, run_stage):
    plan = compile_recipe(make_project(tmp_path / "project", "  privacy: {noise_multiplier: 1.2, delta: 0.05}\n"))
    params = thaw(next(stage.params for stage in plan.stages if stage.name == "train"))
    result, outputs = run_stage("train", params | {"max_steps": 3}, {"train": RECORDS[:24], "validation": RECORDS[24:]})
    tracking, privacy = result.summary["tracking"], result.summary["privacy"]
    client = client_for(outputs["tracking"])
    run = client.get_run(tracking["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["privacy.noise_multiplier"] == "1.2"
    assert run.data.metrics["final_epsilon"] == pytest.approx(privacy["epsilon"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [
        p["step"] for p in result.summary["loss_history"]]
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "validation_loss")) == [
        p["step"] for p in result.summary["validation_loss_history"]] != []


def test_a_resumed_run_tracks_the_steps_before_its_checkpoint_too(tmp_path, monkeypatch):
    from fttool.pipeline.runner import RunError

    recipe = make_project(tmp_path / "project", "  save_steps: 2\n")
    monkeypatch.setenv("FTTOOL_FAULT", "train_step:3")
    with pytest.raises(RunError, match="InjectedFault"):
        run_plan(compile_recipe(recipe), tmp_path / "run")
    monkeypatch.delenv("FTTOOL_FAULT")
    run_dir = run_plan(compile_recipe(recipe), tmp_path / "run", resume=True)
    training = report_of(run_dir)["training"]
    assert training["resumed_from_step"] == 2
    client = client_for(run_dir / "mlruns")
    (run,) = client.search_runs([training["tracking"]["experiment_id"]])  # the failed attempt's store was replaced
    assert run.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "train_loss")) == [1, 2, 3, 4]
    assert verify(run_dir) == []
