"""The report's training section and the model card, built from any backend's outcome."""
from __future__ import annotations

from pathlib import Path

from fttool.pipeline.plan import thaw
from fttool.training.demo_model import DEMO_LABEL
from fttool.training.job import TrainJob, TrainOutcome
from fttool.training.model_identity import ModelParams
from fttool.training.model_ref import is_demo_reference
from fttool.training.settings import TrainParams

QLORA_QUANTIZATION = {"bits": 4, "quant_type": "nf4", "double_quant": True}
EIGHT_BIT_QUANTIZATION = {"bits": 8, "quant_type": "int8"}


def base_model_summary(model: ModelParams) -> dict:
    """The report's account of the base model: name, licence, revision, remote code, and whether it is the demo."""
    demo = is_demo_reference(model.base)
    summary = {"name": model.base, "demo": demo, "license": model.license, "revision": model.revision,
               "trust_remote_code": model.trust_remote_code}
    if demo:
        summary["note"] = DEMO_LABEL
    return summary


def training_summary(job: TrainJob, outcome: TrainOutcome, hyperparameters: tuple[str, ...]) -> dict:
    """The report's training section (privacy and other extras at its top level, where report/build finds them)."""
    params = job.params
    settings = thaw(params)
    return {
        "method": params.method,
        "base_model": base_model_summary(params.model),
        "lora": settings["lora"] if params.method != "full" else None,
        "quantization": (QLORA_QUANTIZATION if params.method == "qlora" else
                         EIGHT_BIT_QUANTIZATION if params.load_in_8bit else None),
        "precision": outcome.precision,
        "prompt_format": outcome.prompt_format,
        "train_on_inputs": params.train_on_inputs,
        "hyperparameters": {key: settings[key] for key in hyperparameters},
        "trainable_parameters": outcome.trainable_parameters,
        "total_parameters": outcome.total_parameters,
        "updated_tensors": outcome.updated_tensors,
        "trained_tensors": outcome.trained_tensors,
        "steps": outcome.steps,
        "epochs": round(outcome.epochs, 4),
        "resumed_from_step": outcome.resumed_from_step,
        "early_stopping": outcome.early_stopping,
        "train_examples": outcome.train_examples,
        "dropped_examples": outcome.dropped_examples,
        "train_loss": outcome.loss_history[-1]["loss"] if outcome.loss_history else None,
        "validation_loss": outcome.validation_loss,
        "loss_history": outcome.loss_history,
        "validation_loss_history": outcome.validation_loss_history,
        "trained_tokens": outcome.trained_tokens,
        "trained_token_share": round(outcome.trained_tokens / outcome.total_tokens, 6),
        "device": outcome.device,
        "seconds": round(outcome.seconds, 3),
        # Counted whenever the recipe caps the train records, so that none is left out silently.
        **({"records_beyond_max_samples": outcome.records_left_out} if params.max_samples is not None else {}),
        **outcome.extras,
    }


def model_card(params: TrainParams, steps: int, notes: list[str]) -> str:
    """The README.md written beside the trained model: what it is, what it was trained from, how to load it."""
    model, method = params.model, params.method
    revision = f" at revision `{model.revision}`" if model.revision else ""
    lines = [f"# {'Full fine-tune' if method == 'full' else method.upper() + ' adapter'} trained by fttool", "",
             f"- Base model: `{model.base}`{revision}",
             f"- Base model licence: {model.license or 'not stated in the recipe'}"]
    lora = params.lora
    if method == "full" or lora is None:  # lora and qlora always have adapter settings
        load = "Load it with `transformers.AutoModelForCausalLM.from_pretrained(this_directory)`."
    else:
        targets = lora.target_modules
        lines.append(f"- LoRA: r={lora.r}, alpha={lora.alpha}, dropout={lora.dropout}, "
                     f"target modules: {targets if isinstance(targets, str) else ', '.join(targets)}")
        if method == "qlora":
            lines.append("- Base model quantized to 4 bits (NF4, double quantization) during training")
        elif params.load_in_8bit:
            lines.append("- Base model loaded in 8 bits (bitsandbytes) during training")
        load = "Load it with `peft.PeftModel.from_pretrained(base_model, this_directory)`."
    lines += [f"- Steps: {steps}, seed: {params.seed}", "",
              f"{load} The run's report.json records the data, checks and evaluation behind it."]
    if is_demo_reference(model.base):
        lines[1:1] = ["", f"**The base is an {DEMO_LABEL}: this model is for pipeline demos only.**"]
    return "\n".join(lines) + "\n" + "".join(f"\n{note}\n" for note in notes)


def write_model_card(job: TrainJob, outcome: TrainOutcome) -> None:
    # Replaces the library's boilerplate card, which names the scratch directory the base was loaded from.
    Path(job.model_dir, "README.md").write_text(model_card(job.params, outcome.steps, outcome.card_notes),
                                                encoding="utf-8")
