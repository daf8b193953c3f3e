"""Loading the recipe's base model: the demo model, a local directory or a hub id.

The train and evaluate stages share these helpers so that both load the same model the same way,
with the recipe's `revision` and `trust_remote_code` (off unless the recipe turns it on: remote code
runs on the machine that loads the model).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fttool.training.demo_model import build_demo_model
from fttool.training.device import load_dtype
from fttool.training.model_identity import ModelParams
from fttool.training.model_ref import is_demo_reference, is_local_model
from fttool.training.quiet import quiet_libraries
from fttool.training.templates import set_chat_template

ModelRef = ModelParams | Mapping[str, Any]


def as_model_params(model: ModelRef) -> ModelParams:
    """The model section as ModelParams; a mapping (a recipe's or report.json's model section) may leave out
    the optional keys."""
    if isinstance(model, ModelParams):
        return model
    return ModelParams(base=model["base"], revision=model.get("revision"), license=model.get("license"),
                         trust_remote_code=bool(model.get("trust_remote_code", False)))


def resolve_base_model(model_params: ModelRef, scratch_dir: Path, recipe_dir: Path) -> str:
    """What to pass to from_pretrained: a directory, or a hub id as written in the recipe.

    The demo model is built into scratch_dir (deterministically, so every stage gets the same one);
    a local path is relative to the recipe file.
    """
    base = as_model_params(model_params).base
    if is_demo_reference(base):
        return str(build_demo_model(Path(scratch_dir) / "base-model"))
    if is_local_model(base):
        return str((Path(recipe_dir) / Path(base).expanduser()).resolve())
    return base


def _hub_kwargs(model_params: ModelRef) -> dict:
    model = as_model_params(model_params)
    kwargs: dict[str, Any] = {"trust_remote_code": model.trust_remote_code}
    if model.revision:
        kwargs["revision"] = model.revision
    return kwargs


def load_tokenizer(path: str, model_params: ModelRef):
    """The tokenizer, with a pad token (the EOS token when the model defines none), since batches are padded."""
    from transformers import AutoTokenizer

    quiet_libraries()
    tokenizer = AutoTokenizer.from_pretrained(path, **_hub_kwargs(model_params))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def training_tokenizer(path: str, model_params: ModelRef, chat_template: str | None):
    """The tokenizer a training job uses: load_tokenizer with the job's chat template (None keeps its own)."""
    tokenizer = load_tokenizer(path, model_params)
    set_chat_template(tokenizer, chat_template)
    return tokenizer


def load_causal_lm(path: str, model_params: ModelRef, quantization_config=None,
                   attn_implementation: str | None = None, dtype=None):
    """The model, in `dtype` (by default the one fttool.training.device chooses for the hardware)."""
    from transformers import AutoModelForCausalLM

    quiet_libraries()
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype or load_dtype(),
                                                quantization_config=quantization_config,
                                                attn_implementation=attn_implementation, **_hub_kwargs(model_params))
