"""`fttool check`: policy rules on recipes and reports, waivers, output formats and exit codes."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from fttool.cli import cli
from fttool.policy.checks import BUILTIN_CHECKS
from fttool.policy.formats import RENDERERS
from fttool.policy.registry import Target
from fttool.recipe.loader import LoadedDocument
from fttool.recipe.schema import load_schema
from fttool.report import write_report_files

ROOT = Path(__file__).resolve().parent.parent
REGULATED = ROOT / "policies" / "regulated.yaml"
FORMATS = ["text", "json", "junit", "github", "sarif"]

GOOD_RECIPE = """
name: support-bot
data:
  sources:
    - {path: records.jsonl, format: alpaca, tag: t}
  split: {train: 0.6, validation: 0.2, test: 0.2, seed: 3}
pii:
  enabled: true
model:
  base: demo:tiny-llama
  license: Apache-2.0
train: {epochs: 1}
evaluate: {max_new_tokens: 8}
"""
PII_OFF_LINE = 7  # the line of `enabled:` under `pii:` in GOOD_RECIPE with scrubbing turned off

DATA_ONLY_RECIPE = """
name: data-only
data:
  sources:
    - {path: records.jsonl, format: alpaca, tag: t}
  split: {train: 0.6, validation: 0.2, test: 0.2, seed: 3}
