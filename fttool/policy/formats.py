"""Write a CheckRun as text, JSON, JUnit XML, GitHub workflow commands or SARIF 2.1.0.

Waived findings appear in every format, marked as waived; an expired waiver is named next to the
finding it no longer covers.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

from fttool import __version__
from fttool.policy.engine import FAILED, NOT_APPLICABLE, WAIVED, CheckRun, Finding, RuleOutcome
from fttool.recipe.errors import RecipeError

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVELS = {"error": "error", "warn": "warning"}


def _waiver_note(outcome: RuleOutcome) -> str:
    waiver = outcome.waiver
    if waiver is None:
        return ""
    if outcome.status == WAIVED:
        # A policy or waivers file names its approver; nothing signs it, so say so wherever the waiver shows.
        return f" [waived until {waiver.expires} by {waiver.approver} at {waiver.origin}, unsigned: {waiver.reason}]"
    return f" [waiver at {waiver.origin} by {waiver.approver} expired on {waiver.expires}]"


def _reported(run: CheckRun) -> list[tuple[RuleOutcome, Finding]]:
    """(outcome, finding) for every failed or waived finding, in file and line order."""
    pairs = [(o, f) for o in run.outcomes if o.status in (FAILED, WAIVED) for f in o.findings]
    return sorted(pairs, key=lambda pair: (pair[1].file, pair[1].line, pair[1].column, pair[0].rule.id))


def _summary_line(run: CheckRun) -> str:
    s = run.summary()
    verdict = "passed" if run.passed else "failed"
    return (f"policy {run.policy.name} {verdict}: {s['files']} file(s), {s['errors']} error(s), "
            f"{s['warnings']} warning(s), {s['waived']} waived, {s['expired_waivers']} expired waiver(s)")


def render_text(run: CheckRun) -> str:
    lines = [f"{f.file}:{f.line}:{f.column}: {o.rule.severity} {o.rule.id} {f.message}{_waiver_note(o)}"
             for o, f in _reported(run)]
    return "\n".join(lines + [_summary_line(run)]) + "\n"


def render_json(run: CheckRun) -> str:
    results = [{
        "file": o.target.file, "kind": o.target.kind, "rule": o.rule.id, "severity": o.rule.severity,
        "status": o.status,
        "findings": [{"line": f.line, "column": f.column, "json_path": f.json_path, "message": f.message}
                     for f in o.findings],
        "waiver": None if o.waiver is None else {
            "target": o.waiver.target, "reason": o.waiver.reason, "approver": o.waiver.approver,
            "expires": o.waiver.expires.isoformat(), "expired": not o.waiver.active_on(run.day),
            "origin": o.waiver.origin},
    } for o in run.outcomes]
    document = {"policy": {"name": run.policy.name, "path": str(run.policy.path)}, "date": run.day.isoformat(),
                "passed": run.passed, "summary": run.summary(), "results": results}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_junit(run: CheckRun) -> str:
    """One test suite per file, one test case per rule; a failure is an error-severity violation.

    Warnings pass (as `fttool check` does) with their findings in system-out; waived and not applicable
    rules are skipped, with the waiver as the reason.
    """
    import xml.etree.ElementTree as ET

    def counts(outcomes) -> dict:
        return {"tests": str(len(outcomes)),
                "failures": str(sum(o.status == FAILED and o.rule.severity == "error" for o in outcomes)),
                "errors": "0", "skipped": str(sum(o.status in (WAIVED, NOT_APPLICABLE) for o in outcomes))}

    root = ET.Element("testsuites", name=f"fttool check --policy {run.policy.name}", **counts(run.outcomes))
    for target in run.targets:
        outcomes = [o for o in run.outcomes if o.target is target]
        suite = ET.SubElement(root, "testsuite", name=target.file, **counts(outcomes))
        for outcome in outcomes:
            case = ET.SubElement(suite, "testcase", classname=target.file,
                                 name=f"{outcome.rule.id}: {outcome.rule.description}")
            details = "\n".join(f"{f.file}:{f.line}:{f.column}: {f.message}" for f in outcome.findings)
            if outcome.status == FAILED and outcome.rule.severity == "error":
                failure = ET.SubElement(case, "failure", type=outcome.rule.severity,
                                        message=outcome.findings[0].message + _waiver_note(outcome))
                failure.text = details
            elif outcome.status == FAILED:
                ET.SubElement(case, "system-out").text = f"warning{_waiver_note(outcome)}\n{details}"
            elif outcome.status == WAIVED:
                ET.SubElement(case, "skipped", message=_waiver_note(outcome).strip(" []")).text = details
            elif outcome.status == NOT_APPLICABLE:
                ET.SubElement(case, "skipped", message="not applicable: the rule's 'when' conditions do not hold")
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _github_escape(text: str, in_property: bool = False) -> str:
    # The escapes GitHub Actions' workflow commands define for data and for property values.
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if in_property else text


def render_github(run: CheckRun) -> str:
    lines = []
    for outcome, f in _reported(run):
        command = "notice" if outcome.status == WAIVED else ("error" if outcome.rule.severity == "error" else "warning")
        properties = ",".join(f"{key}={_github_escape(str(value), True)}" for key, value in
                              (("file", f.file), ("line", f.line), ("col", f.column),
                               ("title", f"{outcome.rule.id} ({run.policy.name})")))
        lines.append(f"::{command} {properties}::{_github_escape(f.message + _waiver_note(outcome))}")
    return "\n".join(lines + [_summary_line(run)]) + "\n"


def _artifact_uri(file: str) -> str:
    """A URI reference relative to the working directory (the repository root in CI) where possible."""
    path = Path(file)
    if path.is_absolute():
        relative = os.path.relpath(path)
        if relative.startswith(".."):
            return path.as_uri()
        path = Path(relative)
    return quote(path.as_posix())


def render_sarif(run: CheckRun) -> str:
    rules = run.policy.rules
    index = {rule.id: position for position, rule in enumerate(rules)}
    results = []
    for outcome, f in _reported(run):
        result = {
            "ruleId": outcome.rule.id,
            "ruleIndex": index[outcome.rule.id],
            "level": SARIF_LEVELS[outcome.rule.severity],
            "message": {"text": f.message + _waiver_note(outcome)},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _artifact_uri(f.file)},
                                                "region": {"startLine": f.line, "startColumn": f.column}}}],
        }
        waiver = outcome.waiver
        if outcome.status == WAIVED and waiver is not None:
            result["suppressions"] = [{"kind": "external", "status": "accepted",
                                       "justification": f"{waiver.reason} (approved by {waiver.approver}, "
                                                        f"until {waiver.expires})"}]
        results.append(result)
    driver = {"name": "fttool", "version": __version__,
              "rules": [{"id": rule.id, "shortDescription": {"text": rule.description},
                         "defaultConfiguration": {"level": SARIF_LEVELS[rule.severity]},
                         "properties": {"applies_to": rule.applies_to, "policy": run.policy.name}}
                        for rule in rules]}
    document = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{"tool": {"driver": driver}, "results": results}]}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "junit": render_junit, "github": render_github,
             "sarif": render_sarif}


def render(run: CheckRun, output_format: str) -> str:
    return RENDERERS[output_format](run)


def _error_dict(error: RecipeError) -> dict:
    return {"file": error.file, "line": error.line, "column": error.column, "json_path": error.json_path,
            "message": error.message}


def render_invalid(errors: list[RecipeError], output_format: str) -> str:
    """A document in `output_format` saying that no rule ran because inputs were invalid, so that CI tools
    that parse the output (code scanning, test reports) show the errors instead of failing to read it."""
    if output_format == "json":
        document = {"passed": False, "invalid_input": True, "errors": [_error_dict(e) for e in errors],
                    "results": []}
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output_format == "sarif":
        notifications = [{"level": "error", "message": {"text": e.message},
                          "locations": [{"physicalLocation": {"artifactLocation": {"uri": _artifact_uri(e.file)},
                                                              "region": {"startLine": max(e.line, 1),
                                                                         "startColumn": max(e.column, 1)}}}]}
                         for e in errors]
        run = {"tool": {"driver": {"name": "fttool", "version": __version__, "rules": []}}, "results": [],
               "invocations": [{"executionSuccessful": False, "toolExecutionNotifications": notifications}]}
        return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2,
                          ensure_ascii=False) + "\n"
    if output_format == "junit":
        import xml.etree.ElementTree as ET

        root = ET.Element("testsuites", name="fttool check", tests=str(len(errors)), failures="0",
                          errors=str(len(errors)), skipped="0")
        suite = ET.SubElement(root, "testsuite", name="inputs", tests=str(len(errors)), failures="0",
                              errors=str(len(errors)), skipped="0")
        for error in errors:
            case = ET.SubElement(suite, "testcase", classname=error.file, name=f"{error.file} is valid")
            ET.SubElement(case, "error", type="invalid", message=error.message).text = str(error)
        return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
    if output_format == "github":
        lines = [f"::error file={_github_escape(e.file, True)},line={e.line},col={e.column},"
                 f"title=invalid input::{_github_escape(e.message)}" for e in errors]
        return "\n".join(lines) + "\n"
    return "".join(f"{error}\n" for error in errors)
