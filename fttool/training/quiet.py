"""Keep the libraries' harmless noise off a run's console, and their real warnings on it.

Called by everything that loads, builds or trains a model, so that no path prints before it is quiet.
"""
from __future__ import annotations

import logging
import sys
import warnings

# transformers warns when a text tokenises to more tokens than the model's maximum; fttool cuts every example to
# max_seq_length itself (and counts what it cut), so the warning describes nothing that reaches the model.
LONG_SEQUENCE_WARNING = "Token indices sequence length is longer than the specified maximum sequence length"


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_libraries() -> None:
    """transformers logs warnings and errors only, without the long-sequence warning; library progress bars
    (weight loading, shard writing) show only on a terminal; peft's call of a method transformers 5 deprecated
    (`is_gradient_checkpointing`, nothing fttool calls) is not shown."""
    import datasets
    import transformers

    transformers.logging.set_verbosity_warning()
    tokenizer_logger = logging.getLogger("transformers.tokenization_utils_base")
    if not any(isinstance(f, _DropMessage) for f in tokenizer_logger.filters):
        tokenizer_logger.addFilter(_DropMessage(LONG_SEQUENCE_WARNING))
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    if not sys.stderr.isatty():
        transformers.logging.disable_progress_bar()
        datasets.disable_progress_bars()
