"""The libraries' harmless noise is kept off the console; their other warnings are not."""
from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import pytest

from fttool.training.quiet import LONG_SEQUENCE_WARNING, quiet_libraries


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_the_long_sequence_warning_is_dropped_and_other_warnings_kept():
    quiet_libraries()
    logger = logging.getLogger("transformers.tokenization_utils_base")  # transformers' loggers do not propagate
    collect = _Collect()
    logger.addHandler(collect)
    try:
        logger.warning(f"{LONG_SEQUENCE_WARNING} for this model (600 > 512).")
        logger.warning("Special tokens have been added to the vocabulary.")
    finally:
        logger.removeHandler(collect)
    assert collect.messages == ["Special tokens have been added to the vocabulary."]


def test_peft_deprecation_warning_is_hidden_but_not_other_future_warnings():
    quiet_libraries()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_libraries()  # installs its filter again inside this context
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning,
                      stacklevel=1)
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else is deprecated"]


@pytest.mark.slow  # a fresh process that imports torch and loads the encoder
def test_loading_the_sentence_encoder_prints_no_progress_bar_to_a_log():
    """The augment stage's meaning check (and semantic dedup) load all-MiniLM-L6-v2: a fresh process whose stderr
    is a log got transformers' 'Loading weights' bar in the middle of the quickstart's output."""
    loaded = subprocess.run([sys.executable, "-c", "from fttool.data.embeddings import embed; "
                             "print(embed(['a short sentence']).shape)"],
                            capture_output=True, text=True, timeout=300, check=True)
    assert loaded.stdout.strip() == "(1, 384)"
    assert "Loading weights" not in loaded.stderr and "it/s]" not in loaded.stderr, loaded.stderr

