"""Bias audit: how records are spread over the groups of each declared sensitive attribute.

Values are read from each record's `meta`; a record without the field (or with null) counts in the
group "(missing)", so gaps in the attribute are visible rather than silently dropped. Group counts
come from fairlearn's MetricFrame over the train, validation and test splits together, with per-split
counts beside them. A field warns when a group's share is below `min_group_share` or the largest
group is more than `max_imbalance_ratio` times the smallest. Records are only read, never changed.

Group names are attribute values (regions, age bands), which the report may show; no text is read.
"""
from __future__ import annotations

import json

from fttool.records import read_jsonl
from fttool.stages.base import Stage, StageContext, StageResult

SPLITS = ("train", "validation", "test")
MISSING_GROUP = "(missing)"
MAX_LISTED_GROUPS = 50
MAX_NAMED_IN_REASON = 10  # groups named in one reason; the rest are counted


def _group_name(meta: dict, field: str) -> str:
    value = meta.get(field)
    if value is None:
        return MISSING_GROUP
    # Non-strings take their JSON spelling, so booleans, lists and objects get a stable name.
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _named(groups: list[str]) -> str:
    shown = ", ".join(f"'{g}'" for g in groups[:MAX_NAMED_IN_REASON])
    rest = len(groups) - MAX_NAMED_IN_REASON
    return shown + (f" and {rest} more" if rest > 0 else "")


def _audit_field(values: list[str], splits: list[str], min_share: float, max_ratio: float) -> dict:
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import MetricFrame, count

    if not values:
        return {"groups": {}, "groups_not_listed": 0, "by_split": {s: {} for s in SPLITS}, "min_share": None,
                "imbalance_ratio": None, "status": "warn", "reasons": ["no records to audit"]}
    zeros = np.zeros(len(values))
    features = pd.Series(values, name="group")
    overall = MetricFrame(metrics=count, y_true=zeros, y_pred=zeros, sensitive_features=features).by_group
    per_split = MetricFrame(metrics=count, y_true=zeros, y_pred=zeros, sensitive_features=features,
                            control_features=pd.Series(splits, name="split")).by_group.dropna()
    total = int(overall.sum())
    # Largest first, ties by name, so the listing and any cut-off are stable.
    ordered = sorted(((str(group), int(n)) for group, n in overall.items()), key=lambda item: (-item[1], item[0]))
    listed = ordered[:MAX_LISTED_GROUPS]
    largest, smallest = ordered[0], ordered[-1]
    min_share_seen = smallest[1] / total
    ratio = largest[1] / smallest[1]

    reasons = []
    small = [group for group, n in ordered if n / total < min_share]
    if small:
        reasons.append(f"{len(small)} group(s) below the minimum share of {min_share:.1%}: {_named(small[::-1])}")
    if ratio > max_ratio:
        reasons.append(f"largest group '{largest[0]}' ({largest[1]} records) is {ratio:.1f} times the smallest "
                       f"'{smallest[0]}' ({smallest[1]}), above the maximum of {max_ratio:g}")
    listed_names = {group for group, _ in listed}
    by_split = {split: {} for split in SPLITS}
    for (split, group), n in per_split.items():
        if group in listed_names:
            by_split[split][group] = int(n)
    return {
        "groups": {group: {"count": n, "share": round(n / total, 6)} for group, n in listed},
        "groups_not_listed": len(ordered) - len(listed),
        "by_split": {split: dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
                     for split, counts in by_split.items()},
        "min_share": round(min_share_seen, 6),
        "imbalance_ratio": round(ratio, 4),
        "status": "warn" if reasons else "pass",
        "reasons": reasons,
    }


class BiasStage(Stage):
    name = "bias"
    reads = SPLITS
    writes = ()
    report_section = "bias"

    def run(self, ctx: StageContext) -> StageResult:
        fields = list(ctx.params["fields"])
        values: dict[str, list[str]] = {field: [] for field in fields}
        splits: list[str] = []
        # Only the group names are kept in memory, one short string per record and field.
        for split in SPLITS:
            for record in ctx.progress(read_jsonl(ctx.inputs[split]), desc=f"bias {split}"):
                meta = record.get("meta") or {}
                splits.append(split)
                for field in fields:
                    values[field].append(_group_name(meta, field))
        audits = {field: _audit_field(values[field], splits, ctx.params["min_group_share"],
                                      ctx.params["max_imbalance_ratio"]) for field in fields}
        status = "warn" if any(audit["status"] == "warn" for audit in audits.values()) else "pass"
        return StageResult(summary={"fields": audits, "status": status})


STAGE = BiasStage
