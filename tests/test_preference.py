"""Preference data through the pipeline: formats, pair-aware dedup, a split by prompt with a leakage check on prompts,
PII on every text of a pair, the validation rules, and (slow) DPO and KTO runs end to end on the demo model."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import report_of
from support.data import ingest_params, split_params
from support.pii import pii_params

from fttool.data.containers import Rejected
from fttool.data.preference import pair_statistics, preference_record, prompt_unit
from fttool.data.records import SPLITS, read_jsonl, write_jsonl
from fttool.data.settings import SourceSettings
from fttool.pipeline.params import build
from fttool.recipe.compiler import compile_recipe
from fttool.recipe.errors import RecipeInvalid


def source(fmt: str, **fields) -> SourceSettings:
    return build(SourceSettings, ingest_params([{"path": "pairs.jsonl", "format": fmt, **fields}])["sources"][0], "s")


def read(value: dict, fmt: str = "preference", **fields) -> dict:
    return preference_record(value, "line", source(fmt, **fields), 10_000)


def pair(prompt: str, chosen: str, rejected: str, **meta) -> dict:
    """A preference record in fttool's shape, as ingest writes it."""
    return read({"prompt": prompt, "chosen": chosen, "rejected": rejected, **meta})


# Formats


def test_trl_standard_and_conversational_pairs_read_alike():
    standard = read({"prompt": "How do I close my card?", "chosen": "Open Settings.", "rejected": "No."})
    conversational = read({"prompt": [{"role": "user", "content": "How do I close my card?"}],
                           "chosen": [{"role": "assistant", "content": "Open Settings."}],
                           "rejected": [{"role": "assistant", "content": "No."}]})
    assert standard == conversational
    assert standard["messages"] == [{"role": "user", "content": "How do I close my card?"}]
    assert (standard["chosen"], standard["rejected"], standard["format"]) == ("Open Settings.", "No.", "preference")


def test_axolotl_chatml_intel_question_and_system():
    record = read({"system": "You are a bank assistant.", "question": "Fees?", "chosen": "None.", "rejected": "Go.",
                   "region": "north"})
    assert [m["role"] for m in record["messages"]] == ["system", "user"]
    assert record["meta"] == {"region": "north"}


def test_llamafactory_sharegpt_pairs():
    record = read({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
                                     {"from": "human", "value": "Close my account"}],
                   "chosen": {"from": "gpt", "value": "Done: it closes tomorrow."},
                   "rejected": {"from": "gpt", "value": "Whatever."}}, "sharegpt_preference")
    assert [m["role"] for m in record["messages"]] == ["user", "assistant", "user"]
    assert record["chosen"] == "Done: it closes tomorrow."


def test_kto_messages_and_prompt_completion_with_field_mapping():
    from_messages = read({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}],
                          "label": False}, "kto")
    mapped = read({"q": "Hi", "a": "Hey", "good": False}, "kto", fields={"prompt": "q", "completion": "a",
                                                                          "label": "good"})
    assert from_messages["completion"] == mapped["completion"] == "Hey"
    assert from_messages["label"] is mapped["label"] is False
    assert from_messages["id"] == mapped["id"]


@pytest.mark.parametrize(("value", "fmt", "reason"), [
    ({"prompt": "Hi", "chosen": "Same  answer", "rejected": "Same answer"}, "preference", "identical_pair"),
    ({"prompt": "Hi", "chosen": "Yes"}, "preference", "missing_field"),
    ({"prompt": "Hi", "chosen": [{"role": "user", "content": "x"}], "rejected": "No"}, "preference", "unknown_role"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}], "label": "yes"},
     "kto", "wrong_type"),
    ({"messages": [{"role": "user", "content": "Hi"}], "label": True}, "kto", "no_assistant_message"),
])
def test_unusable_records_are_rejected_with_a_reason_and_no_text(value, fmt, reason):
    with pytest.raises(Rejected) as rejected:
        read(value, fmt)
    assert rejected.value.reason == reason
    assert "Same answer" not in rejected.value.message


