"""Apply a policy's rules to targets, then its waivers to the violations found.

A waiver never hides a finding: an active one marks it waived (and it is counted), an expired one
leaves it failing and is named next to it.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass

from fttool.policy.checks import BUILTIN_CHECKS
from fttool.policy.policy_file import Policy, Rule, Waiver
from fttool.policy.registry import CheckRegistry, Target, Violation
from fttool.recipe.loader import format_json_path

PASSED, FAILED, WAIVED, NOT_APPLICABLE = "passed", "failed", "waived", "not_applicable"


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    column: int
    json_path: str
    message: str  # the rule's description, then what was found


@dataclass(frozen=True)
class RuleOutcome:
    rule: Rule
    target: Target
    status: str  # PASSED, FAILED, WAIVED or NOT_APPLICABLE
    findings: tuple[Finding, ...]
    waiver: Waiver | None  # the active waiver when WAIVED; an expired one that matched when FAILED


@dataclass(frozen=True)
class CheckRun:
    policy: Policy
    targets: tuple[Target, ...]
    outcomes: tuple[RuleOutcome, ...]
    day: dt.date  # the date waivers were judged on

    def summary(self) -> dict:
        def findings(status: str, severity: str | None = None) -> int:
            return sum(len(o.findings) for o in self.outcomes
                       if o.status == status and (severity is None or o.rule.severity == severity))

        expired = {o.waiver for o in self.outcomes if o.status == FAILED and o.waiver is not None}
        return {"files": len(self.targets), "rules_applied": sum(o.status != NOT_APPLICABLE for o in self.outcomes),
                "errors": findings(FAILED, "error"), "warnings": findings(FAILED, "warn"),
                "waived": findings(WAIVED), "expired_waivers": len(expired)}

    @property
    def passed(self) -> bool:
        return self.summary()["errors"] == 0


def _finding(rule: Rule, target: Target, violation: Violation) -> Finding:
    # A missing key is reported at the key of its closest written parent: that is where it would be added.
    at, document = target.at + tuple(violation.at), target.document
    while at and at not in document.key_positions and at not in document.value_positions:
        at = at[:-1]
    line, column = document.position(at, at_key=True)
    return Finding(target.file, line, column, format_json_path(target.at + tuple(violation.at)),
                   f"{rule.description}: {violation.message}")


def _matching_waiver(policy: Policy, rule: Rule, target: Target, day: dt.date) -> Waiver | None:
    """The active waiver for this rule and target if any, else the one that expired last, else None."""
    matching = [w for w in policy.waivers
                if w.rule == rule.id and any(fnmatch.fnmatchcase(name, w.target) for name in target.names)]
    active = [w for w in matching if w.active_on(day)]
    candidates = active or matching
    return max(candidates, key=lambda w: w.expires) if candidates else None


def apply_rule(rule: Rule, target: Target, policy: Policy, registry: CheckRegistry, day: dt.date) -> RuleOutcome:
    if any(registry.run(condition, target) for condition in rule.when):
        return RuleOutcome(rule, target, NOT_APPLICABLE, (), None)
    findings = tuple(_finding(rule, target, v) for v in registry.run(rule.check, target))
    if not findings:
        return RuleOutcome(rule, target, PASSED, (), None)
    waiver = _matching_waiver(policy, rule, target, day)
    status = WAIVED if waiver is not None and waiver.active_on(day) else FAILED
    return RuleOutcome(rule, target, status, findings, waiver)


def _with_recipes_run(targets: list[Target]) -> list[Target]:
    """The targets, each report followed by the recipe it ran (report.json's recipe.resolved, defaults applied).

    The recipe rules judge that recipe too, so a run of a recipe the policy forbids (say pii.score_threshold: 1.0,
    which leaves personal data that a residual scan at the same threshold does not see) cannot pass the gate on
    its report.
    """
    judged = []
    for target in targets:
        judged.append(target)
        resolved = (target.data.get("recipe") or {}).get("resolved") if target.kind == "report" else None
        if isinstance(resolved, dict):
            judged.append(Target("recipe", target.document, resolved, target.names, at=("recipe", "resolved")))
    return judged


def evaluate(policy: Policy, targets: list[Target], day: dt.date | None = None,
             registry: CheckRegistry = BUILTIN_CHECKS) -> CheckRun:
    day = day or dt.date.today()
    outcomes = tuple(apply_rule(rule, target, policy, registry, day) for target in _with_recipes_run(targets)
                     for rule in policy.rules if rule.applies_to == target.kind)
    return CheckRun(policy, tuple(targets), outcomes, day)
