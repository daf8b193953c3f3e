"""What `fttool run --resume` trusts: the finished stages' records, sealed outside the run directory.

run_state.json lies in the run directory, which colleagues may write (docs/security.md), and its digests are not
secret; a failed run has no report, let alone a signed one. So every time the runner saves its state it also
writes the finished stages' records (fingerprint, output files and their sha256) to a seal in the stage cache:
the operator's own directory, readable and writable by them alone, whose copies the runner already serves on
their word. On resume the seal is authoritative:

- a stage is reused only as the seal records it, and only when every output file it recorded is there and hashes
  to the sealed sha256;
- a file that is there but hashes otherwise, or a stage record in run_state.json that differs from the sealed one
  or that the seal lacks (the seal is written first), refuses the resume, naming the file: someone edited the run
  after fttool wrote it;
- an output file that is gone (work/ is deleted when a run succeeds), or a stage the seal does not hold (no seal:
  the run directory moved, the cache was purged or is another), is not reused: the stage comes from the cache or
  runs again.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from fttool.pipeline.digest import sha256_file
from fttool.pipeline.errors import RunError
from fttool.pipeline.private_files import NotPrivate, read_private_json, write_private_json

SEALS = "resume-seals"  # under the cache directory, one file per run directory


def seal_path(cache_dir: Path, run_dir: Path) -> Path:
    """The seal of the run directory at `run_dir` (by its absolute path: a run moved elsewhere has none)."""
    key = hashlib.sha256(str(Path(run_dir).resolve()).encode("utf-8")).hexdigest()[:32]
    return Path(cache_dir) / SEALS / f"{key}.json"


def write_seal(cache_dir: Path, run_dir: Path, stages: dict) -> None:
    """Seal the finished stages' records (run_state.json's `stages`), readable and writable by the operator alone."""
    write_private_json(seal_path(cache_dir, run_dir), {"run_dir": str(Path(run_dir).resolve()), "stages": stages})


def read_seal(cache_dir: Path, run_dir: Path) -> dict | None:
    """The sealed stage records of `run_dir`, or None when there is no seal; RunError for one fttool cannot trust."""
    path = seal_path(cache_dir, run_dir)
    try:
        sealed = read_private_json(path)
        if sealed is None:
            return None
        stages = sealed["stages"] if sealed["run_dir"] == str(Path(run_dir).resolve()) else None
    except NotPrivate:
        raise RunError(f"{path}: the seal of this run's finished stages is not a file that only you can write (owner, "
                       "mode or a link), so it cannot vouch for them; remove it (the finished stages then run again) "
                       "or start a new run") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path}: the seal of this run's finished stages cannot be read ({exc}); remove it (the "
                       "finished stages then run again) or start a new run") from None
    if not isinstance(stages, dict):
        raise RunError(f"{path}: not the seal of {run_dir}; remove it (the finished stages then run again)")
    return stages


def check_against_seal(run_dir: Path, state_path: Path, stages: dict, sealed: dict) -> None:
    """RunError naming every file that differs from the seal: a sealed output that hashes otherwise, and
    run_state.json when a stage's record there is not the sealed one or not sealed. Missing outputs are not an
    error."""
    problems = []
    for name, record in sealed.items():
        for rel, digest in record["outputs"].items():
            path = Path(run_dir) / rel
            if (path.exists() or path.is_symlink()) and not (path.is_file() and sha256_file(path) == digest):
                problems.append(f"{path}: sha256 differs from what stage {name} wrote (sealed in the stage cache)")
    # The runner seals before it writes run_state.json, so a record there that the seal lacks was added since.
    problems += [f"{state_path}: the record of stage {name} " + ("differs from the sealed one" if name in sealed
                                                                 else "is not in the seal")
                 for name, record in stages.items() if sealed.get(name) != record]
    if problems:
        raise RunError("the run was changed after fttool wrote it, so resuming would serve what fttool did not "
                       "compute:\n  " + "\n  ".join(problems) + "\nrestore those files, or start a new run "
                       "(fttool run RECIPE without --resume, into another --output-dir)")


def sealed_outputs_present(run_dir: Path, record: dict) -> bool:
    """Whether every output file of a sealed stage record is there (check_against_seal has hashed them)."""
    return all((Path(run_dir) / rel).is_file() for rel in record["outputs"])
