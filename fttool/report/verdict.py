"""One overall verdict for a run, pass, warn or fail, from its report.json alone, with every reason and its section.

A pure function of the report, so the renderings, the runner's console summary and `fttool check` can all
give the same answer. It fails on what a reviewer must not sign off without a waiver (a failed policy
rule, personal data left after scrubbing, no record kept, a failed check of the run's own thresholds) and
warns on what a reviewer should read before signing (records quarantined, fairness warnings or
inconclusive gaps, a primary metric that did not improve, no policy applied, a demo base model, a model trained
on data never scanned for personal data).
"""
from __future__ import annotations

from dataclasses import dataclass

from fttool.report.format import fmt, fmt_percent, get, is_number
from fttool.report.sections import demo_model

PASS, WARN, FAIL = "pass", "warn", "fail"
SEVERITY = {PASS: 0, WARN: 1, FAIL: 2}
MAX_NAMED_REASONS = 3
# The run's own checks: (report section, what it checks, where its status is in the section).
CHECKS = (("bias", "representation audit", ("status",)), ("fairness", "per-group evaluation", ("status",)),
          ("evaluation", "forgetting check", ("forgetting", "status")),
          ("memorisation", "memorisation check", ("status",)))


@dataclass(frozen=True)
class Reason:
    status: str  # warn or fail
    section: str  # the report section (and HTML anchor) that holds the evidence
    text: str


@dataclass(frozen=True)
class Verdict:
    status: str
    reasons: tuple[Reason, ...]

    def summary(self) -> str:
        """One line: the status and the reasons, failures first."""
        if not self.reasons:
            return f"verdict: {self.status}"
        return f"verdict: {self.status} ({'; '.join(reason.text for reason in self.reasons)})"


def _policy(report: dict) -> list[Reason]:
    policy = report.get("policy") or {}
    if not policy.get("evaluated"):
        return [Reason(WARN, "policy", "no policy was applied to this report")]
    reasons = []
    for rule in policy.get("rules") or []:
        if rule.get("status") == "failed":
            error = rule.get("severity") == "error"
            reasons.append(Reason(FAIL if error else WARN, "policy",
                                  f"policy {fmt(policy.get('policy'))}: {fmt(rule.get('id'))} "
                                  f"{'failed' if error else 'warns'} ({fmt(rule.get('description'))})"))
        elif rule.get("status") == "waived":
            # The policy file's own waiver: a name in a file, which no key signs.
            reasons.append(Reason(WARN, "policy", f"policy {fmt(policy.get('policy'))}: {fmt(rule.get('id'))} "
                                                  f"waived by {fmt(get(rule, 'waiver', 'approver'))} in the policy "
                                                  "file, unsigned"))
    return reasons


def _data(report: dict) -> list[Reason]:
    counts = get(report, "data", "counts") or {}
    reasons = []
    if counts.get("kept") == 0:
        reasons.append(Reason(FAIL, "data", f"no record was kept of {fmt(counts.get('input'))} input records"))
    quarantined, total = counts.get("quarantined"), counts.get("input")
    if is_number(quarantined) and quarantined > 0:
        by_reason = get(report, "data", "ingest", "quarantined_by_reason") or {}
        top = sorted(by_reason.items(), key=lambda item: -item[1])[:MAX_NAMED_REASONS]
        share = quarantined / total if is_number(total) and total else None
        limit = get(report, "recipe", "resolved", "data", "max_quarantined_share")
        too_many = is_number(share) and is_number(limit) and share > limit
        text = (f"{fmt(quarantined)} of {fmt(total)} input records quarantined"
                + (f" ({fmt_percent(share)})" if share is not None else "")
                + (f", above data.max_quarantined_share {fmt_percent(limit)}" if too_many else "")
                + (": " + ", ".join(f"{name} {fmt(n)}" for name, n in top) if top else ""))
        reasons.append(Reason(FAIL if too_many else WARN, "data", text))
    return reasons


def _pii(report: dict) -> list[Reason]:
    pii = report.get("pii")
    if not isinstance(pii, dict):
        if report.get("training") is None:
            return []
        return [Reason(WARN, "pii", "the model was trained on data never scanned for personal data (pii section "
                                    "absent or disabled)")]
    residual = pii.get("residual_total")
    if pii.get("action") != "drop" and is_number(residual) and residual > 0:
        return [Reason(FAIL, "pii", f"{fmt(residual)} personal data findings remain after scrubbing "
                                    "(`fttool pii sample RUN_DIR --residual` shows where)")]
    return []


def _checks(report: dict) -> list[Reason]:
    """The run's own checks: representation, per-group results, forgetting and memorisation."""
    reasons = []
    for section, label, keys in CHECKS:
        status = get(report, section, *keys)
        if status == FAIL:
            reasons.append(Reason(FAIL, section, f"the {label} failed"))
        elif status == WARN:
            reasons.append(Reason(WARN, section, f"the {label} warns"))
        elif status == "inconclusive":
            reasons.append(Reason(WARN, section, f"the {label} is inconclusive"))
    primary = get(report, "evaluation", "primary_metric")
    if isinstance(primary, dict) and primary.get("improved") is False:
        reasons.append(Reason(WARN, "evaluation", f"the primary metric {fmt(primary.get('name'))} did not improve "
                                                  f"({fmt(primary.get('base'))} → {fmt(primary.get('tuned'))})"))
    return reasons


def _run(report: dict) -> list[Reason]:
    reasons = []
    status = get(report, "run", "status")
    if status != "succeeded":
        reasons.append(Reason(FAIL, "stages", f"the run's status is {fmt(status)}"))
    demo = demo_model(report)
    if demo:
        reasons.append(Reason(WARN, "training", f"the base model is the demo model {demo}: scores say nothing "
                                                "about model quality"))
    return reasons


def verdict(report: dict) -> Verdict:
    """pass, warn or fail for `report` (report.json as a dict), with the reasons, failures first."""
    reasons = [*_run(report), *_data(report), *_pii(report), *_checks(report), *_policy(report)]
    reasons.sort(key=lambda reason: -SEVERITY[reason.status])
    status = max((reason.status for reason in reasons), key=SEVERITY.__getitem__, default=PASS)
    return Verdict(status, tuple(reasons))
