"""fttool import: recipes from axolotl and LLaMA-Factory configs (small configs written here), every setting that
did not carry over listed."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import yaml
from click.testing import CliRunner

from fttool.cli import cli
from fttool.recipe import compile_recipe

AXOLOTL = """\
base_model: demo:tiny-llama
datasets:
  - path: org/support-questions
    type: alpaca
  - path: org/support-chats
    type: chat_template
    field_messages: conversations
    message_property_mappings: {role: from, content: value}
val_set_size: 0.2
adapter: lora
lora_r: 8
lora_alpha: 16
lora_dropout: 0.1
lora_target_linear: true
sequence_len: 256
micro_batch_size: 4
gradient_accumulation_steps: 2
num_epochs: 2
optimizer: adamw_bnb_8bit
lr_scheduler: cosine
learning_rate: 2e-5
bf16: auto
tf32: false
logging_steps: 5
evals_per_epoch: 4
chat_template: jinja
chat_template_jinja: "{% for m in messages %}{{ m['content'] }}{% endfor %}"
wandb_project:
special_tokens: {pad_token: "</s>"}
loss_watchdog_threshold: 5.0
lora_mlp_kernel: true
"""

LLAMAFACTORY = """\
model_name_or_path: demo:tiny-llama
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: q_proj,v_proj
quantization_bit: 8
dataset: support_questions
template: qwen3_nothink
cutoff_len: 512
max_samples: 100
per_device_train_batch_size: 2
gradient_accumulation_steps: 4
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
save_only_model: true
report_to: none
deepspeed: ds_z3_config.json
"""


def run_import(tmp_path: Path, tool: str, config: str, *options: str):
    path = tmp_path / f"{tool}.yaml"
    path.write_text(config)
    return CliRunner().invoke(cli, ["import", tool, str(path), *options])


def fill_in(recipe_path: Path) -> None:
    """Local files for the recipe's sources, as a user would put them there."""
    recipe = yaml.safe_load(recipe_path.read_text())
    for source in recipe["data"]["sources"]:
        target = recipe_path.parent / source["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if source["format"] == "alpaca":
            rows = [{"instruction": f"Question {i}?", "output": f"Answer {i}."} for i in range(20)]
        else:
            rows = [{"conversations": [{"from": "human", "value": f"Hi {i}"}, {"from": "gpt", "value": f"Hello {i}"}]}
                    for i in range(20)]
        target.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_an_axolotl_config_becomes_a_recipe_that_validates_once_its_data_is_there(tmp_path):
    result = run_import(tmp_path, "axolotl", AXOLOTL, "-o", str(tmp_path / "project" / "recipe.yaml"))
    assert result.exit_code == 0, result.output
    recipe_path = tmp_path / "project" / "recipe.yaml"
    recipe = yaml.safe_load(recipe_path.read_text())
    train = recipe["train"]
    assert train["method"] == "lora" and train["lora"] == {"r": 8, "alpha": 16.0, "dropout": 0.1,
                                                           "target_modules": "all-linear"}
    assert train["optimizer"] == "adamw_8bit" and train["learning_rate"] == 2e-5 and train["precision"] == "auto"
    assert train["lr_scheduler_type"] == "cosine" and train["evals_per_epoch"] == 4 and train["logging_steps"] == 5
    assert train["batch_size"] == 4 and train["gradient_accumulation_steps"] == 2 and train["epochs"] == 2
    assert train["chat_template_file"] == "chat_template.jinja"
    assert (tmp_path / "project" / "chat_template.jinja").read_text().startswith("{% for m in messages %}")
    assert recipe["data"]["split"] == {"train": 0.8, "validation": 0.2, "test": 0.0}
    assert [s["format"] for s in recipe["data"]["sources"]] == ["alpaca", "sharegpt"]

    stderr = result.stderr
    for key in ("special_tokens", "loss_watchdog_threshold", "lora_mlp_kernel"):
        assert f"not carried over: {key}:" in stderr, key
    assert "wandb_project" not in stderr, "a setting left empty in the config is not a setting"
    assert "fill in: data/support-questions.jsonl: a local copy of dataset 'org/support-questions'" in stderr

    fill_in(recipe_path)
    plan = compile_recipe(recipe_path)
    params = next(stage.params for stage in plan.stages if stage.name == "train")
    assert params.optimizer == "adamw_8bit" and params.chat_template_file == "chat_template.jinja"


def test_a_llamafactory_config_keeps_what_fttool_has_and_names_the_rest(tmp_path):
    result = run_import(tmp_path, "llamafactory", LLAMAFACTORY)
    assert result.exit_code == 0, result.output
    recipe = yaml.safe_load(result.stdout)
    train = recipe["train"]
    assert train["method"] == "lora" and train["load_in_8bit"] is True
    assert train["lora"] == {"r": 8, "alpha": 16.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    assert train["max_seq_length"] == 512 and train["max_samples"] == 100 and train["precision"] == "bf16"
    assert train["save_only_model"] is True and train["epochs"] == 3.0 and train["learning_rate"] == 1e-4
    assert recipe["tracking"] == {"enabled": False}
    stderr = result.stderr
    assert ("not carried over: deepspeed: ds_z3_config.json (DeepSpeed JSON configs are not read; set "
            "compute.strategy: deepspeed") in stderr
    assert "not carried over: template: qwen3_nothink (fttool's built-in templates are" in stderr
    assert "not carried over: val_size: not set (fttool measures validation loss while training" in stderr
    assert ("differs: max_samples: 100 (LLaMA-Factory keeps the first 100 records of each dataset before holding out "
            "validation; train.max_samples keeps the first 100 records of the shuffled train split, all sources "
            "together)") in stderr

    project = tmp_path / "project"
    project.mkdir()
    (project / "recipe.yaml").write_text(result.stdout)
    fill_in(project / "recipe.yaml")
    compile_recipe(project / "recipe.yaml")


def test_a_preference_stage_carries_over_where_fttool_has_it(tmp_path):
    from fttool.recipe.schema import load_schema

    config = LLAMAFACTORY.replace("stage: sft", "stage: dpo\npref_beta: 0.2\npref_loss: simpo")
    result = run_import(tmp_path, "llamafactory", config)
    assert result.exit_code == 0, result.output
    recipe = yaml.safe_load(result.stdout)
    assert "not carried over: pref_loss: simpo" in result.stderr
    if "objective" in load_schema()["properties"]["train"]["properties"]:
        assert recipe["train"]["objective"] == "dpo" and recipe["train"]["preference"] == {"beta": 0.2}
        assert recipe["data"]["sources"][0]["format"] == "sharegpt_preference"
    else:
        assert "not carried over: stage: dpo" in result.stderr


def test_a_config_that_is_not_a_mapping_is_refused_with_its_name(tmp_path):
    result = run_import(tmp_path, "axolotl", textwrap.dedent("- just\n- a list\n"))
    assert result.exit_code == 1
    assert "axolotl.yaml: a config for axolotl is a YAML mapping of settings; this file holds list" in result.output


def test_lora_settings_a_llamafactory_config_leaves_out_get_llamafactorys_defaults(tmp_path):
    """LLaMA-Factory trains with lora_alpha = 2 * lora_rank, lora_dropout 0 and every linear layer unless told
    otherwise; the recipe says so, rather than falling back on fttool's own defaults (alpha 32, dropout 0.05)."""
    result = run_import(tmp_path, "llamafactory", LLAMAFACTORY.replace("lora_rank: 8", "lora_rank: 4")
                        .replace("lora_target: q_proj,v_proj\n", ""))
    assert result.exit_code == 0, result.output
    lora = yaml.safe_load(result.stdout)["train"]["lora"]
    assert lora == {"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": "all-linear"}

    result = run_import(tmp_path, "llamafactory", LLAMAFACTORY.replace("lora_rank: 8\n", "lora_dropout: 0.1\n"))
    lora = yaml.safe_load(result.stdout)["train"]["lora"]
    assert lora == {"r": 8, "alpha": 16.0, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}


def test_an_axolotl_lora_config_without_dropout_gets_axolotls_default(tmp_path):
    result = run_import(tmp_path, "axolotl", AXOLOTL.replace("lora_dropout: 0.1\n", ""))
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["train"]["lora"]["dropout"] == 0.0


AXOLOTL_DPO = """\
base_model: demo:tiny-llama
rl: dpo
datasets:
  - path: org/pairs
    type: chat_template.default
    field_messages: conversation
    field_chosen: preferred
    field_rejected: rejected
    message_property_mappings: {role: role, content: content}
    roles_to_train: [assistant]
  - path: org/more-pairs
    type: chat_template.default
    message_property_mappings: {role: speaker, content: text}
adapter: lora
lora_r: 8
lora_alpha: 16
"""


def test_an_axolotl_preference_dataset_keeps_its_field_names_and_names_what_it_drops(tmp_path):
    """axolotl's chat_template DPO datasets read the prompt from field_messages (default messages) and the responses
    from field_chosen and field_rejected: the source maps them, and dataset settings fttool cannot honour are
    listed, not dropped."""
    recipe_path = tmp_path / "project" / "recipe.yaml"
    result = run_import(tmp_path, "axolotl", AXOLOTL_DPO, "-o", str(recipe_path))
    assert result.exit_code == 0, result.output
    sources = yaml.safe_load(recipe_path.read_text())["data"]["sources"]
    assert [s["format"] for s in sources] == ["preference", "preference"]
    assert sources[0]["fields"] == {"prompt": "conversation", "chosen": "preferred"}
    assert sources[1]["fields"] == {"prompt": "messages"}
    assert "not carried over: datasets[0].roles_to_train: ['assistant']" in result.stderr
    assert "not carried over: datasets[1].message_property_mappings: {'role': 'speaker', 'content': 'text'}" \
        in result.stderr

    for source in sources:
        names = {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected", **source["fields"]}
        rows = [{names["prompt"]: [{"role": "user", "content": f"Question {i}?"}],
                 names["chosen"]: {"role": "assistant", "content": f"A careful answer {i}."},
                 names["rejected"]: {"role": "assistant", "content": f"No idea {i}."}} for i in range(20)]
        target = recipe_path.parent / source["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(json.dumps(row) + "\n" for row in rows))
    compile_recipe(recipe_path)


def test_llamafactory_bitsandbytes_quantization_is_what_fttool_does_and_other_methods_are_named(tmp_path):
    result = run_import(tmp_path, "llamafactory", LLAMAFACTORY.replace("quantization_bit: 8",
                                                                       "quantization_bit: 4\nquantization_method: bnb"))
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["train"]["method"] == "qlora"
    assert "quantization_method" not in result.stderr, "bnb is bitsandbytes: it carried over"
    result = run_import(tmp_path, "llamafactory", LLAMAFACTORY.replace("quantization_bit: 8",
                                                                       "quantization_bit: 4\nquantization_method: hqq"))
    assert "not carried over: quantization_method: hqq (fttool quantizes with bitsandbytes only)" in result.stderr


def test_a_llamafactory_inference_or_export_config_is_named_as_one(tmp_path):
    """LLaMA-Factory's inference and merge configs train nothing; the recipe fttool writes from them trains, and
    the first line says so rather than letting the user believe the config translated."""
    config = ("model_name_or_path: demo:tiny-llama\nadapter_name_or_path: saves/lora/sft\ntemplate: llama3\n"
              "export_dir: saves/merged\n")
    result = run_import(tmp_path, "llamafactory", config)
    assert result.exit_code == 0, result.output
    first = result.stderr.splitlines()[0]
    assert first == ("not carried over: the whole config: it runs inference or exports a model and trains nothing "
                     "(no stage); the recipe below trains, and fttool export RUN_DIR [--merge] exports a run's model")
    assert "not carried over: stage" not in run_import(tmp_path, "llamafactory", LLAMAFACTORY).stderr

