"""The evaluate stage: the tuned model against its base, after real LoRA training on the demo model, overall,
per group and on general text; its recipe checks, gates and rendering."""
from __future__ import annotations

import copy
import json
import math
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import alpaca
from support.evaluation import compiled_train_params, run_stage_in
from support.evaluation import support_records as records
from support.reports import full_report

from fttool.cli import cli
from fttool.data.records import prompt_and_response, read_jsonl, write_jsonl
from fttool.evaluation.comparison import METRICS, primary_metric, reference_labels
from fttool.evaluation.forgetting import forgetting_check, general_passages
from fttool.evaluation.group_comparison import field_status, group_results
from fttool.evaluation.losses import loss_example
from fttool.evaluation.settings import EvaluateParams, ForgettingParams, GroupParams
from fttool.fairness.intervals import against_limit
from fttool.pipeline.params import build
from fttool.pipeline.plan import thaw
from fttool.recipe import RecipeInvalid, compile_recipe
from fttool.report import validate_report
from fttool.report.render import render_html, render_markdown
from fttool.stages import stage_class
from fttool.training.demo_model import build_demo_model

REGULATED = Path(__file__).resolve().parent.parent / "policies" / "regulated.yaml"
MODEL = {"base": "demo:tiny-llama", "revision": None, "license": "apache-2.0", "trust_remote_code": False}
GROUP_SETTINGS = {"fields": [], "metrics": ["token_f1", "rougeL"], "min_group_size": 2, "max_difference": 0.1,
                  "min_ratio": 0.8, "fail_above_difference": None, "fail_below_ratio": None, "k_anonymity": 1,
                  "bootstrap": {"resamples": 200, "confidence": 0.95, "seed": 0}}
GENERAL_TEXT = "The library opens at nine every morning.\n\nA short walk after lunch helps many people think.\n"


def evaluate_params(**overrides) -> EvaluateParams:
    """The evaluate stage's parameters as the compiler builds them, defaults resolved."""
    return build(EvaluateParams, {"max_new_tokens": 6, "max_samples": 0, "batch_size": 4, "task": "generation",
                                  "labels": None, "decoding": {"strategy": "greedy", "temperature": 1.0, "top_p": 1.0,
                                                               "seed": 0},
                                  "primary_metric": "test_loss", "groups": GROUP_SETTINGS, "forgetting": None,
                                  "model": MODEL} | overrides)


def group_settings(**overrides) -> GroupParams:
    return build(GroupParams, {**GROUP_SETTINGS, **overrides})


def tokenized_examples_of(items: list[dict], tokenizer, tmp_path):
    from fttool.data.records import write_jsonl
    from fttool.training.examples import tokenized_examples

    write_jsonl(tmp_path / "items.jsonl", items)
    return tokenized_examples(tmp_path / "items.jsonl", tokenizer, 10_000, train_on_inputs=False)


def with_region(items: list[dict]) -> list[dict]:
    """Records with a sensitive attribute in meta, as ingest keeps it; one record lacks it."""
    regions = ["north", "south", "east"]
    return [alpaca(r["instruction"], r["output"], **({"region": regions[i % 3]} if i else {}))
            for i, r in enumerate(items)]


def test_loss_masks_the_prompt_and_ends_with_eos(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_demo_model(tmp_path / "demo"))
    record = records(1)[0]
    prompt, response = prompt_and_response(record)
    ids, labels = loss_example(tokenizer, record, None)
    prompt_length = len(tokenizer(prompt)["input_ids"])
    assert labels[:prompt_length] == [-100] * prompt_length
    assert labels[prompt_length:] == ids[prompt_length:] and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[prompt_length:], skip_special_tokens=True) == response
    assert loss_example(tokenizer, record, 5) == (ids[:5], labels[:5])


def test_a_chat_template_formats_evaluation_as_it_formatted_training(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_demo_model(tmp_path / "demo"))
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>"
                               "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    record = records(1)[0]
    ids, labels = loss_example(tokenizer, record, None)
    trained, _ = tokenized_examples_of([record], tokenizer, tmp_path)
    assert (ids, labels) == (trained[0]["input_ids"], trained[0]["labels"])
    scored = tokenizer.decode([i for i, label in zip(ids, labels) if label != -100])
    assert scored.startswith(record["output"]) and "<user>" in tokenizer.decode(ids)


