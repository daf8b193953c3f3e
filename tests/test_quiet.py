"""The libraries' harmless noise is kept off the console; their other warnings are not."""
from __future__ import annotations

import logging
import warnings

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