def test_ingest_quarantines_identical_pairs_and_counts_pairs(run_stage, tmp_path):
    lines = [{"prompt": f"Question {i}?", "chosen": f"Helpful answer {i}.", "rejected": "No."} for i in range(4)]
    lines.append({"prompt": "Question 9?", "chosen": "Same.", "rejected": "Same."})
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result, outputs = run_stage("ingest", ingest_params([{"path": "pairs.jsonl", "format": "preference"}]), {})
    assert result.summary["kept"] == 4
    assert result.removed == {"identical_pair": 1}
    quarantined = [json.loads(line) for line in outputs["quarantine"].read_text().splitlines()]
    assert quarantined[0]["line"] == 5 and "Same." not in quarantined[0]["message"]


def test_pair_statistics_count_lengths_prompts_and_ties():
    records = [pair("Q1", "Long helpful answer", "No", score_chosen=8, score_rejected=8),
               pair("Q1", "Long helpful answer", "Nope", score_chosen=9, score_rejected=2), pair("Q2", "Ok", "Nope")]
    stats = pair_statistics(records)
    assert (stats["pairs"], stats["prompts"], stats["scored_pairs"], stats["ties"]) == (3, 2, 2, 1)
    assert stats["chosen_chars"]["max"] == len("Long helpful answer")
    assert stats["chosen_longer_share"] == round(2 / 3, 4)


# Dedup works on whole pairs


def test_dedup_drops_duplicate_pairs_but_keeps_other_pairs_of_a_prompt(run_stage, tmp_path):
    recipe = write_recipe(tmp_path / "project", PAIRS_RECIPE.replace(
        "format: preference}]}", "format: preference}], dedup: {exact: true, near: true, near_threshold: 0.8}}"))
    params = next(stage.params for stage in compile_recipe(recipe).stages if stage.name == "dedup")
    answer = ("Open the app, go to Settings, choose the savings account and select Close; any remaining balance is "
              "moved to the account you choose and we send a confirmation within two working days of the request")
    first = pair("How do I close my savings account?", answer, "No.")
    same_pair = pair("how do I  close my SAVINGS account?", answer.upper(), "No.")
    near_pair = pair("How do I close my savings account?", answer + " today", "No.")
    other_rejected = pair("How do I close my savings account?", answer,
                          "Call us some other time, we are busy today and cannot look into savings accounts.")
    result, outputs = run_stage("dedup", params,
                                {"records": [first, same_pair, near_pair, other_rejected]})
    kept = list(read_jsonl(outputs["records"]))
    assert [record["id"] for record in kept] == [first["id"], other_rejected["id"]]
    assert result.removed == {"exact_duplicate": 1, "near_duplicate": 1}


# The split keeps a prompt's pairs together and checks leakage on prompts


def test_every_pair_of_a_prompt_lands_in_one_split(run_stage):
    records = [pair(f"How do I renew my policy number {i}?", f"Open the app, policy {i}, renew.", rejected)
               for i in range(30) for rejected in ("No.", "Ask someone else.", "Later.")]
    result, outputs = run_stage("split", split_params(seed=3), {"records": records})
    split_of_prompt: dict[str, set[str]] = {}
    for split in SPLITS:
        for record in read_jsonl(outputs[split]):
            split_of_prompt.setdefault(prompt_unit(record), set()).add(split)
    assert len(split_of_prompt) == 30
    assert all(len(splits) == 1 for splits in split_of_prompt.values())
    assert sum(result.summary["counts"].values()) == 90


def test_leakage_is_checked_on_prompts_whatever_the_responses(run_stage):
    # Near-identical prompts (another unit each) with entirely different responses: only the prompt leaks.
    base = "Please explain how I can change the billing address on my home insurance policy today"
    answers = ["Open Profile, edit the address and confirm with the code we send.",
               "Our branch staff can update it for you if you bring a photo id and a recent bill.",
               "Write to us with the new address; the change is made within five working days."]
    records = [pair(f"{base} (ticket {i})", f"{answers[i % 3]} Reference {i}.", f"Brush-off number {i} of many.")
               for i in range(40)]
    with pytest.raises(Exception, match="leakage across splits"):
        run_stage("split", split_params(on_leak="fail", leak_threshold=0.7), {"records": records})
    result, outputs = run_stage("split", split_params(on_leak="move", leak_threshold=0.7), {"records": records})
    assert result.summary["leakage"]["moved"] > 0
    assert result.summary["counts"]["train"] == 40


