"""Load a policy file and waivers files: safe YAML with positions, validated by schemas/policy.schema.json.

Errors are RecipeError/RecipeInvalid, the same FILE:LINE:COL errors recipes give, found all at once.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass
from pathlib import Path

from fttool.policy.checks import BUILTIN_CHECKS
from fttool.policy.registry import CheckRegistry
from fttool.recipe.errors import RecipeError, RecipeInvalid
from fttool.recipe.loader import LoadedDocument, load_yaml_file
from fttool.recipe.schema import load_schema, schema_errors


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    severity: str  # "error" | "warn"
    applies_to: str  # "recipe" | "report"
    check: dict
    when: tuple[dict, ...]


@dataclass(frozen=True)
class Waiver:
    rule: str
    target: str  # glob
    reason: str
    approver: str
    expires: dt.date  # the last day it applies
    origin: str  # FILE:LINE where it is written, so a reviewer can find it

    def active_on(self, day: dt.date) -> bool:
        return day <= self.expires


@dataclass(frozen=True)
class Policy:
    name: str
    path: Path
    rules: tuple[Rule, ...]
    waivers: tuple[Waiver, ...]
    warnings: tuple[str, ...] = ()  # FILE:LINE: what a reviewer should look at twice (broad or long waivers)


# A waiver meant to last longer than this deserves a second look: it reads like a permanent exemption.
WAIVER_HORIZON = dt.timedelta(days=366)


# Names no waiver means to excuse, with different first letters, at several depths: a target glob that matches one
# of them excuses files it does not name (every report.json, every recipe.yaml, every name not starting with z).
UNNAMED_FILES = ("q7x", "zz9q.yaml", "q7x/report.json", "zz9q/recipe.yaml", "q7x/zz9q/report.json",
                 "zz9q/q7x/recipe.yaml")


def waiver_warnings(waivers: list[Waiver], today: dt.date) -> list[str]:
    """Waivers that excuse every target, or files they do not name, or stay valid for more than a year."""
    warnings = []
    for waiver in waivers:
        unnamed = next((name for name in UNNAMED_FILES if fnmatch.fnmatchcase(name, waiver.target)), None)
        if not waiver.target.strip("*/?.[]!"):
            warnings.append(f"{waiver.origin}: warning: the waiver of {waiver.rule} has target '{waiver.target}', "
                            "which matches every file; name the files it excuses")
        elif unnamed:
            warnings.append(f"{waiver.origin}: warning: the waiver of {waiver.rule} has target '{waiver.target}', "
                            f"which also matches files it does not name (such as {unnamed}); name the files it "
                            "excuses")
        if waiver.expires - today > WAIVER_HORIZON:
            warnings.append(f"{waiver.origin}: warning: the waiver of {waiver.rule} lasts until {waiver.expires}, "
                            "more than a year from today; waivers are meant to be temporary")
    return warnings


def _load(path, kind: str, not_a_mapping: str, schema: dict) -> LoadedDocument:
    document = load_yaml_file(path, kind, not_a_mapping)
    errors = schema_errors(document, schema)
    if errors:
        raise RecipeInvalid(errors)
    return document


def _rule_errors(document: LoadedDocument, registry: CheckRegistry) -> list[RecipeError]:
    """What the schema cannot say: ids are unique and each check can read the kind of file its rule applies to."""
    errors = []
    first_index: dict[str, int] = {}
    for index, rule in enumerate(document.data["rules"]):
        if rule["id"] in first_index:
            errors.append(document.error(("rules", index, "id"),
                                         f"rule id '{rule['id']}' is already used by rules[{first_index[rule['id']]}]"))
        first_index.setdefault(rule["id"], index)
        specs: list[tuple[tuple, dict]] = [(("rules", index, "check"), rule["check"])]
        specs += [(("rules", index, "when", position), spec) for position, spec in enumerate(rule.get("when", []))]
        for at, spec in specs:
            if rule["applies_to"] not in registry.get(spec["kind"]).targets:
                readable = " and ".join(sorted(registry.get(spec["kind"]).targets))
                errors.append(document.error(at + ("kind",), f"check '{spec['kind']}' reads {readable} files, "
                                             f"but the rule applies to {rule['applies_to']} files"))
    return errors


def _waivers(document: LoadedDocument, rule_ids: set[str]) -> tuple[list[Waiver], list[RecipeError]]:
    waivers, errors = [], []
    for index, entry in enumerate(document.data.get("waivers", [])):
        at = ("waivers", index)
        if entry["rule"] not in rule_ids:
            errors.append(document.error(at + ("rule",), f"the policy has no rule '{entry['rule']}'; "
                                         f"its rules: {', '.join(sorted(rule_ids))}"))
        try:
            expires = dt.date.fromisoformat(entry["expires"])
        except ValueError:
            errors.append(document.error(at + ("expires",), f"'{entry['expires']}' is not a calendar date"))
            continue
        line, _ = document.position(at)
        waivers.append(Waiver(entry["rule"], entry["target"], entry["reason"], entry["approver"], expires,
                              f"{document.path}:{line}"))
    return waivers, errors


def load_policy(path: str | Path, waivers_path: str | Path | None = None,
                registry: CheckRegistry = BUILTIN_CHECKS) -> Policy:
    """The policy in `path`, with the waivers of `waivers_path` added to its own; raises RecipeInvalid."""
    schema = load_schema("policy")
    document = _load(path, "policy", "a policy must be a YAML mapping with 'name' and 'rules'", schema)
    errors = _rule_errors(document, registry)
    rule_ids = {rule["id"] for rule in document.data["rules"]}
    waivers, waiver_errors = _waivers(document, rule_ids)
    errors += waiver_errors
    if waivers_path is not None:
        # The file's own schema is the waivers_file definition, with the policy's definitions for its references.
        file_schema = {**schema["$defs"]["waivers_file"], "$defs": schema["$defs"]}
        waivers_document = _load(waivers_path, "waivers", "a waivers file must be a YAML mapping with 'waivers'",
                                 file_schema)
        more, waiver_errors = _waivers(waivers_document, rule_ids)
        waivers += more
        errors += waiver_errors
    if errors:
        raise RecipeInvalid(errors)
    rules = tuple(Rule(rule["id"], rule["description"], rule["severity"], rule["applies_to"], rule["check"],
                       tuple(rule.get("when", []))) for rule in document.data["rules"])
    return Policy(document.data["name"], Path(path), rules, tuple(waivers),
                  tuple(waiver_warnings(waivers, dt.date.today())))
