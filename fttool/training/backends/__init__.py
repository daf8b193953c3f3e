"""Training backends, by objective. A backend trains a TrainJob and returns a TrainOutcome
(fttool.training.job.TrainingBackend); add one by writing its module here and naming it in BACKENDS.
Backend modules import torch and the training libraries only inside their functions."""
from __future__ import annotations

from fttool.training.backends.dp_sgd import DPSGDBackend
from fttool.training.backends.preference import DPOBackend, KTOBackend, ORPOBackend
from fttool.training.backends.sft import SFTBackend
from fttool.training.job import TrainingBackend

BACKENDS: dict[str, type[TrainingBackend]] = {
    backend.objective: backend for backend in (SFTBackend, DPSGDBackend, DPOBackend, KTOBackend, ORPOBackend)}


def backend_for(objective: str) -> TrainingBackend:
    if objective not in BACKENDS:
        raise ValueError(f"train: no training backend for objective '{objective}'; known: {', '.join(BACKENDS)}")
    return BACKENDS[objective]()
