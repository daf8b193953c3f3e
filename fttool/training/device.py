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


def training_precision(setting: str) -> str:
    """The precision a run trains in: the recipe's, or the hardware's choice for "auto"."""
    return automatic_precision() if setting == "auto" else setting


def load_dtype(precision: str | None = None):
    """The dtype weights are loaded in: bf16 for bf16 training (by default where the GPU supports it); fp32
    otherwise, as fp16 mixed precision keeps fp32 master weights and on CPU bf16 is slow and would blur small
    loss differences."""
    import torch

    return torch.bfloat16 if (precision or automatic_precision()) == "bf16" else torch.float32


def _bitsandbytes_problems() -> list[str]:
    import torch

    problems = []
    if not torch.cuda.is_available():
        problems.append("no CUDA GPU is visible")
    if importlib.util.find_spec("bitsandbytes") is None:
        problems.append("bitsandbytes is not installed")
    return problems


def bitsandbytes_requirements_unmet(method: str, load_in_8bit: bool, optimizer: str) -> list[str]:
    """Why this machine cannot run the settings that need bitsandbytes on a CUDA GPU; empty otherwise."""
    wanted = [(method == "qlora", "method qlora loads the base model in 4 bits", "or use train.method: lora"),
              (load_in_8bit, "train.load_in_8bit loads the base model in 8 bits", "or set train.load_in_8bit: false"),
              (optimizer == "adamw_8bit", "optimizer adamw_8bit keeps its states in 8 bits",
               "or use train.optimizer: adamw_torch")]
    needing = [(what, fix) for needed, what, fix in wanted if needed]
    problems = _bitsandbytes_problems() if needing else []
    return [f"{what} with bitsandbytes, which needs a CUDA GPU and the bitsandbytes package, but "
            f"{' and '.join(problems)}. Run it on a machine with both, {fix}" for what, fix in needing if problems]


def precision_requirements_unmet(precision: str, tf32: bool) -> list[str]:
    """Why this machine cannot train in the recipe's precision; empty if it can."""
    import torch

    problems = []
    gpu = torch.cuda.is_available()
    if precision == "bf16" and not (gpu and torch.cuda.is_bf16_supported()):
        problems.append("train.precision bf16 needs a CUDA GPU that supports bfloat16, and this machine has "
                        f"{'an older GPU' if gpu else 'no CUDA GPU'}; use precision: auto or fp32")
    if precision == "fp16" and not gpu:
        problems.append("train.precision fp16 (mixed precision) needs a CUDA GPU, and none is visible; use "
                        "precision: auto or fp32")
    if tf32 and not (gpu and torch.cuda.get_device_capability() >= (8, 0)):
        problems.append("train.tf32 needs a CUDA GPU of compute capability 8.0 or newer (Ampere, e.g. A100), and "
                        f"this machine has {'an older GPU' if gpu else 'no CUDA GPU'}; set tf32: false")
    return problems


def torch_threads(threads: int | None, num_processes: int) -> int:
    """CPU threads for torch in each training process: the recipe's, else the cores this process may use less
    one (room for other work on a shared machine), shared among the processes; at least 1."""
    if threads is not None:
        return threads
    from fttool.data.engines import available_cores

    return max(1, (available_cores() - 1) // num_processes)


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


def launch_requirements_unmet(num_processes: int, strategy: str, num_machines: int = 1) -> list[str]:
    """Why this machine cannot run the recipe's compute settings (num_processes on each of num_machines); empty if
    it can."""
    if num_processes * num_machines == 1:
        return []
    import torch

    gpus = torch.cuda.device_count()
    if strategy == "fsdp" and not gpus:
        return ["compute.strategy fsdp shards the model across CUDA GPUs, and none is visible; use strategy ddp "
                "(gloo on CPU) or run on a machine with GPUs"]
    if strategy == "deepspeed":
        problems = []
        if importlib.util.find_spec("deepspeed") is None:
            problems.append("compute.strategy deepspeed needs the deepspeed package, which is not installed; "
                            "pip install deepspeed, or use strategy ddp or fsdp")
        if not gpus:
            problems.append("compute.strategy deepspeed runs ZeRO on CUDA GPUs, and none is visible; use strategy "
                            "ddp (gloo on CPU) or run on a machine with GPUs")
        if problems:
            return problems
    if gpus and num_processes > gpus:
        return [f"compute.num_processes is {num_processes} but only {gpus} CUDA GPUs are visible; "
                "use one process per GPU"]
    return []
