"""Recipe loading, validation messages, defaults and compiling."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from fttool.cli import cli
from fttool.recipe import RecipeInvalid, compile_recipe
from fttool.recipe.schema import SCHEMA_DIR, load_schema

REPO = Path(__file__).resolve().parent.parent


def write_recipe(tmp_path: Path, body: str, with_data: bool = True) -> Path:
    if with_data:
        (tmp_path / "d.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(body).lstrip())
    return path


MINIMAL = """
name: mini
data:
  sources:
    - {path: d.jsonl, format: alpaca}
"""


def errors_of(path: Path) -> list[str]:
    with pytest.raises(RecipeInvalid) as info:
        compile_recipe(path)
    return [str(e) for e in info.value.errors]


def test_misspelled_top_level_key_names_line_column_and_suggestion(tmp_path):
    path = write_recipe(tmp_path, MINIMAL + "trian:\n  epochs: 1\n")
    assert errors_of(path) == [f"{path}:5:1: unknown key 'trian'; did you mean 'train'? (at trian)"]


def test_all_errors_are_reported_in_one_pass(tmp_path):
    path = write_recipe(tmp_path, """
        name: mini
        data:
          sources:
            - {path: d.jsonl, format: alpacca}
          split: {train: 0.7, validation: 0.2, test: 0.2}
        train:
          lora: {r: 0, alpah: 32}
          batch_size: "eight"
        model: {base: demo:tiny-llama}
        """)
    errors = errors_of(path)
    joined = "\n".join(errors)
    assert (f'{path}:4:31: "alpacca" is not allowed; use one of: "alpaca", "chat", "sharegpt", "prompt_completion", '
            '"text", "preference", "sharegpt_preference", "kto"') in joined
    assert "unknown key 'alpah'; did you mean 'alpha'? (at train.lora.alpah)" in joined
    assert "0 is out of range; the value must be >= 1 (at train.lora.r)" in joined
    assert 'expected integer, got string "eight" (at train.batch_size)' in joined
    assert len(errors) == 4  # schema errors stop before cross-field checks, which need a valid shape


def test_cross_field_errors(tmp_path):
    path = write_recipe(tmp_path, """
        name: mini
        data:
          sources:
            - {path: missing.jsonl, format: alpaca}
          split: {train: 0.7, validation: 0.2, test: 0.2}
        evaluate: {}
        """)
    joined = "\n".join(errors_of(path))
    assert "split ratios sum to 1.1; train + validation + test must sum to 1 (at data.split)" in joined
    assert "source file not found" in joined and "(at data.sources[0].path)" in joined
    assert "'evaluate' needs a 'model' section" in joined
    assert "'evaluate' compares the tuned model with its base, so it needs a 'train' section" in joined


def test_mapping_a_field_the_format_lacks_is_an_error(tmp_path):
    path = write_recipe(tmp_path, """
        name: mini
        data:
          sources:
            - path: d.jsonl
              format: alpaca
              fields: {prompt: question}
        """)
    assert errors_of(path) == [f"{path}:6:16: 'prompt' is not a field of the alpaca format; map one of: "
                               "instruction, input, output (at data.sources[0].fields.prompt)"]


def test_duplicate_yaml_keys_are_errors(tmp_path):
    path = write_recipe(tmp_path, MINIMAL + "name: other\n")
    assert errors_of(path) == [f"{path}:5:1: duplicate key 'name' (first defined on line 1); remove one of them "
                               "(at name)"]


def test_yaml_cannot_construct_python_objects(tmp_path):
    path = write_recipe(tmp_path, MINIMAL + "description: !!python/object/apply:os.system ['echo hacked']\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:5:14: YAML syntax error")


def test_syntax_error_has_position(tmp_path):
    path = write_recipe(tmp_path, "name: [unclosed\ndata: {}\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:2:") and "YAML syntax error" in error


def test_defaults_are_resolved_and_absent_sections_are_skipped(tmp_path):
    plan = compile_recipe(write_recipe(tmp_path, MINIMAL))
    assert [s.name for s in plan.stages] == ["ingest", "dedup", "split"]
    assert dict(plan.recipe["data"]["split"]) == {"train": 0.7, "validation": 0.15, "test": 0.15, "seed": 42,
                                                 "on_leak": "move", "leak_threshold": 0.8}
    assert set(plan.skipped) == {"pii", "bias", "augment", "canaries", "train", "evaluate", "memorisation"}
    assert "pii" not in plan.recipe  # a left-out section stays out
    assert plan.stages[-1].outputs["train"] == "data/train.jsonl"


def test_plan_is_immutable(tmp_path):
    plan = compile_recipe(write_recipe(tmp_path, MINIMAL))
    with pytest.raises(TypeError):
        plan.stages[0].params["max_chars"] = 1


def test_fingerprint_changes_with_any_setting(tmp_path):
    first = compile_recipe(write_recipe(tmp_path, MINIMAL)).fingerprint
    again = compile_recipe(write_recipe(tmp_path, MINIMAL)).fingerprint
    changed = compile_recipe(write_recipe(tmp_path, MINIMAL + "  max_chars: 100\n")).fingerprint
    assert first == again != changed


def test_shipped_recipes_validate():
    recipes = sorted((REPO / "recipes").glob("*.yaml"))
    assert recipes
    result = CliRunner().invoke(cli, ["validate", *map(str, recipes)])
    assert result.exit_code == 0, result.output


def test_validate_cli_exit_code_and_stderr(tmp_path):
    path = write_recipe(tmp_path, MINIMAL + "trian: {}\n")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert "did you mean 'train'?" in result.stderr


def test_schema_command_prints_the_shipped_schema():
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output) == load_schema()
    assert SCHEMA_DIR.resolve() == (REPO / "schemas").resolve()


def test_plan_json_lists_stages_and_fingerprint():
    result = CliRunner().invoke(cli, ["plan", str(REPO / "recipes" / "quickstart.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert [s["name"] for s in plan["stages"]] == ["ingest", "dedup", "split", "pii", "bias", "augment", "train",
                                                     "evaluate"]
    assert len(plan["fingerprint"]) == 64
    assert plan["stages"][3]["outputs"]["test"] == "data/test.jsonl"
    assert plan["stages"][5]["outputs"]["train"] == "data/train.jsonl"


def test_validate_and_plan_do_not_import_ml_libraries():
    code = ("import sys; from fttool.cli import cli\n"
            "try:\n    cli(['plan', 'recipes/quickstart.yaml'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'presidio_analyzer', 'spacy', 'peft', 'trl', 'nltk')"
            " if m in sys.modules]\n"
            "print('HEAVY', heavy, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert "HEAVY []" in result.stderr


def test_unquoted_dates_stay_text(tmp_path):
    path = write_recipe(tmp_path, MINIMAL + "description: 2030-02-30\n")
    assert compile_recipe(path).recipe["description"] == "2030-02-30"


def test_conditional_requirement_says_why(tmp_path):
    path = write_recipe(tmp_path, MINIMAL + "bias: {mentions: {enabled: false}}\n")
    (error,) = errors_of(path)
    assert error.endswith("missing required key 'fields': 'fields' is required unless 'mentions' is enabled (at bias)")


# --- recipes are data that cannot fool validation (issue: evidence that fails closed, §6) ---------------------

def test_numbers_are_read_as_yaml_1_2_reads_them(tmp_path):
    path = write_recipe(tmp_path, MINIMAL + "model: {base: demo:tiny-llama, license: apache-2.0}\n"
                        "train: {learning_rate: 2e-4}\n")
    assert compile_recipe(path).recipe["train"]["learning_rate"] == 0.0002


def test_yaml_1_1_booleans_are_text(tmp_path):
    path = write_recipe(tmp_path, MINIMAL + "pii: {enabled: yes}\n")
    assert errors_of(path) == [f'{path}:5:16: expected boolean, got string "yes" (at pii.enabled)']


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e999"])
def test_non_finite_numbers_are_rejected_where_they_are(tmp_path, value):
    path = write_recipe(tmp_path, MINIMAL + f"pii: {{enabled: true, score_threshold: {value}}}\n")
    [error] = [e for e in errors_of(path) if "is not a finite number" in e]  # .inf is also out of range
    assert error.startswith(f"{path}:5:39: ") and error.endswith("(at pii.score_threshold)")


def test_alias_expansion_is_bounded(tmp_path):
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path = write_recipe(tmp_path, "\n".join(lines) + "\nname: bomb\n", with_data=False)
    assert len(path.read_bytes()) < 700
    [error] = errors_of(path)
    assert "expands to more than 100,000 values through its aliases" in error


def test_recursive_aliases_and_deep_nesting_are_rejected(tmp_path):
    path = write_recipe(tmp_path, "a: &a [*a]\nname: loop\n", with_data=False)
    assert "recursive alias" in errors_of(path)[0]
    path = write_recipe(tmp_path, "a: " + "[" * 100 + "]" * 100 + "\nname: deep\n", with_data=False)
    assert "deeper than 64 levels" in errors_of(path)[0]


def test_policies_are_bounded_too(tmp_path):
    from fttool.policy.policy_file import load_policy

    path = tmp_path / "policy.yaml"
    path.write_text("a: &a [*a]\nname: p\nrules: []\n")
    with pytest.raises(RecipeInvalid, match="recursive alias"):
        load_policy(path)


def test_schema_rule_and_file_errors_come_in_one_pass(tmp_path):
    path = write_recipe(tmp_path, """
        name: mini
        data:
          sources:
            - {path: missing.jsonl, format: alpaca}
          split: {train: 0.5, validation: 0.2, test: 0.2}
        pii: {enabled: true, score_threshold: .nan}
        model: {base: ./no-such-model, license: apache-2.0}
        train: {epochs: "x"}
        """)
    joined = "\n".join(errors_of(path))
    for expected in ("source file not found", "split ratios sum to 0.9", "is not a finite number",
                     "base model directory not found", 'expected number, got string "x"'):
        assert expected in joined


@pytest.mark.parametrize("where", ["absolute", "parent", "symlink"])
def test_paths_outside_the_recipe_folder_need_the_recipe_to_allow_them(tmp_path, where):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "d.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    project = tmp_path / "project"
    project.mkdir()
    if where == "symlink":
        (project / "d.jsonl").symlink_to(outside / "d.jsonl")
    source = {"absolute": str(outside / "d.jsonl"), "parent": "../elsewhere/d.jsonl", "symlink": "d.jsonl"}[where]
    body = f"name: mini\ndata:\n  sources:\n    - {{path: '{source}', format: alpaca}}\n"
    path = write_recipe(project, body, with_data=False)
    [error] = errors_of(path)
    assert "leads outside the recipe's folder" in error and error.endswith("(at data.sources[0].path)")
    write_recipe(project, body + "allow_paths_outside_recipe_dir: true\n", with_data=False)
    assert compile_recipe(path).name == "mini"


# --- attacks on validation (issue 10, second round) ------------------------------------------------------------
def test_a_recipe_without_its_required_sections_is_an_error_not_a_traceback(tmp_path):
    path = write_recipe(tmp_path, "name: mini\n", with_data=False)
    [error] = errors_of(path)
    assert error.startswith(f"{path}:1:1: missing required key 'data'") and error.endswith("(at $)")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "missing required key 'data'" in result.stderr


def test_nesting_too_deep_for_the_parser_is_a_clean_error(tmp_path):
    path = write_recipe(tmp_path, "name: " + "[" * 5000 + "]" * 5000 + "\n", with_data=False)
    [error] = errors_of(path)
    assert error.startswith(f"{path}:1:1: ") and "deeper than 64 levels" in error


def test_an_integer_too_long_to_read_is_an_error_at_its_position(tmp_path):
    path = write_recipe(tmp_path, MINIMAL + "train: {epochs: 1" + "0" * 5000 + "}\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:5:17: ") and "too long" in error


@pytest.mark.parametrize("setting", ["model_path", "from_model", "to_model"])
def test_augment_models_outside_the_recipe_folder_need_the_recipe_to_allow_them(tmp_path, setting):
    outside = tmp_path / "elsewhere" / "bert"
    outside.mkdir(parents=True)
    project = tmp_path / "project"
    project.mkdir()
    method = "contextual" if setting == "model_path" else "back_translation"
    models = {"model_path": "prajjwal1/bert-tiny"} if method == "contextual" else {
        "from_model": "Helsinki-NLP/opus-mt-en-de", "to_model": "Helsinki-NLP/opus-mt-de-en"}
    models[setting] = "../elsewhere/bert"
    body = MINIMAL + "augment:\n  - " + json.dumps({"method": method, "ratio": 0.1, **models}) + "\n"
    path = write_recipe(project, body)
    errors = [e for e in errors_of(path) if "leads outside the recipe's folder" in e]
    assert [e.endswith(f"(at augment[0].{setting})") for e in errors] == [True]


def test_a_control_character_is_an_error_at_its_position(tmp_path):
    path = write_recipe(tmp_path, MINIMAL + "description: a\x01b\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:5:15: ") and "#x0001" in error
