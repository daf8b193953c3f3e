"""Multi-process training: the train stage launched through `accelerate launch` (compute.num_processes > 1).

The stage writes an accelerate config file and the stage context into its work directory (inside the
run directory), runs `accelerate launch` from the run directory and waits. Every process runs the
same training (ddp: a replica of the model each; fsdp: shards of it) and rank 0 tracks, saves the
model and writes the summary the stage returns. The report records the config and the exact command.

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fttool.pipeline.plan import freeze, thaw

LAUNCH_DIR = "launch"
CONFIG_FILE = "accelerate_config.yaml"
SPEC_FILE = "stage_context.json"
SUMMARY_FILE = "summary.json"
LOG_FILE = "processes.log"
# FSDP settings for a Hugging Face transformer: wrap each decoder layer, gather a full state dict to save.
FSDP_CONFIG = {"fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
               "fsdp_state_dict_type": "FULL_STATE_DICT", "fsdp_cpu_ram_efficient_loading": True,
               "fsdp_offload_params": False, "fsdp_reshard_after_forward": True}


def launch_requirements_unmet(compute: Mapping[str, Any] | None) -> list[str]:
    """Why this machine cannot run the recipe's compute settings; empty if it can."""
    if not compute or compute["num_processes"] == 1:
        return []
    import torch

    gpus = torch.cuda.device_count()
    if compute["strategy"] == "fsdp" and not gpus:
        return ["compute.strategy fsdp shards the model across CUDA GPUs, and none is visible; use strategy ddp "
                "(gloo on CPU) or run on a machine with GPUs"]
    if gpus and compute["num_processes"] > gpus:
        return [f"compute.num_processes is {compute['num_processes']} but only {gpus} CUDA GPUs are visible; "
                "use one process per GPU"]
    return []


def free_port() -> int:
    """A free TCP port for the processes' rendezvous, so that concurrent runs do not collide."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accelerate_config(compute: Mapping[str, Any], mixed_precision: str, port: int) -> dict:
    """The accelerate config file's content for the recipe's compute section."""
    config = {"compute_environment": "LOCAL_MACHINE", "num_machines": 1, "machine_rank": 0,
              "num_processes": compute["num_processes"], "main_process_ip": "127.0.0.1", "main_process_port": port,
              "mixed_precision": mixed_precision, "use_cpu": False, "rdzv_backend": "static",
              "distributed_type": "FSDP" if compute["strategy"] == "fsdp" else "MULTI_GPU"}
    if compute["strategy"] == "fsdp":
        config["fsdp_config"] = FSDP_CONFIG
    return config


def launch_command(config_path: str, spec_path: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config_path,
            "-m", "fttool.training.launch", spec_path]


def launch_training(ctx, run_dir: Path, base_path: str, mixed_precision: str) -> dict:
    """Run the train stage in compute.num_processes processes; the summary rank 0 wrote, with `launch` added."""
    compute = ctx.params["compute"]
    launch_dir = ctx.work_dir / LAUNCH_DIR
    launch_dir.mkdir(parents=True, exist_ok=True)
    summary_path = launch_dir / SUMMARY_FILE
    summary_path.unlink(missing_ok=True)  # left by a failed attempt: only this launch's summary counts
    config = accelerate_config(compute, "no" if mixed_precision == "fp32" else mixed_precision, free_port())
    (launch_dir / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=True), encoding="utf-8")
    spec = {"params": thaw(ctx.params), "inputs": {k: str(v) for k, v in ctx.inputs.items()},
            "outputs": {k: str(v) for k, v in ctx.outputs.items()}, "recipe_dir": str(ctx.recipe_dir),
            "work_dir": str(ctx.work_dir), "base_path": base_path}
    (launch_dir / SPEC_FILE).write_text(json.dumps(spec, indent=2), encoding="utf-8")
    relative = launch_dir.relative_to(run_dir).as_posix()
    command = launch_command(f"{relative}/{CONFIG_FILE}", f"{relative}/{SPEC_FILE}")
    log = launch_dir / LOG_FILE
    with log.open("w", encoding="utf-8") as output:
        code = subprocess.call(command, cwd=run_dir, stdout=output, stderr=subprocess.STDOUT)
    if code != 0 or not summary_path.is_file():
        last = next((line for line in reversed(log.read_text(encoding="utf-8").splitlines()) if line.strip()), "")
        raise RuntimeError(f"train: the {compute['num_processes']}-process launch failed (exit code {code}): {last} "
                           f"(every process's output is in {log})")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    summary["launch"] = {"num_processes": compute["num_processes"], "strategy": compute["strategy"],
                         "config_file": f"{relative}/{CONFIG_FILE}", "config": config,
                         # The interpreter by name: its path is this machine's, not the run's.
                         "command": ["python"] + command[1:]}
    return summary


def main(argv: list[str]) -> None:
    """One launched process: rebuild the stage context and train; rank 0 writes the summary."""
    from fttool.pipeline.stage import StageContext
    from fttool.stages.train import TrainStage
    from fttool.training.tracking import is_main_process

    spec_path = Path(argv[0]).resolve()
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    ctx = StageContext(params=freeze(spec["params"]), inputs={k: Path(v) for k, v in spec["inputs"].items()},
                       outputs={k: Path(v) for k, v in spec["outputs"].items()},
                       recipe_dir=Path(spec["recipe_dir"]), work_dir=Path(spec["work_dir"]))
    result = TrainStage().train_here(ctx, spec["base_path"])
    if is_main_process():
        tmp = spec_path.with_name(SUMMARY_FILE + ".tmp")
        tmp.write_text(json.dumps(result.summary), encoding="utf-8")
        tmp.replace(spec_path.with_name(SUMMARY_FILE))


if __name__ == "__main__":
    main(sys.argv[1:])
