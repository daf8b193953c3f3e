"""compute.num_processes > 1: the accelerate config and command, and a real two-process gloo run on CPU."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from conftest import report_of
from support.runs import lora_project as make_project
from support.training import client_for

from fttool.governance.evidence import verify
from fttool.pipeline.runner import RunError, run_plan
from fttool.recipe import RecipeInvalid, compile_recipe
from fttool.training.device import launch_requirements_unmet
from fttool.training.launch import accelerate_config, free_port, launch_command
from fttool.training.settings import ComputeSettings, DeepSpeedSettings


def compute(num_processes: int = 2, strategy: str = "ddp", **settings) -> ComputeSettings:
    return ComputeSettings(**{"num_processes": num_processes, "num_machines": 1, "machine_rank": 0,
                              "main_process_ip": None, "main_process_port": None, "strategy": strategy,
                              "deepspeed": None, "threads": None, **settings})


def test_the_accelerate_config_follows_the_compute_section():
    ddp = accelerate_config(compute(2), "no", 29600)
    assert ddp["distributed_type"] == "MULTI_GPU" and ddp["num_processes"] == 2 and ddp["use_cpu"] is False
    assert ddp["main_process_port"] == 29600 and "fsdp_config" not in ddp and "deepspeed_config" not in ddp
    assert ddp["num_machines"] == 1 and ddp["machine_rank"] == 0 and ddp["main_process_ip"] == "127.0.0.1"
    fsdp = accelerate_config(compute(4, "fsdp"), "bf16", 29601)
    assert fsdp["distributed_type"] == "FSDP" and fsdp["mixed_precision"] == "bf16"
    assert fsdp["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert launch_command("c.yaml", "s.json")[1:] == ["-m", "accelerate.commands.launch", "--config_file", "c.yaml",
                                                      "-m", "fttool.training.launch", "s.json"]


def test_several_machines_and_deepspeed_are_written_into_the_accelerate_config():
    second = accelerate_config(compute(2, num_machines=3, machine_rank=1, main_process_ip="10.0.0.5",
                                       main_process_port=29700), "no", 29700)
    # accelerate counts every machine's processes; each machine meets machine 0 at its address and port.
    assert second["num_processes"] == 6 and second["num_machines"] == 3 and second["machine_rank"] == 1
    assert second["main_process_ip"] == "10.0.0.5" and second["main_process_port"] == 29700
    assert second["same_network"] is True and second["rdzv_backend"] == "static"
    zero3 = accelerate_config(compute(2, "deepspeed", deepspeed=DeepSpeedSettings(zero_stage=3)), "bf16", 29600, 4)
    assert zero3["distributed_type"] == "DEEPSPEED" and "fsdp_config" not in zero3
    assert zero3["deepspeed_config"]["zero_stage"] == 3 and zero3["deepspeed_config"]["zero3_save_16bit_model"]
    assert zero3["deepspeed_config"]["gradient_accumulation_steps"] == 4
    assert accelerate_config(compute(2, "deepspeed", deepspeed=DeepSpeedSettings(zero_stage=1)), "no",
                             29600)["deepspeed_config"]["zero_stage"] == 1


def test_deepspeed_without_the_package_or_a_gpu_is_refused_before_any_stage_runs(tmp_path):
    import importlib.util

    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("this machine can run DeepSpeed; the check is for machines that cannot")
    plan = compile_recipe(make_project(tmp_path / "project", "compute: {num_processes: 2, strategy: deepspeed, "
                                                             "deepspeed: {zero_stage: 3}}\n"))
    assert plan.stages[-1].params.compute.deepspeed == DeepSpeedSettings(zero_stage=3)
    with pytest.raises(RunError, match="stage train: compute.strategy deepspeed (needs the deepspeed package|runs "
                                       "ZeRO on CUDA GPUs)"):
        run_plan(plan, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("compute_section", "message"), [
    ("{num_machines: 2, machine_rank: 2, main_process_ip: 10.0.0.5, main_process_port: 29500}",
     r"recipe.yaml:\d+:\d+: machine_rank 2 is not below num_machines 2: ranks run from 0 to 1"),
    ("{num_machines: 2}", r"2 machines need compute.main_process_ip and compute.main_process_port"),
    ("{strategy: ddp, deepspeed: {zero_stage: 2}}", r"recipe.yaml:\d+:\d+: deepspeed settings apply to strategy: "
                                                    r"deepspeed only"),
])
def test_machine_settings_that_cannot_work_are_refused_at_validation(tmp_path, compute_section, message):
    with pytest.raises(RecipeInvalid, match=message):
        compile_recipe(make_project(tmp_path, f"compute: {compute_section}\n"))


def test_the_machine_rank_option_replaces_the_recipes_and_is_checked(tmp_path):
    recipe = make_project(tmp_path, "compute: {num_machines: 2, main_process_ip: 10.0.0.5, main_process_port: 29500}\n")
    assert compile_recipe(recipe).stages[-1].params.compute.machine_rank == 0
    assert compile_recipe(recipe, machine_rank=1).stages[-1].params.compute.machine_rank == 1
    with pytest.raises(RecipeInvalid, match="machine_rank 5 is not below num_machines 2"):
        compile_recipe(recipe, machine_rank=5)


def test_resuming_a_run_of_several_machines_is_refused(tmp_path):
    from click.testing import CliRunner

    from fttool.cli import cli

    recipe = make_project(tmp_path, "compute: {num_machines: 2, main_process_ip: 127.0.0.1, "
                                    "main_process_port: 29500}\n")
    for rank in ("0", "1"):
        result = CliRunner().invoke(cli, ["run", str(recipe), "--machine-rank", rank, "--resume",
                                          "--output-dir", str(tmp_path / "run")])
        assert result.exit_code == 1 and "--resume is not supported when several machines train" in result.output
    assert not (tmp_path / "run").exists()


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
    recipe = make_project(tmp_path, "  privacy: {noise_multiplier: 1.0}\ncompute: {num_machines: 2, "
                                    "main_process_ip: 10.0.0.5, main_process_port: 29500}\n")
    with pytest.raises(RecipeInvalid, match=r"recipe.yaml:16:\d+: differentially private training runs in one "
                                            r"process on one machine only .*set compute.num_machines: 1"):
        compile_recipe(recipe)


@pytest.mark.slow
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


# Long enough for both machines' data stages and training on a loaded machine; a failed rendezvous ends here.
MACHINES_TIMEOUT_S = 420


def run_machines(recipes: dict[int, object], runs: dict[int, object]) -> dict[int, subprocess.CompletedProcess]:
    """`fttool run` of each rank's recipe at once, as each machine would; every process (accelerate's and
    torch's launchers and their workers) is killed when one of them outlives the timeout."""
    processes = {rank: subprocess.Popen([sys.executable, "-m", "fttool", "run", str(recipes[rank]),
                                         "--output-dir", str(run),
                                         "--machine-rank", str(rank)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
                 for rank, run in runs.items()}
    done = {}
    try:
        for rank, process in processes.items():
            output, _ = process.communicate(timeout=MACHINES_TIMEOUT_S)
            done[rank] = subprocess.CompletedProcess(process.args, process.returncode, output)
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return done


@pytest.mark.slow
def test_two_machines_train_together_over_gloo_on_localhost(tmp_path):
    recipe = make_project(tmp_path / "project", "compute: {num_machines: 2, main_process_ip: 127.0.0.1, "
                                                f"main_process_port: {free_port()}}}\n")
    # Separate parents: each "machine" has its own cache beside its run directory, as it would on its own disk.
    runs = {rank: tmp_path / f"machine{rank}" / "run" for rank in (0, 1)}
    done = run_machines({0: recipe, 1: recipe}, runs)
    for rank, result in done.items():
        assert result.returncode == 0, f"machine {rank}:\n{result.stdout[-3000:]}"
    training = report_of(runs[0])["training"]
    launch = training["launch"]
    assert launch["machines"] == 2 and launch["processes_per_machine"] == 1 and launch["num_processes"] == 2
    assert launch["strategy"] == "ddp" and launch["config"]["machine_rank"] == 0
    assert launch["config"]["num_machines"] == 2 and launch["config"]["main_process_ip"] == "127.0.0.1"
    # 25 train examples, batch 4: 4 steps are a whole epoch only when the two machines split them (13 and 12).
    assert training["train_examples"] == 25 and training["steps"] == 4 and training["epochs"] == 1.0
    assert (runs[0] / "model" / "adapter_model.safetensors").is_file()
    assert verify(runs[0]) == []
    assert "2 on 2 machines, 1 each (ddp, accelerate launch)" in (runs[0] / "report.html").read_text()
    assert "in 2 processes (ddp, 1 on each of 2 machines)" in (runs[0] / "MODEL_CARD.md").read_text()
    # Machine 1 prepared the same data and trained, and wrote nothing that could contradict machine 0's report.
    assert "machine 1 trained with machine 0" in done[1].stdout
    assert (runs[1] / "data" / "train.jsonl").read_bytes() == (runs[0] / "data" / "train.jsonl").read_bytes()
    for absent in ("report.json", "report.sha256", "model", "work"):
        assert not (runs[1] / absent).exists(), absent
    # Again beside the first runs (same caches): the data stages come from the cache, but machine 0 trains again,
    # since machine 1 waits for its processes.
    again = {rank: run.with_name("again") for rank, run in runs.items()}
    for rank, result in run_machines({0: recipe, 1: recipe}, again).items():
        assert result.returncode == 0, f"machine {rank}:\n{result.stdout[-3000:]}"
    statuses = {stage["name"]: stage["status"] for stage in report_of(again[0])["stages"]}
    assert statuses["split"] == "cached" and statuses["train"] == "ran"


@pytest.mark.slow
def test_machines_that_prepared_different_data_refuse_to_train_together(tmp_path):
    section = f"compute: {{num_machines: 2, main_process_ip: 127.0.0.1, main_process_port: {free_port()}}}\n"
    recipes = {rank: make_project(tmp_path / f"project{rank}", section) for rank in (0, 1)}
    records = tmp_path / "project1" / "records.jsonl"
    records.write_text("".join(records.read_text().splitlines(keepends=True)[1:]))  # machine 1 lacks a record
    runs = {rank: tmp_path / f"machine{rank}" / "run" for rank in (0, 1)}
    done = run_machines(recipes, runs)
    assert [done[rank].returncode for rank in (0, 1)] == [1, 1], done[0].stdout[-3000:]
    for rank in (0, 1):
        log = next((runs[rank] / "work" / "train").glob("*/launch/processes.log")).read_text()
        assert "machine(s) 1 prepared other train or validation splits than machine 0" in log
    assert not (runs[0] / "report.json").exists() and not (runs[0] / "model").exists()