"""


def write_project(tmp_path: Path, recipe: str, name: str = "recipe.yaml") -> Path:
    lines = [json.dumps({"instruction": f"Question number {i} about accounts?", "output": f"Answer {i}."})
             for i in range(20)]
    (tmp_path / "records.jsonl").write_text("\n".join(lines) + "\n")
    path = tmp_path / name
    path.write_text(textwrap.dedent(recipe).lstrip())
    return path


def pii_off(tmp_path: Path, name: str = "recipe.yaml") -> Path:
    return write_project(tmp_path, GOOD_RECIPE.replace("enabled: true", "enabled: false"), name)


def check(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["check", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def policy_with_waivers(tmp_path: Path, waivers: str) -> Path:
    text = REGULATED.read_text().replace("waivers: []\n", "waivers:\n" + textwrap.dedent(waivers))
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


# --- Recipes -------------------------------------------------------------------------------------------

def test_a_compliant_recipe_and_the_quickstart_pass():
    assert check(ROOT / "recipes" / "quickstart.yaml", "--policy", REGULATED)[0] == 0


def test_compliant_recipe_in_tmp_passes(tmp_path):
    code, out, _ = check(write_project(tmp_path, GOOD_RECIPE), "--policy", REGULATED)
    assert code == 0, out
    assert "0 error(s)" in out


@pytest.mark.parametrize("output_format", FORMATS)
def test_pii_off_fails_and_names_the_rule_in_every_format(tmp_path, output_format):
    recipe = pii_off(tmp_path)
    code, out, _ = check(recipe, "--policy", REGULATED, "--format", output_format)
    assert code == 1
    assert "PII-001" in out
    if output_format == "text":
        assert f"{recipe}:{PII_OFF_LINE}:3: error PII-001 " in out
    elif output_format == "json":
        result = next(r for r in json.loads(out)["results"] if r["rule"] == "PII-001")
        assert result["status"] == "failed" and result["findings"][0]["line"] == PII_OFF_LINE
    elif output_format == "junit":
        case = next(c for c in ET.fromstring(out).iter("testcase") if c.get("name").startswith("PII-001"))
        assert case.find("failure") is not None
    elif output_format == "github":
        assert f"::error file={recipe},line={PII_OFF_LINE},col=3,title=PII-001 (regulated)::" in out
    else:
        assert [r["ruleId"] for r in json.loads(out)["runs"][0]["results"]] == ["PII-001"]


def test_sarif_has_the_structure_sarif_2_1_0_requires(tmp_path, monkeypatch):
    pii_off(tmp_path)
    monkeypatch.chdir(tmp_path)  # artifact URIs are relative to the working directory, the repository in CI
    sarif = json.loads(check("recipe.yaml", "--policy", REGULATED, "--format", "sarif")[1])
    assert sarif["version"] == "2.1.0"
    assert sarif["$schema"].startswith("https://") and sarif["$schema"].endswith("sarif-2.1.0.json")
    [run] = sarif["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "fttool"
    rule_ids = [rule["id"] for rule in driver["rules"]]
    assert "PII-001" in rule_ids and len(rule_ids) == len(set(rule_ids))
    assert all(rule["shortDescription"]["text"] for rule in driver["rules"])
    [result] = run["results"]
    assert result["ruleId"] == rule_ids[result["ruleIndex"]] == "PII-001"
    assert result["level"] == "error"
    assert result["message"]["text"].startswith("PII must be detected")
    [location] = result["locations"]
    physical = location["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == "recipe.yaml"
    assert physical["region"]["startLine"] == PII_OFF_LINE and physical["region"]["startColumn"] == 3


def test_restricted_entities_must_be_kept_in_the_scrub_list(tmp_path):
    recipe = write_project(tmp_path, GOOD_RECIPE.replace("enabled: true", "enabled: true\n  entities: [PERSON]"))
    code, out, _ = check(recipe, "--policy", REGULATED)
    assert code == 1
    assert "PII-002" in out and '"EMAIL_ADDRESS"' in out and "PII-001" not in out


def test_high_sensitivity_requires_differential_privacy(tmp_path):
    recipe = write_project(tmp_path, GOOD_RECIPE.replace("data:\n", "data:\n  sensitivity: high\n"))
    code, out, _ = check(recipe, "--policy", REGULATED)
    assert code == 1
    assert "DP-001" in out and "train.privacy.enabled is not set" in out


def test_recipe_rules_see_schema_defaults_and_point_at_the_key(tmp_path):
    recipe = write_project(tmp_path, GOOD_RECIPE.replace("seed: 3}", "seed: 3, stratify: region}")
                           .replace("test: 0.2", "test: 0.05").replace("train: 0.6", "train: 0.75")
                           .replace("license: Apache-2.0", "license: llama3\n  trust_remote_code: true"))
    out = check(recipe, "--policy", REGULATED, "--format", "json")[1]
    failed = {r["rule"]: r["findings"][0] for r in json.loads(out)["results"] if r["status"] == "failed"}
    assert set(failed) == {"SPLIT-001", "FAIR-001", "LIC-001", "SEC-001"}
    assert failed["LIC-001"]["line"] == 10 and failed["SEC-001"]["line"] == 11
    assert failed["SPLIT-001"]["json_path"] == "data.split.test"


# --- Exit codes and invalid input -----------------------------------------------------------------------

def test_invalid_recipe_prints_its_errors_and_exits_2(tmp_path):
    recipe = write_project(tmp_path, GOOD_RECIPE.replace("format: alpaca", "format: alpacca"))
    code, _, err = check(recipe, "--policy", REGULATED)
    assert code == 2
    assert f"{recipe}:4:" in err and "alpacca" in err


def test_invalid_policy_is_reported_at_its_line_and_exits_2(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(textwrap.dedent("""
        name: broken
        rules:
          - id: X-001
            description: a report check on a recipe
            severity: error
            applies_to: recipe
            check: {kind: lineage_verifies}
          - id: X-001
            description: an unknown parameter
            severity: warn
            applies_to: recipe
            check: {kind: compare, path: pii.enabled, op: "==", valu: true}
        waivers:
          - {rule: X-999, target: "*", reason: r, approver: a, expires: 2030-02-30}
        """).lstrip())
    code, _, err = check(write_project(tmp_path, GOOD_RECIPE), "--policy", policy)
    assert code == 2
    assert f"{policy}:12:" in err and "unknown key 'valu'; did you mean 'value'?" in err
    policy.write_text(policy.read_text().replace("valu:", "value:"))
    code, _, err = check(write_project(tmp_path, GOOD_RECIPE), "--policy", policy)
    assert code == 2
    assert f"{policy}:7:" in err and "check 'lineage_verifies' reads report files" in err
    assert f"{policy}:8:" in err and "rule id 'X-001' is already used" in err
    assert "the policy has no rule 'X-999'" in err and "'2030-02-30' is not a calendar date" in err


def test_usage_errors_exit_2(tmp_path):
    recipe = write_project(tmp_path, GOOD_RECIPE)
    assert check(recipe)[0] == 2  # no --policy
    assert check(tmp_path / "missing.yaml", "--policy", REGULATED)[0] == 2
    assert check(recipe, "--policy", REGULATED, "--format", "xml")[0] == 2


def test_warnings_pass(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(REGULATED.read_text().replace("severity: error", "severity: warn"))
    code, out, _ = check(pii_off(tmp_path), "--policy", policy)
    assert code == 0
    assert ": warn PII-001 " in out


def test_format_choices_match_the_renderers():
    check_command = cli.commands["check"]
    [option] = [p for p in check_command.params if p.name == "output_format"]
    assert list(option.type.choices) == list(RENDERERS) == FORMATS


def test_schema_kinds_match_the_registry():
    assert sorted(load_schema("policy")["$defs"]["check"]["properties"]["kind"]["enum"]) == BUILTIN_CHECKS.kinds()


# --- Waivers ---------------------------------------------------------------------------------------------

def waiver(expires: dt.date, target: str = "*/recipe.yaml") -> str:
    return (f"  - {{rule: PII-001, target: '{target}', reason: synthetic data only, approver: Dana Reyes,"
            f" expires: {expires.isoformat()}}}\n")


def test_an_active_waiver_turns_the_violation_into_waived(tmp_path):
    policy = policy_with_waivers(tmp_path, waiver(dt.date.today() + dt.timedelta(days=30)))
    recipe = pii_off(tmp_path)
    code, out, _ = check(recipe, "--policy", policy)
    assert code == 0
    assert f"{recipe}:{PII_OFF_LINE}:3: error PII-001 " in out and "[waived until" in out and "Dana Reyes" in out
    assert "1 waived" in out
    sarif = json.loads(check(recipe, "--policy", policy, "--format", "sarif")[1])
    [result] = sarif["runs"][0]["results"]
    assert result["suppressions"][0]["status"] == "accepted"


def test_a_waiver_matches_only_its_target(tmp_path):
    policy = policy_with_waivers(tmp_path, waiver(dt.date.today(), target="support-bot"))  # the recipe's name
    assert check(pii_off(tmp_path), "--policy", policy)[0] == 0
    assert check(pii_off(tmp_path, "other.yaml"), "--policy", policy)[0] == 0  # same name, other file
    policy = policy_with_waivers(tmp_path, waiver(dt.date.today(), target="legacy/*"))
    assert check(pii_off(tmp_path), "--policy", policy)[0] == 1


def test_an_expired_waiver_does_not_apply_and_is_reported(tmp_path):
    policy = policy_with_waivers(tmp_path, waiver(dt.date.today() - dt.timedelta(days=1)))
    code, out, _ = check(pii_off(tmp_path), "--policy", policy, "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["summary"]["expired_waivers"] == 1 and report["summary"]["waived"] == 0
    result = next(r for r in report["results"] if r["rule"] == "PII-001")
    assert result["status"] == "failed" and result["waiver"]["expired"] is True
    assert "expired on" in check(pii_off(tmp_path), "--policy", policy)[1]


def test_waivers_from_a_separate_file(tmp_path):
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text("waivers:\n" + waiver(dt.date.today() + dt.timedelta(days=1)))
    code, out, _ = check(pii_off(tmp_path), "--policy", REGULATED, "--waivers", waivers)
    assert code == 0 and "1 waived" in out
    waivers.write_text("waivers:\n  - {rule: PII-001}\n")
    code, _, err = check(pii_off(tmp_path), "--policy", REGULATED, "--waivers", waivers)
    assert code == 2 and f"{waivers}:2:" in err and "missing required key 'approver'" in err


# --- Reports ---------------------------------------------------------------------------------------------

@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A finished data-only run whose report has a clean PII section, and a recipe that enabled it (the recipe
    rules judge the recipe a report ran), so it passes the regulated policy."""
    from fttool.pipeline.runner import run_plan
    from fttool.recipe import compile_recipe
    from fttool.recipe.schema import apply_defaults

    run_dir = run_plan(compile_recipe(write_project(tmp_path, DATA_ONLY_RECIPE)), tmp_path / "runs" / "one")
    recipe = json.loads((run_dir / "report.json").read_text())["recipe"]
    recipe["resolved"] = apply_defaults({**recipe["resolved"], "pii": {"enabled": True}})
    edit_report(run_dir, pii={"entities": {"PERSON": 3}, "residual": {}, "residual_total": 0}, recipe=recipe)
    return run_dir