# PII on every text of a pair


def test_pii_is_scrubbed_in_prompt_chosen_and_rejected(run_stage):
    record = pair("My name is Aisha Khan and my e-mail is aisha.khan@example.org. Can I close my card?",
                  "Dear Aisha Khan, we will call you on (212) 555-0187.",
                  "Write to support.desk@acmebank.com yourself.")
    result, outputs = run_stage("pii", pii_params(workers=1), {"train": [record], "validation": [], "test": []})
    scrubbed = next(read_jsonl(outputs["train"]))
    texts = json.dumps(scrubbed)
    for planted in ("Aisha Khan", "aisha.khan@example.org", "555-0187", "support.desk@acmebank.com"):
        assert planted not in texts
    assert scrubbed["format"] == "preference" and scrubbed["chosen"] and scrubbed["rejected"]
    fields = json.dumps(result.summary)
    assert "chosen" in fields and "rejected" in fields and "messages.content" in fields


# Bias is audited on prompts


def test_bias_mentions_are_counted_in_prompts_not_responses(run_stage):
    from support.data import audit_params

    splits = {"train": [pair("What did my mother say?", "She said yes.", "He said no."),
                        pair("What is the weather?", "Sunny, says my brother.", "Ask your sister.")],
              "validation": [], "test": []}
    params = audit_params(fields=[], mentions={"enabled": True, "categories": ["gender"]})
    result, _ = run_stage("bias", params, splits)
    gender = result.summary["mentions"]["gender"]
    assert (gender["records"], gender["records_with_mention"]) == (2, 1)
    assert {group: counts["count"] for group, counts in gender["groups"].items() if counts["count"]} == {"female": 1}


# Validation


