"""The base and the tuned model, one after the other, so every measurement compares like with like.

For a LoRA adapter the model is loaded once: the base is the tuned model with its adapter switched off,
so both see identical weights and tokenization and only one copy is in memory. A full fine-tune is
loaded beside a fresh copy of the base, one after the other.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fttool.training.device import device
from fttool.training.model_identity import ModelParams
from fttool.training.modeling import load_causal_lm

MODELS = ("base", "tuned")


def is_adapter(tuned_dir: Path) -> bool:
    return (tuned_dir / "adapter_config.json").is_file()


def base_and_tuned(tuned_dir: Path, base_path: str, model: ModelParams) -> Iterator[tuple[str, object]]:
    """("base", model) then ("tuned", model), each in eval mode on this machine's device.

    Measure each before asking for the next: with an adapter both are the same object, switched.
    """
    if is_adapter(tuned_dir):
        from peft import PeftModel

        tuned = PeftModel.from_pretrained(load_causal_lm(base_path, model), str(tuned_dir)).to(device()).eval()
        with tuned.disable_adapter():
            yield "base", tuned
        yield "tuned", tuned
    else:
        yield "base", load_causal_lm(base_path, model).to(device()).eval()
        yield "tuned", load_causal_lm(str(tuned_dir), model).to(device()).eval()
