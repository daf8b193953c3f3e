"""report.json schema, HTML and Markdown rendering, and `fttool report` re-rendering."""
from __future__ import annotations

import copy
import json
import re
from html import escape

import pytest
from click.testing import CliRunner
from support.reports import artifact, data_only_report, digest, full_report

from fttool.cli import cli
from fttool.governance.evidence import write_digests
from fttool.report import rerender, validate_report
from fttool.report.render import render_html, render_markdown

RESIDUAL_REASON = "1 personal data findings remain after scrubbing (`fttool pii sample RUN_DIR --residual` shows where)"
NETWORK_REFERENCE = re.compile(r"""(?:src|href|action|srcset)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


@pytest.mark.parametrize("build", [full_report, data_only_report])
def test_reports_match_the_schema(build):
    validate_report(build())


def test_schema_is_valid_json_schema():
    from jsonschema import Draft202012Validator

    from fttool.recipe.schema import load_schema

    Draft202012Validator.check_schema(load_schema("report"))


@pytest.mark.parametrize("breakage, message", [
    (lambda r: r["data"].pop("counts"), "counts"),
    (lambda r: r["data"]["counts"].pop("kept"), "kept"),
    (lambda r: r["data"]["counts"].update(duplicates=-1), "duplicates"),
    (lambda r: r["stages"][0].update(status="skipped"), "status"),
    (lambda r: r["lineage"]["artifacts"][0].update(sha256="abc"), "sha256"),
    (lambda r: r["pii"].pop("entities"), "entities"),
    (lambda r: r.pop("lineage"), "lineage"),
])
def test_broken_reports_fail_validation(breakage, message):
    report = full_report()
    breakage(report)
    with pytest.raises(ValueError, match=message):
        validate_report(report)


def assert_self_contained(html: str):
    assert not NETWORK_REFERENCE.search(html)
    assert "<script" not in html.lower()
    assert "url(" not in html and "@import" not in html


def test_full_html_shows_every_section_with_the_report_numbers():
    html = render_html(full_report())
    assert html.startswith("<!DOCTYPE html>")
    assert_self_contained(html)
    assert "bank-faq" in html and "20250301-101500-a1b2" in html and digest("recipe") in html
    assert "Demo base model: demo:tiny-llama" in html
    for count in ("1,250", "1,200", "1,092", "252", "36", "14"):  # record flow and final splits
        assert f">{count}<" in html
    assert "<svg" in html and "<polyline" in html  # record flow bars and the loss curve
    assert "too_long" in html and "exact_duplicate" in html and "whitespace" in html
    assert "faq&lt;v2&gt;" in html and "faq<v2>" not in html  # values are escaped
    assert "EMAIL_ADDRESS" in html and ">41<" in html and "1 remaining" in html
    assert "islands" in html and "2.5%" in html and "below 5%" in html
    assert "synonym" in html and "unchanged 11" in html
    assert "65,536 trainable of 4,194,304 (1.56%)" in html and "41.2%" in html
    assert "454.2" in html and "19.92" in html and "-434.3" in html and "+0.2564" in html
    assert "cached" in html and "resumed" in html and digest("stage dedup")[:12] in html
    assert "model/adapter_model.safetensors" in html and digest("model/adapter_model.safetensors")[:12] in html
    assert "None" not in html


def test_data_only_html_explains_skipped_sections():
    html = render_html(data_only_report())
    assert_self_contained(html)
    for reason in ("pii section absent or disabled", "no bias section", "no augment section", "no train section",
                   "no evaluate section"):
        assert f"Not run: {reason}." in html
    assert "Demo base model" not in html and "<polyline" not in html
    assert "None" not in html


def test_markdown_is_short_and_carries_the_headline_numbers():
    markdown = render_markdown(full_report())
    lines = markdown.splitlines()
    assert len(lines) < 60
    assert "Stages: succeeded · run `20250301-101500-a1b2`" in markdown
    assert ("input 1,250 → quarantined 14 → duplicates 36 → dropped by policy 0 → kept 1,200; augmented +252"
            in markdown)
    assert "58 of 1,200 records had PII" in markdown and "PERSON 41" in markdown
    assert "residual after replacement: 1" in markdown
    assert "**Bias:** warn" in markdown and "region warn" in markdown and "age_band pass" in markdown
    assert "| perplexity | 454.2 | 19.92 | -434.3 |" in markdown
    assert "| dedup | cached | 0 | 1,236 → 1,200 |" in markdown
    assert "Demo base model" in markdown


def test_markdown_for_a_data_only_run():
    markdown = render_markdown(data_only_report())
    assert len(markdown.splitlines()) < 60
    assert "**PII:** not run (pii section absent or disabled)" in markdown
    assert "**Evaluation:** not run (no evaluate section)" in markdown
    assert "**Skipped:** pii (pii section absent or disabled); bias (no bias section)" in markdown
    assert "None" not in markdown


def test_missing_values_render_as_dashes():
    report = full_report()
    del report["training"]["validation_loss"]
    report["evaluation"]["tuned"].pop("rougeL")
    assert "validation loss —" in render_markdown(report)
    assert "| rougeL | 0.031 | — | +0.2564 |" in render_markdown(report)
    assert "<th>Validation loss</th><td>—</td>" in render_html(report)


def write_run_dir(tmp_path, report, digests=True):
    run_dir = tmp_path / "bank-faq-run"
    run_dir.mkdir()
    (run_dir / "report.json").write_text(json.dumps(report), encoding="utf-8")
    if digests:  # as fttool does when it writes a report
        write_digests(run_dir)
    return run_dir


def test_rerender_writes_html_and_markdown(tmp_path):
    run_dir = write_run_dir(tmp_path, full_report())
    written = rerender(run_dir)
    assert sorted(p.name for p in written) == ["MODEL_CARD.md", "report.html", "report.md"]
    assert "kept 1,200" in (run_dir / "report.md").read_text(encoding="utf-8")
    assert "Lineage" in (run_dir / "report.html").read_text(encoding="utf-8")


def test_rerender_refuses_an_invalid_report(tmp_path):
    report = copy.deepcopy(data_only_report())
    del report["data"]["counts"]
    with pytest.raises(ValueError, match="counts"):
        rerender(write_run_dir(tmp_path, report, digests=False))


def test_report_command(tmp_path):
    run_dir = write_run_dir(tmp_path, data_only_report())
    result = CliRunner().invoke(cli, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert str(run_dir / "report.html") in result.output and str(run_dir / "report.md") in result.output
    assert (run_dir / "report.md").is_file()


@pytest.mark.parametrize("content, problem", [
    (b"{\"schema_version\": 1,\n  \"run\": ", "report.json:2:10: not valid JSON"),
    (b"[1, 2]", "report.json:1:1: not an fttool report"),
    (b"\xff\xfe{}", "report.json:1:1: not valid UTF-8"),
    (b'{"schema_version": NaN}', "report.json:1:1: not valid JSON: NaN is not a JSON number"),
    (b'{"schema_version": 1, "lineage": {}}', "report.json:1:1: not an fttool report"),
    (b'{\n  "schema_version": "one",\n  "run": {}\n}', "report.json:2:21: 1 was expected (at schema_version)"),
])
def test_a_garbage_report_is_a_clean_error_naming_the_file_and_line(tmp_path, content, problem):
    from fttool.report import ReportInvalid, read_report

    (tmp_path / "report.json").write_bytes(content)
    with pytest.raises(ReportInvalid) as raised:
        read_report(tmp_path)
    assert str(tmp_path / problem) in str(raised.value), str(raised.value)
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 2 and result.exception.__class__ is SystemExit
    assert str(tmp_path / problem) in result.output and "Traceback" not in result.output


def test_read_report_names_a_missing_report(tmp_path):
    from fttool.report import ReportInvalid, read_report

    with pytest.raises(ReportInvalid, match="report.json:0:0: file not found"):
        read_report(tmp_path)


def test_each_stage_fills_the_section_it_declares():
    from fttool.pipeline.runner import StageRecord
    from fttool.report.build import report_order, stage_summaries
    from fttool.report.sections import declared_sections
    from fttool.stages import STAGE_ORDER, stage_class

    assert declared_sections() == {name: stage_class(name).report_section for name in STAGE_ORDER}
    # Every stage's summary is placed at its declaration; a section two stages declare holds both, the later
    # stage's values winning (canaries counts, then the memorisation results).
    records = [StageRecord(name, "ran", "f", 0.0, None, None, {}, {}, {}, {"summary": {"by": name, name: True}})
               for name in STAGE_ORDER]
    summaries = stage_summaries(records)
    for name in STAGE_ORDER:
        assert summaries[stage_class(name).report_section][name] is True
    assert summaries["memorisation"]["by"] == "memorisation" and summaries["memorisation"]["canaries"] is True
    assert stage_summaries(records[:3])["pii"] is None
    # A section comes after the evidence it rests on: memorisation after evaluation, although canaries come first.
    assert report_order() == ["data.ingest", "data.dedup", "data.split", "pii", "bias", "augmentation", "training",
                              "evaluation", "memorisation"]


def test_html_markdown_and_model_card_format_a_figure_alike():
    from fttool.report.model_card import render_model_card

    report = full_report()
    report["evaluation"]["base"]["perplexity"] = 12345.678
    html, markdown, card = render_html(report), render_markdown(report), render_model_card(report)
    for text in (html, markdown, card):
        assert "1,250" in text and "12,345.7" in text and "0.2874" in text


def passing_report() -> dict:
    """A run with nothing to flag: no record quarantined, a real base model, a policy that passed."""
    report = data_only_report()
    report["data"]["counts"].update(input=1236, quarantined=0)
    report["data"]["ingest"].update(quarantined_by_reason={})
    report["policy"] = {"evaluated": True, "policy": "regulated", "path": "../../policies/regulated.yaml",
                        "sha256": digest("policy"), "checked_on": "2025-03-01", "passed": True,
                        "summary": {"files": 1, "rules_applied": 1, "errors": 0, "warnings": 0, "waived": 0,
                                    "expired_waivers": 0},
                        "rules": [{"id": "PII-101", "description": "No PII may remain", "severity": "error",
                                   "status": "passed", "findings": [], "waiver": None}]}
    return report


def test_the_verdict_passes_only_when_nothing_needs_a_reviewers_attention():
    from fttool.report.verdict import verdict

    assert verdict(passing_report()).status == "pass" and verdict(passing_report()).reasons == ()
    data_only = verdict(data_only_report())
    assert data_only.status == "warn"
    assert [(r.section, r.text) for r in data_only.reasons] == [
        ("data", "14 of 1,250 input records quarantined (1.12%): too_long 6, missing_field 5, invalid_json 3"),
        ("policy", "no policy was applied to this report")]
    full = verdict(full_report())
    assert full.status == "fail"
    assert [(r.status, r.section) for r in full.reasons] == [
        ("fail", "pii"), ("warn", "training"), ("warn", "data"), ("warn", "bias"), ("warn", "policy")]
    assert full.reasons[0].text == RESIDUAL_REASON


@pytest.mark.parametrize("change, status, section, text", [
    (lambda r: r["data"]["counts"].update(kept=0), "fail", "data", "no record was kept of 1,236 input records"),
    (lambda r: r["policy"].update(passed=False) or r["policy"]["rules"][0].update(status="failed"), "fail", "policy",
     "policy regulated: PII-101 failed (No PII may remain)"),
    (lambda r: r.update(fairness={"evaluated": True, "status": "inconclusive"}), "warn", "fairness",
     "the per-group evaluation is inconclusive"),
    (lambda r: r.update(evaluation={"primary_metric": {"name": "rougeL", "base": 0.2, "tuned": 0.1,
                                                       "improved": False}}),
     "warn", "evaluation", "the primary metric rougeL did not improve (0.2 → 0.1)"),
    (lambda r: r.update(memorisation={"status": "fail"}), "fail", "memorisation", "the memorisation check failed"),
])
def test_each_finding_sets_the_verdict_with_its_section(change, status, section, text):
    from fttool.report.verdict import verdict

    report = passing_report()
    change(report)
    result = verdict(report)
    assert result.status == status and [(r.status, r.section, r.text) for r in result.reasons] == [
        (status, section, text)]


def test_the_page_and_the_summary_open_with_the_verdict_each_reason_linked_to_its_section():
    report = full_report()
    html, markdown = render_html(report), render_markdown(report)
    assert html.index('id="verdict"') < html.index("<th>Run id</th>")
    assert "<strong>Verdict: FAIL</strong>" in html
    assert f'<a href="#pii">{RESIDUAL_REASON}</a>' in html
    assert '<a href="#bias">the representation audit warns</a>' in html
    assert markdown.splitlines()[4] == "**Verdict: FAIL**"
    assert f"- fail: [{RESIDUAL_REASON}](report.html#pii)" in markdown


def test_the_demo_banner_quotes_the_model_note_as_a_sentence():
    html = render_html(full_report())
    assert ("say nothing about model quality. (The training stage's note on it: Randomly initialised and trained "
            "offline by fttool.)</div>") in html


def mlflow_run_report() -> dict:
    """The full report with a train stage that tracked to the run's own MLflow store (three of its files)."""
    report = full_report()
    report["training"]["tracking"] = {"uri": "mlruns", "experiment_id": "1", "run_id": "abc"}
    parents = ["data/train.jsonl", "data/validation.jsonl"]
    report["lineage"]["artifacts"] += [artifact(f"mlruns/1/abc/{name}", "train", parents)
                                       for name in ("meta.yaml", "metrics/train_loss", "params/lora.r")]
    return report


def test_lineage_groups_mlflow_files_under_their_directory_and_prints_whole_digests():
    report = mlflow_run_report()
    html = render_html(report)
    lineage = html[html.index('<section id="lineage">'):html.index('<section id="recipe">')]
    assert lineage.count("<details>") == 1
    group = lineage[lineage.index("<details>"):lineage.index("</details>")]
    assert ("<summary><span class=\"mono\">mlruns/</span>: MLflow's file store for the train stage, 3 files made "
            "from data/train.jsonl, data/validation.jsonl") in group
    assert all(f"mlruns/1/abc/{name}" in group for name in ("meta.yaml", "metrics/train_loss", "params/lora.r"))
    assert "model/adapter_model.safetensors" in lineage and "model/adapter_model.safetensors" not in group
    # Screens show a digest's start (all of it on hover); print shows all of it, and opens every <details>.
    full = digest("model/adapter_model.safetensors")
    assert f'<span class="short">{full[:12]}</span><span class="full">{full}</span>' in lineage
    print_css = html[html.index("@media print"):html.index("</style>")]
    assert ".digest .short{display:none}" in print_css and "details::details-content{content-visibility:visible" \
        in print_css
    assert html.count('class="recipe"') == 1 and "pre{max-height:none" in print_css


def test_the_validation_curve_starts_at_the_base_model_when_the_evaluation_measured_it():
    report = full_report()
    report["training"]["validation_loss_history"] = [{"step": 18, "loss": 3.4}, {"step": 36, "loss": 2.97}]
    html = render_html(report)
    validation = html[html.index("<h3>Validation loss</h3>"):html.index('<section id="privacy">')]
    points = validation[validation.index('points="') + 8:].split('"')[0].split()
    assert len(points) == 3 and ">0<" in validation and "Step 0 is the base model" in validation
    assert ">6.104<" in validation  # the base model's validation loss tops the axis
    del report["evaluation"]["base"]["validation_loss"]
    validation = render_html(report).split("<h3>Validation loss</h3>")[1]
    assert "Step 0 is the base model" not in validation.split("</section>")[0]


def test_the_policy_command_names_the_policy_as_typed_from_the_run_directory(tmp_path):
    from fttool.report.build import SHIPPED_POLICY, policy_how

    report = passing_report()
    html = render_html(report)
    assert "<code>fttool check . --policy ../../policies/regulated.yaml</code>" in html
    run_dir = tmp_path / "reports" / "run-1"
    run_dir.mkdir(parents=True)
    how = policy_how(run_dir)
    assert how.startswith("from the run directory, fttool check . --policy ")
    assert (run_dir / how.split("--policy ")[1].split()[0]).resolve() == SHIPPED_POLICY


def test_rendering_shows_the_sign_offs_in_signoff_json(tmp_path):
    from fttool.pipeline.digest import sha256_file

    run_dir = write_run_dir(tmp_path, data_only_report())
    rerender(run_dir)
    assert "No sign-off yet" in (run_dir / "report.html").read_text()
    entries = [{"by": "Ada Reviewer", "role": "model risk officer", "at": "2025-03-02T09:00:00+00:00",
                "report_sha256": sha256_file(run_dir / "report.json")},
               {"by": "Old Approver", "role": "data owner", "at": "2025-03-01T09:00:00+00:00",
                "report_sha256": digest("an older report")}]
    (run_dir / "signoff.json").write_text(json.dumps(entries))
    rerender(run_dir)
    html = (run_dir / "report.html").read_text()
    assert "<td>Ada Reviewer</td><td>model risk officer</td>" in html and "No sign-off yet" not in html
    rows = html[html.index("<td>Ada Reviewer</td>"):].split("</tr>")
    assert rows[0].endswith("<td>yes</td>") and rows[1].endswith("<td>no: an earlier version</td>")
    assert ("**Sign-off:** Ada Reviewer (model risk officer) at 2025-03-02T09:00:00+00:00, unsigned; Old Approver "
            "(data owner) at 2025-03-01T09:00:00+00:00, unsigned, of an earlier version of this report"
            ) in (run_dir / "report.md").read_text()


def test_each_sign_off_and_its_waivers_show_the_signing_keys_fingerprint_or_unsigned(tmp_path):
    """A sign-off signed with a real key as fttool signoff signs it; the fingerprint is ssh-keygen -l's, computed
    here apart."""
    import base64
    import hashlib

    from support.keys import keygen

    from fttool.governance.evidence import signed_payload
    from fttool.governance.signing import sign
    from fttool.pipeline.digest import sha256_file
    from fttool.report.model_card import render_model_card

    run_dir = write_run_dir(tmp_path, data_only_report())
    key = keygen(tmp_path / "reviewer")
    at, approved = "2025-03-02T09:00:00+00:00", sha256_file(run_dir / "report.json")
    waiver = [{"rule": "PII-101", "reason": "reviewed by hand"}]
    signed = {"by": "Ada Reviewer", "role": "model risk officer", "at": at, "report_sha256": approved,
              "waivers": waiver}
    signed["signature"], signed["key"] = sign(signed_payload(signed), key)
    claimed = {"by": "Bo Claimant", "role": "data owner", "at": at, "report_sha256": approved, "waivers": waiver}
    (run_dir / "signoff.json").write_text(json.dumps([signed, claimed]))
    rerender(run_dir)
    blob = base64.b64decode(key.with_suffix(".pub").read_text().split()[1])
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    markdown, html = (run_dir / "report.md").read_text(), (run_dir / "report.html").read_text()
    sign_offs = next(line for line in markdown.splitlines() if line.startswith("- **Sign-off:**"))
    assert sign_offs == (f"- **Sign-off:** Ada Reviewer (model risk officer) at {at}, signed with key {expected}, "
                         f"waiving PII-101: reviewed by hand; Bo Claimant (data owner) at {at}, unsigned, waiving "
                         "PII-101: reviewed by hand")
    rows = html[html.index("<td>Ada Reviewer</td>"):].split("</tr>")
    assert f"<td>signed with key {expected}</td>" in rows[0] and "<td>unsigned</td>" in rows[1]
    assert "whether the key is one you allow" in html
    card = render_model_card(json.loads((run_dir / "report.json").read_text()),
                             [{**entry, "approves": True} for entry in json.loads((run_dir / "signoff.json")
                                                                                  .read_text())])
    assert f"(signed with key {expected})" in card and "(unsigned)" in card


def test_a_waiver_from_the_policy_file_is_shown_as_unsigned_wherever_the_verdict_counts_it():
    from fttool.report.verdict import verdict

    report = passing_report()
    report["policy"]["rules"][0].update(status="waived", findings=["1 finding remains"], waiver={
        "reason": "accepted for the pilot", "approver": "Recipe Author", "expires": "2025-06-30"})
    text = ("waived by Recipe Author in the policy file until 2025-06-30, unsigned: accepted for the pilot")
    reasons = [(r.status, r.text) for r in verdict(report).reasons]
    assert reasons == [("warn", "policy regulated: PII-101 waived by Recipe Author in the policy file, unsigned")]
    assert f"**Policy regulated:** pass; PII-101 {text}" in render_markdown(report)
    html = render_html(report)
    row = re.search(r'<tr><td><span class="nowrap">PII-101</span></td>.*?</tr>', html).group(0)
    assert f'<span class="badge badge-warn">warn</span><br>{text}' in row
    assert "PII-101 waived by Recipe Author in the policy file, unsigned" in html


def test_the_markdown_names_the_launched_processes_and_ranks_as_the_page_does():
    report = full_report()
    assert "· processes: one (the fttool process, not launched)" in render_markdown(report)
    report["training"]["launch"] = {
        "num_processes": 2, "machines": 2, "processes_per_machine": 1, "strategy": "ddp",
        "ranks": [{"rank": 0, "machine": 0, "local_rank": 0, "device": "cpu"},
                  {"rank": 1, "machine": 1, "local_rank": 0, "device": "cpu"}],
        "config_file": "work/train/launch/accelerate.yaml", "config": {}, "command": ["accelerate", "launch"]}
    validate_report(report)
    launched = "2 on 2 machines, 1 each (ddp, accelerate launch)"
    ranks = "machine 0: rank 0 (cpu); machine 1: rank 1 (cpu)"
    assert f"· processes: {launched}, ranks: {ranks}" in render_markdown(report)
    html = render_html(report)
    assert f"<th>Processes</th><td>{launched}</td>" in html and f"<th>Ranks</th><td>{ranks}</td>" in html


def test_the_model_card_explains_kept_per_source_against_kept_overall():
    from fttool.report.model_card import render_model_card

    card = render_model_card(full_report())
    assert ("- Source `data/faq.jsonl` (tag faq<v2>, format alpaca): 1,250 records, 1,236 passed ingest "
            "(14 quarantined)") in card
    assert ("- Of the 1,236 records that passed ingest, 1,200 are kept overall: 36 duplicates and 0 records dropped "
            "by the PII policy are removed after ingest, across all sources.") in card
    assert "**Parameters:** 65,536 trainable of 4,194,304" in card


def test_non_finite_numbers_are_named_before_a_report_is_written():
    from fttool.report.build import non_finite_paths

    report = full_report()
    report["evaluation"]["tuned"]["perplexity"] = float("inf")
    report["training"]["loss_history"][2]["loss"] = float("nan")
    assert non_finite_paths(report) == ["$.training.loss_history[2].loss", "$.evaluation.tuned.perplexity"]
    assert non_finite_paths(full_report()) == []


def test_the_pii_strict_row_does_not_contradict_a_failing_residual():
    """Without strict, residual PII still fails the verdict (and fttool run exits 1); the row says what strict
    changes, stopping the run at the PII stage, rather than that a residual "fails the run" only with it."""
    report = full_report()
    report["pii"].update(residual={"PERSON": 2}, residual_total=2, strict=False)
    html = render_html(report)
    assert "Strict (a residual stops the run at the PII stage)" in html
    assert "a residual fails the run" not in html


def test_the_ingest_section_names_fields_kept_as_metadata_and_not_trained_on():
    report = data_only_report()
    source = report["data"]["ingest"]["sources"][0]
    source["meta_fields"] = {"example_input": 1, "region": 250}
    html = render_html(report)
    assert (f"Fields outside the {escape(source['format'])} format, kept as metadata (for bias fields, the split "
            "and evaluation groups) and never trained on:") in html
    assert f"{escape(source['path'])}: example_input (1 record), region (250 records)" in html


def test_the_training_section_shows_the_records_train_max_samples_left_out():
    report = full_report()
    report["training"]["records_beyond_max_samples"] = 40
    report["recipe"]["resolved"].setdefault("train", {})["max_samples"] = 200
    html = render_html(report)
    assert "Train records left out" in html and "40 (train.max_samples: 200)" in html
    del report["training"]["records_beyond_max_samples"]
    assert "Train records left out" not in render_html(report)


def test_a_policy_path_that_would_climb_to_the_filesystem_root_is_given_whole(tmp_path):
    """From a run directory that shares nothing with the policy's folder but '/', '../../../../work/...' reads
    worse than the absolute path; inside the same tree the command stays relative."""
    from fttool.report.build import SHIPPED_POLICY, policy_how

    if SHIPPED_POLICY.anchor != tmp_path.anchor or SHIPPED_POLICY.parts[1] == tmp_path.parts[1]:
        pytest.skip("the repository and the temporary directory share a top-level folder here")
    assert f"fttool check . --policy {SHIPPED_POLICY} (" in policy_how(tmp_path / "run-1")
    inside = SHIPPED_POLICY.parent.parent / "reports" / "run-1"
    assert "fttool check . --policy ../../policies/regulated.yaml (" in policy_how(inside)


def test_policy_rule_ids_do_not_break_at_their_hyphen():
    """In the PDF print the Rule column is narrow, and 'PII-101' broke into 'PII-' and '101'."""
    html = render_html(passing_report())
    assert '<td><span class="nowrap">PII-101</span></td>' in html
    assert ".nowrap{white-space:nowrap}" in html


def test_the_lineage_marks_intermediates_the_run_deleted():
    """work/ files are deleted when a run succeeds; a reviewer reading the lineage is told they are not in the run
    directory rather than left to look for them."""
    report = data_only_report()
    report["lineage"]["artifacts"] = [artifact("data/faq.jsonl", None, []) | {"kind": "source"},
                                      artifact("work/ingest/records.jsonl", "ingest", ["data/faq.jsonl"])
                                      | {"retained": False},
                                      artifact("data/train.jsonl", "pii", ["work/ingest/records.jsonl"])]
    html = render_html(report)
    kinds = re.findall(r'<tr><td class="path">([^<]+)</td><td>([^<]+)</td>', html)
    assert kinds == [("data/faq.jsonl", "source"), ("work/ingest/records.jsonl", "artifact, not kept"),
                     ("data/train.jsonl", "artifact")]
    assert "not kept: an intermediate in work/, deleted when the run succeeded" in html


def test_a_model_trained_on_data_never_scanned_for_personal_data_warns():
    """An imported recipe has no pii section: the run trains on unscanned data, and without a policy nothing
    else in the verdict said so."""
    from fttool.report.verdict import WARN, verdict

    report = full_report()
    report["pii"] = None
    reasons = [(r.status, r.section, r.text) for r in verdict(report).reasons]
    assert (WARN, "pii", "the model was trained on data never scanned for personal data (pii section absent or "
                         "disabled)") in reasons
    assert not any(r.section == "pii" for r in verdict(data_only_report()).reasons), "no model, nothing trained on"


def test_a_failed_rule_of_warning_severity_shows_a_warn_badge_as_the_verdict_counts_it():
    report = passing_report()
    report["policy"]["rules"].append({"id": "SEC-002", "description": "A recipe reads only files under its own "
                                      "folder", "severity": "warn", "status": "failed", "findings": ["outside"],
                                      "waiver": None})
    html = render_html(report)
    row = re.search(r'<tr><td><span class="nowrap">SEC-002</span></td>.*?</tr>', html).group(0)
    assert '<span class="badge badge-warn">warn</span>' in row and "badge-bad" not in row
    assert "policy regulated: SEC-002 warns" in html


def test_the_run_status_under_a_failing_verdict_reads_as_the_stages_not_as_the_outcome():
    """'Status: succeeded' in bold beside 'Verdict: FAIL' read as a success; it says that every stage ran."""
    report = full_report()
    html, markdown = render_html(report), render_markdown(report)
    assert "<th>Stages</th><td><span class=\"badge badge-good\">succeeded</span></td>" in html
    assert "<th>Status</th><td><span class=\"badge badge-good\">succeeded" not in html
    assert "**Status" not in markdown and markdown.splitlines()[2].startswith("Stages: succeeded · run ")


def test_group_chart_labels_fit_left_of_the_bars():
    """The k-anonymous name of a small group, '(group of fewer than 5 records #1) (1, not compared)', ran off the
    chart's left edge on screen and in print."""
    from fttool.report.charts import group_chart

    name = "(group of fewer than 5 records #1)"
    groups = {name: {"count": 1, "compared": False}, "north": {"count": 10, "compared": True}}
    results = {"tuned": {"by_group": {name: {"value": 0.1}, "north": {"value": 0.2, "ci": [0.1, 0.3]}}}}
    svg = group_chart("token_f1 by region", groups, results)
    label = f"{name} (1, not compared)"
    anchor = float(re.search(r'<text x="([0-9.]+)"[^>]*text-anchor="end">' + re.escape(escape(label)), svg).group(1))
    assert anchor >= 7 * len(label), "at 12px, a character is up to about 7px wide"
    from fttool.report.html import CSS

    assert "font-size:12px;max-width:100%;height:auto}" in CSS.split("@media print")[0], "a wide chart shrinks to fit"