# -- gates# -- gates ---------------------------------------------------------------------------------------
def test_primary_metric_knows_its_direction():
    base, tuned = {"test_loss": 2.0, "rougeL": 0.3}, {"test_loss": 1.5, "rougeL": 0.25}
    loss = primary_metric("test_loss", base, tuned)
    assert loss == {"name": "test_loss", "direction": "lower is better", "base": 2.0, "tuned": 1.5, "delta": -0.5,
                    "improved": True}
    rouge = primary_metric("rougeL", base, tuned)
    assert rouge["improved"] is False and rouge["delta"] == pytest.approx(-0.05)
    assert primary_metric("rougeL", {"rougeL": 0.3}, {"rougeL": 0.3})["improved"] is False  # unchanged is no gain
    assert primary_metric("rougeL", {"rougeL": None}, {"rougeL": 0.3})["improved"] is False


def group_result(values: dict[str, float], compared=None, spread: float = 0.01) -> dict:
    """The tuned model's comparison as metric_by_group returns it, with intervals `spread` either side."""
    compared = sorted(values) if compared is None else compared
    shown = [values[g] for g in compared]
    if len(shown) < 2:
        return {"compared_groups": compared, "difference": None, "difference_ci": [None, None], "ratio": None,
                "ratio_ci": [None, None]}
    difference = max(shown) - min(shown)
    ratio = min(shown) / max(shown) if max(shown) else None
    return {"compared_groups": compared, "difference": difference,
            "difference_ci": [difference - spread, difference + spread], "ratio": ratio,
            "ratio_ci": [None, None] if ratio is None else [ratio - spread, ratio + spread]}


@pytest.mark.parametrize("values, limits, status", [
    ({"a": 0.50, "b": 0.45}, {}, "pass"),  # difference 0.05, ratio 0.9
    ({"a": 0.50, "b": 0.35}, {}, "warn"),  # difference 0.15 > 0.1, ratio 0.7 < 0.8
    ({"a": 0.50, "b": 0.35}, {"fail_above_difference": 0.12}, "fail"),
    ({"a": 0.50, "b": 0.35}, {"fail_below_ratio": 0.75}, "fail"),
    ({"a": 0.50, "b": 0.35}, {"fail_above_difference": 0.2, "fail_below_ratio": 0.5}, "warn"),
])
def test_group_thresholds_pass_warn_fail(values, limits, status):
    got, reasons = field_status("region", {"token_f1": {"tuned": group_result(values)}}, group_settings(**limits))
    assert got == status and (reasons == []) == (status == "pass")


def test_the_interval_not_the_point_estimate_decides_the_status():
    # difference 0.12 (above 0.1), ratio 0.76 (below 0.8); intervals of +-0.05 cross both limits.
    uncertain = {"token_f1": {"tuned": group_result({"a": 0.50, "b": 0.38}, spread=0.05)}}
    status, reasons = field_status("region", uncertain, group_settings())
    assert status == "inconclusive" and len(reasons) == 2
    assert "differs by 0.120 between 'region' groups (interval [0.070, 0.170]) crosses the maximum of 0.1" in reasons[0]
    # difference 0.04 (below 0.1), but its interval reaches 0.09 + 0.05: not shown within the limit either.
    status, _ = field_status("region", {"token_f1": {"tuned": group_result({"a": 0.50, "b": 0.46}, spread=0.07)}},
                             group_settings())
    assert status == "inconclusive"
    # Wholly above the maximum, crossing the fail limit: a warning that says it may fail.
    status, reasons = field_status("region", {"token_f1": {"tuned": group_result({"a": 0.50, "b": 0.35}, spread=0.02)}},
                                   group_settings(fail_above_difference=0.16))
    assert status == "warn" and "may also be above the fail limit of 0.16" in reasons[0]
    # An interval that could not be computed is never within a limit.
    missing = group_result({"a": 0.50, "b": 0.45})
    missing["difference_ci"] = [None, None]
    assert field_status("region", {"token_f1": {"tuned": missing}}, group_settings())[0] == "inconclusive"


