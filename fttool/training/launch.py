"""Multi-process training: any backend's job launched through `accelerate launch` (more than one process in all:
compute.num_processes on each of compute.num_machines machines).

`launch_job` writes the job's examples (the backend's `prepare`, once for every process to map), an accelerate config
file and the job (JSON) into the job's work directory (inside the run directory), runs `accelerate launch` from the
run directory and waits. Every process runs the same job (ddp: a replica of the model each; fsdp and deepspeed: shards
of it) and rank 0 tracks, saves the model and writes the summary returned. The report records the config, the
machines and processes per machine, the strategy, the ranks as they met (fttool.training.machines) and the exact
command.

With several machines, each runs `fttool run` on the same recipe and data with its own rank; each launches its
processes, which meet machine 0's at compute.main_process_ip and main_process_port. Global rank 0 is on
machine 0, so only machine 0 gets a model and a summary (see fttool.pipeline.worker for the others).

On CPU the processes talk over gloo. accelerate's `MULTI_GPU` type is the one that starts N processes
with torch's elastic launcher; the Trainer runs with `use_cpu`, which makes each process join a gloo
group instead of looking for GPUs. FSDP needs CUDA GPUs.

`python -m fttool.training.launch SPEC` is the entry point each process runs.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from fttool.training.backends import backend_for
from fttool.training.job import TrainJob
from fttool.training.machines import LAUNCH_DIR, RANKS_FILE
from fttool.training.modeling import training_tokenizer
from fttool.training.settings import ComputeSettings

CONFIG_FILE = "accelerate_config.yaml"
JOB_FILE = "job.json"
SUMMARY_FILE = "summary.json"
LOG_FILE = "processes.log"
# FSDP settings for a Hugging Face transformer: wrap each decoder layer, gather a full state dict to save.
FSDP_CONFIG = {"fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
               "fsdp_state_dict_type": "FULL_STATE_DICT", "fsdp_cpu_ram_efficient_loading": True,
               "fsdp_offload_params": False, "fsdp_reshard_after_forward": True}


def free_port() -> int:
    """A free TCP port for the processes' rendezvous, so that concurrent runs do not collide."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accelerate_config(compute: ComputeSettings, mixed_precision: str, port: int,
                      gradient_accumulation_steps: int = 1) -> dict:
    """The accelerate config file's content for the recipe's compute section; `port` is the rendezvous port on
    machine 0 (compute.main_process_port when set)."""
    distributed_type = {"fsdp": "FSDP", "deepspeed": "DEEPSPEED"}.get(compute.strategy, "MULTI_GPU")
    config = {"compute_environment": "LOCAL_MACHINE", "num_machines": compute.num_machines,
              "machine_rank": compute.machine_rank,
              # accelerate counts the processes of every machine together.
              "num_processes": compute.total_processes, "main_process_ip": compute.main_process_ip or "127.0.0.1",
              "main_process_port": port, "mixed_precision": mixed_precision, "use_cpu": False,
              # Every machine meets machine 0 at the address and port given, rather than through a rendezvous server.
              "rdzv_backend": "static", "same_network": True, "distributed_type": distributed_type}
    if compute.strategy == "fsdp":
        config["fsdp_config"] = FSDP_CONFIG
    if compute.strategy == "deepspeed" and compute.deepspeed is not None:
        config["deepspeed_config"] = {
            "zero_stage": compute.deepspeed.zero_stage, "gradient_accumulation_steps": gradient_accumulation_steps,
            "offload_optimizer_device": "none", "offload_param_device": "none", "zero3_init_flag": False,
            # ZeRO-3 shards the parameters: gather them so that rank 0 saves a whole model.
            "zero3_save_16bit_model": compute.deepspeed.zero_stage == 3,
            # torchrun on each machine (as fttool run is), not DeepSpeed's ssh launcher.
            "deepspeed_multinode_launcher": "standard"}
    return config


def launch_command(config_path: str, job_path: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config_path,
            "-m", "fttool.training.launch", job_path]


def launch_job(job: TrainJob, mixed_precision: str) -> dict:
    """Run `job` in compute.num_processes processes on this machine, with the other machines' processes when
    there are several; the summary rank 0 wrote, with `launch` added. On a machine other than 0, which saves and
    summarises nothing, only `launch`."""
    compute = job.params.compute
    # Written here once, for every process to map (fttool.training.arrow_examples); a split with nothing to train on
    # fails before any process starts.
    backend_for(job.objective).prepare(job, training_tokenizer(job.base_path, job.params.model, job.chat_template))
    launch_dir = job.work_dir / LAUNCH_DIR
    launch_dir.mkdir(parents=True, exist_ok=True)
    summary_path, ranks_path = launch_dir / SUMMARY_FILE, launch_dir / RANKS_FILE
    for earlier in (summary_path, ranks_path):  # left by a failed attempt: only this launch's count
        earlier.unlink(missing_ok=True)
    config = accelerate_config(compute, "no" if mixed_precision == "fp32" else mixed_precision,
                               compute.main_process_port or free_port(), job.params.gradient_accumulation_steps)
    (launch_dir / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=True), encoding="utf-8")
    (launch_dir / JOB_FILE).write_text(job.to_json(), encoding="utf-8")
    relative = launch_dir.relative_to(job.run_dir).as_posix()
    command = launch_command(f"{relative}/{CONFIG_FILE}", f"{relative}/{JOB_FILE}")
    log = launch_dir / LOG_FILE
    with log.open("w", encoding="utf-8") as output:
        code = subprocess.call(command, cwd=job.run_dir, stdout=output, stderr=subprocess.STDOUT)
    main_machine = compute.machine_rank == 0
    if code != 0 or (main_machine and not summary_path.is_file()):
        last = next((line for line in reversed(log.read_text(encoding="utf-8").splitlines()) if line.strip()), "")
        raise RuntimeError(f"train: the {compute.total_processes}-process launch on {compute.num_machines} "
                           f"machine(s) failed on machine {compute.machine_rank} (exit code {code}): {last} "
                           f"(this machine's processes' output is in {log})")
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if main_machine else {}
    summary["launch"] = {"num_processes": compute.total_processes, "machines": compute.num_machines,
                         "processes_per_machine": compute.num_processes, "strategy": compute.strategy,
                         **({"ranks": json.loads(ranks_path.read_text(encoding="utf-8"))} if main_machine else {}),
                         "config_file": f"{relative}/{CONFIG_FILE}", "config": config,
                         # The interpreter by name: its path is this machine's, not the run's.
                         "command": ["python"] + command[1:]}
    return summary


def main(argv: list[str]) -> None:
    """One launched process: read the job and run it; rank 0 writes the summary."""
    from fttool.training.run import run_job
    from fttool.training.tracking import is_main_process

    job_path = Path(argv[0]).resolve()
    summary = run_job(TrainJob.from_json(job_path.read_text(encoding="utf-8")))
    if is_main_process():
        tmp = job_path.with_name(SUMMARY_FILE + ".tmp")
        tmp.write_text(json.dumps(summary), encoding="utf-8")
        tmp.replace(job_path.with_name(SUMMARY_FILE))


if __name__ == "__main__":
    main(sys.argv[1:])
