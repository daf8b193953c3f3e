"""A provable base model: hub ids resolve to a commit before any stage (offline, from a directory laid out like the
Hugging Face cache), and a declared licence must agree with the model's own card and LICENSE file."""
from __future__ import annotations

import json
import textwrap

import pytest

from fttool.pipeline.plan import thaw
from fttool.recipe import RecipeInvalid, compile_recipe
from fttool.recipe.compiler import validated_recipe
from fttool.recipe.loader import load_recipe_file
from fttool.training.model_identity import (
    ModelIdentityError,
    ModelParams,
    base_model_inputs,
    card_license,
    license_conflicts,
    license_file_id,
    resolve_hub_commit,
)

MAIN = "a" * 40
TAGGED = "b" * 40
APACHE = "\n                                 Apache License\n                           Version 2.0, January 2004\n"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """acme/tiny-chat in a hub cache: main and tag v1 at two commits; the card at main says llama3.1. Offline."""
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--acme--tiny-chat"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(MAIN)
    (repo / "refs" / "v1").write_text(TAGGED)
    for commit in (MAIN, TAGGED):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (repo / "snapshots" / MAIN / "README.md").write_text("---\nlicense: llama3.1\nlanguage: [en]\n---\n# Tiny chat\n")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read at import; the test process imported it already
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return repo


def write_recipe(root, model: str):
    (root / "d.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    (root / "recipe.yaml").write_text(textwrap.dedent(f"""\
        name: identity
        data:
          sources: [{{path: d.jsonl, format: alpaca}}]
          split: {{train: 0.6, validation: 0.2, test: 0.2}}
        model: {model}
        train: {{max_steps: 2}}
        evaluate: {{}}
        memorisation: {{canaries: 2}}
        """))
    return root / "recipe.yaml"


def loaded_revisions(plan) -> dict[str, str | None]:
    return {stage.name: thaw(stage.params)["model"]["revision"] for stage in plan.stages
            if stage.name in ("train", "evaluate", "memorisation")}


def test_a_hub_revision_resolves_to_its_commit_from_the_cache_offline(hub_cache):
    assert resolve_hub_commit("acme/tiny-chat", None) == MAIN
    assert resolve_hub_commit("acme/tiny-chat", "v1") == TAGGED
    assert resolve_hub_commit("acme/tiny-chat", TAGGED) == TAGGED
    with pytest.raises(ModelIdentityError, match="'acme/tiny-chat' at revision v2 cannot be resolved to a commit: "
                                                 "HF_HUB_OFFLINE is set"):
        resolve_hub_commit("acme/tiny-chat", "v2")
    with pytest.raises(ModelIdentityError, match="does not hold it"):
        resolve_hub_commit("acme/other", None)


def test_every_stage_that_loads_the_base_gets_the_commit(hub_cache, tmp_path):
    plan = compile_recipe(write_recipe(tmp_path, "{base: acme/tiny-chat, license: llama3.1}"))
    assert loaded_revisions(plan) == {"train": MAIN, "evaluate": MAIN, "memorisation": MAIN}
    pinned = compile_recipe(write_recipe(tmp_path, "{base: acme/tiny-chat, revision: v1}"))
    assert loaded_revisions(pinned) == {"train": TAGGED, "evaluate": TAGGED, "memorisation": TAGGED}
    # The commit is a parameter, so the train stage's fingerprint changes when the branch moves.
    (hub_cache / "refs" / "main").write_text(TAGGED)
    moved = compile_recipe(write_recipe(tmp_path, "{base: acme/tiny-chat, license: llama3.1}"))
    assert loaded_revisions(moved)["train"] == TAGGED

    (hub_cache / "refs" / "main").unlink()
    with pytest.raises(RecipeInvalid) as caught:
        compile_recipe(write_recipe(tmp_path, "{base: acme/tiny-chat}"))
    (error,) = caught.value.errors
    assert "recipe.yaml:5:" in str(error) and "cannot be resolved to a commit" in error.message
    # Checking a recipe against a policy needs no hub: only compiling it for a run resolves the commit.
    assert validated_recipe(load_recipe_file(tmp_path / "recipe.yaml"))["model"]["base"] == "acme/tiny-chat"


def test_a_declared_licence_the_model_card_contradicts_is_refused_unless_overridden(hub_cache, tmp_path):
    with pytest.raises(RecipeInvalid) as caught:
        compile_recipe(write_recipe(tmp_path, "{base: acme/tiny-chat, license: apache-2.0}"))
    (error,) = caught.value.errors
    assert error.message.startswith("model.license is apache-2.0, but its model card (README.md front matter) says "
                                    "llama3.1; correct model.license")
    assert str(error).startswith(f"{tmp_path / 'recipe.yaml'}:5:")
    overridden = compile_recipe(write_recipe(
        tmp_path, "{base: acme/tiny-chat, license: apache-2.0, license_override: Relicensed to us in writing by acme}"))
    assert "license_override" not in thaw(overridden.stages[-1].params)["model"]


def test_a_local_model_is_checked_against_its_license_file(tmp_path):
    model = tmp_path / "models" / "base"
    model.mkdir(parents=True)
    (model / "LICENSE").write_text(APACHE + "TERMS AND CONDITIONS FOR USE ...\n")
    with pytest.raises(RecipeInvalid, match="model.license is mit, but its LICENSE file says apache-2.0"):
        compile_recipe(write_recipe(tmp_path, "{base: ./models/base, license: mit}"))
    plan = compile_recipe(write_recipe(tmp_path, "{base: ./models/base, license: Apache-2.0}"))  # case is no conflict
    assert loaded_revisions(plan)["train"] is None


def test_licences_read_from_card_front_matter_and_license_texts(tmp_path):
    assert card_license(tmp_path) is None and license_file_id(tmp_path) is None
    (tmp_path / "README.md").write_text("# No front matter\nlicense: mit\n")
    assert card_license(tmp_path) is None
    (tmp_path / "README.md").write_text("---\nlicense: other\nlicense_name: acme-research\n---\n")
    assert card_license(tmp_path) == "other"
    (tmp_path / "LICENSE.txt").write_text("LLAMA 3.1 COMMUNITY LICENSE AGREEMENT\nLlama 3.1 Version Release Date")
    assert license_file_id(tmp_path) == "llama3.1"
    assert license_conflicts("llama3.1", tmp_path) == ["model.license is llama3.1, but its model card (README.md "
                                                       "front matter) says other"]
    assert license_conflicts(None, tmp_path) == []  # nothing declared, nothing contradicted


def test_the_train_stage_hashes_a_cached_hub_snapshot_or_a_local_directory(hub_cache, tmp_path):
    from fttool.stages.train import TrainStage

    plan = compile_recipe(write_recipe(tmp_path, "{base: acme/tiny-chat, revision: v1}"))
    train = next(stage for stage in plan.stages if stage.name == "train")
    assert TrainStage.external_inputs(train.params) == [str(hub_cache / "snapshots" / TAGGED)]
    assert base_model_inputs(ModelParams("acme/not-cached", MAIN, None, False)) == []
    assert base_model_inputs(ModelParams("./models/base", None, None, False)) == ["./models/base"]
    assert base_model_inputs(ModelParams("demo:tiny-llama", None, None, False)) == []
