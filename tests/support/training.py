"""A reader of a run's MLflow store, for the tracking and launch tests."""
from __future__ import annotations

import os
from pathlib import Path

from fttool.training.tracking import FILE_STORE_ENV


def client_for(store: Path):
    from mlflow.tracking import MlflowClient

    os.environ.setdefault(FILE_STORE_ENV, "true")  # MLflow 3 asks every reader of a file store to opt in
    return MlflowClient(tracking_uri=store.resolve().as_uri())
