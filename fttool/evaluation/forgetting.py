"""The forgetting check: perplexity on general text the recipe ships, base against tuned.

A tuned model that got better on its task but worse on plain language has forgotten something; the
relative increase of perplexity is gated by the recipe's `max_increase`.
"""
from __future__ import annotations

import re
from pathlib import Path

from fttool.data.records import read_jsonl
from fttool.evaluation.rounding import rounded
from fttool.evaluation.settings import ForgettingParams

DEFINITION = ("perplexity over every token of each passage (cut at the model's context length); "
              "increase = tuned / base - 1")


def general_passages(path: Path) -> list[str]:
    """The passages of a general text file: blank-line separated paragraphs of a .txt file, or the
    `text` string of each line of a .jsonl file."""
    if path.suffix == ".jsonl":
        passages = []
        for number, record in enumerate(read_jsonl(path), start=1):
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"{path.name}: record {number} has no 'text' string; each line of a forgetting "
                                 'file must be {"text": "..."}')
            passages.append(record["text"])
    else:
        passages = [" ".join(block.split()) for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))]
    passages = [passage for passage in passages if passage.strip()]
    if not passages:
        raise ValueError(f"{path.name} holds no text for the forgetting check")
    return passages


def passage_records(passages: list[str]) -> list[dict]:
    """Passages as plain-text records, so every token of each is scored."""
    return [{"format": "text", "text": passage} for passage in passages]


def forgetting_check(base_perplexity: float | None, tuned_perplexity: float | None, passages: int,
                     settings: ForgettingParams) -> dict:
    """The report's `evaluation.forgetting`: both perplexities, the relative increase and its status.

    A perplexity that could not be measured cannot pass.
    """
    increase = (None if base_perplexity is None or tuned_perplexity is None
                else rounded(tuned_perplexity / base_perplexity - 1))
    status = "pass" if increase is not None and increase <= settings.max_increase else settings.action
    return {"path": settings.path, "passages": passages, "base_perplexity": base_perplexity,
            "tuned_perplexity": tuned_perplexity, "increase": increase, "max_increase": settings.max_increase,
            "action": settings.action, "status": status, "definition": DEFINITION}
