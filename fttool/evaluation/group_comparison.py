"""Per-group results: each per-example metric compared between the groups of each sensitive field.

Each test record's group comes from its `meta` (the sensitive fields of the bias audit, or
evaluate.groups.fields), named as the bias audit names it (fttool.fairness.groups). The mean per-example
metric of each group, for both models, comes from fairlearn's MetricFrame with bootstrap confidence intervals
(fttool.evaluation.metrics.metric_by_group). Groups with fewer test records than min_group_size are
named as too small to judge and left out of the difference and ratio. The tuned model's difference and
ratio are judged against the recipe's limits by their bootstrap intervals, not their point estimates
(fttool.fairness.intervals): pass when the whole interval is within every limit, warn or fail when it
lies wholly past one, and inconclusive when it crosses one or fewer than two groups can be compared.
Only group names, counts and scores are reported, never text; a group of fewer test records than
k_anonymity is not named but labelled, as the bias audit labels it (fttool.fairness.audit.suppressed_labels).
"""
from __future__ import annotations

from fttool.evaluation.metrics import metric_by_group
from fttool.evaluation.model_pair import MODELS
from fttool.evaluation.rounding import rounded_all
from fttool.evaluation.settings import GroupParams
from fttool.fairness.audit import suppressed_labels
from fttool.fairness.groups import MISSING_GROUP, group_value
from fttool.fairness.intervals import FAIRNESS_STATUSES, against_limit, interval_text, worst_status

NO_FIELDS = "no sensitive fields declared (bias.fields or evaluate.groups.fields)"
BOOTSTRAP_METHOD = "percentile; each group resampled within itself; same draws for both models"


def _limit_check(shown: str, interval, worse: str, limit_name: str, warn_limit: float,
                 fail_limit: float | None) -> tuple[str, str | None]:
    """(status, reason) of one tuned statistic, described by `shown`, judged by its interval against the warn
    and fail limits; values `worse` ("above" or "below") a limit cross it."""
    shown = f"{shown} ({interval_text(interval)})"
    fail = against_limit(interval, fail_limit, worse) if fail_limit is not None else "within"
    if fail == "beyond":
        return "fail", f"{shown}, wholly {worse} the fail limit of {fail_limit:g}"
    warn = against_limit(interval, warn_limit, worse)
    if warn == "beyond":
        also = f"; it may also be {worse} the fail limit of {fail_limit:g}" if fail == "inconclusive" else ""
        return "warn", f"{shown}, wholly {worse} the {limit_name} of {warn_limit:g}{also}"
    if "inconclusive" in (warn, fail):
        crossed = (f"the {limit_name} of {warn_limit:g}" if warn == "inconclusive"
                   else f"the fail limit of {fail_limit:g}")
        return "inconclusive", (f"{shown} crosses {crossed}: inconclusive; more test records per group would tell "
                                f"whether it is {worse} it")
    return "pass", None


def _metric_checks(field: str, metric: str, tuned: dict, settings: GroupParams) -> list[tuple[str, str | None]]:
    difference = _limit_check(f"tuned {metric} differs by {tuned['difference']:.3f} between '{field}' groups",
                              tuned["difference_ci"], "above", "maximum", settings.max_difference,
                              settings.fail_above_difference)
    if tuned["ratio"] is None:
        return [difference, ("inconclusive", f"tuned {metric} is 0 for every compared '{field}' group; "
                                             "no ratio exists")]
    ratio = _limit_check(f"tuned {metric} of the lowest '{field}' group is {tuned['ratio']:.3f} of the highest",
                         tuned["ratio_ci"], "below", "minimum", settings.min_ratio, settings.fail_below_ratio)
    return [difference, ratio]


def field_status(field: str, metrics: dict, settings: GroupParams) -> tuple[str, list[str]]:
    """Pass, inconclusive, warn or fail for one field, from the bootstrap intervals of the tuned model's difference
    and ratio of each metric (fttool.fairness.intervals); the reasons, worst first."""
    checks = []
    for metric, results in metrics.items():
        tuned = results["tuned"]
        if len(tuned["compared_groups"]) < 2:
            return "inconclusive", [f"fewer than two '{field}' groups have {settings.min_group_size} or more test "
                                    "records; no difference can be judged"]
        checks += _metric_checks(field, metric, tuned, settings)
    checks.sort(key=lambda check: -FAIRNESS_STATUSES.index(check[0]))
    return worst_status(status for status, _ in checks), [reason for _, reason in checks if reason]


def _too_small(field: str, counts: dict[str, int], min_group_size: int) -> list[str]:
    small = [(group, n) for group, n in counts.items() if n < min_group_size]
    if not small:
        return []
    named = ", ".join(f"'{group}' ({n})" for group, n in small)
    return [f"too small to judge (fewer than {min_group_size} test records), so left out of the '{field}' "
            f"difference and ratio: {named}"]


def _field_results(field: str, records: list[dict], scores: dict[str, dict[str, list[float]]],
                   settings: GroupParams) -> dict:
    # The bias audit's group names, so both sections name groups alike, and as it does, small groups unnamed.
    values = [group_value(record.get("meta"), field) for record in records]
    labels = suppressed_labels([(value, values.count(value)) for value in set(values)], settings.k_anonymity)
    groups = [labels.get(value, value) for value in values]
    counts = {group: groups.count(group) for group in sorted(set(groups))}
    compared = {group for group, n in counts.items() if n >= settings.min_group_size}
    boot = settings.bootstrap
    metrics = {metric: {model: rounded_all(metric_by_group(scores[model][metric], groups, compared, boot.resamples,
                                                           boot.confidence, boot.seed))
                        for model in MODELS}
               for metric in settings.metrics}
    status, reasons = field_status(field, metrics, settings)
    reasons += _too_small(field, counts, settings.min_group_size)
    return {"groups": {group: {"count": n, "compared": group in compared} for group, n in counts.items()},
            "metrics": metrics, "status": status, "reasons": reasons,
            "privacy": {"k_anonymity": settings.k_anonymity, "suppressed_groups": len(labels)}}


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
                       "k_anonymity": settings.k_anonymity,
                       "min_ratio": settings.min_ratio, "fail_above_difference": settings.fail_above_difference,
                       "fail_below_ratio": settings.fail_below_ratio},
        "bootstrap": {"resamples": boot.resamples, "confidence": boot.confidence, "seed": boot.seed,
                      "method": BOOTSTRAP_METHOD},
        "fields": results,
        # The tuned model's largest gap per field and metric, for policy gates.
        "gaps": {field: {metric: result["metrics"][metric]["tuned"]["difference"] for metric in settings.metrics}
                 for field, result in results.items()},
    }
