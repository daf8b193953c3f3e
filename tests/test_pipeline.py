"""One small recipe through every stage, from the CLI, as a user runs it."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ACTIONS, TOPICS

from fttool.cli import cli
from fttool.data.records import read_jsonl
from fttool.pipeline.digest import sha256_file
from fttool.report import validate_report

PLANTED = ["robert.miller@example.com", "+1 415-555-0199", "4111 1111 1111 1111", "Robert Miller"]

RECIPE = """
name: pipeline
data:
  sources:
    - {path: records.jsonl, format: alpaca, tag: unit}
  split: {train: 0.6, validation: 0.2, test: 0.2, seed: 1}
  dedup: {exact: true, near: false}
pii: {enabled: true}
bias: {fields: [region]}
augment:
  - {method: synonym, ratio: 0.5, seed: 2}
model: {base: "demo:tiny-llama", license: apache-2.0}
train:
  lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}
  max_steps: 6
  batch_size: 4
  max_seq_length: 96
evaluate: {max_new_tokens: 8, batch_size: 8}
"""



@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    lines = [json.dumps({"instruction": f"How do I {action} my {topic} quickly?",
                         "output": f"To {action} your {topic}, open the app and follow the steps.",
                         "region": region})
             for action in ACTIONS for topic, region in zip(TOPICS, ["north", "south"] * 3)]
    lines.append(json.dumps({"instruction": "Call me back please.",
                             "input": f"I am {PLANTED[3]}, e-mail {PLANTED[0]}, phone {PLANTED[1]}.",
                             "output": "We will call you back.", "region": "north"}))
    lines.append(json.dumps({"instruction": "Refund my card.", "input": f"Card {PLANTED[2]} was charged twice.",
                             "output": "The refund is on its way.", "region": "south"}))
    lines += [lines[0], '{"instruction": "broken"']
    (root / "records.jsonl").write_text("\n".join(lines) + "\n")
    (root / "recipe.yaml").write_text(textwrap.dedent(RECIPE).lstrip())
    return root


@pytest.fixture(scope="module")
def first_run(project) -> Path:
    result = CliRunner().invoke(cli, ["run", str(project / "recipe.yaml"), "--output-dir", str(project / "runs/one")])
    assert result.exit_code == 0, result.output + str(result.exception)
    return project / "runs/one"


def test_every_stage_ran_and_the_report_is_valid(first_run):
    report = json.loads((first_run / "report.json").read_text())
    validate_report(report)
    assert [(s["name"], s["status"]) for s in report["stages"]] == [
        (name, "ran") for name in ("ingest", "dedup", "split", "pii", "bias", "augment", "train", "evaluate")]
    assert {s["name"] for s in report["skipped_stages"]} == {"canaries", "memorisation"}
    counts = report["data"]["counts"]
    assert counts["input"] == 40 and counts["quarantined"] == 1 and counts["duplicates"] == 1
    assert counts["kept"] == 38 and counts["augmented"] > 0
    assert report["pii"]["entities"]["EMAIL_ADDRESS"] == 1 and report["pii"]["residual_total"] == 0
    assert report["training"]["base_model"]["demo"] is True
    assert report["evaluation"]["samples"] == report["data"]["splits"]["test"]
    for name in ("report.html", "report.md", "model/adapter_config.json", "quarantine.jsonl"):
        assert (first_run / name).is_file(), name


def test_lineage_hashes_match_the_files(first_run):
    report = json.loads((first_run / "report.json").read_text())
    paths = set()
    for artifact in report["lineage"]["artifacts"]:
        if artifact["kind"] == "artifact" and artifact.get("retained", True):
            paths.add(artifact["path"])
            assert sha256_file(first_run / artifact["path"]) == artifact["sha256"], artifact["path"]
    assert {"data/train.jsonl", "data/test.jsonl", "model/adapter_model.safetensors"} <= paths
    # Intermediates (the records before scrubbing among them) are recorded by digest, then deleted.
    assert {"work/ingest/records.jsonl", "work/dedup/records.jsonl"} <= {
        a["path"] for a in report["lineage"]["artifacts"] if a.get("retained") is False}


def test_no_raw_personal_data_is_left_anywhere_in_the_run_directory(first_run):
    assert not (first_run / "work").exists()
    for path in (p for p in first_run.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for value in PLANTED:
            assert value.encode() not in data, (path.relative_to(first_run).as_posix(), value)


def test_no_planted_personal_data_reaches_the_prepared_data_or_the_report(first_run):
    for path in [*(first_run / "data").glob("*.jsonl"), first_run / "report.json", first_run / "report.html",
                 first_run / "report.md", first_run / "quarantine.jsonl"]:
        text = path.read_text()
        for value in PLANTED:
            assert value not in text, (path.name, value)


def test_augmented_records_are_only_in_train_with_parents_there(first_run):
    train = list(read_jsonl(first_run / "data/train.jsonl"))
    train_ids = {r["id"] for r in train}
    augmented = [r for r in train if "parent_id" in r]
    assert augmented and all(r["parent_id"] in train_ids for r in augmented)
    for split in ("validation", "test"):
        assert not any("parent_id" in r for r in read_jsonl(first_run / f"data/{split}.jsonl"))


def test_rerun_is_served_from_cache(project, first_run):
    result = CliRunner().invoke(cli, ["run", str(project / "recipe.yaml"), "--output-dir", str(project / "runs/two")])
    assert result.exit_code == 0, result.output
    assert "ingest cached" in result.output and "evaluate cached" in result.output
    report = json.loads((project / "runs/two/report.json").read_text())
    assert {s["status"] for s in report["stages"]} == {"cached"}
    assert (project / "runs/two/model/adapter_model.safetensors").read_bytes() == \
        (first_run / "model/adapter_model.safetensors").read_bytes()
