"""The train section as the compiler passes it, and a reader of a run's MLflow store, for the training, tracking and
launch tests."""
from __future__ import annotations

import os
from pathlib import Path

from fttool.training.tracking import FILE_STORE_ENV


def client_for(store: Path):
    from mlflow.tracking import MlflowClient

    os.environ.setdefault(FILE_STORE_ENV, "true")  # MLflow 3 asks every reader of a file store to opt in
    return MlflowClient(tracking_uri=store.resolve().as_uri())


def train_params(base: str, **overrides) -> dict:
    """The train section with the schema's defaults filled in, as the compiler passes it."""
    return {"method": "lora",
            "lora": {"r": 4, "alpha": 8, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
            "epochs": 1, "max_steps": 8, "learning_rate": 0.01, "lr_scheduler_type": "linear", "warmup_ratio": 0,
            "warmup_steps": 0, "weight_decay": 0, "batch_size": 4, "gradient_accumulation_steps": 1,
            "max_seq_length": 64, "train_on_inputs": False, "packing": False, "gradient_checkpointing": False,
            "save_steps": 100, "save_total_limit": 2, "seed": 7, "early_stopping": None, "privacy": None,
            "save_only_model": False, "optimizer": "adamw_torch", "precision": "auto", "tf32": False,
            "load_in_8bit": False, "logging_steps": None, "eval_steps": None, "evals_per_epoch": None,
            "max_samples": None, "chat_template": None, "chat_template_file": None, "objective": "sft",
            "preference": None,
            "model": {"base": base, "revision": None, "license": "apache-2.0", "trust_remote_code": False},
            "compute": {"num_processes": 1, "num_machines": 1, "machine_rank": 0, "main_process_ip": None,
                        "main_process_port": None, "strategy": "ddp", "deepspeed": None, "threads": None},
            "tracking": {"enabled": False, "uri": None, "experiment": "train-test"}} | overrides
