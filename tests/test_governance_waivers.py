"""A recipe's own report policy may waive its own rules when the run writes its report: such a waiver is a name in a
file the recipe chose, signed by no one. Export counts it no more than an unsigned sign-off, and `fttool check` and
the report say which waivers count for nothing."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from support.keys import allowed_signers, keygen
from support.runs import data_project, lora_project

from fttool.cli import cli
from fttool.pipeline.runner import run_plan
from fttool.recipe import compile_recipe

# Fails on the data projects (their malformed line is quarantined), and waives itself for every target.
SELF_WAIVING_POLICY = """name: self-waiving
description: Nothing quarantined, unless the file says otherwise.
rules:
  - id: DATA-900
    description: no record quarantined
    severity: error
    applies_to: report
    check: {{kind: compare, path: {path}, op: '==', value: 0}}
waivers:
  - rule: DATA-900
    target: "**"
    reason: the recipe author accepts it
    approver: Recipe Author
    expires: {expires}
"""
PAST_THE_POLICY_GATE = "the run trained no model"  # where a data-only run's export fails once its policy is waived


def self_waiving_run(tmp_path, project=data_project, path: str = "data.counts.quarantined"):
    recipe = project(tmp_path / "project", extra="report: {policy: self.yaml}\n")
    expires = dt.date.today() + dt.timedelta(days=30)
    (tmp_path / "project" / "self.yaml").write_text(SELF_WAIVING_POLICY.format(path=path, expires=expires))
    run_dir = run_plan(compile_recipe(recipe), tmp_path / "run")
    [rule] = json.loads((run_dir / "report.json").read_text())["policy"]["rules"]
    assert rule["status"] == "waived" and rule["waiver"]["approver"] == "Recipe Author"
    return run_dir


@pytest.fixture
def run_dir(tmp_path):
    return self_waiving_run(tmp_path)


def invoke(*args) -> object:
    return CliRunner().invoke(cli, list(map(str, args)))


def signed_off(run_dir, key, by: str, *extra) -> None:
    result = invoke("signoff", run_dir, "--by", by, "--role", "risk", "--key", key, *extra)
    assert result.exit_code == 0, result.output


def test_a_rule_the_policy_file_waived_itself_unlocks_the_export_only_with_a_signed_waiver(run_dir, tmp_path):
    # Before, the policy file's own waiver let the export past the policy gate with no sign-off at all.
    result = invoke("export", run_dir)
    assert result.exit_code == 1 and PAST_THE_POLICY_GATE not in result.output
    assert "the report's policy file ../project/self.yaml waived DATA-900 itself, unsigned" in result.output
    result = invoke("signoff", run_dir, "--by", "Ann", "--role", "risk")
    assert result.exit_code == 0 and "note: the report's own policy file waived DATA-900, unsigned" in result.stderr
    # A sign-off may waive such a rule; unsigned, it counts no more than the policy file's waiver.
    result = invoke("signoff", run_dir, "--by", "Bo", "--role", "risk", "--waive", "DATA-900", "--reason", "seen")
    assert result.exit_code == 0, result.output
    assert PAST_THE_POLICY_GATE not in invoke("export", run_dir).output
    dana = keygen(tmp_path / "dana")
    signed_off(run_dir, dana, "Dana", "--waive", "DATA-900", "--reason", "one malformed line, checked")
    allowed = allowed_signers(tmp_path / "allowed_signers", "dana@bank.example", dana)
    result = invoke("export", run_dir, "--allowed-signers", allowed)
    assert result.exit_code == 1 and PAST_THE_POLICY_GATE in result.output, result.output


def test_signoff_refuses_to_waive_a_rule_that_neither_failed_nor_was_waived(run_dir):
    result = invoke("signoff", run_dir, "--by", "Bo", "--role", "risk", "--waive", "PII-101", "--reason", "why")
    assert result.exit_code == 1
    assert "--waive PII-101: no such rule failed in the report's policy (failing: none; waived by the policy file " \
           "itself: DATA-900)" in result.output


def test_check_says_plainly_which_waivers_count_for_nothing(run_dir, tmp_path):
    policy = tmp_path / "project" / "self.yaml"
    result = invoke("check", run_dir, "--policy", policy)
    assert result.exit_code == 0, result.output  # exit codes as before: these are warnings
    report = run_dir / "report.json"
    assert (f"{report}: warning: DATA-900 was waived in the report's own policy file ../project/self.yaml by Recipe "
            "Author, unsigned: it counts for nothing until a sign-off signed by an allowed key waives it"
            ) in result.stderr
    # The check's own use of the file's waiver says the same.
    assert f"by Recipe Author at {policy}:10, unsigned: the recipe author accepts it]" in result.stdout

    invoke("signoff", run_dir, "--by", "Bo", "--role", "risk", "--waive", "DATA-900", "--reason", "seen")
    signed_off(run_dir, keygen(tmp_path / "mallory"), "Mallory", "--waive", "DATA-900", "--reason", "fine")
    dana = keygen(tmp_path / "dana")
    allowed = allowed_signers(tmp_path / "allowed_signers", "dana@bank.example", dana)
    result = invoke("check", run_dir, "--policy", policy)
    signoffs = run_dir / "signoff.json"
    assert f"{report}: warning: {signoffs}: Bo (risk) waives DATA-900, unsigned: it counts for nothing" \
           in result.stderr
    assert (f"{signoffs}: Mallory (risk) waives DATA-900, signed, but no allowed signers file says whose key counts: "
            "it counts for nothing") in result.stderr
    result = invoke("check", run_dir, "--policy", policy, "--allowed-signers", allowed)
    assert "Mallory (risk) waives DATA-900, sign-off by Mallory (risk) at " in result.stderr
    assert "signed with a key that is not in the allowed signers file: it counts for nothing" in result.stderr

    signed_off(run_dir, dana, "Dana", "--waive", "DATA-900", "--reason", "one malformed line, checked")
    result = invoke("check", run_dir, "--policy", policy, "--allowed-signers", allowed)
    assert "was waived in the report's own policy file" not in result.stderr, "a counted sign-off waives it"
    assert "Dana (risk) waives" not in result.stderr and "Bo (risk) waives DATA-900, unsigned" in result.stderr


@pytest.mark.slow  # trains
def test_a_trained_run_whose_policy_file_waived_its_own_rule_is_not_exported_on_that_alone(tmp_path):
    """The exit code export changes: 0 before for a trained run whose only waiver was the policy file's own."""
    run_dir = self_waiving_run(tmp_path, lora_project, path="data.counts.kept")
    result = invoke("export", run_dir, "--output", tmp_path / "out")
    assert result.exit_code == 1 and "waived DATA-900 itself, unsigned" in result.output
    assert not (tmp_path / "out").exists()
    dana = keygen(tmp_path / "dana")
    signed_off(run_dir, dana, "Dana", "--waive", "DATA-900", "--reason", "every record was kept")
    allowed = allowed_signers(tmp_path / "allowed_signers", "dana@bank.example", dana)
    result = invoke("export", run_dir, "--output", tmp_path / "out", "--allowed-signers", allowed)
    assert result.exit_code == 0, result.output
    assert "waived DATA-900: every record was kept" in (tmp_path / "out" / "README.md").read_text()
