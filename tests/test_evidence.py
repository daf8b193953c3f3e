"""verify, signoff and lineage export on a real (data-only) run."""
from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from test_runner import make_project

from fttool.cli import cli
from fttool.governance.evidence import DIGEST_FILE, openlineage_event, sign_off, verify, write_digests
from fttool.pipeline.digest import sha256_file
from fttool.pipeline.runner import run_plan
from fttool.recipe import compile_recipe


@pytest.fixture
def run_dir(tmp_path):
    return run_plan(compile_recipe(make_project(tmp_path)), tmp_path / "runs" / "one")


def test_fresh_run_verifies(run_dir):
    assert verify(run_dir) == []
    result = CliRunner().invoke(cli, ["verify", str(run_dir)])
    assert result.exit_code == 0 and "verified" in result.output


def test_edited_data_file_is_named(run_dir):
    with open(run_dir / "data" / "test.jsonl", "a") as handle:
        handle.write("{}\n")
    result = CliRunner().invoke(cli, ["verify", str(run_dir)])
    assert result.exit_code == 1
    assert f"{run_dir}/data/test.jsonl: artifact sha256 differs from the report's lineage" in result.stderr


def test_edited_source_is_named(run_dir, tmp_path):
    with open(tmp_path / "records.jsonl", "a") as handle:
        handle.write("{}\n")
    assert [p.path for p in verify(run_dir)] == ["../../records.jsonl"]


def test_edited_report_is_caught(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    report["data"]["counts"]["quarantined"] = 0
    (run_dir / "report.json").write_text(json.dumps(report))
    assert [str(p) for p in verify(run_dir)] == [f"report.json: sha256 differs from {DIGEST_FILE}: the file was changed"]


def test_signoff_records_the_digest_and_catches_a_later_rewrite(run_dir):
    entry = sign_off(run_dir, "Dana Reviewer", "model risk officer")
    assert entry["report_sha256"] == sha256_file(run_dir / "report.json")
    assert verify(run_dir) == []
    # Someone edits the report and recomputes report.sha256 to hide it: the sign-off still catches it.
    (run_dir / "report.json").write_text((run_dir / "report.json").read_text().replace('"succeeded"', '"succeeded" '))
    write_digests(run_dir)
    (problem,) = verify(run_dir)
    assert problem.path == "report.json" and "changed after Dana Reviewer (model risk officer) signed off" in problem.problem


def test_signoff_is_refused_for_a_run_that_does_not_verify(run_dir):
    (run_dir / "quarantine.jsonl").write_text("")
    result = CliRunner().invoke(cli, ["signoff", str(run_dir), "--by", "X", "--role", "Y"])
    assert result.exit_code == 1 and "cannot be signed off" in result.stderr
    assert not (run_dir / "signoff.json").exists()


def test_openlineage_event(run_dir):
    event = openlineage_event(run_dir)
    uuid.UUID(event["run"]["runId"])
    assert event["eventType"] == "COMPLETE" and event["job"] == {"namespace": "fttool", "name": "data-only", "facets": {}}
    assert [d["name"] for d in event["inputs"]] == ["../../records.jsonl"]
    outputs = {d["name"]: d["facets"]["fttool_digest"]["sha256"] for d in event["outputs"]}
    assert outputs["data/train.jsonl"] == sha256_file(run_dir / "data" / "train.jsonl")
