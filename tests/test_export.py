"""fttool export: adapter, merged model and full fine-tune, with model card and manifest; refused when unverified."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from support.keys import allowed_signers, keygen
from support.runs import data_project
from support.runs import lora_project as make_project

from fttool.cli import cli
from fttool.governance.evidence import current_run_digest
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
    assert manifest["base_model"] == {"name": "demo:tiny-llama", "revision": None, "sha256": None,
                                      "license": "apache-2.0", "identified_by": "the demo model fttool builds"}
    return manifest


def test_the_manifest_names_a_local_base_by_its_digest_and_a_hub_base_by_its_commit():
    from fttool.governance.export import base_model_identity

    digest, commit = "ab" * 32, "0123456789abcdef0123456789abcdef01234567"
    local = {"training": {"base_model": {"name": "./models/base", "revision": None, "license": "mit"}},
             "lineage": {"artifacts": [{"path": "./models/base", "sha256": digest, "kind": "source"}]}}
    assert base_model_identity(local) == {"name": "./models/base", "revision": None, "sha256": digest,
                                          "license": "mit", "identified_by": "sha256 of the directory's files"}
    hub = {"training": {"base_model": {"name": "org/model", "revision": commit, "license": "apache-2.0"}},
           "lineage": {"artifacts": []}}
    assert base_model_identity(hub)["revision"] == commit and base_model_identity(hub)["identified_by"] == "hub commit"
    hub["lineage"]["artifacts"].append({"path": f"/cache/hub/models--org--model/snapshots/{commit}", "sha256": digest,
                                        "kind": "source"})
    assert base_model_identity(hub)["sha256"] == digest
    assert base_model_identity(hub)["identified_by"] == "hub commit and the sha256 of its cached files"


@pytest.mark.slow
def test_the_adapter_is_exported_with_the_runs_model_card_and_a_manifest(lora_run, tmp_path):
    result = CliRunner().invoke(cli, ["export", str(lora_run), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    manifest_matches(out, lora_run, "adapter")
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json"):
        assert sha256_file(out / name) == sha256_file(lora_run / "model" / name), name
    card = (out / "README.md").read_text()
    assert card.startswith((lora_run / "MODEL_CARD.md").read_text()), "the run's model card, rendered from report.json"
    assert "## Sign-offs\n\nUnsigned: no one has signed off this run" in card
    result = CliRunner().invoke(cli, ["export", str(lora_run), "--output", str(tmp_path / "out")])
    assert result.exit_code == 1 and "is not empty; choose another --output" in result.output


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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
    assert {name for name in manifest["files"] if name not in ("README.md", "signoff.json")} == {
        p.relative_to(run_dir / "model").as_posix() for p in files_under(run_dir / "model") if p.name != "README.md"}


@pytest.mark.slow
def test_a_file_added_to_the_model_directory_is_refused_not_shipped(lora_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(lora_run, copy, ignore=shutil.ignore_patterns("export"))
    (copy / "model" / "chat_template.jinja").write_text("{{ smuggled }}")
    result = CliRunner().invoke(cli, ["export", str(copy), "--output", str(tmp_path / "out")])
    assert result.exit_code == 1 and "model/chat_template.jinja: not in the report's lineage" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_export_carries_the_signoffs(lora_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(lora_run, copy, ignore=shutil.ignore_patterns("export"))
    assert CliRunner().invoke(cli, ["signoff", str(copy), "--by", "Dana", "--role", "risk"]).exit_code == 0
    result = CliRunner().invoke(cli, ["export", str(copy), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert (out / "signoff.json").read_bytes() == (copy / "signoff.json").read_bytes()
    assert "- Dana (risk), " in (out / "README.md").read_text() and "approved this run (unsigned)" in (
        out / "README.md").read_text()
    assert manifest_matches(out, copy, "adapter")["run_digest"] == json.loads((copy / "signoff.json").read_text())[0][
        "run_digest"]


@pytest.mark.slow
def code_running_model_and_run_copy(lora_run, tmp_path):
    """A model directory whose code, if loaded with trust_remote_code, leaves a marker file; and a copy of the run
    to forge. Returns (the directory, the marker, the copy)."""
    import shutil

    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "ran"
    (evil / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": {
        "AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}}))
    (evil / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    copy = tmp_path / "run"
    shutil.copytree(lora_run, copy, ignore=shutil.ignore_patterns("export"))
    return evil, marker, copy


def test_a_forged_report_cannot_make_a_merge_load_another_model(lora_run, tmp_path):
    """report.json names a directory whose code runs with trust_remote_code; merge reads the verified plan.json."""
    from fttool.governance.evidence import verify
    from fttool.report import write_report_files

    evil, marker, copy = code_running_model_and_run_copy(lora_run, tmp_path)
    report = json.loads((copy / "report.json").read_text())
    report["recipe"]["resolved"]["model"].update(base=str(evil), trust_remote_code=True)
    write_report_files(report, copy)  # the strongest forger without a key: rendered again, every digest recomputed
    assert verify(copy) == []
    result = CliRunner().invoke(cli, ["export", str(copy), "--merge", "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert not marker.exists(), "the forged directory's code ran"
    assert json.loads((tmp_path / "out" / "config.json").read_text()).get("model_type") != "evil"


STRICT_POLICY = ("name: strict\ndescription: Nothing quarantined.\nrules:\n  - id: DATA-900\n    description: none\n"
                 "    severity: error\n    applies_to: report\n"
                 "    check: {kind: compare, path: data.counts.quarantined, op: '==', value: 0}\nwaivers: []\n")
PAST_THE_POLICY_GATE = "the run trained no model"  # a data-only run's export fails here once its policy is waived


@pytest.fixture
def failing_run(tmp_path):
    """A data-only run whose report policy failed (DATA-900: its malformed line was quarantined)."""
    recipe = data_project(tmp_path / "project", extra="report: {policy: strict.yaml}\n")
    (tmp_path / "project" / "strict.yaml").write_text(STRICT_POLICY)
    return run_plan(compile_recipe(recipe), tmp_path / "run")


def export(*args) -> object:
    return CliRunner().invoke(cli, ["export", *map(str, args)])


def append_unsigned_waiver(run_dir, by: str = "Ada") -> None:
    """What anyone who can write the run directory can do: add a sign-off waiving DATA-900, by hand, and render the
    report again (fttool report) so that verify finds the renderings as fttool renders them."""
    path = run_dir / "signoff.json"
    entries = json.loads(path.read_text()) if path.exists() else []
    entries.append({"by": by, "role": "risk", "at": "2026-01-01T00:00:00+00:00",
                    "report_sha256": sha256_file(run_dir / "report.json"),
                    "run_digest": current_run_digest(run_dir),
                    "waivers": [{"rule": "DATA-900", "reason": "looks fine"}]})
    path.write_text(json.dumps(entries))
    assert CliRunner().invoke(cli, ["report", str(run_dir)]).exit_code == 0
    assert CliRunner().invoke(cli, ["verify", str(run_dir)]).exit_code == 0


def test_an_unsigned_waiver_does_not_unlock_the_export(failing_run, tmp_path):
    result = export(failing_run)
    assert result.exit_code == 1 and "the report policy failed (DATA-900)" in result.output
    append_unsigned_waiver(failing_run)
    result = export(failing_run)
    assert result.exit_code == 1 and PAST_THE_POLICY_GATE not in result.output
    assert "the report policy failed (DATA-900)" in result.output
    assert f"{failing_run / 'signoff.json'} waives DATA-900 only in sign-offs that do not count: Ada (risk), " \
           "unsigned" in result.output
    assert "pass --allowed-signers FILE" in result.output
    # With allowed signers, an unsigned waiver counts no more (and a signed sign-off of the run is required).
    key = keygen(tmp_path / "dana")
    allowed = allowed_signers(tmp_path / "allowed_signers", "dana@bank.example", key)
    result = export(failing_run, "--allowed-signers", allowed)
    assert result.exit_code == 1 and PAST_THE_POLICY_GATE not in result.output
    assert "no sign-off of the run as it is now is signed by a key the allowed signers file lists" in result.output


def test_a_waiver_from_fttool_signoff_without_a_key_does_not_unlock_the_export(failing_run):
    result = CliRunner().invoke(cli, ["signoff", str(failing_run), "--by", "Ada", "--role", "risk", "--waive",
                                      "DATA-900", "--reason", "planted malformed line"])
    assert result.exit_code == 0 and "note: unsigned waivers unlock no export" in result.stderr
    result = export(failing_run)
    assert result.exit_code == 1 and "unsigned" in result.output and PAST_THE_POLICY_GATE not in result.output


def test_a_waiver_signed_by_an_allowed_key_unlocks_the_export(failing_run, tmp_path):
    key = keygen(tmp_path / "dana")
    allowed = allowed_signers(tmp_path / "allowed_signers", "dana@bank.example", key)
    assert CliRunner().invoke(cli, ["signoff", str(failing_run), "--by", "Dana", "--role", "risk", "--key", str(key),
                                    "--waive", "DATA-900", "--reason", "planted malformed line"]).exit_code == 0
    result = export(failing_run, "--allowed-signers", allowed)
    assert result.exit_code == 1 and PAST_THE_POLICY_GATE in result.output, result.output
    # Without the allowed signers file nothing says whose key signed: the waiver does not count.
    result = export(failing_run)
    assert result.exit_code == 1 and PAST_THE_POLICY_GATE not in result.output
    assert "Dana (risk), signed, but no allowed signers file says whose key" in result.output


def test_a_waiver_signed_by_a_key_the_file_does_not_list_does_not_unlock_the_export(failing_run, tmp_path):
    allowed = allowed_signers(tmp_path / "allowed_signers", "dana@bank.example", keygen(tmp_path / "dana"))
    mallory = keygen(tmp_path / "mallory")
    assert CliRunner().invoke(cli, ["signoff", str(failing_run), "--by", "Dana", "--role", "risk", "--key",
                                    str(mallory), "--waive", "DATA-900", "--reason", "fine"]).exit_code == 0
    for args in ((), ("--allowed-signers", allowed)):
        result = export(failing_run, *args)
        assert result.exit_code == 1 and PAST_THE_POLICY_GATE not in result.output, args
    assert "signed with a key that is not in the allowed signers file" in result.output


def test_an_unreadable_allowed_signers_file_is_invalid_input_naming_its_line(failing_run, tmp_path):
    garbage = tmp_path / "allowed_signers"
    garbage.write_text("dana@bank.example\n")
    result = export(failing_run, "--allowed-signers", garbage)
    assert result.exit_code == 2 and f"{garbage}:1: not 'principals [options] key-type base64-key'" in result.output


@pytest.mark.slow
def test_a_trained_model_whose_policy_failed_is_exported_only_on_a_waiver_signed_by_an_allowed_key(tmp_path):
    """The attack end to end: a waiver appended to signoff.json of a trained run whose policy failed exports nothing."""
    recipe = make_project(tmp_path / "project", extra="report: {policy: strict.yaml}\n")
    (tmp_path / "project" / "strict.yaml").write_text(STRICT_POLICY.replace(
        "path: data.counts.quarantined, op: '==', value: 0", "path: data.counts.kept, op: '<', value: 1"))
    run_dir = run_plan(compile_recipe(recipe), tmp_path / "run")
    append_unsigned_waiver(run_dir)
    result = export(run_dir, "--output", tmp_path / "out")
    assert result.exit_code == 1 and "the report policy failed (DATA-900)" in result.output
    assert not (tmp_path / "out").exists()
    key = keygen(tmp_path / "dana")
    allowed = allowed_signers(tmp_path / "allowed_signers", "dana@bank.example", key)
    assert CliRunner().invoke(cli, ["signoff", str(run_dir), "--by", "Dana", "--role", "risk", "--key", str(key),
                                    "--waive", "DATA-900", "--reason", "every record was kept"]).exit_code == 0
    result = export(run_dir, "--output", tmp_path / "out", "--allowed-signers", allowed)
    assert result.exit_code == 0, result.output
    assert "waived DATA-900: every record was kept" in (tmp_path / "out" / "README.md").read_text()


@pytest.mark.slow
def test_a_forged_plan_cannot_make_a_merge_run_another_models_code(lora_run, tmp_path):
    """plan.json (and the lineage) rewritten to name a directory whose code runs with trust_remote_code, every digest
    recomputed: the digests are not secret, so merge runs a model's own code only when the command line says so."""
    from fttool.governance.evidence import verify
    from fttool.pipeline.digest import sha256_path
    from fttool.report import write_report_files

    evil, marker, copy = code_running_model_and_run_copy(lora_run, tmp_path)
    plan = json.loads((copy / "plan.json").read_text())
    for stage in plan["stages"]:
        if isinstance(stage["params"].get("model"), dict):
            stage["params"]["model"].update(base=str(evil), trust_remote_code=True)
    (copy / "plan.json").write_text(json.dumps(plan, indent=2))
    report = json.loads((copy / "report.json").read_text())
    report["lineage"]["artifacts"].append({"path": str(evil), "sha256": sha256_path(evil), "kind": "source",
                                           "stage": None, "parents": []})
    write_report_files(report, copy)
    assert verify(copy) == []
    result = CliRunner().invoke(cli, ["export", str(copy), "--merge", "--output", str(tmp_path / "out")])
    assert result.exit_code == 1 and "--trust-remote-code" in result.stderr and str(evil) in result.stderr
    assert not marker.exists(), "the forged directory's code ran"


