"""The built-in check kinds. Each takes the checked target and the rule's parameters and returns violations.

Generic kinds (present, compare, one_of, contains_all) read a dotted path and work on recipes and
reports alike; the others know one part of fttool's recipe or report. policies/README.md documents
every kind and its parameters; schemas/policy.schema.json validates them before any check runs.
"""
from __future__ import annotations

import json
import operator
from pathlib import Path

from fttool.fairness.intervals import against_limit, interval_text
from fttool.governance.approvals import read_signoffs
from fttool.governance.evidence import EvidenceError, Mismatch, check_artifacts, verify
from fttool.governance.signing import SignatureError
from fttool.pipeline.layout import REPORT_JSON, SIGNOFFS
from fttool.policy.registry import CheckRegistry, Target, Violation

BUILTIN_CHECKS = CheckRegistry()

ORDERINGS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
# Metrics where a smaller number is the better model, matched by name.
LOWER_IS_BETTER = ("loss", "perplexity")


def split_path(dotted: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in dotted.split("."))


def lookup(data, dotted: str) -> tuple[bool, object, tuple]:
    """(found, value, json path); a null value counts as not found, as the schema uses null for 'skipped'."""
    keys = split_path(dotted)
    value = data
    for key in keys:
        if isinstance(key, int) and isinstance(value, list) and key < len(value):
            value = value[key]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return False, None, keys
    return value is not None, value, keys


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def shown(value) -> str:
    return json.dumps(value, ensure_ascii=False)


@BUILTIN_CHECKS.register("present")
def present(target: Target, params: dict) -> list[Violation]:
    found, _, keys = lookup(target.data, params["path"])
    return [] if found else [Violation(f"{params['path']} is not set", keys)]


@BUILTIN_CHECKS.register("compare")
def compare(target: Target, params: dict) -> list[Violation]:
    path, op, expected = params["path"], params["op"], params["value"]
    found, value, keys = lookup(target.data, path)
    if not found:
        return [Violation(f"{path} is not set; the policy requires {op} {shown(expected)}", keys)]
    if op in ORDERINGS and not is_number(value):
        return [Violation(f"{path} is {shown(value)}, not a number; the policy requires {op} {shown(expected)}", keys)]
    # Python has True == 1; a policy asking for `true` means the boolean, not a count.
    equal = value == expected and isinstance(value, bool) == isinstance(expected, bool)
    holds = ORDERINGS[op](value, expected) if op in ORDERINGS else equal == (op == "==")  # type: ignore[arg-type]
    if not holds:
        return [Violation(f"{path} is {shown(value)}; the policy requires {op} {shown(expected)}", keys)]
    return []


@BUILTIN_CHECKS.register("one_of")
def one_of(target: Target, params: dict) -> list[Violation]:
    path, allowed = params["path"], params["values"]
    found, value, keys = lookup(target.data, path)
    listing = ", ".join(shown(v) for v in allowed)
    if not found:
        return [Violation(f"{path} is not set; allowed: {listing}", keys)]

    def folded(item):
        return item.casefold() if params.get("ignore_case") and isinstance(item, str) else item

    if folded(value) not in {folded(v) for v in allowed}:
        return [Violation(f"{path} is {shown(value)}, which is not allowed; allowed: {listing}", keys)]
    return []


@BUILTIN_CHECKS.register("contains_all")
def contains_all(target: Target, params: dict) -> list[Violation]:
    path, required = params["path"], params["values"]
    found, value, keys = lookup(target.data, path)
    if not found:
        return [Violation(f"{path} is not set; it must include {', '.join(map(shown, required))}", keys)]
    if not isinstance(value, list):
        return [Violation(f"{path} is {shown(value)}, not a list", keys)]
    missing = [item for item in required if item not in value]
    if missing:
        return [Violation(f"{path} leaves out {', '.join(map(shown, missing))}", keys)]
    return []


@BUILTIN_CHECKS.register("differential_privacy", targets=("recipe",))
def differential_privacy(target: Target, params: dict) -> list[Violation]:
    """train.privacy.enabled is true and train.privacy.target_epsilon is within the budget."""
    budget = params["max_epsilon"]
    found, enabled, keys = lookup(target.data, "train.privacy.enabled")
    if enabled is not True:
        state = f"is {shown(enabled)}" if found else "is not set"
        return [Violation(f"differential privacy is off: train.privacy.enabled {state}", keys)]
    found, epsilon, keys = lookup(target.data, "train.privacy.target_epsilon")
    if not is_number(epsilon):
        return [Violation(f"train.privacy.target_epsilon is not set; the budget is epsilon <= {budget:g}", keys)]
    if epsilon > budget:
        return [Violation(f"train.privacy.target_epsilon is {epsilon:g}, above the budget of {budget:g}", keys)]
    return []


