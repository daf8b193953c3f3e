"""A machine other than machine 0 in a multi-machine training run (compute.machine_rank above 0).

Every machine runs `fttool run` on the same recipe and data. A worker machine runs the stages before train as any
run does (cached as usual: they are deterministic, so it prepares the same splits as machine 0), then joins the
training launch. Global rank 0 is on machine 0, so only machine 0 saves the model, evaluates it and writes the report
and the lineage: a worker's run directory keeps its plan, recipe, state and prepared data, but no report, no
report.sha256 and no lineage that could contradict machine 0's. Its train stage is never cached: a cached one would
never join, and machine 0's processes would wait for it.
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from fttool.pipeline.errors import RunError
from fttool.pipeline.layout import RunLayout, RunLock, cache_dir
from fttool.pipeline.plan import Plan
from fttool.pipeline.runner import Runner, new_run_id
from fttool.stages import stage_class

TRAIN = "train"


def machine_rank(plan: Plan) -> int:
    """The rank of this machine in the plan's training (0 when the plan does not train)."""
    train = next((spec for spec in plan.stages if spec.name == TRAIN), None)
    return train.params.compute.machine_rank if train is not None else 0


def refuse_resume_on_several_machines(plan: Plan, resume: bool) -> None:
    """A resumed multi-machine run would have machine 0 continue from its checkpoints (the only ones) while the
    others start again, and their processes would not agree on the step."""
    train = next((spec for spec in plan.stages if spec.name == TRAIN), None)
    if resume and train is not None and train.params.compute.num_machines > 1:
        raise RunError("--resume is not supported when several machines train together (checkpoints are on "
                       "machine 0 only); start a new run on every machine: the stages before train come from "
                       "the cache")


def join_training(plan: Plan, output_dir: Path | None = None, resume: bool = False) -> Path:
    """Prepare the data as machine 0 does and train with it; the run directory, which holds no report."""
    rank = machine_rank(plan)
    if rank == 0:
        raise RunError("machine 0 runs the whole plan and writes the report; join_training is for the others")
    names = [spec.name for spec in plan.stages]
    train = plan.stages[names.index(TRAIN)]
    run_dir = (output_dir or Path("reports") / f"{plan.name}-machine{rank}-{new_run_id()}").resolve()
    layout = RunLayout(run_dir)
    runner = Runner(replace(plan, stages=plan.stages[:names.index(TRAIN)]), run_dir, cache_dir(run_dir), resume)
    problems = stage_class(TRAIN).unmet_requirements(train.params)
    if problems:
        raise RunError("this machine cannot run the plan: " + "; ".join(f"stage train: {p}" for p in problems))
    runner.check_requirements()
    with RunLock(layout, "fttool run", "or choose another --output-dir"):
        runner.run()
        try:
            stage_class(TRAIN)().run(runner.context(train, runner.fingerprint(train)))
        except Exception as exc:
            raise RunError(f"stage train failed on machine {rank}: {type(exc).__name__}: {exc}") from exc
        # work/ holds the records as they were before PII scrubbing.
        shutil.rmtree(layout.work, ignore_errors=True)
    return run_dir
