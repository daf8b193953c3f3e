"""Run tracking with MLflow for training: parameters, per-step metrics and the model's digests.

By default the store is MLflow's local file store in the run directory (`mlruns/`, the train stage's
`tracking` artifact), so a run is tracked with nothing to set up and the store is hashed into the
lineage with the model once the stage has ended the MLflow run. `tracking.uri` in the recipe names
another store (an MLflow server). Only numbers, settings and digests are logged, never record text.

A tracking failure fails the stage with a message naming the store; when training fails, the MLflow
run is marked FAILED, so a half-logged run never looks finished.
"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fttool.pipeline.digest import files_under, sha256_file
from fttool.pipeline.plan import thaw
from fttool.training.job import TrainJob
from fttool.training.settings import TrackingSettings, TrainParams

# MLflow 3 keeps the file store in maintenance mode and refuses it unless this is set; the store
# still works and needs no server, which is what an embedded default must be.
FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"
# Trainer log keys that are metrics worth tracking; others (epoch, runtime, flos) are bookkeeping.
TRACKED_LOG_KEYS = {"loss": "train_loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm",
                    "eval_loss": "validation_loss"}
# Settings logged as parameters; the model and tracking settings themselves are tags or implied.
UNTRACKED_PARAMS = ("model", "tracking")


class TrackingError(RuntimeError):
    """Tracking could not record the run; the message names the store and what failed."""


def is_main_process() -> bool:
    """Rank 0 of a multi-process launch, or the only process: the one that tracks and saves."""
    return int(os.environ.get("RANK", "0")) == 0


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow parameters: dotted keys, values as text; settings left unset are left out."""
    flat = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if value is None:
            continue
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return flat


class Tracker:
    """One MLflow run for one execution of the train stage."""

    def __init__(self, settings: TrackingSettings, local_store: Path, local_store_name: str):
        self.uri = settings.uri or local_store.resolve().as_uri()
        # Where the report says the run was tracked: run-relative for the store in the run directory.
        self.reported_uri = settings.uri or local_store_name
        self.experiment = settings.experiment
        self.client: Any = None  # an MlflowClient once started
        self.run_id: str | None = None
        self.experiment_id: str | None = None

    def _call(self, what: str, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            raise TrackingError(f"tracking: could not {what} in the MLflow store at {self.reported_uri}: "
                                f"{type(exc).__name__}: {exc}. Check tracking.uri, or set tracking.enabled: "
                                "false to train without tracking") from exc

    def start(self, params: TrainParams, run_name: str) -> None:
        """Create the MLflow run and log the settings; fails before any training when the store is unusable."""
        if self.uri.startswith("file:"):
            os.environ.setdefault(FILE_STORE_ENV, "true")
            from mlflow.store.tracking.file_store import FileStore

            # MLflow keeps one store object per URI in a process, which lays the store out on disk only when
            # created; the runner empties mlruns/ before each attempt (a resume), so lay it out again here.
            self._call("create the file store", FileStore, self.uri)
        from mlflow.tracking import MlflowClient

        self.client = self._call("connect", MlflowClient, tracking_uri=self.uri)
        experiment = self._call("look up the experiment", self.client.get_experiment_by_name, self.experiment)
        self.experiment_id = (experiment.experiment_id if experiment else
                              self._call("create the experiment", self.client.create_experiment, self.experiment))
        run = self._call("create a run", self.client.create_run, self.experiment_id, run_name=run_name,
                         tags={"fttool.stage": "train", "fttool.base_model": params.model.base})
        self.run_id = run.info.run_id
        settings = {key: value for key, value in thaw(params).items() if key not in UNTRACKED_PARAMS}
        self.log_params(flatten(settings))

    def log_params(self, values: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in values.items()]
        # MLflow takes at most 100 parameters per batch.
        for start in range(0, len(items), 100):
            self._call("log parameters", self.client.log_batch, self.run_id, params=items[start:start + 100])

    def log_metrics(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        metrics = [Metric(key, float(value), timestamp, step) for key, value in values.items()]
        if metrics:
            self._call("log metrics", self.client.log_batch, self.run_id, metrics=metrics)

    def log_trainer_entry(self, entry: Mapping[str, Any]) -> None:
        """One entry of the Trainer's log history (loss, learning rate, validation loss at a step)."""
        values = {name: entry[key] for key, name in TRACKED_LOG_KEYS.items()
                  if isinstance(entry.get(key), (int, float))}
        self.log_metrics(values, int(entry["step"]))

    def callback(self):
        """A TrainerCallback that logs every Trainer log entry as it is made."""
        from transformers import TrainerCallback

        tracker = self

        class TrackMetrics(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                # A resumed run starts with the history of the steps before its checkpoint: log those too.
                for entry in state.log_history:
                    tracker.log_trainer_entry(entry)

            def on_log(self, args, state, control, logs=None, **kwargs):
                tracker.log_trainer_entry({**(logs or {}), "step": state.global_step})

        return TrackMetrics()

    def finish(self, summary: Mapping[str, Any], model_dir: Path) -> dict:
        """Log the outcome and the model's digests, end the run, and say where it is for the report."""
        final = {key: summary[key] for key in ("train_loss", "validation_loss") if summary.get(key) is not None}
        privacy = summary.get("privacy") or {}
        if privacy.get("epsilon") is not None:
            final["epsilon"] = privacy["epsilon"]
        self.log_metrics({f"final_{key}": value for key, value in final.items()}, int(summary["steps"]))
        digests = {path.relative_to(model_dir).as_posix(): sha256_file(path) for path in files_under(model_dir)}
        self._call("log the model digests", self.client.log_dict, self.run_id, digests, "model_sha256.json")
        self._call("end the run", self.client.set_terminated, self.run_id, "FINISHED")
        return {"uri": self.reported_uri, "experiment_id": self.experiment_id, "run_id": self.run_id}

    def fail(self) -> None:
        """Mark the run FAILED after a training error; the training error is the one raised."""
        if self.run_id is not None:
            try:
                self.client.set_terminated(self.run_id, "FAILED")
            except Exception:  # the store is what failed: the training error still says what happened
                pass


def open_tracker(job: TrainJob) -> Tracker | None:
    """A started Tracker when the job is tracked (on the main process), else None. The store in the run
    directory exists even when nothing is tracked in it (tracking off, or another store): it is an artifact."""
    job.tracking_store.mkdir(parents=True, exist_ok=True)
    settings = job.params.tracking
    if not settings.enabled or not is_main_process():
        return None
    tracker = Tracker(settings, job.tracking_store, job.tracking_store.relative_to(job.run_dir).as_posix())
    tracker.start(job.params, job.run_name)
    return tracker
