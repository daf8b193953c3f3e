"""One training run in this process: the job's backend, tracked with MLflow, and its summary for the report.

Several processes launched together (fttool.training.launch) each call `run_job`; only the main one
tracks and writes the model card, and its summary is the one reported.
"""
from __future__ import annotations

from fttool.training.backends import backend_for
from fttool.training.device import torch_threads
from fttool.training.job import TrainJob
from fttool.training.summary import training_summary, write_model_card
from fttool.training.tracking import is_main_process, open_tracker


def run_job(job: TrainJob) -> dict:
    """Train `job` with its backend; the report's training section (with `tracking`, where it was tracked)."""
    import torch

    compute = job.params.compute
    threads = torch_threads(compute.threads, compute.num_processes)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # for training only: later stages in this process keep torch's setting
    try:
        summary = _train_tracked(job)
    finally:
        torch.set_num_threads(previous)
    summary["threads"] = threads  # per process: training time on a shared CPU depends on it
    return summary


def _train_tracked(job: TrainJob) -> dict:
    backend = backend_for(job.objective)
    tracker = open_tracker(job)
    try:
        outcome = backend.train(job, tracker)
        if is_main_process():
            write_model_card(job, outcome)
    except BaseException:
        if tracker:
            tracker.fail()
        raise
    summary = training_summary(job, outcome, backend.hyperparameters)
    summary["tracking"] = tracker.finish(summary, job.model_dir) if tracker else None
    return summary
