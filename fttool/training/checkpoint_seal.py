"""What a resumed training run continues from: only checkpoints this fttool wrote, as it wrote them.

Checkpoints lie in the train stage's work directory inside the run directory, which colleagues may write
(docs/security.md). Training continued from an edited checkpoint would end in weights that the recipe and the data
do not explain, while the report says they do. So every time the Trainer saves a checkpoint, the process that saved it
records the sha256 of each file of every checkpoint there in a seal in the stage cache (the operator's own
directory, as the runner's resume seal is: fttool.pipeline.resume_seal; the train stage names the file,
TrainJob.checkpoint_seal). Before training continues, every
checkpoint directory must match the seal file for file; one that differs, holds a file more or less, or is not in
the seal at all (a `checkpoint-999` put there, or a cache moved or purged) stops the stage, naming it, rather than
training from it or silently starting again.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from fttool.pipeline.digest import files_under, sha256_file
from fttool.pipeline.private_files import NotPrivate, read_private_json, write_private_json
from fttool.training.job import TrainJob

CHECKPOINT_SEALS = "checkpoint-seals"  # under the stage cache, one file per checkpoint directory
CHECKPOINT_PREFIX = "checkpoint-"  # transformers' PREFIX_CHECKPOINT_DIR


class UnsealedCheckpoint(RuntimeError):
    """A checkpoint that the seal does not vouch for."""


def checkpoint_seal_path(cache: Path, checkpoint_dir: Path) -> Path:
    """Where the seal of the checkpoints in `checkpoint_dir` goes in the stage cache `cache`
    (TrainJob.checkpoint_seal)."""
    key = hashlib.sha256(str(Path(checkpoint_dir).resolve()).encode("utf-8")).hexdigest()[:32]
    return Path(cache) / CHECKPOINT_SEALS / f"{key}.json"


def _checkpoints(job: TrainJob) -> list[Path]:
    return sorted(path for path in job.checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*") if path.is_dir())


def _digests(checkpoint: Path) -> dict[str, str]:
    return {path.relative_to(checkpoint).as_posix(): sha256_file(path) for path in files_under(checkpoint)}


def _read(job: TrainJob) -> dict[str, dict[str, str]] | None:
    path = job.checkpoint_seal
    try:
        sealed = read_private_json(path)
        if sealed is None:
            return None
        if sealed["checkpoint_dir"] == str(job.checkpoint_dir.resolve()):
            return sealed["checkpoints"]
    except NotPrivate:
        raise UnsealedCheckpoint(f"{path}: the seal of the training checkpoints is not a file that only you can "
                                 f"write (owner, mode or a link); delete {job.checkpoint_dir} and the seal to train "
                                 "from step 0") from None
    except (OSError, ValueError, KeyError, TypeError):
        pass
    raise UnsealedCheckpoint(f"{path}: not a seal of {job.checkpoint_dir} that fttool wrote; delete that directory "
                             "and the seal to train from step 0")


def seal_checkpoints(job: TrainJob, newest: str) -> None:
    """Seal `newest`, just written, and keep the digests of the sealed checkpoints still there (the Trainer has
    removed those past save_total_limit by now). A directory that appeared otherwise stays unsealed."""
    sealed = _read(job) or {}
    current = {path.name: _digests(path) if path.name == newest else sealed[path.name]
               for path in _checkpoints(job) if path.name == newest or path.name in sealed}
    write_private_json(job.checkpoint_seal, {"checkpoint_dir": str(job.checkpoint_dir.resolve()),
                                                   "checkpoints": current})


def forget_checkpoints(job: TrainJob) -> None:
    """Remove the seal once the checkpoints are gone (the model is saved)."""
    job.checkpoint_seal.unlink(missing_ok=True)


def _problems(checkpoint: Path, sealed: dict[str, str]) -> list[str]:
    found = _digests(checkpoint)
    return ([f"{checkpoint / rel}: differs from what training wrote" for rel in sorted(found)
             if rel in sealed and found[rel] != sealed[rel]]
            + [f"{checkpoint / rel}: added after training wrote the checkpoint"
               for rel in sorted(set(found) - set(sealed))]
            + [f"{checkpoint / rel}: missing" for rel in sorted(set(sealed) - set(found))])


def sealed_last_checkpoint(job: TrainJob) -> str | None:
    """The checkpoint to continue from (the last one), after every checkpoint there was checked against the seal;
    None when there is none. UnsealedCheckpoint names every file or directory the seal does not vouch for."""
    from transformers.trainer_utils import get_last_checkpoint

    job.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = _checkpoints(job)
    if not checkpoints:
        return None
    sealed = _read(job) or {}
    problems = []
    for checkpoint in checkpoints:
        if checkpoint.name not in sealed:
            problems.append(f"{checkpoint}: not in the seal of this run's checkpoints ({job.checkpoint_seal}); "
                            "fttool did not write it here, or the stage cache was moved or purged")
        else:
            problems += _problems(checkpoint, sealed[checkpoint.name])
    if problems:
        raise UnsealedCheckpoint("training will not continue from checkpoints fttool cannot vouch for:\n  "
                                 + "\n  ".join(problems) + f"\nrestore them, or delete {job.checkpoint_dir} to train "
                                 "from step 0")
    return get_last_checkpoint(str(job.checkpoint_dir))


def sealing_callback(job: TrainJob):
    """A TrainerCallback that seals the checkpoints after each save, in the one process that writes the seal."""
    from transformers import TrainerCallback

    class SealCheckpoints(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                seal_checkpoints(job, f"{CHECKPOINT_PREFIX}{state.global_step}")

    return SealCheckpoints()
