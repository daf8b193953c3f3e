"""`fttool signoff`: a person approves a run that verifies, optionally signing the approval with an SSH key.

A sign-off records who approved, in which role, when, the run digest (fttool.governance.evidence) and the
report's sha256. A run whose report policy failed (report.json's `policy` section) is refused unless every
failing rule is waived with the sign-off (`--waive RULE --reason TEXT`); the waivers are recorded in the
entry, which a signature covers. The report is then rendered again, so report.html and report.md show the
sign-offs and their waivers. `fttool export` accepts such a run only when a sign-off of the run as it is
now waived its failing rules.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from fttool.governance import signing
from fttool.governance.approvals import single_line
from fttool.governance.evidence import (
    current_run_digest,
    read_report,
    read_signoffs,
    signed_payload,
    verify,
)
from fttool.pipeline.digest import sha256_file
from fttool.pipeline.errors import RunError
from fttool.pipeline.layout import RunLayout, RunLock
from fttool.report import rerender


class SignoffRefused(Exception):
    """The run may not be signed off (or exported) as it is; the message says why and what to do."""


def failing_rules(report: dict) -> list[str]:
    """The ids of the error-severity rules of the report's policy that failed (not waived by the policy)."""
    policy = report.get("policy") or {}
    if not policy.get("evaluated"):
        return []
    rules = policy.get("rules") or []
    failing = [r["id"] for r in rules if r.get("status") == "failed" and r.get("severity") == "error"]
    if not policy.get("passed", True) and not failing:
        return ["(policy failed)"]
    return failing


def _waivers(report: dict, waive: dict[str, str]) -> list[dict]:
    """The waivers to record; SignoffRefused unless they cover exactly failing rules, all of them."""
    failing = failing_rules(report)
    not_failing = sorted(set(waive) - set(failing))
    if not_failing:
        raise SignoffRefused(f"--waive {', '.join(not_failing)}: no such rule failed in the report's policy "
                             f"(failing: {', '.join(failing) or 'none'})")
    unwaived = [rule for rule in failing if rule not in waive]
    if unwaived:
        policy = (report.get("policy") or {}).get("policy", "the recipe's report policy")
        raise SignoffRefused(f"the report policy {policy} failed: {', '.join(unwaived)}; fix the run, or waive each "
                             "rule with --waive RULE --reason TEXT (recorded in signoff.json and in the export)")
    return [{"rule": rule, "reason": single_line(reason, f"the reason for waiving {rule}")}
            for rule, reason in waive.items()]


def sign_off(run_dir: Path, by: str, role: str, key_file: Path | None = None,
             waive: dict[str, str] | None = None) -> dict:
    """Record (and with `key_file`, sign) an approval of the run as it is now.

    ValueError for an empty or multi-line name or role; SignoffRefused when the run does not verify or its
    report policy failed without a waiver for each failing rule.
    """
    run_dir = Path(run_dir)
    by, role = single_line(by, "the name (--by)"), single_line(role, "the role (--role)")
    try:
        with RunLock(RunLayout(run_dir), "fttool signoff"):  # two sign-offs at once must not lose one
            return _sign_off(run_dir, by, role, key_file, waive)
    except RunError as exc:
        raise SignoffRefused(str(exc)) from None


def _sign_off(run_dir: Path, by: str, role: str, key_file: Path | None, waive: dict[str, str] | None) -> dict:
    problems = verify(run_dir)
    if problems:
        raise SignoffRefused("the run does not verify, so it cannot be signed off:\n"
                             + "\n".join(f"  {p}" for p in problems))
    entry = {"by": by, "role": role, "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "report_sha256": sha256_file(RunLayout(run_dir).report), "run_digest": current_run_digest(run_dir),
             "waivers": _waivers(read_report(run_dir), dict(waive or {}))}
    if key_file is not None:
        try:
            entry["signature"], entry["key"] = signing.sign(signed_payload(entry), Path(key_file))
        except signing.SignatureError as exc:
            raise SignoffRefused(str(exc)) from None
    signoffs = [*read_signoffs(run_dir), entry]
    RunLayout(run_dir).signoffs.write_text(json.dumps(signoffs, indent=2) + "\n", encoding="utf-8")
    rerender(run_dir)  # the renderings show the sign-offs given; the run digest the sign-off approved stays
    return entry


def current_waivers(run_dir: Path) -> dict[str, dict]:
    """Rule id -> the waiver and who gave it, from the sign-offs of the run as it is now."""
    current = current_run_digest(run_dir)
    waivers = {}
    for entry in read_signoffs(run_dir):
        if current and entry.get("run_digest") == current:
            for waiver in entry.get("waivers") or []:
                waivers.setdefault(waiver["rule"], {**waiver, "by": entry["by"], "role": entry["role"]})
    return waivers


def require_policy_passed_or_waived(run_dir: Path, report: dict) -> None:
    """SignoffRefused unless the report policy passed or a current sign-off waived each failing rule."""
    waived = current_waivers(run_dir)
    unwaived = [rule for rule in failing_rules(report) if rule not in waived]
    if unwaived:
        raise SignoffRefused(f"the report policy failed ({', '.join(unwaived)}) and no sign-off of the run as it is "
                             "waived it; a reviewer can with fttool signoff --waive RULE --reason TEXT")

