"""Issue #3's acceptance run: a messy file through ingest, dedup, split and PII scrubbing, end to end.

Exactly the bad lines are quarantined with their reasons, exact, normalised and near duplicates are removed,
the counts are conserved, no planted structured PII reaches data/*.jsonl or the report, and no record is in
two splits.
"""
from __future__ import annotations

import json
import textwrap
from collections import Counter

import pytest

from fttool.data.dedup import exact_key
from fttool.data.records import read_jsonl
from fttool.pipeline.runner import run_plan
from fttool.recipe import compile_recipe

TOPICS = ["savings account", "credit card", "mortgage", "wire transfer", "mobile app", "overdraft", "loan",
          "branch visit", "statement", "direct debit"]
ACTIONS = ["open", "close", "update", "dispute", "renew"]

# Structured values planted in kept records; none may survive anywhere in the run's outputs.
PLANTED = {"EMAIL_ADDRESS": "olga.petrova@example.com", "PHONE_NUMBER": "+1 415-555-0142",
           "US_SSN": "536-22-8191", "CREDIT_CARD": "4111 1111 1111 1111", "IP_ADDRESS": "10.20.30.40"}


def clean_record(i: int) -> dict:
    topic, action = TOPICS[i % len(TOPICS)], ACTIONS[i // len(TOPICS)]
    return {"instruction": f"How can a customer {action} their {topic} online without calling the bank? (case {i})",
            "output": f"To {action} a {topic}, sign in, open the {topic} page and follow the {action} steps. "
                      f"Reference {i * 7919 % 1000}."}


def messy_lines() -> tuple[list[bytes], dict[int, str]]:
    """The file's lines and, by 1-based line number, the reason each bad line must be quarantined for."""
    records = [clean_record(i) for i in range(40)]
    records[3]["instruction"] = f"Update my email to {PLANTED['EMAIL_ADDRESS']} please."
    records[8]["input"] = f"Phone {PLANTED['PHONE_NUMBER']}, SSN {PLANTED['US_SSN']}"
    records[15]["output"] = f"The card {PLANTED['CREDIT_CARD']} was blocked after a login from {PLANTED['IP_ADDRESS']}."
    lines = [json.dumps(r).encode() for r in records]
    bad = {
        b'{"instruction": "Why was I charged twice?", "output": ': "malformed_json",
        b'{"instruction": "Caf\xe9 opening hours?", "output": "Nine to five."}': "invalid_utf8",
        b'{"instruction": "Where is my card?"}': "missing_field",
        b'{"instruction": "  ", "output": "Check the tracking page."}': "empty_field",
        b'{"instruction": "What is the fee?", "output": 12}': "wrong_type",
    }
    exact = lines[5]
    normalised = json.dumps({k: "  " + v.upper().replace(" ", "   ") for k, v in records[6].items()}).encode()
    near = json.dumps({**records[20], "output": records[20]["output"].replace("follow", "complete")}).encode()
    lines += list(bad) + [exact, normalised, near]
    reasons = {lines.index(line) + 1: reason for line, reason in bad.items()}
    return lines, reasons


@pytest.mark.slow
def test_messy_file_is_accounted_for_and_scrubbed(tmp_path):
    lines, reasons = messy_lines()
    (tmp_path / "messy.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(textwrap.dedent("""
        name: messy
        data:
          sources: [{path: messy.jsonl, format: alpaca}]
          split: {train: 0.6, validation: 0.2, test: 0.2, seed: 1}
          dedup: {exact: true, near: true, near_threshold: 0.7}
        pii: {enabled: true}
    """).lstrip())
    run_dir = run_plan(compile_recipe(recipe), tmp_path / "run")
    report = json.loads((run_dir / "report.json").read_text())

    quarantined = {entry["line"]: entry["reason"] for entry in read_jsonl(run_dir / "quarantine.jsonl")}
    assert quarantined == reasons

    counts = report["data"]["counts"]
    assert counts == {"input": 48, "quarantined": 5, "duplicates": 3, "dropped_by_policy": 0, "kept": 40,
                      "augmented": 0}
    assert counts["input"] == counts["kept"] + counts["quarantined"] + counts["duplicates"] + \
        counts["dropped_by_policy"]
    dedup = next(s for s in report["stages"] if s["name"] == "dedup")
    assert dedup["status"] == "ran"
    rules = report["data"]["dedup"]["rules"]
    assert rules["exact_duplicate"]["removed"] == 2 and rules["near_duplicate"]["removed"] == 1

    splits = {split: list(read_jsonl(run_dir / "data" / f"{split}.jsonl")) for split in ("train", "validation", "test")}
    assert sum(len(records) for records in splits.values()) == 40
    ids = Counter(r["id"] for records in splits.values() for r in records)
    keys = Counter(exact_key(r) for records in splits.values() for r in records)
    assert max(ids.values()) == 1 and max(keys.values()) == 1

    written = "".join((run_dir / "data" / f"{split}.jsonl").read_text() for split in splits)
    for entity, value in PLANTED.items():
        assert value not in written, f"a planted {entity} survived in data/"
        assert f"<{entity}>" in written
    for path in ("report.json", "report.md", "report.html", "quarantine.jsonl"):
        text = (run_dir / path).read_text()
        assert not [value for value in PLANTED.values() if value in text], path
    assert {entity: report["pii"]["entities"].get(entity) for entity in PLANTED} == dict.fromkeys(PLANTED, 1)


@pytest.mark.slow
def test_bias_values_that_identify_people_stay_out_of_the_report_and_run_state(tmp_path):
    customers = [f"{first} {last}" for first in ("Olga", "Tomasz", "Amara", "Kenji", "Lucia")
                 for last in ("Petrova", "Nowak", "Okafor", "Tanaka", "Rossi", "Berg")]
    lines = [json.dumps({**clean_record(i), "customer": name, "region": ("north", "south")[i % 2]})
             for i, name in enumerate(customers)]
    (tmp_path / "support.jsonl").write_text("\n".join(lines) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(textwrap.dedent("""
        name: customers
        data:
          sources: [{path: support.jsonl, format: alpaca}]
        bias: {fields: [customer, region]}
    """).lstrip())
    run_dir = run_plan(compile_recipe(recipe), tmp_path / "run")
    report = json.loads((run_dir / "report.json").read_text())
    assert report["bias"]["fields"]["customer"]["suppressed_groups"] == 30
    assert set(report["bias"]["fields"]["region"]["groups"]) == {"north", "south"}
    for path in ("report.json", "report.html", "report.md", "run_state.json", "plan.json"):
        text = (run_dir / path).read_text()
        assert not [name for name in customers if name in text], path
    assert "30 group(s) with fewer than 5 records are not named" in (run_dir / "report.html").read_text()
