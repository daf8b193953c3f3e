"""Chat templates a recipe can use instead of the tokenizer's own, as axolotl and LLaMA-Factory let one choose:
a built-in name (`train.chat_template`) or a Jinja file (`train.chat_template_file`). The template is set on the
tokenizer before the data is tokenized, and saved with it, so evaluation and the memorisation check prompt the
tuned model the same way.

The markers these templates write (<|im_start|>, <|start_header_id|>, ...) are special tokens only for a
tokenizer that defines them; fttool never resizes the vocabulary, so elsewhere they are ordinary text.
"""
from __future__ import annotations

from pathlib import Path

TOKENIZER_DEFAULT = "tokenizer_default"
CHAT_TEMPLATES = {
    "chatml": ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
               "+ '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
               "{% endif %}"),
    "llama3": ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] "
               "+ '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"),
}


def chat_template_source(name: str | None, file: str | None, recipe_dir: Path) -> str | None:
    """The Jinja source of the named template or the template file; None to keep the tokenizer's own."""
    if file is not None:
        path = Path(recipe_dir) / file
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"train.chat_template_file: cannot read {path}: {exc}; give a UTF-8 Jinja file "
                             "relative to the recipe") from exc
    return None if name is None or name == TOKENIZER_DEFAULT else CHAT_TEMPLATES[name]


def set_chat_template(tokenizer, source: str | None) -> None:
    if source is not None:
        tokenizer.chat_template = source
