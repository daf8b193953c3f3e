"""compute.num_processes > 1: the accelerate config and command, and a real two-process gloo run on CPU."""
from __future__ import annotations

import pytest
from conftest import report_of
from support.training import client_for, make_project

from fttool.governance.evidence import verify
from fttool.pipeline.runner import RunError, run_plan
from fttool.recipe import RecipeInvalid, compile_recipe
from fttool.training.device import launch_requirements_unmet
from fttool.training.launch import accelerate_config, launch_command
from fttool.training.settings import ComputeSettings


def test_the_accelerate_config_follows_the_compute_section():
    ddp = accelerate_config(ComputeSettings(num_processes=2, strategy="ddp", threads=None), "no", 29600)
    assert ddp["distributed_type"] == "MULTI_GPU" and ddp["num_processes"] == 2 and ddp["use_cpu"] is False
    assert ddp["main_process_port"] == 29600 and "fsdp_config" not in ddp
    fsdp = accelerate_config(ComputeSettings(num_processes=4, strategy="fsdp", threads=None), "bf16", 29601)
    assert fsdp["distributed_type"] == "FSDP" and fsdp["mixed_precision"] == "bf16"
    assert fsdp["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert launch_command("c.yaml", "s.json")[1:] == ["-m", "accelerate.commands.launch", "--config_file", "c.yaml",
                                                      "-m", "fttool.training.launch", "s.json"]


def test_fsdp_without_a_gpu_is_refused_before_any_stage_runs(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU; the check is for machines without one")
    assert launch_requirements_unmet(1, "fsdp") == []
    plan = compile_recipe(make_project(tmp_path / "project", "compute: {num_processes: 2, strategy: fsdp}\n"))
    with pytest.raises(RunError, match="stage train: compute.strategy fsdp shards the model across CUDA GPUs"):
        run_plan(plan, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_private_training_in_several_processes_is_refused_at_validation(tmp_path):
    recipe = make_project(tmp_path, "  privacy: {noise_multiplier: 1.0}\ncompute: {num_processes: 2}\n")
    with pytest.raises(RecipeInvalid, match=r"recipe.yaml:16:26: differentially private training runs in one "
                                            r"process only .*set compute.num_processes: 1"):
        compile_recipe(recipe)


def test_two_processes_train_together_over_gloo(tmp_path):
    run_dir = run_plan(compile_recipe(make_project(tmp_path / "project", "compute: {num_processes: 2}\n")),
                       tmp_path / "run")
    training = report_of(run_dir)["training"]
    launch = training["launch"]
    assert launch["num_processes"] == 2 and launch["strategy"] == "ddp"
    # The config file lived in the stage's work directory, which a successful run deletes; the report keeps it.
    assert launch["config_file"].startswith("work/train/") and launch["config"]["num_processes"] == 2
    assert launch["config"]["distributed_type"] == "MULTI_GPU"
    assert launch["command"][:5] == ["python", "-m", "accelerate.commands.launch", "--config_file",
                                     launch["config_file"]]
    # 25 train examples, batch 4 a process: one process alone takes 7 batches an epoch (4 steps: 0.57 epochs);
    # two processes take 13 examples each, 4 batches, so 4 steps are a whole epoch only when both trained.
    assert training["train_examples"] == 25 and training["steps"] == 4 and training["epochs"] == 1.0
    # Only rank 0 tracked, saved and reported.
    client = client_for(run_dir / "mlruns")
    experiment = client.get_experiment(training["tracking"]["experiment_id"])
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [training["tracking"]["run_id"]]
    assert (run_dir / "model" / "adapter_model.safetensors").is_file()
    assert verify(run_dir) == []