def edit_report(run_dir: Path, **sections) -> None:
    report = json.loads((run_dir / "report.json").read_text())
    report.update(sections)
    # As fttool does when it rewrites a report (review import): rendered again, digests rewritten, so that LIN-001
    # (the run verifies) holds.
    write_report_files(report, run_dir)


def test_a_clean_report_passes(run_dir):
    code, out, _ = check(run_dir / "report.json", "--policy", REGULATED)
    assert code == 0, out
    assert check(run_dir, "--policy", REGULATED)[0] == 0  # a run directory means its report.json


def test_report_fails_when_pii_residual_exceeds_zero(run_dir):
    edit_report(run_dir, pii={"entities": {"PERSON": 3}, "residual": {"PERSON": 2}, "residual_total": 2})
    code, out, _ = check(run_dir / "report.json", "--policy", REGULATED)
    assert code == 1
    line = next(n for n, text in enumerate((run_dir / "report.json").read_text().splitlines(), 1)
                if '"residual_total"' in text)
    assert f"report.json:{line}:" in out and "PII-101" in out and "pii.residual_total is 2" in out


def test_report_fails_when_a_data_file_was_edited_or_removed_after_the_run(run_dir):
    with open(run_dir / "data" / "train.jsonl", "a") as handle:
        handle.write('{"id": "added later"}\n')
    (run_dir / "quarantine.jsonl").unlink()
    code, out, _ = check(run_dir / "report.json", "--policy", REGULATED)
    assert code == 1
    assert "LIN-001" in out
    assert "data/train.jsonl: artifact sha256 differs from the report's lineage" in out
    assert "quarantine.jsonl: artifact is missing" in out