def test_too_few_compared_groups_and_zero_scores_are_inconclusive():
    status, reasons = field_status("region", {"token_f1": {"tuned": group_result({"a": 0.5}, ["a"])}},
                                   group_settings())
    assert status == "inconclusive" and "fewer than two 'region' groups have 2 or more" in reasons[0]
    status, reasons = field_status("region", {"token_f1": {"tuned": group_result({"a": 0.0, "b": 0.0})}},
                                   group_settings())
    assert status == "inconclusive" and "no ratio exists" in reasons[0]


def test_groups_too_small_to_judge_are_named():
    test = with_region(records(7))  # north 2, south 2, east 2, (missing) 1
    scores = {side: {"token_f1": [0.5] * 7, "rougeL": [0.5] * 7} for side in ("base", "tuned")}
    fairness = group_results(test, scores, group_settings(fields=["region"]))
    region = fairness["fields"]["region"]
    assert region["groups"]["(missing)"] == {"count": 1, "compared": False}
    assert region["reasons"][-1] == ("too small to judge (fewer than 2 test records), so left out of the 'region' "
                                     "difference and ratio: '(missing)' (1)")
    assert region["status"] == fairness["status"] == "pass"  # equal scores: every interval is [0, 0] and [1, 1]


def test_groups_smaller_than_k_anonymity_are_not_named():
    test = [alpaca(f"Question {i}?", "Answer.", customer=name) for i, name in enumerate(["Ann Lee"] * 3 + ["Bo Chan"])]
    scores = {side: {"token_f1": [0.5, 0.4, 0.6, 0.1], "rougeL": [0.5] * 4} for side in ("base", "tuned")}
    fairness = group_results(test, scores, group_settings(fields=["customer"], k_anonymity=4))
    assert "Ann Lee" not in json.dumps(fairness) and "Bo Chan" not in json.dumps(fairness)
    customer = fairness["fields"]["customer"]
    assert customer["groups"] == {"(group of fewer than 4 records #1)": {"count": 3, "compared": True},
                                  "(group of fewer than 4 records #2)": {"count": 1, "compared": False}}
    assert customer["privacy"] == {"k_anonymity": 4, "suppressed_groups": 2}
    assert customer["status"] == "inconclusive"  # one group large enough to compare is not two


def test_thresholds_must_be_finite():
    with pytest.raises(ValueError, match="GroupParams.max_difference is nan"):
        group_settings(max_difference=float("nan"))
    with pytest.raises(ValueError, match="ForgettingParams.max_increase is inf"):
        ForgettingParams(path="general.txt", max_increase=float("inf"), action="fail")
    with pytest.raises(ValueError, match="a limit must be a finite number"):
        against_limit([0.0, 0.1], float("nan"), "above")
    assert against_limit([float("nan"), 0.05], 0.1, "above") == "inconclusive"


def test_forgetting_check_gates_the_relative_increase():
    settings = ForgettingParams(path="general.txt", max_increase=0.1, action="fail")
    assert forgetting_check(20.0, 21.0, 3, settings)["status"] == "pass"  # +5%
    too_much = forgetting_check(20.0, 23.0, 3, settings)
    assert too_much["increase"] == pytest.approx(0.15) and too_much["status"] == "fail"
    warn = ForgettingParams(path="general.txt", max_increase=0.1, action="warn")
    assert forgetting_check(20.0, 23.0, 3, warn)["status"] == "warn"
    assert forgetting_check(20.0, None, 3, settings)["status"] == "fail"  # not measured cannot pass


def test_general_passages_from_txt_and_jsonl(tmp_path):
    (tmp_path / "g.txt").write_text("First line\nof one passage.\n  \n\n  Second passage.  \n")
    assert general_passages(tmp_path / "g.txt") == ["First line of one passage.", "Second passage."]
    write_jsonl(tmp_path / "g.jsonl", [{"text": "One."}, {"text": "Two."}])
    assert general_passages(tmp_path / "g.jsonl") == ["One.", "Two."]
    write_jsonl(tmp_path / "bad.jsonl", [{"text": "One."}, {"body": "Two."}])
    with pytest.raises(ValueError, match="record 2 has no 'text'"):
        general_passages(tmp_path / "bad.jsonl")