@BUILTIN_CHECKS.register("privacy_budget", targets=("report",))
def privacy_budget(target: Target, params: dict) -> list[Violation]:
    """The epsilon spent is within the budget; a missing epsilon fails only where the data's sensitivity requires DP."""
    path, budget = params["epsilon_path"], params["max_epsilon"]
    found, epsilon, keys = lookup(target.data, path)
    if found:
        if not is_number(epsilon):
            return [Violation(f"{path} is {shown(epsilon)}, not a number", keys)]
        if epsilon > budget:
            return [Violation(f"the run spent epsilon {epsilon:g}, above the budget of {budget:g}", keys)]
        return []
    _, sensitivity, _ = lookup(target.data, "recipe.resolved.data.sensitivity")
    if sensitivity in params.get("required_when_sensitivity", []):
        return [Violation(f"the data's sensitivity is {sensitivity}, so the run must be differentially private, "
                          f"but the report has no {path}", keys)]
    return []


@BUILTIN_CHECKS.register("fairness_within_limits", targets=("report",))
def fairness_within_limits(target: Target, params: dict) -> list[Violation]:
    """The bias audit did not fail, and every gap under gaps_path (when present) is shown within max_gap.

    A gap of the per-group evaluation is judged by its bootstrap interval, as the evaluation judges it
    (fttool.fairness.intervals): an interval that crosses max_gap is inconclusive and a gap that could not be
    measured is unjudged, and neither is shown within the limit. A report without intervals has its numbers
    compared as they are.
    """
    violations = []
    judge = params.get("judge", "all")
    bias = target.data.get("bias") or {}
    if bias.get("status") == "fail" and judge != "unproven":
        # The audit covers declared fields and demographic mentions in the text; name each part that failed.
        for part, label in (("fields", "field"), ("mentions", "mentions of")):
            for name, audit in (bias.get(part) or {}).items():
                if audit.get("status") == "fail":
                    reasons = "; ".join(audit.get("reasons") or []) or "no reason given"
                    violations.append(Violation(f"the bias audit of {label} '{name}' failed: {reasons}",
                                                ("bias", part, name, "status")))
        if not violations:
            violations.append(Violation("the bias audit failed", ("bias", "status")))
    found, gaps, keys = lookup(target.data, params["gaps_path"])
    return violations + (_gap_violations(target.data, gaps, keys, params["max_gap"], judge) if found else [])


def _gap_violations(report: dict, gaps, keys: tuple, limit: float, judge: str) -> list[Violation]:
    """Gaps not shown within `limit`; `judge` keeps those shown beyond it, those left unproven, or all."""
    violations = []
    for at, gap in _gaps_under(gaps, keys):
        where = ".".join(map(str, at))
        interval = _gap_interval(report, at)
        verdict = None if gap is None or interval is None else against_limit(interval, limit, "above")
        unproven = gap is None or verdict == "inconclusive"
        if judge != "all" and unproven != (judge == "unproven"):
            continue
        if gap is None:
            violations.append(Violation(f"{where} could not be measured (fewer than two groups had enough test "
                                        f"records), so it is not shown within the maximum gap of {limit:g}", at))
        elif interval is None:  # no interval in the report: the number as it is
            if abs(gap) > limit:
                violations.append(Violation(f"{where} is {gap:g}, above the maximum gap of {limit:g}", at))
        elif verdict != "within":
            judged = ("lies wholly above" if verdict == "beyond"
                      else "crosses, so it is inconclusive and not shown within,")
            violations.append(Violation(f"{where} is {gap:g}; its {interval_text(interval)} {judged} the maximum "
                                        f"gap of {limit:g}", at))
    return violations


def _gaps_under(value, at: tuple):
    """(json path, number or None) for every number and null in a nested structure of mappings and lists."""
    if value is None or is_number(value):
        yield at, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _gaps_under(item, at + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _gaps_under(item, at + (index,))


def _gap_interval(report: dict, at: tuple) -> list | None:
    """The bootstrap interval of the gap at fairness.gaps.<field>.<metric>: the tuned model's difference_ci."""
    if at[:2] != ("fairness", "gaps") or len(at) != 4:
        return None
    node: object = report
    for key in ("fairness", "fields", at[2], "metrics", at[3], "tuned", "difference_ci"):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, list) else None


