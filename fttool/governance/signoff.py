"""`fttool signoff`: a person approves a run that verifies, optionally signing the approval with an SSH key.

A sign-off records who approved, in which role, when, the run digest (fttool.governance.evidence) and the
report's sha256. A run whose report policy failed (report.json's `policy` section) is refused unless every
failing rule is waived with the sign-off (`--waive RULE --reason TEXT`); the waivers are recorded in the
entry, which a signature covers. The report is then rendered again, so report.html and report.md show the
sign-offs and their waivers. `fttool export` accepts such a run only when a sign-off of the run as it is
now (its run digest), signed by a key the allowed signers file the user names lists, waived its failing rules: an
unsigned waiver is anyone's who can write signoff.json, and is shown but counts for nothing. So is a waiver the
report's own policy file gave (the recipe chooses that file): such a rule needs a signed waiver as a failed one does,
and a sign-off may waive it.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from fttool.governance import signing
from fttool.governance.approvals import single_line
from fttool.governance.evidence import (
    SignoffCheck,
    check_signoffs,
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


def _error_rules(report: dict, status: str) -> list[str]:
    """The ids of the error-severity rules of the report's policy with this status; none if it was not evaluated."""
    policy = report.get("policy") or {}
    if not policy.get("evaluated"):
        return []
    return [r["id"] for r in policy.get("rules") or [] if r.get("status") == status and r.get("severity") == "error"]


def failing_rules(report: dict) -> list[str]:
    """The ids of the error-severity rules of the report's policy that failed (not waived by the policy)."""
    failing = _error_rules(report, "failed")
    policy = report.get("policy") or {}
    if policy.get("evaluated") and not policy.get("passed", True) and not failing:
        return ["(policy failed)"]
    return failing


def policy_waived_rules(report: dict) -> list[str]:
    """The ids of the error-severity rules of the report's policy that its own policy file waived when the report
    was written: a name in a file the recipe chose, which no key signs, so export counts it no more than an
    unsigned sign-off."""
    return _error_rules(report, "waived")


def _waivers(report: dict, waive: dict[str, str]) -> list[dict]:
    """The waivers to record; SignoffRefused unless they cover every failing rule, and only failing rules or rules
    the policy file itself waived."""
    failing, self_waived = failing_rules(report), policy_waived_rules(report)
    not_failing = sorted(set(waive) - set(failing + self_waived))
    if not_failing:
        raise SignoffRefused(f"--waive {', '.join(not_failing)}: no such rule failed in the report's policy "
                             f"(failing: {', '.join(failing) or 'none'}; waived by the policy file itself: "
                             f"{', '.join(self_waived) or 'none'})")
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


def _why_not_counted(check: SignoffCheck, allowed_signers: Path | None) -> str:
    if "signature" not in check.entry:
        return "unsigned"
    if allowed_signers is None:
        return "signed, but no allowed signers file says whose key counts"
    return check.problem or "signed for an earlier version of the report"


def _counted_waivers(checks: list[SignoffCheck]) -> dict[str, dict]:
    """Rule id -> the waiver and who gave it, from the sign-offs whose waivers count (check_signoffs: of the run as
    it is now, signed by a key the allowed signers file lists; none without the file). An unsigned sign-off is a
    claim by whoever could write signoff.json, and a key no allowed signers file lists is anyone's."""
    waivers: dict[str, dict] = {}
    for check in checks:
        if check.waivers_count:
            for waiver in check.entry.get("waivers") or []:
                waivers.setdefault(waiver["rule"], {**waiver, "by": check.entry["by"], "role": check.entry["role"]})
    return waivers