def test_report_that_breaks_its_schema_exits_2(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    (run_dir / "report.json").write_text(json.dumps({**report, "run": {"name": "x"}}, indent=2))
    code, _, err = check(run_dir / "report.json", "--policy", REGULATED)
    assert code == 2 and "missing required key 'id'" in err


def report_target(report: dict, tmp_path: Path) -> Target:
    return Target("report", LoadedDocument(path=tmp_path / "report.json", data=report), report, ("run",))


def run_check(kind: str, report: dict, tmp_path: Path, **params) -> list[str]:
    return [v.message for v in BUILTIN_CHECKS.run({"kind": kind, **params}, report_target(report, tmp_path))]


def test_tuned_model_must_not_be_worse_than_base(tmp_path):
    evaluation = {"base": {"test_loss": 2.0, "rougeL": 0.30}, "tuned": {"test_loss": 2.5, "rougeL": 0.25},
                  "delta": {"test_loss": 0.5, "rougeL": -0.05}}
    report = {"training": {}, "evaluation": evaluation}
    assert "worse than its base on test_loss (lower is better)" in run_check(
        "not_worse_than_base", report, tmp_path, metric="test_loss")[0]
    assert run_check("not_worse_than_base", report, tmp_path, metric="rougeL")  # higher is better, it fell
    assert not run_check("not_worse_than_base", report, tmp_path, metric="rougeL", tolerance=0.1)
    evaluation["delta"] = {"test_loss": -0.5, "rougeL": 0.05}
    assert not run_check("not_worse_than_base", report, tmp_path, metric="test_loss")
    assert run_check("not_worse_than_base", {"training": {}, "evaluation": None}, tmp_path, metric="test_loss")
    assert not run_check("not_worse_than_base", {"training": None, "evaluation": None}, tmp_path, metric="test_loss")


def test_privacy_budget_and_its_requirement(tmp_path):
    params = {"epsilon_path": "privacy.epsilon", "max_epsilon": 8, "required_when_sensitivity": ["high"]}

    def report(sensitivity, privacy=None):
        return {"recipe": {"resolved": {"data": {"sensitivity": sensitivity}}}, "privacy": privacy}

    assert run_check("privacy_budget", report("high", {"epsilon": 9.5}), tmp_path, **params) == [
        "the run spent epsilon 9.5, above the budget of 8"]
    assert not run_check("privacy_budget", report("high", {"epsilon": 4}), tmp_path, **params)
    assert "must be differentially private" in run_check("privacy_budget", report("high"), tmp_path, **params)[0]
    assert not run_check("privacy_budget", report("low"), tmp_path, **params)  # not applicable


def test_fairness_limits_and_canary_exposure(tmp_path):
    report = {"bias": {"status": "fail", "fields": {"region": {"status": "fail", "reasons": ["too few 'north'"]}},
                       "mentions": {"gender": {"status": "warn", "reasons": ["few mentions"]}}},
              "evaluation": {"group_gaps": {"region": {"rougeL": 0.25, "test_loss": 0.02}}},
              "memorisation": {"canary_exposure": 12.0}}
    messages = run_check("fairness_within_limits", report, tmp_path, max_gap=0.1, gaps_path="evaluation.group_gaps")
    assert messages == ["the bias audit of field 'region' failed: too few 'north'",
                        "evaluation.group_gaps.region.rougeL is 0.25, above the maximum gap of 0.1"]
    assert run_check("compare", report, tmp_path, path="memorisation.canary_exposure", op="<", value=10)


# --- Speed: no ML libraries ---------------------------------------------------------------------------------

def test_check_imports_no_ml_library():
    code = textwrap.dedent(f"""
        import sys
        from click.testing import CliRunner
        from fttool.cli import cli
        result = CliRunner().invoke(cli, ["check", {str(ROOT / "recipes" / "quickstart.yaml")!r},
                                          "--policy", {str(REGULATED)!r}])
        assert result.exit_code == 0, result.output
        heavy = {{"torch", "transformers", "peft", "trl", "datasets", "presidio_analyzer", "presidio_anonymizer",
                 "spacy", "fairlearn", "opacus", "nlpaug", "nltk", "numpy", "pandas", "pyarrow", "datasketch"}}
        loaded = heavy & {{name.split(".")[0] for name in sys.modules}}
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- bounds on the PII settings, waivers that deserve a second look, invalid input in every format ------------

def test_policy_bounds_the_detection_threshold_and_masks(tmp_path):
    recipe = write_project(tmp_path, GOOD_RECIPE.replace(
        "  enabled: true\n", "  enabled: true\n  score_threshold: 0.95\n"
        "  operators: {CREDIT_CARD: {type: mask, chars_to_mask: 1}, PERSON: {type: mask}}\n"))
    code, out, _ = check(str(recipe), "--policy", str(REGULATED))
    assert code == 1
    assert "PII-003" in out and "pii.score_threshold is 0.95; the policy requires <= 0.5" in out
    assert "PII-004" in out and "pii.operators.CREDIT_CARD masks 1 character(s)" in out
    assert "pii.operators.PERSON" not in out  # chars_to_mask defaults to all


def test_broad_and_long_waivers_are_warned_about(tmp_path):
    far = dt.date.today() + dt.timedelta(days=800)
    policy = policy_with_waivers(tmp_path, waiver(far, target="**"))
    code, _, err = check(str(write_project(tmp_path, GOOD_RECIPE)), "--policy", str(policy))
    assert code == 0
    assert "target '**', which matches every file" in err
    assert f"lasts until {far}, more than a year from today" in err


@pytest.mark.parametrize("output_format", FORMATS)
def test_invalid_input_still_gives_a_document_in_the_chosen_format(tmp_path, output_format):
    report = tmp_path / "run" / "report.json"
    report.parent.mkdir()
    report.write_text('{"schema_version": 1, "lineage": {}, "pii": {"residual_total": NaN}}')
    code, out, err = check(str(report), "--policy", str(REGULATED), "--format", output_format)
    assert code == 2
    assert "NaN is not a JSON number" in err
    if output_format == "json":
        assert json.loads(out)["invalid_input"] is True
    elif output_format == "sarif":
        [run] = json.loads(out)["runs"]
        assert run["invocations"][0]["executionSuccessful"] is False
        assert "NaN" in run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]
    elif output_format == "junit":
        assert ET.fromstring(out).get("errors") == "1"
    elif output_format == "github":
        assert out.startswith(f"::error file={report}")


def test_garbage_report_is_a_clean_error(tmp_path):
    report = tmp_path / "report.json"
    report.write_text('{"schema_version": 1, "lineage": [1, 2], "run": 5}')
    code, out, err = check(str(report), "--policy", str(REGULATED))
    assert code == 2 and "Traceback" not in err and str(report) in err


def test_fairness_rules_can_judge_shown_and_unproven_gaps_apart(tmp_path):
    def field(low, high):
        return {"metrics": {"token_f1": {"tuned": {"difference_ci": [low, high]}}}}

    report = {"bias": {"status": "pass"},
              "fairness": {"gaps": {"region": {"token_f1": 0.2}, "channel": {"token_f1": 0.12},
                                    "tier": {"token_f1": None}},
                           "fields": {"region": field(0.15, 0.25), "channel": field(0.02, 0.3),
                                      "tier": field(None, None)}}}

    def judged(judge):
        return run_check("fairness_within_limits", report, tmp_path, max_gap=0.1, gaps_path="fairness.gaps",
                         judge=judge)

    assert [m.split(" ")[0] for m in judged("shown_beyond")] == ["fairness.gaps.region.token_f1"]
    assert [m.split(" ")[0] for m in judged("unproven")] == ["fairness.gaps.channel.token_f1",
                                                              "fairness.gaps.tier.token_f1"]
    assert len(judged("all")) == 3


@pytest.mark.parametrize("output_format", FORMATS)
def test_input_nested_too_deep_to_parse_is_invalid_input_in_every_format(tmp_path, output_format):
    report = tmp_path / "run" / "report.json"
    report.parent.mkdir()
    report.write_text("[" * 100_000 + "]" * 100_000)
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text("waivers: " + "[" * 5000 + "]" * 5000 + "\n")
    recipe = write_project(tmp_path, GOOD_RECIPE)
    for args in ([report], [recipe, "--waivers", waivers]):
        code, out, err = check(*args, "--policy", REGULATED, "--format", output_format)
        assert code == 2 and "nest" in err and str(args[-1]) in err
        if output_format in ("json", "sarif"):
            assert json.loads(out)


def test_the_recipe_a_report_ran_is_judged_by_the_recipe_rules(run_dir):
    """A run with detection turned nearly off (score_threshold 1.0) scrubs little and its residual scan, at the same
    threshold, finds nothing: the post-run gate must still apply the policy's bound on the threshold."""
    recipe = json.loads((run_dir / "report.json").read_text())["recipe"]
    recipe["resolved"]["pii"]["score_threshold"] = 1.0
    edit_report(run_dir, recipe=recipe)
    code, out, _ = check(run_dir, "--policy", REGULATED, "--format", "json")
    assert code == 1
    [finding] = next(r for r in json.loads(out)["results"] if r["rule"] == "PII-003")["findings"]
    line = next(n for n, text in enumerate((run_dir / "report.json").read_text().splitlines(), 1)
                if '"score_threshold"' in text)
    assert finding["line"] == line and finding["json_path"] == "recipe.resolved.pii.score_threshold"


@pytest.mark.parametrize("output_format", ["json", "sarif"])
def test_a_missing_input_is_reported_in_the_document_ci_reads(tmp_path, output_format):
    """A CI job whose run crashed checks a report that is not there: the SARIF or JSON it uploads must say so."""
    recipe = write_project(tmp_path, GOOD_RECIPE)
    cases = [([tmp_path / "run" / "report.json", "--policy", REGULATED], "run/report.json"),
             ([recipe, "--policy", tmp_path / "no-policy.yaml"], "no-policy.yaml"),
             ([recipe, "--policy", REGULATED, "--waivers", tmp_path / "no-waivers.yaml"], "no-waivers.yaml"),
             ([recipe, "--policy", tmp_path], str(tmp_path))]
    for args, named in cases:
        code, out, err = check(*args, "--format", output_format)
        assert code == 2 and named in err and "Traceback" not in err, (args, err)
        assert named in json.dumps(json.loads(out)), args


@pytest.mark.parametrize("target", ["**/report.json", "*report.json", "[!z]*", "*/recipe.yaml", "?*"])
def test_a_waiver_whose_target_matches_files_it_does_not_name_is_warned_about(tmp_path, target):
    policy = policy_with_waivers(tmp_path, waiver(dt.date.today() + dt.timedelta(days=30), target=target))
    code, _, err = check(str(write_project(tmp_path, GOOD_RECIPE)), "--policy", str(policy))
    assert code == 0 and f"has target '{target}', which" in err


def test_a_waiver_naming_its_files_is_not_warned_about(tmp_path):
    policy = policy_with_waivers(tmp_path, waiver(dt.date.today() + dt.timedelta(days=30),
                                                  target="reports/support-bot-*/report.json"))
    assert "warning" not in check(str(write_project(tmp_path, GOOD_RECIPE)), "--policy", str(policy))[2]


def test_validate_and_run_show_the_warnings_of_the_recipes_report_policy(tmp_path):
    """A broad, long waiver in the recipe's own report.policy would otherwise turn a failure into 'waived' unseen."""
    far = dt.date.today() + dt.timedelta(days=800)
    policy = policy_with_waivers(tmp_path, waiver(far, target="**"))
    recipe = write_project(tmp_path, DATA_ONLY_RECIPE + f"allow_paths_outside_recipe_dir: true\n"
                                                       f"report: {{policy: {policy.name}}}\n")
    for command in (["validate", str(recipe)], ["run", str(recipe), "--output-dir", str(tmp_path / "run")]):
        result = CliRunner().invoke(cli, command)
        assert f"{policy}:" in result.stderr and "target '**', which matches every file" in result.stderr, command
        assert f"lasts until {far}" in result.stderr


def test_a_hub_base_model_must_be_pinned(tmp_path):
    unpinned = write_project(tmp_path, GOOD_RECIPE.replace("base: demo:tiny-llama", "base: org/model"))
    target = Target("recipe", LoadedDocument(path=unpinned, data={}), {"model": {"base": "org/model"}}, ("r",))
    [violation] = BUILTIN_CHECKS.run({"kind": "pinned_revision"}, target)
    assert "is a hub id without model.revision" in violation.message
    for model in ({"base": "org/model", "revision": "v1.0"}, {"base": "./local"}, {"base": "demo:tiny-llama"}):
        target = Target("recipe", LoadedDocument(path=unpinned, data={}), {"model": model}, ("r",))
        assert BUILTIN_CHECKS.run({"kind": "pinned_revision"}, target) == []
