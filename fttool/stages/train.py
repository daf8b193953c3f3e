"""Fine-tuning the base model: the stage builds a TrainJob from its parameters and wired paths and runs it,
in this process or in compute.num_processes processes on each of compute.num_machines machines, launched
through accelerate.

The backend is chosen by the job's objective (fttool.training.backends: SFT through TRL, or DP-SGD through
opacus when train.privacy is on). It writes the adapter (or the whole model) and the tokenizer to model/;
the run is tracked with MLflow in mlruns/, the stage's second artifact, or at the recipe's tracking URI.
Checkpoints go to the stage's work directory, which the runner keys by the stage fingerprint and keeps after
a failure, so `fttool run --resume` continues from the last one.
"""
from __future__ import annotations

from fttool.pipeline.layout import cache_dir
from fttool.pipeline.stage import Stage, StageContext, StageResult
from fttool.training.checkpoint_seal import checkpoint_seal_path
from fttool.training.device import (
    bitsandbytes_requirements_unmet,
    launch_requirements_unmet,
    packing_requirements_unmet,
    precision_requirements_unmet,
    training_precision,
)
from fttool.training.job import CHECKPOINT_DIR, TrainJob, objective_of
from fttool.training.model_identity import base_model_inputs
from fttool.training.settings import TrainParams
from fttool.training.templates import chat_template_source


class TrainStage(Stage):
    name = "train"
    reads = ("train", "validation")
    writes = ()
    # mlruns/ is MLflow's local store; the MLflow run has ended when the stage returns, so it is hashed whole.
    artifacts = {"model": "model", "tracking": "mlruns"}
    report_section = "training"
    Params = TrainParams

    @classmethod
    def external_inputs(cls, params: TrainParams) -> list[str]:
        return base_model_inputs(params.model) + ([params.chat_template_file] if params.chat_template_file else [])

    @classmethod
    def cacheable(cls, params: TrainParams) -> bool:
        # The other machines wait for machine 0's processes: a cached stage would not launch them.
        return params.compute.num_machines == 1

    @classmethod
    def unmet_requirements(cls, params: TrainParams) -> list[str]:
        return (bitsandbytes_requirements_unmet(params.method, params.load_in_8bit, params.optimizer)
                + precision_requirements_unmet(params.precision, params.tf32)
                + packing_requirements_unmet(params.packing)
                + launch_requirements_unmet(params.compute.num_processes, params.compute.strategy,
                                            params.compute.num_machines))

    def run(self, ctx: StageContext) -> StageResult:
        from fttool.training.launch import launch_job
        from fttool.training.modeling import resolve_base_model
        from fttool.training.quiet import quiet_libraries
        from fttool.training.run import run_job

        params: TrainParams = ctx.params
        if ctx.run_dir is None:
            raise ValueError("train: the stage needs the run directory (StageContext.run_dir), for tracking and "
                             "launching; run it through fttool run, or give run_dir")
        problems = self.unmet_requirements(params)
        if problems:
            raise RuntimeError("train: " + "; ".join(problems))
        quiet_libraries()
        job = TrainJob(
            objective=objective_of(params), params=params,
            # Built or found once, here, so that launched processes do not each write the demo model.
            base_path=resolve_base_model(params.model, ctx.work_dir, ctx.recipe_dir),
            train_data=ctx.inputs["train"], validation_data=ctx.inputs["validation"],
            model_dir=ctx.outputs["model"], work_dir=ctx.work_dir, tracking_store=ctx.outputs["tracking"],
            checkpoint_seal=checkpoint_seal_path(cache_dir(ctx.run_dir), ctx.work_dir / CHECKPOINT_DIR),
            run_dir=ctx.run_dir, run_name=ctx.run_dir.name,
            chat_template=chat_template_source(params.chat_template, params.chat_template_file, ctx.recipe_dir))
        if params.compute.launched:
            return StageResult(summary=launch_job(job, training_precision(params.precision)))
        return StageResult(summary=run_job(job))


STAGE = TrainStage