@BUILTIN_CHECKS.register("not_worse_than_base", targets=("report",))
def not_worse_than_base(target: Target, params: dict) -> list[Violation]:
    """The tuned model is no worse than its base on `metric`, read from evaluation.delta (tuned - base)."""
    metric = params["metric"]
    evaluation = target.data.get("evaluation")
    if evaluation is None:
        if target.data.get("training") is None:
            return []  # nothing was trained, so there is nothing to compare
        return [Violation("the run trained a model but did not evaluate it against its base", ("evaluation",))]
    deltas = evaluation.get("delta") or {}
    at = ("evaluation", "delta", metric)
    if metric not in deltas:
        return [Violation(f"evaluation.delta has no '{metric}'; it has: {', '.join(deltas) or 'nothing'}", at)]
    delta = deltas[metric]
    if not is_number(delta):
        return [Violation(f"evaluation.delta.{metric} could not be computed, so the tuned model cannot be "
                          "shown to be no worse than its base", at)]
    direction = params.get("direction") or ("lower" if any(w in metric for w in LOWER_IS_BETTER) else "higher")
    tolerance = params.get("tolerance", 0)
    worse = delta > tolerance if direction == "lower" else delta < -tolerance
    if worse:
        base = (evaluation.get("base") or {}).get(metric)
        tuned = (evaluation.get("tuned") or {}).get(metric)
        return [Violation(f"the tuned model is worse than its base on {metric} ({direction} is better): "
                          f"base {shown(base)}, tuned {shown(tuned)}, delta {delta:+g}", at)]
    return []


@BUILTIN_CHECKS.register("lineage_verifies", targets=("report",))
def lineage_verifies(target: Target, params: dict) -> list[Violation]:
    """The run verifies as `fttool verify` checks it: report and run files, run digest, renderings, lineage,
    sign-offs, and with the target's allowed signers (fttool check --allowed-signers) whose keys signed them
    (then a sign-off of the run as it is, signed by a key the file lists, is required).

    It fails closed: without allowed signers a signed sign-off fails, since nothing says whether its key is one
    that counts (anyone can sign with a key of their own). A report still being written (the runner checks its
    draft before writing it) can only have its lineage checked. Paths are relative to the report's directory.
    """
    run_dir = Path(target.document.path).parent
    artifacts = target.data["lineage"]["artifacts"]
    try:
        on_disk = run_dir / REPORT_JSON
        written = on_disk.is_file() and json.loads(on_disk.read_text(encoding="utf-8")) == target.data
        if written:
            problems = verify(run_dir, allowed_signers=target.allowed_signers)
            if target.allowed_signers is None:
                problems += _unchecked_signatures(run_dir)
        else:
            problems = check_artifacts(run_dir, artifacts)
    except (OSError, ValueError, EvidenceError, SignatureError) as exc:
        return [Violation(f"the run cannot be verified: {exc}")]
    index = {artifact["path"]: i for i, artifact in enumerate(artifacts)}
    return [Violation(f"{problem.path}: {problem.problem}",
                      ("lineage", "artifacts", index[problem.path], "path") if problem.path in index else ())
            for problem in problems]


def _unchecked_signatures(run_dir: Path) -> list[Mismatch]:
    return [Mismatch(SIGNOFFS, f"the sign-off by {entry['by']} ({entry['role']}) at {entry['at']} is signed, but no "
                               "allowed signers file says whose keys count: pass --allowed-signers FILE (git's "
                               "allowed_signers format), kept apart from the run")
            for entry in read_signoffs(run_dir) if "signature" in entry]


@BUILTIN_CHECKS.register("pii_operators", targets=("recipe",))
def pii_operators(target: Target, params: dict) -> list[Violation]:
    """Every PII operator is of an allowed type, and every mask hides at least `min_masked_chars` characters.

    A mask that hides one character of a card number leaves the number in the training data while the residual
    scan, which looks for whole values, counts nothing; this bounds what a mask may leave.
    """
    violations = []
    operators = (target.data.get("pii") or {}).get("operators") or {}
    for entity, settings in operators.items():
        at = ("pii", "operators", entity)
        kind = settings.get("type")
        if "allowed" in params and kind not in params["allowed"]:
            violations.append(Violation(f"pii.operators.{entity} is a {kind} operator; allowed: "
                                        f"{', '.join(params['allowed'])}", at + ("type",)))
        minimum = params.get("min_masked_chars")
        masked = settings.get("chars_to_mask", "all")  # presidio masks every character unless told otherwise
        if kind == "mask" and minimum is not None and masked != "all" and masked < minimum:
            violations.append(Violation(f"pii.operators.{entity} masks {masked} "
                                        f"character(s) of each value; the policy requires at least {minimum}",
                                        at + ("chars_to_mask",)))
    return violations


@BUILTIN_CHECKS.register("pinned_revision", targets=("recipe",))
def pinned_revision(target: Target, params: dict) -> list[Violation]:
    """A hub base model names its revision (a branch, tag or commit that fttool resolves to a commit), so that the
    recipe, not the hub's default branch on the day it runs, says which weights are tuned. A local directory is
    identified by its content digest and the demo model by fttool, so both pass."""
    from fttool.training.model_ref import is_demo_reference, is_local_model

    model = target.data.get("model") or {}
    base = model.get("base")
    if not isinstance(base, str) or is_demo_reference(base) or is_local_model(base):
        return []
    if model.get("revision"):
        return []
    return [Violation(f"model.base '{base}' is a hub id without model.revision; pin the commit (or a tag) the "
                      "recipe was reviewed with", ("model", "base"))]
