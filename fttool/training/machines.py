"""The processes of a launch, as they actually met: which ranks ran on which machine and device, and whether the
machines trained on the same data.

Before the first step every launched process tells the others its global rank, its machine, its rank on that
machine and its device; rank 0 writes the list (RANKS_FILE, in the launch directory), which the report gives as
`training.launch.ranks`: what the processes were, not what the config asked for.

Each machine prepares the splits itself from the same recipe and sources (fttool.pipeline.worker). The stages are
deterministic, but a source file that differs between machines, or a model-based augmentation that is not
bit-for-bit reproducible across hardware, would make each machine train on other records than machine 0 reports,
with no error. So with several machines every process also sends the digests of its splits, and all stop when one
differs from machine 0's.
"""
from __future__ import annotations

import json
import os

from fttool.pipeline.digest import sha256_file
from fttool.training.job import TrainJob

LAUNCH_DIR = "launch"  # in the job's work directory: the launch's config, job, log, summary and ranks
RANKS_FILE = "ranks.json"


class DifferentDataError(RuntimeError):
    pass


def split_digest(job: TrainJob) -> str:
    return sha256_file(job.train_data) + sha256_file(job.validation_data)


def differing_machines(gathered: list[dict]) -> list[int]:
    """Machines whose processes hold other splits than global rank 0 (which is on machine 0)."""
    return sorted({process["machine"] for process in gathered if process["data"] != gathered[0]["data"]})


def launch_callbacks(job: TrainJob) -> list:
    """A TrainerCallback that records the launched processes and, with several machines, refuses to train when a
    machine's splits differ from machine 0's; none for a run in one process."""
    compute = job.params.compute
    if not compute.launched:
        return []
    from transformers import TrainerCallback

    digest = split_digest(job) if compute.num_machines > 1 else None
    ranks_path = job.work_dir / LAUNCH_DIR / RANKS_FILE

    class LaunchedProcesses(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            import torch.distributed as dist

            me = {"rank": dist.get_rank(), "machine": compute.machine_rank,
                  "local_rank": int(os.environ.get("LOCAL_RANK", "0")), "device": str(args.device), "data": digest}
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, me)
            # Every process sees the same list, so all of them stop together.
            differing = differing_machines(gathered)
            if differing:
                raise DifferentDataError(
                    f"machine(s) {', '.join(map(str, differing))} prepared other train or validation splits than "
                    "machine 0, so the machines would train on different records: give every machine the same "
                    "recipe and the same source files, and compare their data/*.jsonl")
            if state.is_world_process_zero:
                roll = [{key: value for key, value in process.items() if key != "data"}
                        for process in sorted(gathered, key=lambda process: process["rank"])]
                ranks_path.write_text(json.dumps(roll), encoding="utf-8")

    return [LaunchedProcesses()]
