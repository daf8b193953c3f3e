"""Data-stage parameters as the compiler resolves them, for tests that run ingest, split or bias directly."""
from __future__ import annotations

from fttool.data.settings import resolved_source
from fttool.fairness.settings import bias_params
from fttool.recipe.schema import apply_defaults, load_schema


def _schema(*path: str) -> dict:
    node = load_schema()
    for key in path:
        node = node["properties"][key] if key != "items" else node["items"]
    return node


def ingest_params(sources: list[dict], max_chars: int = 200) -> dict:
    """The ingest stage's parameters for these recipe sources, every default resolved."""
    return {"sources": [resolved_source(apply_defaults(source, _schema("data", "sources", "items")))
                        for source in sources], "max_chars": max_chars, "compute": LOCAL_ENGINE}


# The engine a recipe gets by default: the cores available (inputs of tests stay below the worker thresholds).
LOCAL_ENGINE = {"engine": "local", "workers": None, "ray": {"address": "", "num_cpus": None}}


def split_params(deduplicated_exact: bool = False, deduplicated_near_threshold: float | None = None,
                 **settings) -> dict:
    """The split stage's parameters; by default its input is not known to be deduplicated, so its leakage check
    runs in full."""
    return {"stratify": None, "group_by": None, **apply_defaults(settings, _schema("data", "split")),
            "deduplicated_exact": deduplicated_exact, "deduplicated_near_threshold": deduplicated_near_threshold}


def audit_params(**settings) -> dict:
    """The bias stage's parameters for a `bias` section holding `settings`."""
    return {**bias_params(apply_defaults(settings, _schema("bias"))), "compute": LOCAL_ENGINE}


def tiny_tokenizer(texts: list[str]):
    """A byte-level BPE tokenizer trained on `texts` (fast, so it gives offsets), with </s> as its EOS token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<unk>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", unk_token="<unk>")
