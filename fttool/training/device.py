"""The one place that decides where training and inference run and at what precision, and what this
machine cannot run (QLoRA and packing need CUDA; FSDP needs GPUs)."""
from __future__ import annotations

import importlib.util


def device() -> str:
    """"cuda" when a CUDA GPU is visible, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def automatic_precision() -> str:
    """bf16 on GPUs that support it, fp16 (mixed, fp32 weights) on older GPUs, fp32 on CPU."""
    import torch

    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def load_dtype():
    """The dtype weights are loaded in: bf16 where the GPU supports it; on CPU bf16 is slow and would blur small
    loss differences, so fp32."""
    import torch

    return torch.bfloat16 if automatic_precision() == "bf16" else torch.float32


def qlora_requirements_unmet(method: str) -> list[str]:
    """Why this machine cannot run a QLoRA recipe (no CUDA GPU, no bitsandbytes); empty otherwise."""
    if method != "qlora":
        return []
    import torch

    problems = []
    if not torch.cuda.is_available():
        problems.append("no CUDA GPU is visible")
    if importlib.util.find_spec("bitsandbytes") is None:
        problems.append("bitsandbytes is not installed")
    if not problems:
        return []
    return [f"method qlora loads the base model in 4 bits with bitsandbytes, which needs a CUDA GPU and the "
            f"bitsandbytes package, but {' and '.join(problems)}. Run it on a machine with both, or use "
            "train.method: lora"]


def packing_requirements_unmet(packing: bool) -> list[str]:
    """Why this machine cannot pack examples without them attending to each other; empty otherwise.

    TRL packs examples into one row and marks their boundaries with position ids. Only FlashAttention's
    variable-length kernels honour those boundaries; the CPU's eager and SDPA attention let each packed
    example see the ones before it, which would silently change what is trained.
    """
    if not packing:
        return []
    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return []
    return ["train.packing needs FlashAttention (the flash-attn package on a CUDA GPU) to keep packed examples "
            "from attending to each other, and this machine lacks it. Run on a machine with both, or set "
            "train.packing: false"]


def launch_requirements_unmet(num_processes: int, strategy: str) -> list[str]:
    """Why this machine cannot run the recipe's compute settings; empty if it can."""
    if num_processes == 1:
        return []
    import torch

    gpus = torch.cuda.device_count()
    if strategy == "fsdp" and not gpus:
        return ["compute.strategy fsdp shards the model across CUDA GPUs, and none is visible; use strategy ddp "
                "(gloo on CPU) or run on a machine with GPUs"]
    if gpus and num_processes > gpus:
        return [f"compute.num_processes is {num_processes} but only {gpus} CUDA GPUs are visible; "
                "use one process per GPU"]
    return []
