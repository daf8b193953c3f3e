"""The bias audit: how records are spread over the groups of declared sensitive attributes and of
demographic mentions in their text.

Fields: values are read from each record's `meta` (fttool.fairness.groups); a record without the field
(or with null or a blank) counts in the group "(missing)", so gaps in the attribute are visible rather than
silently dropped. A group of fewer records than `k_anonymity` is not named: its value could identify people
(a customer name in a field that should have held a region), so it is reported under a numbered label.

Mentions: each record's text fields are matched against fttool.fairness.lexicon, per category
(gender, age, religion, nationality). A record counts once for every group it mentions, so it can
count for several. A group's share is its records over the records mentioning any group of the
category; shares can therefore sum above 1. Groups the lexicon knows but no record mentions are
listed with 0 and left out of the checks: the lexicon is not a list of groups every dataset must hold.

Group counts come from fairlearn's MetricFrame over the train, validation and test splits together,
with per-split counts beside them. Each field and category gets a status: "fail" when a fail
threshold is crossed (a group's share below `fail_below_share`, largest over smallest group above
`fail_above_ratio`), else "warn" when a warn threshold is (share below `min_group_share`, fewer
records than `min_group_size`, ratio above `max_imbalance_ratio`), else "pass"; the overall status is
the worst. Records are only read, never changed.

The report may show group names (attribute values of groups of at least k records, and lexicon group
names) and counts; no text is kept or reported.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fttool.data.per_record import batched, in_order_beyond
from fttool.data.preference import prompt_view
from fttool.data.records import SPLITS, text_fields
from fttool.fairness.groups import MISSING_GROUP, group_value, worst_status
from fttool.fairness.lexicon import LEXICON, groups_mentioned
from fttool.fairness.settings import BiasParams

MAX_LISTED_GROUPS = 50
MAX_NAMED_IN_REASON = 10  # groups named in one reason; the rest are counted
RECORDS_PER_BATCH = 512  # records a worker reads at a time
MIN_RECORDS_FOR_WORKERS = 5_000  # see docs/benchmarks.md, "Per-record stages in parallel"


@dataclass(frozen=True)
class Thresholds:
    min_share: float
    max_ratio: float
    min_size: int
    fail_share: float | None
    fail_ratio: float | None

    @classmethod
    def from_params(cls, params: BiasParams) -> Thresholds:
        return cls(params.min_group_share, params.max_imbalance_ratio, params.min_group_size,
                   params.fail_below_share, params.fail_above_ratio)


def _named(groups: list[tuple[str, int]], total: int) -> str:
    shown = ", ".join(f"'{g}' ({n}, {n / total:.1%})" for g, n in groups[:MAX_NAMED_IN_REASON])
    rest = len(groups) - MAX_NAMED_IN_REASON
    return shown + (f" and {rest} more" if rest > 0 else "")


def _group_counts(groups: list[str], splits: list[str]) -> tuple[list[tuple[str, int]], dict[str, dict[str, int]]]:
    """Records per group, largest first, and per split and group, counted by fairlearn's MetricFrame.

    `groups` and `splits` are parallel: one entry per (record, group) pair.
    """
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import MetricFrame, count

    by_split: dict[str, dict[str, int]] = {split: {} for split in SPLITS}
    if not groups:
        return [], by_split
    zeros = np.zeros(len(groups))
    features = pd.Series(groups, name="group")
    overall = MetricFrame(metrics=count, y_true=zeros, y_pred=zeros, sensitive_features=features).by_group
    per_split = MetricFrame(metrics=count, y_true=zeros, y_pred=zeros, sensitive_features=features,
                            control_features=pd.Series(splits, name="split")).by_group.dropna()
    for (split, group), n in per_split.items():
        by_split[split][str(group)] = int(n)
    # Largest first, ties by name, so listings and any cut-off are stable.
    ordered = sorted(((str(group), int(n)) for group, n in overall.items()), key=lambda item: (-item[1], item[0]))
    return ordered, {split: dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
                     for split, counts in by_split.items()}


def _check(ordered: list[tuple[str, int]], total: int, limits: Thresholds) -> dict:
    """Status and reasons for groups with records (largest first), shares taken over `total`."""
    largest, smallest = ordered[0], ordered[-1]
    ratio = largest[1] / smallest[1]
    smallest_first = ordered[::-1]
    fails, warns = [], []
    failing = [(g, n) for g, n in smallest_first if limits.fail_share is not None and n / total < limits.fail_share]
    if failing:
        fails.append(f"{len(failing)} group(s) below the fail share of {limits.fail_share:.1%}: "
                     f"{_named(failing, total)}")
    # A group already failing on share is not repeated as a warning.
    failing_names = {g for g, _ in failing}
    small = [(g, n) for g, n in smallest_first if n / total < limits.min_share and g not in failing_names]
    if small:
        warns.append(f"{len(small)} group(s) below the minimum share of {limits.min_share:.1%}: "
                     f"{_named(small, total)}")
    few = [(g, n) for g, n in smallest_first if n < limits.min_size]
    if few:
        warns.append(f"{len(few)} group(s) with fewer than {limits.min_size} records: {_named(few, total)}")
    comparison = (f"largest group '{largest[0]}' ({largest[1]} records) is {ratio:.1f} times the smallest "
                  f"'{smallest[0]}' ({smallest[1]})")
    if limits.fail_ratio is not None and ratio > limits.fail_ratio:
        fails.append(f"{comparison}, above the fail ratio of {limits.fail_ratio:g}")
    elif ratio > limits.max_ratio:
        warns.append(f"{comparison}, above the maximum of {limits.max_ratio:g}")
    return {"min_count": smallest[1], "min_share": round(smallest[1] / total, 6), "imbalance_ratio": round(ratio, 4),
            "status": "fail" if fails else "warn" if warns else "pass", "reasons": fails + warns}


def suppressed_labels(ordered: list[tuple[str, int]], k: int) -> dict[str, str]:
    """Group value -> the label the report shows for each group of fewer than k records (MISSING_GROUP is
    never hidden: it names no one). Labels follow group size, ties broken by a digest of the value, so they are
    stable and their order says nothing about the values."""
    small = sorted(((group, n) for group, n in ordered if n < k and group != MISSING_GROUP),
                   key=lambda item: (-item[1], hashlib.sha256(item[0].encode("utf-8", "surrogatepass")).digest()))
    return {group: f"(group of fewer than {k} records #{index})" for index, (group, _) in enumerate(small, start=1)}


def _audit_field(values: list[str], splits: list[str], limits: Thresholds, k: int) -> dict:
    privacy: dict[str, Any] = {"k_anonymity": k, "suppressed_groups": 0}
    if not values:
        return {"groups": {}, "groups_not_listed": 0, "by_split": {s: {} for s in SPLITS}, "min_count": None,
                "min_share": None, "imbalance_ratio": None, "status": "warn", "reasons": ["no records to audit"],
                **privacy}
    ordered, by_split = _group_counts(values, splits)
    labels = suppressed_labels(ordered, k)
    if labels:  # from here on only labels are used, so no reason or listing can name a hidden value
        # Relabelled groups are listed in label order, so that the listing says nothing of how their values sort.
        rank = {label: index for index, label in enumerate(labels.values(), start=1)}
        ordered = sorted(((labels.get(group, group), n) for group, n in ordered),
                         key=lambda item: (-item[1], rank.get(item[0], 0), item[0]))
        by_split = {split: {labels.get(group, group): n for group, n in counts.items()}
                    for split, counts in by_split.items()}
        privacy = {"k_anonymity": k, "suppressed_groups": len(labels),
                   "note": f"{len(labels)} group(s) with fewer than {k} records are not named, since so small a "
                           "group's value can identify people; they are counted and checked under numbered labels"}
    total = len(values)
    listed = ordered[:MAX_LISTED_GROUPS]
    listed_names = {group for group, _ in listed}
    return {
        "groups": {group: {"count": n, "share": round(n / total, 6)} for group, n in listed},
        "groups_not_listed": len(ordered) - len(listed),
        "by_split": {split: {g: n for g, n in counts.items() if g in listed_names}
                     for split, counts in by_split.items()},
        **_check(ordered, total, limits),
        **privacy,
    }


def _audit_mentions(category: str, mentioned: list[frozenset[str]], splits: list[str], limits: Thresholds) -> dict:
    records = len(mentioned)
    with_mention = sum(1 for groups in mentioned if groups)
    summary: dict[str, Any] = {"records": records, "records_with_mention": with_mention,
               "share_with_mention": round(with_mention / records, 6) if records else None}
    # One row per (record, group) mentioned: MetricFrame then counts records per group.
    rows = [(group, split) for groups, split in zip(mentioned, splits) for group in sorted(groups)]
    ordered, by_split = _group_counts([g for g, _ in rows], [s for _, s in rows])
    unmentioned = sorted(set(LEXICON[category]) - {group for group, _ in ordered})
    summary["groups"] = {group: {"count": n, "share": round(n / with_mention, 6) if with_mention else 0.0}
                         for group, n in ordered + [(group, 0) for group in unmentioned]}
    summary["by_split"] = by_split
    if not records:
        return {**summary, "min_count": None, "min_share": None, "imbalance_ratio": None, "status": "warn",
                "reasons": ["no records to audit"]}
    if not ordered:
        return {**summary, "min_count": None, "min_share": None, "imbalance_ratio": None, "status": "pass",
                "reasons": []}
    return {**summary, **_check(ordered, with_mention, limits)}


@dataclass(frozen=True)
class _Grouping:
    """What is read from each record: its group for each field, and the groups it mentions in each category."""

    fields: tuple[str, ...]
    categories: tuple[str, ...]


Groups = tuple[tuple[str, ...], tuple[frozenset[str], ...]]  # a record's group per field, groups mentioned per category


def record_groups(batch: list[tuple[str, str]], grouping: _Grouping) -> list[tuple[str, Groups]]:
    """The split and groups of each record of a batch of (split, records file line)."""
    return [(split, _groups_of(json.loads(line), grouping)) for split, line in batch]


def _groups_of(record: dict, grouping: _Grouping) -> Groups:
    values = tuple(group_value(record.get("meta"), field) for field in grouping.fields)
    if not grouping.categories:
        return values, ()
    # A preference pair is audited by its prompt: who is asked about, not how the answers differ.
    texts = [text for _, text in text_fields(prompt_view(record))]
    return values, tuple(frozenset(groups_mentioned(texts, category)) for category in grouping.categories)


def audit(records_by_split: Iterable[tuple[str, Iterable[dict]]], params: BiasParams) -> dict:
    """The bias section for records given split by split, read in this process."""
    grouping = _Grouping(params.fields, params.mention_categories)
    return _summary(((split, _groups_of(record, grouping)) for split, records in records_by_split
                     for record in records), params)


def audit_files(lines_by_split: Iterable[tuple[str, Iterable[str]]], params: BiasParams, records: int,
                min_records_for_workers: int = MIN_RECORDS_FOR_WORKERS) -> dict:
    """The bias section for records files given split by split (their non-blank lines; `records` in all), read a
    batch at a time on the engine of params.compute when mentions are counted (in this process below
    `min_records_for_workers`)."""
    grouping = _Grouping(params.fields, params.mention_categories)
    batches = batched(((split, line) for split, lines in lines_by_split for line in lines), RECORDS_PER_BATCH)
    if not grouping.categories:  # a record's groups are then a lookup per field, cheaper than sending it to a worker
        return _summary((record for batch in batches for record in record_groups(batch, grouping)), params)
    counted = in_order_beyond(record_groups, batches, grouping, params.compute, min_records_for_workers, records)
    return _summary((record for batch in counted for record in batch), params)


def _summary(groups_by_record: Iterable[tuple[str, Groups]], params: BiasParams) -> dict:
    """The bias section from each record's split and groups, in record order."""
    limits = Thresholds.from_params(params)
    categories = params.mention_categories
    values: dict[str, list[str]] = {field: [] for field in params.fields}
    mentioned: dict[str, list[frozenset[str]]] = {category: [] for category in categories}
    splits: list[str] = []
    # Only group names are kept in memory, a few short strings per record; never the text.
    for split, (field_values, mentions) in groups_by_record:
        splits.append(split)
        for field, value in zip(params.fields, field_values):
            values[field].append(value)
        for category, groups in zip(categories, mentions):
            mentioned[category].append(groups)
    audits = {field: _audit_field(values[field], splits, limits, params.k_anonymity) for field in params.fields}
    mention_audits = {category: _audit_mentions(category, mentioned[category], splits, limits)
                      for category in categories}
    status = worst_status(audit["status"] for audit in [*audits.values(), *mention_audits.values()])
    return {"fields": audits, "mentions": mention_audits, "status": status}
