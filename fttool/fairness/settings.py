"""Typed parameters of the bias audit, built once by the recipe compiler (a light module: no heavy imports)."""
from __future__ import annotations

from dataclasses import dataclass

from fttool.data.settings import EngineSettings


@dataclass(frozen=True)
class BiasParams:
    """Parameters of the bias stage.

    Attributes:
        fields: meta fields that hold a sensitive attribute (e.g. region); may be empty when mentions are audited.
        mention_categories: lexicon categories whose mentions in the text are counted; empty for none.
        min_group_share: a group below this share of records warns.
        min_group_size: a group with fewer records than this warns; 0 turns the check off.
        max_imbalance_ratio: largest group over smallest group; above this warns.
        fail_below_share: a group below this share fails the audit; None for no such check.
        fail_above_ratio: largest group over smallest; above this fails the audit; None for no such check.
        k_anonymity: a field's groups with fewer records than this are not named in the report, since so small a
            group's value can identify people (e.g. a customer name); they are counted and checked all the same.
        compute: where each record's groups are read (the counting and checks stay in the stage's process).
    """

    fields: tuple[str, ...]
    mention_categories: tuple[str, ...]
    min_group_share: float
    min_group_size: int
    max_imbalance_ratio: float
    fail_below_share: float | None
    fail_above_ratio: float | None
    k_anonymity: int
    compute: EngineSettings


def bias_params(section: dict) -> dict:
    """The recipe's bias section (schema defaults applied) as BiasParams fields; absent optional keys are None."""
    mentions = section.get("mentions")
    return {"fields": section.get("fields", []),
            "mention_categories": mentions["categories"] if mentions and mentions["enabled"] else [],
            **{key: section.get(key) for key in ("fail_below_share", "fail_above_ratio")},
            **{key: section[key] for key in ("min_group_share", "min_group_size", "max_imbalance_ratio",
                                             "k_anonymity")}}
