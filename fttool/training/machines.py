"""Several machines training together: each read its own copy of the prepared splits, so they must be the same.

Each machine prepares the splits itself from the same recipe and sources (fttool.pipeline.worker). The stages are
deterministic, but a source file that differs between machines, or a model-based augmentation that is not
bit-for-bit reproducible across hardware, would make each machine train on other records than machine 0 reports,
with no error. So before the first step every process compares the digests of its splits with machine 0's.
"""
from __future__ import annotations

from fttool.pipeline.digest import sha256_file
from fttool.training.job import TrainJob


class DifferentDataError(RuntimeError):
    pass


def split_digest(job: TrainJob) -> str:
    return sha256_file(job.train_data) + sha256_file(job.validation_data)


def same_data_callbacks(job: TrainJob) -> list:
    """A TrainerCallback that refuses to train when a machine's splits differ from machine 0's (none with one
    machine)."""
    compute = job.params.compute
    if compute.num_machines == 1:
        return []
    from transformers import TrainerCallback

    digest, rank = split_digest(job), compute.machine_rank

    class SameDataOnEveryMachine(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            import torch.distributed as dist

            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, (rank, digest))
            # Global rank 0 is on machine 0; every process sees the same list, so all of them stop together.
            differing = sorted({machine for machine, other in gathered if other != gathered[0][1]})
            if differing:
                raise DifferentDataError(
                    f"machine(s) {', '.join(map(str, differing))} prepared other train or validation splits than "
                    "machine 0, so the machines would train on different records: give every machine the same "
                    "recipe and the same source files, and compare their data/*.jsonl")

    return [SameDataOnEveryMachine()]
