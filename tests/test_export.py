"""fttool export: adapter, merged model and full fine-tune, with model card and manifest; refused when unverified."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_tracking import make_project

from fttool.cli import cli
from fttool.pipeline.digest import files_under, sha256_file
from fttool.pipeline.runner import run_plan
from fttool.recipe import compile_recipe


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return run_plan(compile_recipe(make_project(root / "project")), root / "run")


def manifest_matches(out, run_dir, kind: str) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["export"] == kind and manifest["run_id"] == run_dir.name
    assert manifest["report_sha256"] == sha256_file(run_dir / "report.json")
    assert manifest["files"] == {p.relative_to(out).as_posix(): sha256_file(p) for p in files_under(out)
                                 if p.name != "manifest.json"}
    return manifest


def test_the_adapter_is_exported_with_the_runs_model_card_and_a_manifest(lora_run, tmp_path):
    result = CliRunner().invoke(cli, ["export", str(lora_run), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    manifest_matches(out, lora_run, "adapter")
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json"):
        assert sha256_file(out / name) == sha256_file(lora_run / "model" / name), name
    card = (out / "README.md").read_text()
    assert card == (lora_run / "MODEL_CARD.md").read_text(), "the run's model card, rendered from report.json"
    result = CliRunner().invoke(cli, ["export", str(lora_run), "--output", str(tmp_path / "out")])
    assert result.exit_code == 1 and "is not empty; choose another --output" in result.output


def test_merged_export_computes_what_the_adapter_on_its_base_computes(lora_run):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from fttool.training.demo_model import build_demo_model

    result = CliRunner().invoke(cli, ["export", str(lora_run), "--merge"])
    assert result.exit_code == 0, result.output
    out = lora_run / "export" / "merged"
    assert result.output.strip() == str(out)
    manifest_matches(out, lora_run, "merged")
    assert not list(out.glob("adapter_*")), "a plain model: no adapter files"
    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(build_demo_model(lora_run.parent / "base"))
    adapted = PeftModel.from_pretrained(base, lora_run / "model")
    ids = torch.tensor([[1, 40, 200, 17, 95, 3]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-5)
        with adapted.disable_adapter():
            assert not torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-5), "the adapter is in it"


def test_a_run_that_does_not_verify_is_not_exported(lora_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(lora_run, copy, ignore=shutil.ignore_patterns("export"))
    with (copy / "model" / "adapter_config.json").open("a") as file:
        file.write(" ")
    result = CliRunner().invoke(cli, ["export", str(copy)])
    assert result.exit_code == 1
    assert "does not verify" in result.output and "model/adapter_config.json: artifact sha256 differs" in result.output
    assert not (copy / "export").exists()


def test_a_full_fine_tune_is_exported_as_it_is(tmp_path):
    recipe = make_project(tmp_path / "project")
    recipe.write_text(recipe.read_text().replace("  lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}\n",
                                                 "  method: full\n").replace("max_steps: 4", "max_steps: 2"))
    run_dir = run_plan(compile_recipe(recipe), tmp_path / "run")
    result = CliRunner().invoke(cli, ["export", str(run_dir), "--merge"])  # already whole: nothing to merge
    assert result.exit_code == 0, result.output
    out = run_dir / "export" / "full"
    manifest = manifest_matches(out, run_dir, "full")
    assert manifest["method"] == "full"
    assert {name for name in manifest["files"] if name != "README.md"} == {
        p.relative_to(run_dir / "model").as_posix() for p in files_under(run_dir / "model") if p.name != "README.md"}
