"""Loading the recipe's base model: the demo model, a local directory or a hub id.

The train and evaluate stages share these helpers so that both load the same model the same way,
with the recipe's `revision` and `trust_remote_code` (off unless the recipe turns it on: remote code
runs on the machine that loads the model).
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fttool.training.demo_model import build_demo_model
from fttool.training.model_ref import DEMO_MODEL_PREFIX, is_local_model


def quiet_libraries() -> None:
    """transformers logs warnings and errors only; library progress bars show only on a terminal."""
    import datasets
    import transformers

    transformers.logging.set_verbosity_warning()
    if not sys.stderr.isatty():
        transformers.logging.disable_progress_bar()
        datasets.disable_progress_bars()


def is_demo_model(model_params: Mapping[str, Any]) -> bool:
    return model_params["base"].startswith(DEMO_MODEL_PREFIX)


def resolve_base_model(model_params: Mapping[str, Any], scratch_dir: Path, recipe_dir: Path) -> str:
    """What to pass to from_pretrained: a directory, or a hub id as written in the recipe.

    The demo model is built into scratch_dir (deterministically, so every stage gets the same one);
    a local path is relative to the recipe file.
    """
    base = model_params["base"]
    if is_demo_model(model_params):
        return str(build_demo_model(Path(scratch_dir) / "base-model"))
    if is_local_model(base):
        return str((Path(recipe_dir) / Path(base).expanduser()).resolve())
    return base


def _hub_kwargs(model_params: Mapping[str, Any]) -> dict:
    kwargs = {"trust_remote_code": bool(model_params.get("trust_remote_code", False))}
    if model_params.get("revision"):
        kwargs["revision"] = model_params["revision"]
    return kwargs


def load_tokenizer(path: str, model_params: Mapping[str, Any]):
    """The tokenizer, with a pad token (the EOS token when the model defines none), since batches are padded."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, **_hub_kwargs(model_params))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def use_bf16() -> bool:
    """bf16 only on a GPU that supports it; on CPU it is slow and would blur small loss differences."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def load_causal_lm(path: str, model_params: Mapping[str, Any], quantization_config=None,
                   attn_implementation: str | None = None):
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if use_bf16() else torch.float32
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, quantization_config=quantization_config,
                                                attn_implementation=attn_implementation, **_hub_kwargs(model_params))
