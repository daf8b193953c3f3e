"""MODEL_CARD.md: written with every report, filled in from report.json alone, covered by report.sha256."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from support.report_run import small_run
from support.reports import data_only_report

from fttool.governance.evidence import verify
from fttool.report.model_card import ANNEX_IV, MODEL_CARD_FILE, render_model_card

SECTIONS = ("## Model details", "## Intended use", "## Training data", "## Evaluation",
            "## Bias, risks and limitations", "## Compute and environmental impact", "## Licence",
            "## EU AI Act Annex IV: where the evidence is")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return small_run(tmp_path_factory.getbasetemp() / "small-run", "model-card")


@pytest.fixture
def report(run_dir) -> dict:
    return json.loads((run_dir / "report.json").read_text())


@pytest.mark.slow
def test_every_run_writes_a_card_with_the_template_sections_and_the_annex_iv_map(run_dir, report):
    card = (run_dir / MODEL_CARD_FILE).read_text()
    assert card == render_model_card(report)
    positions = [card.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert card.startswith("---\nlibrary_name: peft\nlicense: apache-2.0\n")
    assert "base_model:" not in card  # the demo model has no hub id
    assert "Demo model." in card and report["run"]["id"] in card and report["recipe"]["fingerprint"] in card
    assert "Answers retail-banking support questions" in card  # the recipe's description
    for point, item, sections in ANNEX_IV:
        assert f"| {point} | {item} | {', '.join(f'`{s}`' for s in sections)} |" in card
    assert f"{report['data']['counts']['canaries']} memorisation canaries planted in train" in card
    assert f"most exposed canary {report['memorisation']['max_exposure_bits']:.4g} bits" in card
    # Counts and ids only: no record text.
    assert "How do I" not in card and "open the app" not in card
    assert f"  {MODEL_CARD_FILE}" in (run_dir / "report.sha256").read_text()


@pytest.mark.slow
def test_an_edited_card_fails_verify(run_dir, tmp_path):
    card = run_dir / MODEL_CARD_FILE
    original = card.read_text()
    card.write_text(original.replace("## Licence", "## Licence\n\nApproved for production."))
    try:
        assert [str(problem) for problem in verify(run_dir)] == [
            f"{MODEL_CARD_FILE}: sha256 differs from report.sha256: the file was changed"]
    finally:
        card.write_text(original)
    assert verify(run_dir) == []


@pytest.mark.slow
def test_the_card_states_failures_and_absent_evidence(report):
    changed = copy.deepcopy(report)
    changed["training"]["base_model"].update(name="org/base-model", demo=False)
    changed["recipe"]["resolved"]["model"]["base"] = "org/base-model"
    changed["memorisation"]["status"] = "fail"
    changed["pii"] = None
    changed["review"] = {"rated": 3, "predictions": 5, "mean_rating": {"base": 2.0, "tuned": 4.0},
                         "preference": {"base": 0, "tuned": 3, "tie": 0}}
    card = render_model_card(changed)
    assert "base_model: org/base-model" in card and "Demo model." not in card
    assert "The memorisation check failed" in card
    assert "Personal data: not scanned" in card and "pii: not run" in card
    assert "3 of 5 outputs rated; mean rating base 2, tuned 4" in card
    assert "review: 3 outputs rated" in card


def test_a_data_only_run_says_no_model_was_trained_instead_of_describing_one():
    card = render_model_card(data_only_report())
    details = card.split("## Model details")[1].split("## ")[0]
    assert "- **Model:** none trained in this run (no train section): this card describes the prepared data" \
        in details
    for claim in ("**Base model:**", "**Fine-tuning method:**", "**Objective:**"):
        assert claim not in details, claim