@pytest.mark.slow
def test_verify_checks_an_export_inside_the_run_against_its_manifest_and_the_lineage(lora_run, tmp_path):
    """export/ is written after the run, but what it holds is what gets published: verify checks it."""
    import shutil

    from fttool.governance.evidence import verify

    copy = tmp_path / "run"
    shutil.copytree(lora_run, copy, ignore=shutil.ignore_patterns("export"))
    assert CliRunner().invoke(cli, ["export", str(copy)]).exit_code == 0
    assert verify(copy) == []
    out = copy / "export" / "adapter"
    (out / "chat_template.jinja").write_text("{{ smuggled }}")
    assert [str(p) for p in verify(copy)] == [
        "export/adapter/chat_template.jinja: not in the export's manifest.json: added after the export"]
    # The forger lists it, and swaps the adapter's weights too, rewriting the manifest to match.
    (out / "adapter_model.safetensors").write_bytes(b"other weights")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"].update({name: sha256_file(out / name) for name in ("chat_template.jinja",
                                                                          "adapter_model.safetensors")})
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert sorted(str(p) for p in verify(copy)) == [
        "export/adapter/adapter_model.safetensors: differs from the run's model/adapter_model.safetensors",
        "export/adapter/chat_template.jinja: not among the run's model files (model/ in the lineage)"]
    (out / "manifest.json").unlink()
    assert [str(p) for p in verify(copy)] == ["export/adapter: no readable manifest.json: not an export fttool wrote"]