def write_recipe(root: Path, body: str, lines: list[dict] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = lines or [{"prompt": f"Question {i}?", "chosen": f"Answer {i}.", "rejected": "No."} for i in range(8)]
    (root / "pairs.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    (root / "recipe.yaml").write_text(textwrap.dedent(body).lstrip())
    return root / "recipe.yaml"


PAIRS_RECIPE = """\
name: pairs
data: {sources: [{path: pairs.jsonl, format: preference}]}
model: {base: "demo:tiny-llama", license: apache-2.0}
"""


def errors_of(path: Path) -> str:
    with pytest.raises(RecipeInvalid) as invalid:
        compile_recipe(path)
    return "\n".join(str(error) for error in invalid.value.errors)


def test_dp_with_a_preference_objective_is_refused_with_the_reason(tmp_path):
    recipe = write_recipe(tmp_path, PAIRS_RECIPE + "train: {objective: dpo, privacy: {target_epsilon: 8}}\n")
    text = errors_of(recipe)
    assert "differential privacy is not available with objective dpo" in text
    assert "recipe.yaml:" in text


def test_objective_and_format_must_match(tmp_path):
    text = errors_of(write_recipe(tmp_path / "a", PAIRS_RECIPE + "train: {objective: sft}\n"))
    assert "format preference does not suit train.objective sft" in text


def test_augment_and_a_wrong_loss_type_are_refused(tmp_path):
    text = errors_of(write_recipe(tmp_path, PAIRS_RECIPE + "train: {objective: dpo, preference: {loss_type: kto}}\n"
                                  "augment: [{method: synonym, ratio: 0.3}]\n"))
    assert "augmentation is not available for preference data" in text
    assert "loss_type kto is not one of TRL's loss types for dpo" in text


def test_generation_settings_and_sft_metrics_are_refused_for_preference_evaluation(tmp_path):
    text = errors_of(write_recipe(tmp_path, PAIRS_RECIPE + "train: {objective: dpo}\nevaluate: {primary_metric: "
                                  "rougeL, max_new_tokens: 32, groups: {metrics: [token_f1]}}\n"))
    assert "rougeL is not measured on preference pairs" in text
    assert "evaluate.max_new_tokens does not apply to preference tuning" in text
    assert "token_f1 is not measured per preference pair" in text


def test_compiler_resolves_the_objective_default_loss_type(tmp_path):
    plan = compile_recipe(write_recipe(tmp_path, PAIRS_RECIPE + "train: {objective: kto}\n"))
    train = next(stage.params for stage in plan.stages if stage.name == "train")
    assert (train.objective, train.preference.loss_type, train.preference.beta) == ("kto", "kto", 0.1)


# End to end


PIPELINE_RECIPE = """\
    name: {name}
    data:
      sources: [{{path: pairs.jsonl, format: {fmt}}}]
      split: {{train: 0.6, validation: 0.2, test: 0.2, seed: 1}}
    pii: {{enabled: true}}
    bias: {{fields: [region]}}
    model: {{base: "demo:tiny-llama", license: apache-2.0}}
    train:
      objective: {objective}
      lora: {{r: 4, alpha: 8, dropout: 0.0, target_modules: all-linear}}
      max_steps: 6
      learning_rate: 0.01
      batch_size: 8
      max_seq_length: 64
    tracking: {{enabled: false}}
    evaluate: {{primary_metric: {primary}, groups: {{min_group_size: 2, metrics: [preference_accuracy]}}}}
    """


def support_pairs(n: int) -> list[dict]:
    return [{"prompt": f"How do I close my account number {i}?", "chosen": f"Open Settings, account {i}, Close.",
             "rejected": "No.", "region": ["north", "south"][i % 2]} for i in range(n)]


@pytest.mark.slow
@pytest.mark.parametrize(("objective", "fmt", "primary"), [("dpo", "preference", "preference_accuracy"),
                                                            ("kto", "kto", "test_loss"),
                                                            ("orpo", "preference", "reward_margin")])
def test_preference_objective_runs_through_the_whole_pipeline(tmp_path, objective, fmt, primary):
    from fttool.pipeline.runner import run_plan

    lines = support_pairs(40)
    if fmt == "kto":
        lines = [{"prompt": line["prompt"], "completion": response, "label": label, "region": line["region"]}
                 for line in lines for response, label in ((line["chosen"], True), (line["rejected"], False))]
    recipe = write_recipe(tmp_path, PIPELINE_RECIPE.format(name=objective, fmt=fmt, objective=objective,
                                                           primary=primary), lines)
    run_dir = tmp_path / "run"
    run_plan(compile_recipe(recipe), run_dir)
    report = report_of(run_dir)
    training, evaluation = report["training"], report["evaluation"]
    assert training["preference"]["objective"] == objective
    reference = training["preference"]["reference_model"]
    assert ("ORPO needs no reference" if objective == "orpo" else "adapter switched off") in reference
    assert training["preference"]["reward_curves"]["train"]
    assert evaluation["task"] == "preference" and evaluation["primary_metric"]["name"] == primary
    assert evaluation["samples"] == report["data"]["split"]["counts"]["test"]
    assert evaluation["base"]["preference_accuracy"] == 0.5  # the base is its own reference: every reward is 0
    assert objective in (run_dir / "model" / "README.md").read_text()
    written = {split: list(read_jsonl(run_dir / "data" / f"{split}.jsonl")) for split in SPLITS}
    prompts = {split: {prompt_unit(record) for record in records} for split, records in written.items()}
    assert not prompts["train"] & prompts["test"]


@pytest.mark.slow
def test_dpo_evaluation_ranks_pairs_with_the_tuned_model(tmp_path):
    """After DPO on pairs whose rejected answer is always a brush-off, the implicit reward ranks held-out pairs of
    new prompts chosen-over-rejected more often than the base's chance level."""
    from fttool.pipeline.runner import run_plan

    recipe = write_recipe(tmp_path, PIPELINE_RECIPE.format(name="dpo", fmt="preference", objective="dpo",
                                                           primary="preference_accuracy"), support_pairs(60))
    run_plan(compile_recipe(recipe), tmp_path / "run")
    evaluation = report_of(tmp_path / "run")["evaluation"]
    assert evaluation["tuned"]["preference_accuracy"] > evaluation["base"]["preference_accuracy"] == 0.5
    assert evaluation["tuned"]["reward_margin"] > 0
    assert evaluation["tuned"]["log_likelihood_margin"] > evaluation["base"]["log_likelihood_margin"]
    assert evaluation["primary_metric"]["improved"]


def test_write_jsonl_round_trip_keeps_pairs(tmp_path):
    record = pair("Q?", "A.", "B.")
    write_jsonl(tmp_path / "p.jsonl", [record])
    assert next(read_jsonl(tmp_path / "p.jsonl")) == record


@pytest.mark.slow
def test_a_crashed_dpo_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    from fttool.pipeline.errors import RunError
    from fttool.pipeline.runner import run_plan

    body = PIPELINE_RECIPE.format(name="dpo", fmt="preference", objective="dpo", primary="preference_accuracy")
    recipe = write_recipe(tmp_path, body.replace("max_seq_length: 64\n", "max_seq_length: 64\n      save_steps: 3\n"),
                          support_pairs(40))
    run_dir = tmp_path / "run"
    monkeypatch.setenv("FTTOOL_FAULT", "train_step:3")
    with pytest.raises(RunError, match="InjectedFault: .*after step 3"):
        run_plan(compile_recipe(recipe), run_dir)
    monkeypatch.delenv("FTTOOL_FAULT")
    run_plan(compile_recipe(recipe), run_dir, resume=True)
    training = report_of(run_dir)["training"]
    assert training["resumed_from_step"] == 3 and training["steps"] == 6
    assert training["preference"]["objective"] == "dpo"


@pytest.mark.slow
def test_dpo_trains_in_two_processes_and_is_tracked(tmp_path):
    from fttool.pipeline.runner import run_plan

    recipe = write_recipe(tmp_path, PAIRS_RECIPE + "train: {objective: dpo, max_steps: 4, batch_size: 4, "
                          "max_seq_length: 64, lora: {target_modules: all-linear}}\ncompute: {num_processes: 2}\n",
                          support_pairs(40))
    run_plan(compile_recipe(recipe), tmp_path / "run")
    training = report_of(tmp_path / "run")["training"]
    assert training["launch"]["num_processes"] == 2 and training["steps"] == 4
    assert training["preference"]["objective"] == "dpo" and training["tracking"]["uri"] == "mlruns"


def test_report_names_pairs_and_shows_the_preference_section():
    from fttool.report.html import render_html
    from fttool.report.markdown import render_markdown

    report = {"data": {"counts": {"input": 5, "quarantined": 1, "duplicates": 0, "dropped_by_policy": 0, "kept": 4,
                                  "augmented": 0},
                       "ingest": {"sources": [{"format": "sharegpt_preference"}],
                                  "quarantined_by_reason": {"identical_pair": 1}}},
              "training": {"method": "lora", "preference": {
                  "objective": "dpo", "settings": {"beta": 0.1, "loss_type": "sigmoid"},
                  "reference_model": "the base model with the LoRA adapter switched off (no second copy)",
                  "train_pairs": pair_statistics([pair("Q1", "A long answer", "No"), pair("Q2", "Yes, sure", "No")]),
                  "reward_curves": {"train": [{"step": 1, "margins": 0.0}, {"step": 2, "margins": 0.4}],
                                    "validation": []}}}}
    markdown, html = render_markdown(report), render_html(report)
    assert "**Records (preference pairs):**" in markdown
    assert "**Preference tuning:** dpo, beta 0.1 · 2 train pairs over 2 prompts" in markdown
    assert "1 identical pairs quarantined" in markdown
    assert "Each record is one preference pair." in html and "Reward margin (train)" in html
