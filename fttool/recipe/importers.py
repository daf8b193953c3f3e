"""`fttool import`: a recipe from an axolotl or LLaMA-Factory training config, and every setting it could not carry.

Settings are translated only where fttool has one with the same meaning (see the tables below); everything else
is listed as not carried over, with the reason, so that nobody believes a setting came across when it did not.
Datasets in those configs are hub ids or LLaMA-Factory dataset names, which fttool cannot fetch: each becomes a
source whose local path the user fills in (the notes say which), in the format its type implies.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOOLS = ("axolotl", "llamafactory")
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt")
# Optimizer names in both tools (transformers' names) -> fttool's train.optimizer.
OPTIMIZERS = {"adamw_torch": "adamw_torch", "adamw_torch_fused": "adamw_torch", "adamw_hf": "adamw_torch",
              "adamw_8bit": "adamw_8bit", "adamw_bnb_8bit": "adamw_8bit", "adafactor": "adafactor"}
BUILT_IN_TEMPLATES = ("chatml", "llama3", "tokenizer_default")
PREFERENCE_OBJECTIVES = ("dpo", "kto", "orpo")
# The validation share a recipe gets when the config holds none out: fttool reports validation loss.
DEFAULT_VALIDATION = 0.1
NUMBER = float
INTEGER = int


@dataclass
class Imported:
    """A translated config: the recipe, the settings not carried over, those carried with a meaning that differs,
    what to fill in, and extra files to write beside the recipe (name relative to it -> text)."""

    recipe: dict = field(default_factory=dict)
    not_carried: list[str] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)
    to_fill: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def set(self, path: tuple[str, ...], value: Any) -> None:
        node = self.recipe
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    def skip(self, key: str, value: Any, why: str) -> None:
        self.not_carried.append(f"{key}: {_shown(value)} ({why})")


def _shown(value: Any) -> str:
    text = str(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _number(kind: type, value: Any) -> Any:
    """YAML 1.1 reads 2e-5 as text; both tools accept it as a number."""
    return kind(float(value)) if kind is int else float(value)


# Settings with the same meaning under another name: tool key -> (recipe path, converter or None).
AXOLOTL_RENAMES: dict[str, tuple[tuple[str, ...], Callable | None]] = {
    "base_model": (("model", "base"), str), "revision_of_model": (("model", "revision"), str),
    "trust_remote_code": (("model", "trust_remote_code"), bool),
    "sequence_len": (("train", "max_seq_length"), INTEGER), "micro_batch_size": (("train", "batch_size"), INTEGER),
    "gradient_accumulation_steps": (("train", "gradient_accumulation_steps"), INTEGER),
    "num_epochs": (("train", "epochs"), NUMBER), "max_steps": (("train", "max_steps"), INTEGER),
    "learning_rate": (("train", "learning_rate"), NUMBER), "warmup_ratio": (("train", "warmup_ratio"), NUMBER),
    "warmup_steps": (("train", "warmup_steps"), INTEGER), "weight_decay": (("train", "weight_decay"), NUMBER),
    "logging_steps": (("train", "logging_steps"), INTEGER), "eval_steps": (("train", "eval_steps"), INTEGER),
    "evals_per_epoch": (("train", "evals_per_epoch"), INTEGER), "save_steps": (("train", "save_steps"), INTEGER),
    "save_total_limit": (("train", "save_total_limit"), INTEGER), "seed": (("train", "seed"), INTEGER),
    "sample_packing": (("train", "packing"), bool), "save_only_model": (("train", "save_only_model"), bool),
    "tf32": (("train", "tf32"), bool), "load_in_8bit": (("train", "load_in_8bit"), bool),
    "lora_r": (("train", "lora", "r"), INTEGER), "lora_alpha": (("train", "lora", "alpha"), NUMBER),
    "lora_dropout": (("train", "lora", "dropout"), NUMBER),
    "train_on_inputs": (("train", "train_on_inputs"), bool),
}
LLAMAFACTORY_RENAMES: dict[str, tuple[tuple[str, ...], Callable | None]] = {
    "model_name_or_path": (("model", "base"), str), "model": (("model", "base"), str),
    "model_revision": (("model", "revision"), str), "trust_remote_code": (("model", "trust_remote_code"), bool),
    "cutoff_len": (("train", "max_seq_length"), INTEGER), "max_samples": (("train", "max_samples"), INTEGER),
    "per_device_train_batch_size": (("train", "batch_size"), INTEGER),
    "micro_batch_size": (("train", "batch_size"), INTEGER),
    "gradient_accumulation_steps": (("train", "gradient_accumulation_steps"), INTEGER),
    "num_train_epochs": (("train", "epochs"), NUMBER), "max_steps": (("train", "max_steps"), INTEGER),
    "learning_rate": (("train", "learning_rate"), NUMBER), "warmup_ratio": (("train", "warmup_ratio"), NUMBER),
    "warmup_steps": (("train", "warmup_steps"), INTEGER), "weight_decay": (("train", "weight_decay"), NUMBER),
    "logging_steps": (("train", "logging_steps"), INTEGER), "eval_steps": (("train", "eval_steps"), INTEGER),
    "save_steps": (("train", "save_steps"), INTEGER), "save_total_limit": (("train", "save_total_limit"), INTEGER),
    "save_only_model": (("train", "save_only_model"), bool), "seed": (("train", "seed"), INTEGER),
    "packing": (("train", "packing"), bool), "tf32": (("train", "tf32"), bool),
    "gradient_checkpointing": (("train", "gradient_checkpointing"), bool),
    "lora_rank": (("train", "lora", "r"), INTEGER), "lora_alpha": (("train", "lora", "alpha"), NUMBER),
    "lora_dropout": (("train", "lora", "dropout"), NUMBER), "train_on_prompt": (("train", "train_on_inputs"), bool),
}
# Settings fttool has no counterpart for, with the reason; any other unknown key is reported as unknown.
AXOLOTL_NOT_CARRIED = {
    "output_dir": "fttool writes each run to reports/<name>-<run id>/, or to fttool run --output-dir",
    "dataset_prepared_path": "fttool prepares the data in every run, cached by content",
    "attn_implementation": "fttool chooses the attention (FlashAttention only with packing)",
    "flash_attention": "fttool chooses the attention (FlashAttention only with packing)",
    "special_tokens": "fttool never resizes the vocabulary or changes special tokens",
    "eot_tokens": "fttool never resizes the vocabulary or changes special tokens",
    "resize_token_embeddings_to_32x": "fttool never resizes the vocabulary",
    "model_type": "the model's own config decides its class", "tokenizer_type": "the model's tokenizer is used",
    "eval_sample_packing": "validation loss is measured on unpacked examples",
    "saves_per_epoch": "fttool checkpoints every train.save_steps steps",
    "gradient_checkpointing_kwargs": "fttool uses transformers' defaults",
    "unfrozen_parameters": "fttool trains LoRA adapters or every weight (method full)",
    "ddp_find_unused_parameters": "fttool's accelerate launch uses its defaults",
    "loss_watchdog_threshold": "no loss watchdog", "loss_watchdog_patience": "no loss watchdog",
    "plugins": "no plugins", "strict": "fttool always rejects unknown keys",
    "debug": "no debug mode", "adam_beta2": "the optimizer's defaults are used",
    "adam_epsilon": "the optimizer's defaults are used", "max_grad_norm": "transformers' default clipping (1.0)",
    "eval_batch_size": "validation uses train.batch_size", "eval_table_size": "no generation table in training",
    "eval_max_new_tokens": "generation settings belong to the evaluate section",
    "eval_causal_lm_metrics": "the evaluate section measures the tuned model",
    "do_causal_lm_eval": "the evaluate section measures the tuned model",
    "lora_mlp_kernel": "no fused LoRA kernels", "lora_qkv_kernel": "no fused LoRA kernels",
    "lora_o_kernel": "no fused LoRA kernels", "deepspeed": "DeepSpeed JSON configs are not read; set "
    "compute.strategy: deepspeed and compute.deepspeed.zero_stage",
    "fsdp": "set compute.strategy: fsdp and compute.num_processes", "fsdp_config": "fttool writes its own",
    "hub_model_id": "fttool never uploads", "push_to_hub": "fttool never uploads",
}
LLAMAFACTORY_NOT_CARRIED = {
    "output_dir": AXOLOTL_NOT_CARRIED["output_dir"], "overwrite_output_dir": "every run has its own directory",
    "overwrite_cache": "fttool caches by content", "plot_loss": "the report plots the loss curves",
    "preprocessing_num_workers": "fttool tokenizes in the training process",
    "dataloader_num_workers": "the data loader runs in the training process",
    "ddp_timeout": "accelerate's default", "do_train": "a recipe with a train section trains",
    "deepspeed": AXOLOTL_NOT_CARRIED["deepspeed"], "adapter_name_or_path": "fttool export writes a run's adapter",
    "export_dir": "use fttool export RUN_DIR --merge --output DIR", "export_size": "fttool export writes one file",
    "export_device": "fttool export merges on the CPU", "export_legacy_format": "fttool export writes safetensors",
    "infer_backend": "fttool evaluates with transformers", "max_new_tokens": "set evaluate.max_new_tokens",
    "model_class": "fttool trains causal language models", "kernel_config": "no custom kernels",
    "sample_backend": "fttool evaluates with transformers", "dist_config": "set compute.strategy and num_processes",
}


# Settings of LLaMA-Factory's inference and export configs, which have no stage: they train nothing.
INFERENCE_KEYS = {"adapter_name_or_path", "export_dir", "infer_backend"}


def _apply_renames(raw: Mapping[str, Any], renames: Mapping, out: Imported) -> set[str]:
    """Copy the renamed settings; the keys handled."""
    handled = set()
    for key, (path, convert) in renames.items():
        if key in raw and raw[key] is not None:
            value = raw[key]
            try:
                out.set(path, _number(convert, value) if convert in (INTEGER, NUMBER) else convert(value))
            except (TypeError, ValueError):
                out.skip(key, value, f"not a value fttool's {'.'.join(path)} takes")
            handled.add(key)
    return handled


def _skip_rest(raw: Mapping[str, Any], handled: set[str], reasons: Mapping[str, str], out: Imported) -> None:
    for key, value in raw.items():
        if key in handled or value is None or value == "":
            continue  # unset in the config: nothing to carry
        out.skip(key, value, reasons.get(key, "no equivalent in fttool"))


def _optimizer(key: str, value: Any, out: Imported) -> None:
    if value in OPTIMIZERS:
        out.set(("train", "optimizer"), OPTIMIZERS[value])
    else:
        out.skip(key, value, f"fttool's optimizers are {', '.join(sorted(set(OPTIMIZERS.values())))}; "
                             "the default adamw_torch is used")


def _scheduler(key: str, value: Any, out: Imported) -> None:
    if value in LR_SCHEDULERS:
        out.set(("train", "lr_scheduler_type"), value)
    else:
        out.skip(key, value, f"fttool's schedulers are {', '.join(LR_SCHEDULERS)}; the default linear is used")


def _precision(raw: Mapping[str, Any], out: Imported) -> set[str]:
    """bf16 (true or auto) and fp16 as train.precision."""
    bf16, fp16 = raw.get("bf16"), raw.get("fp16")
    if bf16 == "auto":
        out.set(("train", "precision"), "auto")
    elif bf16 is True:
        out.set(("train", "precision"), "bf16")
    elif fp16 is True:
        out.set(("train", "precision"), "fp16")
    elif bf16 is False or fp16 is False:
        out.set(("train", "precision"), "fp32")
    return {"bf16", "fp16"}


def _split(validation: Any, key: str, out: Imported) -> None:
    share = float(validation or 0)
    if share <= 0 or share >= 1:
        out.skip(key, "not set" if validation is None else validation,
                 f"fttool measures validation loss while training, so the recipe holds out "
                 f"{DEFAULT_VALIDATION:g} of the records")
        share = DEFAULT_VALIDATION
    out.set(("data", "split"), {"train": round(1 - share, 6), "validation": share, "test": 0.0})


def _chat_template(key: str, value: str, out: Imported, jinja: str | None = None) -> None:
    if value in BUILT_IN_TEMPLATES:
        out.set(("train", "chat_template"), value)
    elif value == "jinja" and jinja:
        out.files["chat_template.jinja"] = jinja
        out.set(("train", "chat_template_file"), "chat_template.jinja")
    else:
        out.skip(key, value, f"fttool's built-in templates are {', '.join(BUILT_IN_TEMPLATES)}; put this "
                             "template in a .jinja file and set train.chat_template_file")


def _source(name: str, data_format: str, out: Imported, fields: dict | None = None) -> dict:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name.rstrip("/").split("/")[-1]) or "data"
    path = f"data/{stem}.jsonl"
    out.to_fill.append(f"{path}: a local copy of dataset '{name}' as {data_format} records (fttool downloads "
                       "nothing; or use a hub source with a pinned revision)")
    source: dict[str, Any] = {"path": path, "format": data_format, "tag": stem}
    if fields:
        source["fields"] = fields
    return source


# Keys of an axolotl dataset entry that the translation reads; every other one is listed as not carried over.
AXOLOTL_DATASET_KEYS = {"path", "type", "field_messages", "field_chosen", "field_rejected",
                        "message_property_mappings"}
AXOLOTL_DATASET_NOT_CARRIED = dict.fromkeys(("split", "name", "data_files", "roles"),
                                           "fttool reads the whole local file in its format")
# Message keys fttool reads in every chat: OpenAI's role/content and ShareGPT's from/value.
MESSAGE_KEYS = ({"role": "role", "content": "content"}, {"role": "from", "content": "value"})


def _axolotl_dataset(index: int, dataset: Mapping[str, Any], out: Imported) -> dict:
    kind = str(dataset.get("type", "alpaca"))
    fields: dict[str, str] = {}
    if kind.startswith("alpaca"):
        data_format = "alpaca"
        if kind != "alpaca":
            out.skip(f"datasets[{index}].type", kind, "alpaca records are prompted with the chat template or "
                                                      "fttool's alpaca layout, not this prompt style")
    elif kind.startswith("chat_template"):
        mappings = dataset.get("message_property_mappings") or {}
        messages = dataset.get("field_messages", "messages")
        sharegpt = mappings.get("role") == "from" and mappings.get("content") == "value"
        data_format = "preference" if "field_chosen" in dataset or out.recipe.get("train", {}).get(
            "objective") in ("dpo", "orpo") else ("sharegpt" if sharegpt else "chat")
        if data_format == "preference":  # axolotl reads the prompt's turns from field_messages
            fields = {"prompt": messages, **{name: dataset[f"field_{name}"] for name in ("chosen", "rejected")
                                             if dataset.get(f"field_{name}", name) != name}}
        elif messages != ("conversations" if sharegpt else "messages"):
            fields["messages"] = messages
        if mappings and dict(mappings) not in MESSAGE_KEYS:
            out.skip(f"datasets[{index}].message_property_mappings", dict(mappings),
                     "fttool reads messages as role/content or from/value")
    else:
        data_format = "alpaca"
        out.skip(f"datasets[{index}].type", kind, "no such record format in fttool; set the source's format")
    for key, value in dataset.items():
        if key not in AXOLOTL_DATASET_KEYS and value not in (None, ""):
            out.skip(f"datasets[{index}].{key}", value, AXOLOTL_DATASET_NOT_CARRIED.get(key, "no equivalent in "
                                                                                           "fttool's sources"))
    return _source(str(dataset.get("path", f"dataset-{index}")), data_format, out, fields)


def _axolotl_method(raw: Mapping[str, Any], out: Imported) -> set[str]:
    adapter, four_bit = raw.get("adapter"), raw.get("load_in_4bit")
    if adapter == "qlora" or (adapter == "lora" and four_bit):
        out.set(("train", "method"), "qlora")
    elif adapter == "lora":
        out.set(("train", "method"), "lora")
    elif not adapter:
        out.set(("train", "method"), "full")
    else:
        out.skip("adapter", adapter, "fttool trains lora, qlora or full")
    if raw.get("lora_target_linear"):
        out.set(("train", "lora", "target_modules"), "all-linear")
    elif raw.get("lora_target_modules"):
        out.set(("train", "lora", "target_modules"), [str(m) for m in raw["lora_target_modules"]])
    if out.recipe.get("train", {}).get("method") == "full":
        out.recipe["train"].pop("lora", None)
    elif out.recipe.get("train", {}).get("method") in ("lora", "qlora"):
        out.recipe["train"].setdefault("lora", {}).setdefault("dropout", 0.0)  # axolotl's default, not fttool's
    return {"adapter", "load_in_4bit", "lora_target_linear", "lora_target_modules"}


def _objective(key: str, value: Any, out: Imported, objectives: Mapping[str, str], has_objective: bool) -> None:
    if value in ("sft", None):
        return
    if value in objectives and has_objective:
        out.set(("train", "objective"), objectives[value])
    else:
        out.skip(key, value, "fttool trains supervised fine-tuning" + (
            f" and {', '.join(PREFERENCE_OBJECTIVES)}" if has_objective else ""))


def from_axolotl(raw: Mapping[str, Any], name: str, has_objective: bool) -> Imported:
    out = Imported()
    handled = _apply_renames(raw, AXOLOTL_RENAMES, out) | _precision(raw, out) | _axolotl_method(raw, out)
    if raw.get("rl"):
        _objective("rl", raw["rl"], out, {o: o for o in PREFERENCE_OBJECTIVES}, has_objective)
    datasets = raw.get("datasets") or []
    out.set(("data", "sources"), [_axolotl_dataset(i, d, out) for i, d in enumerate(datasets)] or
            [_source("your-data", "alpaca", out)])
    _split(raw.get("val_set_size"), "val_set_size", out)
    for key, handle in (("optimizer", _optimizer), ("lr_scheduler", _scheduler)):
        if raw.get(key):
            handle(key, raw[key], out)
    if raw.get("chat_template"):
        _chat_template("chat_template", raw["chat_template"], out, raw.get("chat_template_jinja"))
    if raw.get("gradient_checkpointing"):
        out.set(("train", "gradient_checkpointing"), True)
        if raw["gradient_checkpointing"] is not True:
            out.skip("gradient_checkpointing", raw["gradient_checkpointing"], "activations are recomputed, "
                                                                               "not offloaded")
    if raw.get("early_stopping_patience"):
        _early_stopping(raw, out)
    handled |= {"datasets", "val_set_size", "optimizer", "lr_scheduler", "chat_template", "chat_template_jinja",
                "rl", "gradient_checkpointing", "early_stopping_patience"}
    _skip_rest(raw, handled, AXOLOTL_NOT_CARRIED, out)
    return _finish(out, name)


def _early_stopping(raw: Mapping[str, Any], out: Imported) -> None:
    out.set(("train", "early_stopping"), {"patience": int(raw["early_stopping_patience"])})
    for key in ("eval_steps", "evals_per_epoch"):  # early stopping measures at every checkpoint instead
        if out.recipe["train"].pop(key, None) is not None:
            out.skip(key, raw[key], "with early stopping, fttool measures validation loss at every checkpoint")


def _llamafactory_method(raw: Mapping[str, Any], out: Imported) -> set[str]:
    kind, bits = raw.get("finetuning_type", "lora"), raw.get("quantization_bit")
    peft = raw.get("peft_config") or {}
    if peft:  # LLaMA-Factory v1 configs nest the adapter
        kind = peft.get("name", "lora")
        for key, path in (("r", "r"), ("lora_alpha", "alpha"), ("lora_dropout", "dropout")):
            if key in peft:
                out.set(("train", "lora", path), float(peft[key]) if path != "r" else int(peft[key]))
        raw = {**raw, "lora_target": peft.get("target_modules")}
    if kind == "full":
        out.set(("train", "method"), "full")
    elif kind == "lora":
        out.set(("train", "method"), "qlora" if bits == 4 else "lora")
        if bits == 8:
            out.set(("train", "load_in_8bit"), True)
        elif bits not in (None, 4):
            out.skip("quantization_bit", bits, "fttool loads 4 bits (qlora) or 8 bits (load_in_8bit)")
        targets = raw.get("lora_target") or ("all" if not peft else None)
        if targets:
            out.set(("train", "lora", "target_modules"), "all-linear" if targets == "all" else
                    [t.strip() for t in str(targets).split(",")])
        if not peft:  # LLaMA-Factory's defaults where the config is silent, not fttool's
            lora = out.recipe["train"]["lora"]
            lora.setdefault("r", 8)
            lora.setdefault("alpha", float(2 * lora["r"]))
            lora.setdefault("dropout", 0.0)
    else:
        out.skip("finetuning_type", kind, "fttool trains lora, qlora or full")
    method = raw.get("quantization_method")
    if method not in (None, "bnb", "bitsandbytes"):  # bnb is bitsandbytes, what fttool loads with
        out.skip("quantization_method", method, "fttool quantizes with bitsandbytes only")
    return {"finetuning_type", "quantization_bit", "quantization_method", "lora_target", "peft_config"}


def _llamafactory_data(raw: Mapping[str, Any], out: Imported) -> set[str]:
    stage = raw.get("stage", "sft")
    # LLaMA-Factory's v1 configs name a dataset file of chat messages; the classic ones default to alpaca.
    plain = "chat" if raw.get("train_dataset") else "alpaca"
    data_format = {"dpo": "sharegpt_preference", "orpo": "sharegpt_preference", "kto": "kto"}.get(stage, plain)
    names = [n.strip() for n in str(raw.get("dataset") or raw.get("train_dataset") or "your-data").split(",")]
    out.set(("data", "sources"), [_source(Path(n).stem if n.endswith((".yaml", ".json")) else n, data_format, out)
                                  for n in names if n])
    _split(raw.get("val_size"), "val_size", out)
    if raw.get("template"):
        _chat_template("template", raw["template"], out)
    return {"dataset", "train_dataset", "val_size", "template"}


def from_llamafactory(raw: Mapping[str, Any], name: str, has_objective: bool) -> Imported:
    out = Imported()
    handled = (_apply_renames(raw, LLAMAFACTORY_RENAMES, out) | _precision(raw, out)
               | _llamafactory_method(raw, out) | _llamafactory_data(raw, out))
    for key, handle in (("optim", _optimizer), ("lr_scheduler_type", _scheduler)):
        if raw.get(key):
            handle(key, raw[key], out)
    stage = raw.get("stage")
    if stage == "dpo" and raw.get("pref_loss") == "orpo":
        stage = "orpo"
    _objective("stage", stage, out, {o: o for o in PREFERENCE_OBJECTIVES}, has_objective)
    if raw.get("pref_beta") is not None and out.recipe.get("train", {}).get("objective"):
        out.set(("train", "preference", "beta"), float(raw["pref_beta"]))
    elif raw.get("pref_beta") is not None:
        out.skip("pref_beta", raw["pref_beta"], "applies to preference tuning only")
    if raw.get("pref_loss") not in (None, "sigmoid", "orpo"):
        out.skip("pref_loss", raw["pref_loss"], "fttool's DPO loss here is sigmoid")
    if raw.get("report_to") in ("none", None) and "report_to" in raw:
        out.set(("tracking",), {"enabled": False})
    elif raw.get("report_to") not in ("mlflow", None):
        out.skip("report_to", raw["report_to"], "fttool tracks with MLflow (tracking section)")
    if out.recipe.get("train", {}).get("max_samples") is not None:
        cap = out.recipe["train"]["max_samples"]
        out.differs.append(f"max_samples: {cap} (LLaMA-Factory keeps the first {cap} records of each dataset before "
                           f"holding out validation; train.max_samples keeps the first {cap} records of the shuffled "
                           "train split, all sources together)")
    if not raw.get("do_train", True):
        out.not_carried.append("do_train: false (the recipe trains; remove its train section for a data-only run)")
    handled |= {"optim", "lr_scheduler_type", "stage", "pref_beta", "pref_loss", "report_to", "do_train"}
    _skip_rest(raw, handled, LLAMAFACTORY_NOT_CARRIED, out)
    if "stage" not in raw and "do_train" not in raw and raw.keys() & INFERENCE_KEYS:
        out.not_carried.insert(0, "the whole config: it runs inference or exports a model and trains nothing (no "
                                  "stage); the recipe below trains, and fttool export RUN_DIR [--merge] exports a "
                                  "run's model")
    return _finish(out, name)


def _finish(out: Imported, name: str) -> Imported:
    """Name the recipe and put its sections in the usual order; a recipe without a base model gets a placeholder."""
    if "model" not in out.recipe:
        out.set(("model", "base"), "./models/base")
        out.to_fill.append("model.base: the config names no base model; give a local directory or a hub id")
    recipe: dict[str, Any] = {"name": re.sub(r"[^A-Za-z0-9._-]+", "-", name)[:64].strip("-._") or "imported"}
    for section in ("data", "model", "train", "tracking"):
        if section in out.recipe:
            recipe[section] = out.recipe[section]
    if "train" not in recipe:
        recipe["train"] = {"method": "lora"}
    out.recipe = recipe
    return out


IMPORTERS: dict[str, Callable[[Mapping[str, Any], str, bool], Imported]] = {
    "axolotl": from_axolotl, "llamafactory": from_llamafactory}


def import_config(tool: str, path: Path) -> Imported:
    """The recipe for the config at `path`, written by `tool`; raises ValueError naming the file when unreadable."""
    import yaml

    from fttool.recipe.schema import load_schema

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the {tool} config: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a config for {tool} is a YAML mapping of settings; this file holds "
                         f"{type(raw).__name__}")
    has_objective = "objective" in load_schema()["properties"]["train"]["properties"]
    return IMPORTERS[tool](raw, Path(path).stem, has_objective)