def test_classification_labels_from_references_or_recipe():
    assert reference_labels(None, ["Yes.", "no", "yes"]) == (["no", "Yes."], ["Yes.", "no", "Yes."])
    assert reference_labels(("yes", "no"), ["Yes!", "NO"]) == (["yes", "no"], ["yes", "no"])
    with pytest.raises(ValueError, match="1 of 2 test references are not one of evaluate.labels"):
        reference_labels(("yes", "no"), ["yes", "maybe"])


# -- recipe --------------------------------------------------------------------------------------
RECIPE = """
name: evaluation
data:
  sources:
    - {path: d.jsonl, format: alpaca}
  split: {train: 0.6, validation: 0.2, test: 0.2}
bias: {fields: [region]}
model: {base: "demo:tiny-llama", license: apache-2.0}
train: {max_steps: 2}
"""


def compile_with(tmp_path, evaluate: str):
    (tmp_path / "d.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(RECIPE).lstrip() + textwrap.dedent(evaluate))
    return compile_recipe(path)


def evaluate_spec(plan) -> EvaluateParams:
    return next(stage for stage in plan.stages if stage.name == "evaluate").params


def test_compiler_resolves_task_groups_and_defaults(tmp_path):
    params = evaluate_spec(compile_with(tmp_path, "evaluate: {}\n"))
    assert isinstance(params, EvaluateParams)
    assert params.task == "generation" and params.primary_metric == "test_loss" and params.labels is None
    assert thaw(params.decoding) == {"strategy": "greedy", "temperature": 1.0, "top_p": 1.0, "seed": 0}
    groups = params.groups
    assert groups.fields == ("region",) and groups.metrics == ("token_f1", "rougeL")  # from bias.fields
    assert thaw(groups.bootstrap) == {"resamples": 1000, "confidence": 0.95, "seed": 0}
    assert groups.fail_above_difference is None and params.forgetting is None
    assert groups.k_anonymity == 5  # the bias audit's default, so both leave the same small groups unnamed
    assert thaw(params.model) == {"base": "demo:tiny-llama", "revision": None, "license": "apache-2.0",
                                  "trust_remote_code": False}
    labelled = evaluate_spec(compile_with(tmp_path,
                                          "evaluate: {labels: [positive, negative], groups: {fields: [channel]}}\n"))
    assert labelled.task == "classification" and labelled.groups.metrics == ("accuracy",)
    assert labelled.groups.fields == ("channel",) and labelled.labels == ("positive", "negative")


def test_contradicting_evaluate_settings_are_reported_together(tmp_path):
    with pytest.raises(RecipeInvalid) as info:
        compile_with(tmp_path, """\
            evaluate:
              task: generation
              labels: [Positive, "positive!"]
              primary_metric: f1_macro
              decoding: {temperature: 0.7}
              groups: {metrics: [accuracy]}
              forgetting: {path: missing.txt}
            """)
    messages = "\n".join(str(error) for error in info.value.errors)
    for expected in ("labels apply to a classification task", "label 'positive!' is the same as 'Positive'",
                     "'f1_macro' is a classification metric", "accuracy needs task: classification",
                     "'temperature' applies only to sampling", "general text file not found"):
        assert expected in messages
    assert all(":" in str(error).split(" ")[0] for error in info.value.errors)  # file:line:col


def test_forgetting_file_is_fingerprinted(tmp_path):
    (tmp_path / "general.txt").write_text(GENERAL_TEXT)
    params = evaluate_spec(compile_with(tmp_path, "evaluate: {forgetting: {path: general.txt}}\n"))
    assert params.forgetting == ForgettingParams(path="general.txt", max_increase=0.1, action="fail")
    assert stage_class("evaluate").external_inputs(params) == ["general.txt"]


# -- the stage on a trained adapter ----------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One adapter trained for 12 steps, shared by the evaluations below; and a directory to run them in."""
    root = tmp_path_factory.mktemp("evaluate")
    (root / "general.txt").write_text(GENERAL_TEXT)
    train = compiled_train_params(root, "{max_steps: 12, batch_size: 4, max_seq_length: 64, seed: 7, learning_rate: "
                                        "0.01, lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}}")

    def run(name: str, params, inputs: dict, tag: str):
        return run_stage_in(root, name, params, inputs, tag)

    _, outputs = run("train", train, {"train": records(24), "validation": records(6, offset=24)}, "train")
    return run, outputs["model"]


@pytest.mark.slow
def test_evaluate_compares_tuned_with_base_overall_by_group_and_on_general_text(trained):
    run, model = trained
    test = with_region(records(6, offset=30))
    params = evaluate_params(groups={**GROUP_SETTINGS, "fields": ["region"]},
                             forgetting={"path": "general.txt", "max_increase": 0.1, "action": "warn"})
    inputs = {"validation": records(6, offset=24), "test": test, "model": model}
    result, outputs = run("evaluate", params, inputs, "first")

    summary = result.summary
    assert summary["samples"] == summary["test_records"] == len(test) and summary["test_records_without_prompt"] == 0
    for side in ("base", "tuned"):
        assert set(summary[side]) == set(METRICS)
        assert all(isinstance(v, float) and math.isfinite(v) for v in summary[side].values()), summary[side]
        assert summary[side]["perplexity"] == pytest.approx(math.exp(summary[side]["test_loss"]), rel=1e-4)
        assert 0 <= summary[side]["rougeL"] <= 1
    for metric in METRICS:
        assert summary["delta"][metric] == pytest.approx(summary["tuned"][metric] - summary["base"][metric], abs=1e-5)
    # The adapter is applied to "tuned" only, and training on look-alike records lowers the held-out loss.
    assert summary["tuned"]["test_loss"] < summary["base"]["test_loss"]
    assert summary["primary_metric"]["name"] == "test_loss" and summary["primary_metric"]["improved"] is True
    assert summary["decoding"] == {"strategy": "greedy", "seed": 0, "max_new_tokens": 6, "batch_size": 4,
                                   "padding_side": "left"}

    fairness = summary["fairness"]
    assert fairness["evaluated"] is True and fairness["status"] in ("pass", "inconclusive", "warn", "fail")
    region = fairness["fields"]["region"]
    assert region["groups"] == {"(missing)": {"count": 1, "compared": False}, "east": {"count": 2, "compared": True},
                                "north": {"count": 1, "compared": False}, "south": {"count": 2, "compared": True}}
    assert region["reasons"][-1].endswith("difference and ratio: '(missing)' (1), 'north' (1)")
    for side in ("base", "tuned"):
        token_f1 = region["metrics"]["token_f1"][side]
        assert token_f1["compared_groups"] == ["east", "south"]
        for group in region["groups"]:
            value, (low, high) = token_f1["by_group"][group]["value"], token_f1["by_group"][group]["ci"]
            assert low - 1e-9 <= value <= high + 1e-9
        east, south = token_f1["by_group"]["east"]["value"], token_f1["by_group"]["south"]["value"]
        assert token_f1["difference"] == pytest.approx(abs(east - south), abs=1e-6)
    assert fairness["gaps"]["region"]["token_f1"] == region["metrics"]["token_f1"]["tuned"]["difference"]

    forgetting = summary["forgetting"]
    assert forgetting["passages"] == 2 and forgetting["base_perplexity"] > 1 and forgetting["tuned_perplexity"] > 1
    assert forgetting["increase"] == pytest.approx(forgetting["tuned_perplexity"] / forgetting["base_perplexity"] - 1,
                                                   abs=1e-5)
    assert forgetting["status"] == ("pass" if forgetting["increase"] <= 0.1 else "warn")

    predictions = list(read_jsonl(outputs["predictions"]))
    assert [p["id"] for p in predictions] == [r["id"] for r in test]
    assert all(p["reference_id"] == p["id"] and isinstance(p["base"], str) and isinstance(p["tuned"], str)
               for p in predictions)

    # Same inputs, same seeds: the same results, bootstrap intervals included.
    again, _ = run("evaluate", params, inputs, "again")
    assert again.summary == summary

    # max_samples caps generation (and so the predictions), not the losses; a metric that fell fails the gate.
    capped, capped_outputs = run("evaluate", evaluate_params(max_samples=2, primary_metric="validation_loss"),
                                 {**inputs, "validation": records(6, offset=30)}, "capped")
    assert capped.summary["samples"] == 2 and len(list(read_jsonl(capped_outputs["predictions"]))) == 2
    assert capped.summary["tuned"]["test_loss"] == summary["tuned"]["test_loss"]
    assert capped.summary["fairness"] == {"evaluated": False, "reason": "no sensitive fields declared "
                                          "(bias.fields or evaluate.groups.fields)"}


@pytest.mark.slow
def test_sampling_is_seeded_and_classification_is_scored(trained):
    run, model = trained
    labels = ["open", "close"]
    test = [alpaca(f"Should I {action} my {topic}?", action, region=region)
            for action in labels for topic, region in zip(["card", "loan", "pension"], ["north", "south", "north"])]
    sampling = {"strategy": "sample", "temperature": 1.5, "top_p": 0.9, "seed": 3}
    settings = {"task": "classification", "labels": labels, "primary_metric": "accuracy", "max_new_tokens": 3,
                "groups": {**GROUP_SETTINGS, "fields": ["region"], "metrics": ["accuracy"]}}
    params = evaluate_params(decoding=sampling, **settings)
    inputs = {"validation": records(4, offset=24), "test": test, "model": model}
    first, first_out = run("evaluate", params, inputs, "sample-1")
    second, second_out = run("evaluate", params, inputs, "sample-2")
    assert first_out["predictions"].read_text() == second_out["predictions"].read_text()
    other, other_out = run("evaluate", evaluate_params(decoding={**sampling, "seed": 4}, **settings), inputs,
                           "sample-3")
    assert other_out["predictions"].read_text() != first_out["predictions"].read_text()

    summary = first.summary
    assert summary["decoding"] == {"strategy": "sample", "seed": 3, "temperature": 1.5, "top_p": 0.9,
                                   "max_new_tokens": 3, "batch_size": 4, "padding_side": "left"}
    assert summary["task"] == "classification" and summary["labels"] == labels
    predictions = list(read_jsonl(first_out["predictions"]))
    for side in ("base", "tuned"):
        named = [next((label for label in labels if p[side].lower().startswith(label)), None) for p in predictions]
        correct = sum(label == record["output"] for label, record in zip(named, test))
        assert summary[side]["accuracy"] == pytest.approx(correct / len(test), abs=1e-6)
        assert summary[side]["unmatched"] == pytest.approx(named.count(None) / len(test), abs=1e-6)
        assert 0 <= summary[side]["f1_macro"] <= 1
        accuracy = summary["fairness"]["fields"]["region"]["metrics"]["accuracy"][side]
        assert accuracy["overall"] == pytest.approx(summary[side]["accuracy"], abs=1e-6)
    assert summary["primary_metric"]["name"] == "accuracy"


# -- report --------------------------------------------------------------------------------------
def evaluated_report() -> dict:
    report = copy.deepcopy(full_report())
    report["training"] = None  # the training section is another test's business
    report["evaluation"].update({
        "directions": {"validation_loss": "lower", "test_loss": "lower", "perplexity": "lower", "rougeL": "higher"},
        "primary_metric": {"name": "rougeL", "direction": "higher is better", "base": 0.031, "tuned": 0.2874,
                           "delta": 0.2564, "improved": True},
        "forgetting": {"path": "data/general.txt", "passages": 12, "base_perplexity": 410.2,
                       "tuned_perplexity": 480.0, "increase": 0.17, "max_increase": 0.1, "action": "fail",
                       "status": "fail"}})

    def side(values, compared=("north", "south")):
        shown = [values[g] for g in compared]
        return {"overall": 0.3, "by_group": {g: {"value": v, "ci": [max(0.0, v - 0.1), min(1.0, v + 0.1)]}
                                             for g, v in values.items()},
                "compared_groups": list(compared), "difference": max(shown) - min(shown),
                "difference_ci": [0.01, 0.3], "ratio": min(shown) / max(shown), "ratio_ci": [0.4, 0.95]}

    report["fairness"] = {
        "evaluated": True, "status": "warn", "metrics": ["token_f1"], "records": 180,
        "thresholds": {"min_group_size": 10, "max_difference": 0.1, "min_ratio": 0.8},
        "bootstrap": {"resamples": 1000, "confidence": 0.95, "seed": 0},
        "fields": {"region": {
            "groups": {"north": {"count": 100, "compared": True}, "south": {"count": 74, "compared": True},
                       "islands": {"count": 6, "compared": False}},
            "metrics": {"token_f1": {"base": side({"north": 0.05, "south": 0.04, "islands": 0.0}),
                                     "tuned": side({"north": 0.41, "south": 0.27, "islands": 0.5})}},
            "status": "warn", "reasons": ["tuned token_f1 differs by 0.140 between 'region' groups, above 0.1"]}},
        "gaps": {"region": {"token_f1": 0.14}}}
    return report


def test_report_with_fairness_validates_and_renders():
    report = evaluated_report()
    validate_report(report)
    html = render_html(report)
    assert 'id="fairness"' in html and 'aria-label="token_f1 by region"' in html
    assert html.count('class="ci"') == 6  # base and tuned whiskers for three groups
    assert "token_f1 by region" in html and "islands" in html and "not compared" in html
    assert "differs by 0.140" in html and "data/general.txt" in html
    assert "http" not in html.split("</style>", 1)[1].replace("http-equiv", "")  # nothing loaded from anywhere
    markdown = render_markdown(report)
    assert "**Primary metric:** rougeL improved" in markdown
    assert "**Fairness:** warn" in markdown and "region token_f1 gap 0.14" in markdown
    assert "**Forgetting:** fail" in markdown

    report["fairness"] = {"evaluated": False, "reason": "evaluate stage skipped: no evaluate section"}
    validate_report(report)
    assert "Not evaluated: evaluate stage skipped" in render_html(report)


def test_regulated_policy_gates_the_evaluation_fields(tmp_path):
    def failed_rules(report: dict) -> set[str]:
        (tmp_path / "report.json").write_text(json.dumps(report))
        result = CliRunner().invoke(cli, ["check", str(tmp_path / "report.json"), "--policy", str(REGULATED),
                                          "--format", "json"])
        assert result.exit_code in (0, 1), result.stderr
        return {outcome["rule"] for outcome in json.loads(result.stdout)["results"]
                if outcome["status"] == "failed"} & {"EVAL-102", "EVAL-103", "FAIR-101", "FAIR-102", "FAIR-103"}

    report = evaluated_report()
    # Forgetting failed; the gap of 0.14 has the interval [0.01, 0.3], which crosses 0.1: inconclusive, so the
    # warning FAIR-103 names it, where the point estimate alone would have failed FAIR-101.
    assert failed_rules(report) == {"EVAL-103", "FAIR-103"}
    tuned = report["fairness"]["fields"]["region"]["metrics"]["token_f1"]["tuned"]
    tuned["difference_ci"] = [0.12, 0.16]  # wholly above 0.1
    assert failed_rules(report) == {"EVAL-103", "FAIR-101"}
    report["evaluation"]["primary_metric"]["improved"] = False
    report["evaluation"]["forgetting"]["status"] = "warn"
    report["fairness"]["status"] = "fail"
    report["fairness"]["gaps"]["region"]["token_f1"] = 0.05
    tuned["difference_ci"] = [0.02, 0.08]  # wholly within 0.1
    assert failed_rules(report) == {"EVAL-102", "FAIR-102"}
    tuned["difference_ci"] = [0.02, 0.11]  # the point estimate is within, the interval is not
    assert failed_rules(report) == {"EVAL-102", "FAIR-102", "FAIR-103"}
    report["fairness"]["gaps"]["region"]["token_f1"] = None  # fewer than two groups large enough: not judged
    assert failed_rules(report) == {"EVAL-102", "FAIR-102", "FAIR-103"}
    report["fairness"] = {"evaluated": False, "reason": "no sensitive fields declared"}
    report["evaluation"]["primary_metric"]["improved"] = True
    assert failed_rules(report) == set()