def _uncounted_claims(run_dir: Path, checks: list[SignoffCheck], rules: list[str],
                      allowed_signers: Path | None) -> str:
    """'; signoff.json waives R only in sign-offs that do not count: NAME (ROLE), why' for the rules given, if any."""
    claims = [f"{check.entry['by']} ({check.entry['role']}), {_why_not_counted(check, allowed_signers)}"
              for check in checks
              if not check.waivers_count and any(w["rule"] in rules for w in check.entry.get("waivers") or [])]
    if not claims:
        return ""
    return (f"; {RunLayout(run_dir).signoffs} waives {', '.join(rules)} only in sign-offs that do not count: "
            + "; ".join(claims))


def _unwaived_text(unwaived: list[str], report: dict) -> str:
    """'the report policy failed (A)', 'the report's policy file waived B itself, unsigned', or both."""
    by_file = set(policy_waived_rules(report))
    failed, self_waived = [r for r in unwaived if r not in by_file], [r for r in unwaived if r in by_file]
    parts = [f"the report policy failed ({', '.join(failed)})"] if failed else []
    if self_waived:
        policy = (report.get("policy") or {}).get("path", "the recipe's report policy")
        parts.append(f"the report's policy file {policy} waived {', '.join(self_waived)} itself, unsigned")
    return " and ".join(parts)


def require_policy_passed_or_waived(run_dir: Path, report: dict, allowed_signers: Path | None = None) -> None:
    """SignoffRefused unless the report policy passed or each failing rule, and each rule the policy file waived
    itself, is waived by a sign-off of the run as it is now, signed by a key `allowed_signers` lists
    (check_signoffs): without that file no waiver counts. signing.SignatureError when the file cannot be read."""
    needed = failing_rules(report) + policy_waived_rules(report)
    if not needed:
        return
    checks = check_signoffs(run_dir, report, current_run_digest(run_dir), allowed_signers)
    waived = _counted_waivers(checks)
    unwaived = [rule for rule in needed if rule not in waived]
    if not unwaived:
        return
    claims = _uncounted_claims(run_dir, checks, unwaived, allowed_signers)
    how = "fttool signoff RUN_DIR --key KEY --waive RULE --reason TEXT"
    if allowed_signers is None:
        raise SignoffRefused(f"{_unwaived_text(unwaived, report)}{claims}. A waiver counts only in a "
                             "sign-off of the run as it is, signed by a key you allow: pass --allowed-signers FILE "
                             "(git's allowed_signers format, kept apart from the run) listing the reviewers' keys; "
                             f"a reviewer waives with {how}")
    raise SignoffRefused(f"{_unwaived_text(unwaived, report)} and no sign-off of the run as it is, "
                         f"signed by a key {allowed_signers} lists, waives each{claims}. A reviewer whose key that "
                         f"file lists can waive them with {how}")


def uncounted_waivers(run_dir: Path, report: dict, allowed_signers: Path | None) -> list[str]:
    """Each waiver of the run that fttool export would not count, and why, in plain words: a rule the report's own
    policy file waived (a name in a file, unsigned) that no counted sign-off waives, and each waiver of a sign-off
    that does not count (unsigned; signed, with no allowed signers file given; signed by a key the file does not
    list; of another version of the run). signing.SignatureError when the allowed signers file cannot be read."""
    checks = check_signoffs(run_dir, report, current_run_digest(run_dir), allowed_signers)
    counted = _counted_waivers(checks)
    policy = report.get("policy") or {}
    by_rule = {rule.get("id"): rule for rule in policy.get("rules") or []}
    lines = [f"{rule} was waived in the report's own policy file {policy.get('path')} by "
             f"{(by_rule[rule].get('waiver') or {}).get('approver')}, unsigned: it counts for nothing until a sign-off "
             "signed by an allowed key waives it" for rule in policy_waived_rules(report) if rule not in counted]
    signoffs = RunLayout(run_dir).signoffs
    lines += [f"{signoffs}: {check.entry['by']} ({check.entry['role']}) waives {waiver['rule']}, "
              f"{_why_not_counted(check, allowed_signers)}: it counts for nothing"
              for check in checks if not check.waivers_count for waiver in check.entry.get("waivers") or []]
    return lines