@pytest.mark.slow
def test_the_exported_card_names_the_key_of_a_signed_signoff(lora_run, tmp_path):
    """'signed' alone would vouch for any key: the card gives the key's fingerprint, as ssh-keygen -l prints it."""
    import base64
    import hashlib
    import shutil

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    (tmp_path / "mallory").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.OpenSSH,
                                                         serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(public.split()[1])).digest()).decode(
        ).rstrip("=")
    copy = tmp_path / "run"
    shutil.copytree(lora_run, copy, ignore=shutil.ignore_patterns("export"))
    assert CliRunner().invoke(cli, ["signoff", str(copy), "--by", "Dana", "--role", "risk", "--key",
                                    str(tmp_path / "mallory")]).exit_code == 0
    assert CliRunner().invoke(cli, ["export", str(copy), "--output", str(tmp_path / "out")]).exit_code == 0
    assert f"approved this run (signed with key {fingerprint}" in (tmp_path / "out" / "README.md").read_text()


@pytest.mark.slow
def test_an_export_into_the_run_directory_takes_its_lock_and_goes_under_export(lora_run, tmp_path):
    import fcntl
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(lora_run, copy, ignore=shutil.ignore_patterns("export"))
    with open(copy / ".fttool.lock", "a+") as held:  # a review import rewriting the report meanwhile
        held.write("fttool review import, pid 1234, since 2026-01-01T00:00:00+00:00\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = CliRunner().invoke(cli, ["export", str(copy)])
        assert result.exit_code == 1 and "in use by another fttool command" in result.stderr
        assert not (copy / "export").exists()
        assert CliRunner().invoke(cli, ["export", str(copy), "--output", str(tmp_path / "out")]).exit_code == 0
    result = CliRunner().invoke(cli, ["export", str(copy), "--output", str(copy / "published")])
    assert result.exit_code == 1 and "under export/" in result.stderr and not (copy / "published").exists()
