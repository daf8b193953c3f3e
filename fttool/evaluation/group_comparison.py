"""Per-group results: each per-example metric compared between the groups of each sensitive field.

Each test record's group comes from its `meta` (the sensitive fields of the bias audit, or
evaluate.groups.fields), named as the bias audit names it (fttool.fairness.groups). The mean per-example
metric of each group, for both models, comes from fairlearn's MetricFrame with bootstrap confidence intervals
(fttool.evaluation.metrics.metric_by_group). Groups with fewer test records than min_group_size are
reported but left out of the difference and ratio, which the recipe's thresholds gate (pass, warn,
fail, like the bias audit). Only group names, counts and scores are reported, never text.
"""
from __future__ import annotations

from fttool.evaluation.metrics import metric_by_group
from fttool.evaluation.model_pair import MODELS
from fttool.evaluation.rounding import rounded_all
from fttool.evaluation.settings import GroupParams
from fttool.fairness.groups import MISSING_GROUP, group_value, worst_status

NO_FIELDS = "no sensitive fields declared (bias.fields or evaluate.groups.fields)"
BOOTSTRAP_METHOD = "percentile; each group resampled within itself; same draws for both models"


def field_status(field: str, metrics: dict, settings: GroupParams) -> tuple[str, list[str]]:
    """Pass, warn or fail for one field, from the tuned model's difference and ratio of each metric."""
    fails, warns = [], []
    for metric, results in metrics.items():
        tuned = results["tuned"]
        if len(tuned["compared_groups"]) < 2:
            warns.append(f"fewer than two '{field}' groups have {settings.min_group_size} or more test records; "
                         "no difference was checked")
            break
        difference, ratio = tuned["difference"], tuned["ratio"]
        text = f"tuned {metric} differs by {difference:.3f} between '{field}' groups"
        if settings.fail_above_difference is not None and difference > settings.fail_above_difference:
            fails.append(f"{text}, above the fail limit of {settings.fail_above_difference:g}")
        elif difference > settings.max_difference:
            warns.append(f"{text}, above the maximum of {settings.max_difference:g}")
        if ratio is None:
            warns.append(f"tuned {metric} is 0 for every compared '{field}' group; no ratio exists")
            continue
        text = f"tuned {metric} of the lowest '{field}' group is {ratio:.3f} of the highest"
        if settings.fail_below_ratio is not None and ratio < settings.fail_below_ratio:
            fails.append(f"{text}, below the fail limit of {settings.fail_below_ratio:g}")
        elif ratio < settings.min_ratio:
            warns.append(f"{text}, below the minimum of {settings.min_ratio:g}")
    return ("fail" if fails else "warn" if warns else "pass"), fails + warns


def _field_results(field: str, records: list[dict], scores: dict[str, dict[str, list[float]]],
                   settings: GroupParams) -> dict:
    # The bias audit's group names, so both sections name groups alike.
    groups = [group_value(record.get("meta"), field) for record in records]
    counts = {group: groups.count(group) for group in sorted(set(groups))}
    compared = {group for group, n in counts.items() if n >= settings.min_group_size}
    boot = settings.bootstrap
    metrics = {metric: {model: rounded_all(metric_by_group(scores[model][metric], groups, compared, boot.resamples,
                                                           boot.confidence, boot.seed))
                        for model in MODELS}
               for metric in settings.metrics}
    status, reasons = field_status(field, metrics, settings)
    return {"groups": {group: {"count": n, "compared": group in compared} for group, n in counts.items()},
            "metrics": metrics, "status": status, "reasons": reasons}


def group_results(records: list[dict], scores: dict[str, dict[str, list[float]]], settings: GroupParams) -> dict:
    """The report's fairness section: per field, group counts and each metric by group for both models, gated.

    `scores` holds, per model ("base", "tuned") and metric, one score per record.
    """
    if not settings.fields:
        return {"evaluated": False, "reason": NO_FIELDS}
    if not records:
        return {"evaluated": False, "reason": "no test record was generated from"}
    results = {field: _field_results(field, records, scores, settings) for field in settings.fields}
    boot = settings.bootstrap
    return {
        "evaluated": True,
        "status": worst_status(result["status"] for result in results.values()),
        "metrics": list(settings.metrics),
        "records": len(records),
        "missing_group": MISSING_GROUP,
        "thresholds": {"min_group_size": settings.min_group_size, "max_difference": settings.max_difference,
                       "min_ratio": settings.min_ratio, "fail_above_difference": settings.fail_above_difference,
                       "fail_below_ratio": settings.fail_below_ratio},
        "bootstrap": {"resamples": boot.resamples, "confidence": boot.confidence, "seed": boot.seed,
                      "method": BOOTSTRAP_METHOD},
        "fields": results,
        # The tuned model's largest gap per field and metric, for policy gates.
        "gaps": {field: {metric: result["metrics"][metric]["tuned"]["difference"] for metric in settings.metrics}
                 for field, result in results.items()},
    }
