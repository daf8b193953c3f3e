"""`fttool run` ends with the run's verdict, and its exit code says it: an outcome to act on is never exit 0."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.runs import DATA_ONLY

from fttool.cli import cli

pytestmark = pytest.mark.slow  # each test runs the data stages end to end



def run(recipe: Path, run_dir: Path):
    return CliRunner().invoke(cli, ["run", str(recipe), "--output-dir", str(run_dir)])


def test_a_run_that_keeps_no_record_fails_and_names_the_quarantine(tmp_path):
    (tmp_path / "records.jsonl").write_text('{"instruction": "a", "output": \n' * 4)
    (tmp_path / "recipe.yaml").write_text(textwrap.dedent(DATA_ONLY).lstrip())
    result = run(tmp_path / "recipe.yaml", tmp_path / "run")
    assert result.exit_code == 1, result.output
    assert "no record was kept of 4 input records" in result.stderr
    assert str(tmp_path / "run" / "quarantine.jsonl") in result.stderr
    assert "verdict: fail" in result.stdout
    assert "succeeded" not in result.stdout, "a run that exits 1 does not call itself a success"
    assert result.stdout.startswith(f"run run finished: {tmp_path / 'run'}\n")
    assert (tmp_path / "run" / "report.json").is_file()  # the report is written before the run fails


def test_a_failed_report_policy_exits_1_after_writing_the_report(tmp_path):
    lines = [json.dumps({"instruction": f"Question {i} about my savings account?", "output": f"Answer {i}."})
             for i in range(30)]
    (tmp_path / "records.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "policy.yaml").write_text(textwrap.dedent("""
        name: strict
        rules:
          - id: DATA-101
            description: At least a thousand records are kept
            severity: error
            applies_to: report
            check: {kind: compare, path: data.counts.kept, op: ">=", value: 1000}
        """).lstrip())
    recipe = textwrap.dedent(DATA_ONLY).lstrip() + "report: {policy: policy.yaml}\n"
    (tmp_path / "recipe.yaml").write_text(recipe)
    result = run(tmp_path / "recipe.yaml", tmp_path / "run")
    assert result.exit_code == 1, result.output
    assert "policy strict: DATA-101 failed (At least a thousand records are kept)" in result.stderr
    assert "verdict: fail" in result.stdout
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["policy"]["evaluated"]


def test_a_clean_run_passes_with_warnings_only(tmp_path):
    lines = [json.dumps({"instruction": f"Question {i} about my savings account?", "output": f"Answer {i}."})
             for i in range(30)]
    (tmp_path / "records.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "recipe.yaml").write_text(textwrap.dedent(DATA_ONLY).lstrip())
    result = run(tmp_path / "recipe.yaml", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "verdict: warn (no policy was applied to this report)" in result.stdout


def test_a_run_that_quarantines_more_than_its_limit_fails(tmp_path):
    good = [json.dumps({"instruction": f"Question {i} about my savings account?", "output": f"Answer {i}."})
            for i in range(20)]
    (tmp_path / "records.jsonl").write_text("\n".join(good + ['{"instruction": "broken"'] * 20) + "\n")
    (tmp_path / "recipe.yaml").write_text(textwrap.dedent(DATA_ONLY).lstrip())
    result = run(tmp_path / "recipe.yaml", tmp_path / "run")
    assert result.exit_code == 1, result.output
    assert "20 of 40 input records quarantined (50%), above data.max_quarantined_share 10%" in result.stderr
    (tmp_path / "recipe.yaml").write_text(textwrap.dedent(DATA_ONLY).lstrip().replace(
        "  split:", "  max_quarantined_share: 1\n  split:"))
    result = run(tmp_path / "recipe.yaml", tmp_path / "run-accepting")
    assert result.exit_code == 0, result.output
    assert "20 of 40 input records quarantined (50%): malformed_json 20" in result.stdout
