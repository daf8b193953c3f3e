"""verify, sign-off (signed and waived), lineage export and the LIN-001 gate, on real data-only runs.

Each attack test edits a run the way a careless colleague or a forger would and expects verify to fail.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.keys import keygen
from support.runs import data_project

from fttool.cli import cli
from fttool.governance.evidence import openlineage_event, verify, write_digests
from fttool.governance.signing import SignatureError, read_allowed_signers
from fttool.governance.signoff import SignoffRefused, sign_off
from fttool.pipeline.digest import sha256_file
from fttool.pipeline.runner import run_plan
from fttool.recipe import compile_recipe
from fttool.report import write_report_files

FAILING_POLICY = """
name: strict
description: No record may be quarantined.
rules:
  - id: DATA-900
    description: Nothing quarantined
    severity: error
    applies_to: report
    check: {kind: compare, path: data.counts.quarantined, op: "==", value: 0}
waivers: []
"""
LINEAGE_POLICY = """
name: lineage
description: The run verifies.
rules:
  - id: LIN-001
    description: The run verifies
    severity: error
    applies_to: report
    check: {kind: lineage_verifies}
waivers: []
"""


@pytest.fixture
def run_dir(tmp_path):
    return run_plan(compile_recipe(data_project(tmp_path)), tmp_path / "runs" / "one")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def problems(run_dir) -> list[str]:
    return [str(p) for p in verify(run_dir)]


def rewrite_report(run_dir: Path, edit) -> None:
    report = json.loads((run_dir / "report.json").read_text())
    edit(report)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))


def forge_report(run_dir: Path, edit) -> None:
    """What a forger does with fttool's own code: edit report.json, render it again and rewrite every digest."""
    report = json.loads((run_dir / "report.json").read_text())
    edit(report)
    write_report_files(report, run_dir)


def sha256sum_line(run_dir: Path, name: str) -> None:
    """What a forger does with sha256sum: rewrite one file's line in report.sha256."""
    lines = (run_dir / "report.sha256").read_text().splitlines()
    lines = [f"{sha256_file(run_dir / name)}  {name}" if line.endswith(f"  {name}") else line for line in lines]
    (run_dir / "report.sha256").write_text("\n".join(lines) + "\n")


def test_fresh_run_verifies(run_dir):
    assert verify(run_dir) == []
    result = invoke("verify", str(run_dir))
    assert result.exit_code == 0 and "verified" in result.output


def test_edited_data_file_is_named(run_dir):
    with open(run_dir / "data" / "test.jsonl", "a") as handle:
        handle.write("{}\n")
    result = invoke("verify", str(run_dir))
    assert result.exit_code == 1
    assert f"{run_dir}/data/test.jsonl: artifact sha256 differs from the report's lineage" in result.stderr


def test_edited_report_is_caught(run_dir):
    rewrite_report(run_dir, lambda r: r["data"]["counts"].update(quarantined=0))
    assert problems(run_dir) == ["report.json: sha256 differs from report.sha256: the file was changed"]


def test_emptied_digest_file_does_not_hide_an_edited_report(run_dir):
    (run_dir / "report.sha256").write_text("")
    rewrite_report(run_dir, lambda r: r["data"]["counts"].update(quarantined=0))
    found = problems(run_dir)
    assert "report.json: has no digest in report.sha256: it cannot be checked" in found
    assert "report.sha256: has no run digest: the run cannot be checked as a whole" in found


def test_a_digest_recomputed_after_editing_the_report_fails_on_the_run_digest(run_dir):
    rewrite_report(run_dir, lambda r: r["data"]["counts"].update(quarantined=0))
    sha256sum_line(run_dir, "report.json")
    (problem,) = problems(run_dir)
    assert problem.startswith("report.sha256: the run digest does not match")


def test_a_rendering_edited_with_its_digest_recomputed_fails(run_dir):
    html = (run_dir / "report.html").read_text().replace("</body>", "<p>All checks passed.</p></body>")
    (run_dir / "report.html").write_text(html)
    sha256sum_line(run_dir, "report.html")
    found = problems(run_dir)
    assert found[0].startswith("report.sha256: the renderings digest does not match")
    assert found[1].startswith("report.html: differs from what fttool renders from report.json and signoff.json")


@pytest.mark.parametrize("name", ["report.html", "report.md", "MODEL_CARD.md"])
def test_a_rendering_edited_with_every_digest_recomputed_fails_naming_it(run_dir, tmp_path, name):
    """The digests are not secret; what the sign-off signs (report.json, each entry) is: verify renders it again."""
    key = keygen(tmp_path / "dana")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"dana@bank.example {key.with_suffix('.pub').read_text()}")
    sign_off(run_dir, "Dana", "risk", key)
    text = (run_dir / name).read_text()
    (run_dir / name).write_text(text.replace("Dana", "Dana and the CISO", 1) + "\nAll checks passed.\n")
    write_digests(run_dir)
    result = invoke("verify", str(run_dir), "--allowed-signers", str(allowed))
    assert result.exit_code == 1
    assert (f"{run_dir}/{name}: differs from what fttool renders from report.json and signoff.json, which the "
            "sign-offs cover: it was edited after fttool wrote it; render it again with fttool report RUN_DIR"
            in result.stderr)
    # Rendered again, as the message says, it verifies under the same signature.
    assert invoke("report", str(run_dir)).exit_code == 0
    assert invoke("verify", str(run_dir), "--allowed-signers", str(allowed)).exit_code == 0


@pytest.mark.parametrize("name", ["recipe.yaml", "plan.json", "run_state.json", "MODEL_CARD.md", "report.md"])
def test_run_and_report_files_are_covered(run_dir, name):
    with open(run_dir / name, "a") as handle:
        handle.write("\n")
    assert problems(run_dir) == [f"{name}: sha256 differs from report.sha256: the file was changed"]


def test_a_rendering_cannot_be_removed_with_its_digest(run_dir):
    (run_dir / "report.html").unlink()
    lines = [line for line in (run_dir / "report.sha256").read_text().splitlines() if "report.html" not in line]
    (run_dir / "report.sha256").write_text("\n".join(lines) + "\n")
    assert "report.html: missing" in problems(run_dir)


def test_a_file_added_to_the_run_directory_fails_but_volatile_files_do_not(run_dir):
    (run_dir / "data" / "extra.jsonl").write_text('{"id": "smuggled"}\n')
    (run_dir / "logs").mkdir()
    (run_dir / "logs" / "split.error.log").write_text("Traceback\n")
    (run_dir / "review").mkdir()
    (run_dir / "review" / "review.csv").write_text("id\n")
    assert problems(run_dir) == ["data/extra.jsonl: not in the report's lineage: added after the run"]


def test_fttool_report_does_not_bless_a_hand_edited_report(run_dir):
    digests = (run_dir / "report.sha256").read_text()
    rewrite_report(run_dir, lambda r: r["data"]["counts"].update(quarantined=0))
    result = invoke("report", str(run_dir))
    assert result.exit_code == 2 and "edited after fttool wrote it" in result.stderr
    assert (run_dir / "report.sha256").read_text() == digests
    assert problems(run_dir)


def test_fttool_report_renders_an_unchanged_report_again(run_dir):
    (run_dir / "report.html").unlink()
    assert invoke("report", str(run_dir)).exit_code == 0
    assert verify(run_dir) == []


@pytest.mark.parametrize("name, content", [
    ("signoff.json", "{not json"), ("signoff.json", '{"by": "x"}'), ("report.sha256", "garbage line\n"),
    ("signoff.json", '[{"by": "x", "role": "y", "at": "z", "report_sha256": "0", "waivers": [3]}]'),
    ("report.json", "[1, 2"), ("report.json", '{"lineage": 3}'),
])
def test_garbage_evidence_is_a_clean_error_with_exit_2(run_dir, name, content):
    (run_dir / name).write_text(content)
    commands = [["verify", str(run_dir)], ["signoff", str(run_dir), "--by", "A", "--role", "B"]]
    for command in commands + ([["lineage", str(run_dir)]] if name == "report.json" else []):
        result = invoke(*command)
        assert result.exit_code == 2, (command, result.output)
        assert result.stderr.startswith("error: ") and name in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("name, content, line", [("signoff.json", "[\n{not json", 2),
                                                ("report.sha256", "abc  report.json\n", 1)])
def test_check_calls_garbage_evidence_invalid_input_not_a_violation(run_dir, tmp_path, name, content, line):
    policy = tmp_path / "lineage.yaml"
    policy.write_text(textwrap.dedent(LINEAGE_POLICY).lstrip())
    (run_dir / name).write_text(content)
    result = invoke("check", str(run_dir), "--policy", str(policy))
    assert result.exit_code == 2 and f"{run_dir / name}:{line}:1: " in result.stderr, result.output
    result = invoke("check", str(run_dir), "--policy", str(policy), "--format", "json")
    assert result.exit_code == 2 and json.loads(result.stdout)


def test_the_run_verifies_wherever_it_is_copied_and_sources_are_checked_on_request(run_dir, tmp_path):
    archive = tmp_path / "archive" / "deep" / "one"
    shutil.copytree(run_dir, archive)
    assert verify(archive) == []
    assert verify(run_dir, sources=True) == []
    with open(tmp_path / "records.jsonl", "a") as handle:
        handle.write("{}\n")
    assert verify(run_dir) == [], "the run's own files are unchanged"
    assert [p.path for p in verify(run_dir, sources=True)] == ["records.jsonl"]
    assert [p.path for p in verify(archive, sources=True, recipe_dir=tmp_path)] == ["records.jsonl"]
    result = invoke("verify", str(archive), "--sources", "--recipe-dir", str(tmp_path))
    assert result.exit_code == 1 and "records.jsonl: source sha256 differs" in result.stderr


# -- sign-off -----------------------------------------------------------------------------------------
def test_signoff_records_the_run_digest_and_catches_a_later_rewrite(run_dir):
    entry = sign_off(run_dir, "Dana Reviewer", "model risk officer")
    assert entry["report_sha256"] == sha256_file(run_dir / "report.json") and len(entry["run_digest"]) == 64
    assert verify(run_dir) == []
    # Someone edits the report and recomputes every digest with fttool's own code: the sign-off still catches it.
    forge_report(run_dir, lambda r: r["data"]["counts"].update(quarantined=0))
    (problem,) = problems(run_dir)
    assert "the run changed after Dana Reviewer (model risk officer)" in problem


def test_the_report_shows_a_signoff_and_rendering_it_again_keeps_the_signoff(run_dir):
    entry = sign_off(run_dir, "Dana Reviewer", "model risk officer")
    assert "Dana Reviewer" in (run_dir / "report.html").read_text() and "Dana Reviewer" in (
        run_dir / "report.md").read_text()
    assert invoke("report", str(run_dir)).exit_code == 0
    assert verify(run_dir) == [] and json.loads((run_dir / "signoff.json").read_text()) == [entry]


def test_signoff_is_refused_for_a_run_that_does_not_verify(run_dir):
    (run_dir / "quarantine.jsonl").write_text("")
    result = invoke("signoff", str(run_dir), "--by", "X", "--role", "Y")
    assert result.exit_code == 1 and "cannot be signed off" in result.stderr
    assert not (run_dir / "signoff.json").exists()


def test_a_signoff_waits_for_no_one_while_another_command_writes_the_run(run_dir):
    import fcntl

    with open(run_dir / ".fttool.lock", "w") as held:  # as the holder writes it
        held.write("fttool review import, pid 99, since 2026-01-01T00:00:00+00:00\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = invoke("signoff", str(run_dir), "--by", "Ada", "--role", "risk")
    assert result.exit_code == 1 and "in use by another fttool command (fttool review import, pid 99" in result.stderr
    assert not (run_dir / "signoff.json").exists()
    assert invoke("signoff", str(run_dir), "--by", "Ada", "--role", "risk").exit_code == 0


@pytest.mark.parametrize("by, role", [("", "risk"), ("   ", "risk"), ("Ada\nEve", "risk"), ("Ada", "risk\rofficer"),
                                      ("Ada\u2028Eve", "risk"), ("Ada", "")])
def test_signoff_names_are_non_empty_single_line_text(run_dir, by, role):
    result = invoke("signoff", str(run_dir), "--by", by, "--role", role)
    assert result.exit_code == 2 and "error: the " in result.stderr
    assert not (run_dir / "signoff.json").exists()


@pytest.fixture
def failing_run(tmp_path):
    recipe = data_project(tmp_path / "project", extra="report: {policy: strict.yaml}\n")
    (tmp_path / "project" / "strict.yaml").write_text(textwrap.dedent(FAILING_POLICY).lstrip())
    run_dir = run_plan(compile_recipe(recipe), tmp_path / "runs" / "failing")
    assert json.loads((run_dir / "report.json").read_text())["policy"]["passed"] is False
    return run_dir


def test_a_run_whose_policy_failed_is_signed_off_only_with_a_waiver(failing_run):
    result = invoke("signoff", str(failing_run), "--by", "Ada", "--role", "risk")
    assert result.exit_code == 1 and "the report policy strict failed: DATA-900" in result.stderr
    assert invoke("signoff", str(failing_run), "--by", "Ada", "--role", "risk", "--waive", "DATA-900").exit_code == 2
    with pytest.raises(SignoffRefused, match="--waive PII-101: no such rule failed"):
        sign_off(failing_run, "Ada", "risk", waive={"PII-101": "not needed", "DATA-900": "known"})
    result = invoke("signoff", str(failing_run), "--by", "Ada", "--role", "risk", "--waive", "DATA-900",
                    "--reason", "the malformed line is a planted test case")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads((failing_run / "signoff.json").read_text())
    assert entry["waivers"] == [{"rule": "DATA-900", "reason": "the malformed line is a planted test case"}]
    verified = invoke("verify", str(failing_run))
    assert verified.exit_code == 0 and "waived DATA-900: the malformed line is a planted test case" in verified.stderr
    for name in ("report.html", "report.md", "MODEL_CARD.md"):  # rendered again with the sign-off, which holds
        assert "DATA-900: the malformed line is a planted test case" in (failing_run / name).read_text(), name


def test_a_waiver_is_shown_but_counts_only_when_signed_by_an_allowed_key(failing_run, tmp_path):
    """verify shows every waiver and says which count; fttool check judges the report by its policy whatever
    signoff.json waives."""
    strict = tmp_path / "strict.yaml"
    strict.write_text(textwrap.dedent(FAILING_POLICY).lstrip())
    sign_off(failing_run, "Ada", "risk", waive={"DATA-900": "unsigned claim"})
    key = keygen(tmp_path / "dana")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"dana@bank.example {key.with_suffix('.pub').read_text()}")
    sign_off(failing_run, "Dana", "risk", key, waive={"DATA-900": "signed waiver"})
    uncounted = "(counts for nothing: a waiver unlocks an export only in a sign-off of the run as it is, signed by a " \
                "key --allowed-signers FILE lists)"
    result = invoke("verify", str(failing_run))
    assert result.exit_code == 0
    assert f"waived DATA-900: unsigned claim {uncounted}" in result.stderr
    assert f"waived DATA-900: signed waiver {uncounted}" in result.stderr  # no file says whose key signed it
    result = invoke("verify", str(failing_run), "--allowed-signers", str(allowed))
    assert result.exit_code == 0
    assert f"waived DATA-900: unsigned claim {uncounted}" in result.stderr
    assert "waived DATA-900: signed waiver\n" in result.stderr
    for args in ((), ("--allowed-signers", str(allowed))):
        result = invoke("check", str(failing_run), "--policy", str(strict), *args)
        assert result.exit_code == 1 and "DATA-900" in result.output, args
    assert "Policy strict failed: DATA-900." in (failing_run / "MODEL_CARD.md").read_text()


def test_signed_signoffs_are_checked_against_allowed_signers(run_dir, tmp_path):
    key, other = keygen(tmp_path / "dana"), keygen(tmp_path / "eve")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"dana@bank.example {key.with_suffix('.pub').read_text()}")
    assert invoke("signoff", str(run_dir), "--by", "Dana", "--role", "risk", "--key", str(key)).exit_code == 0
    assert invoke("signoff", str(run_dir), "--by", "Sam", "--role", "audit").exit_code == 0
    result = invoke("verify", str(run_dir), "--allowed-signers", str(allowed))
    assert result.exit_code == 0, result.output
    assert "signed by dana@bank.example" in result.stderr and "Sam (audit)" in result.stderr
    assert "unsigned" in result.stderr

    # A signature by a key the allowed signers do not list fails.
    assert invoke("signoff", str(run_dir), "--by", "Eve", "--role", "risk", "--key", str(other)).exit_code == 0
    result = invoke("verify", str(run_dir), "--allowed-signers", str(allowed))
    assert result.exit_code == 1 and "Eve (risk)" in result.stderr and "not in the allowed signers" in result.stderr

    # A signed entry edited afterwards (the name, or the run digest it approved) fails its signature.
    entries = json.loads((run_dir / "signoff.json").read_text())[:1]
    entries[0]["by"] = "Mallory"
    (run_dir / "signoff.json").write_text(json.dumps(entries))
    result = invoke("verify", str(run_dir), "--allowed-signers", str(allowed))
    assert result.exit_code == 1 and "signature invalid" in result.stderr


def test_a_signature_holds_only_for_the_run_it_signed(run_dir, tmp_path):
    key = keygen(tmp_path / "dana")
    sign_off(run_dir, "Dana", "risk", key)
    # Forge: edit the report, recompute every digest, and move the signed entry onto the new run digest.
    rewrite_report(run_dir, lambda r: r["data"]["counts"].update(quarantined=0))
    digest = write_digests(run_dir)
    entries = json.loads((run_dir / "signoff.json").read_text())
    entries[0].update(run_digest=digest, report_sha256=sha256_file(run_dir / "report.json"))
    (run_dir / "signoff.json").write_text(json.dumps(entries))
    assert any("signature invalid" in problem for problem in problems(run_dir))


def test_the_model_card_says_who_signed_off_with_their_keys_or_that_no_one_did(run_dir, tmp_path):
    from fttool.governance.signing import fingerprint

    assert "## Sign-offs\n\nUnsigned: no one has signed off this run (`fttool signoff`)." in (
        run_dir / "MODEL_CARD.md").read_text()
    key = keygen(tmp_path / "dana")
    signed = sign_off(run_dir, "Dana", "model risk officer", key)
    unsigned = sign_off(run_dir, "Sam", "audit")
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert (f"- Dana (model risk officer), {signed['at']}: approved this run (signed with key "
            f"{fingerprint(key.with_suffix('.pub').read_text())})") in card
    assert f"- Sam (audit), {unsigned['at']}: approved this run (unsigned)" in card
    assert "Unsigned: no one" not in card and signed["key"].split()[1] not in card  # the fingerprint, not the key
    assert verify(run_dir) == []  # the card, rendered again with each sign-off, is what verify renders


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_signatures_are_openssh_signatures(run_dir, tmp_path):
    """ssh-keygen -Y verify accepts fttool's signature, and fttool accepts one made by ssh-keygen -Y sign."""
    from fttool.governance import signing

    key = keygen(tmp_path / "dana")
    key.chmod(0o600)
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"dana@bank.example {key.with_suffix('.pub').read_text()}")
    message = tmp_path / "message"
    message.write_bytes(b"run digest " + hashlib.sha256(b"x").hexdigest().encode())
    armored, public = signing.sign(message.read_bytes(), key)
    (tmp_path / "message.sig").write_text(armored)
    checked = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "dana@bank.example",
                              "-n", signing.NAMESPACE, "-s", str(tmp_path / "message.sig")],
                             stdin=message.open("rb"), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    (tmp_path / "message.sig").unlink()
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", signing.NAMESPACE, str(message)],
                   check=True, capture_output=True)
    assert signing.verify(message.read_bytes(), (tmp_path / "message.sig").read_text()) == public


def test_allowed_signers_in_gits_format(tmp_path):
    allowed = tmp_path / "allowed_signers"
    allowed.write_text("# reviewers\n"
                       "dana@bank.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n"
                       'sam@bank.example,sam@x namespaces="git" ssh-ed25519 AAAAB\n'
                       'kim@bank.example namespaces="git,fttool-signoff" ssh-ed25519 AAAAC\n')
    assert [(s.principals, s.public_key) for s in read_allowed_signers(allowed)] == [
        ("dana@bank.example", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"), ("kim@bank.example", "ssh-ed25519 AAAAC")]
    allowed.write_text("just-a-name\n")
    with pytest.raises(SignatureError, match="allowed_signers:1: not 'principals"):
        read_allowed_signers(allowed)


# -- policy gate and lineage export -------------------------------------------------------------------
def test_check_gates_on_the_whole_run_verifying(run_dir, tmp_path):
    policy = tmp_path / "lineage.yaml"
    policy.write_text(textwrap.dedent(LINEAGE_POLICY).lstrip())
    assert invoke("check", str(run_dir), "--policy", str(policy)).exit_code == 0
    # An edited figure with its sha256sum line recomputed: the lineage alone would still match.
    rewrite_report(run_dir, lambda r: r["data"]["counts"].update(quarantined=0))
    sha256sum_line(run_dir, "report.json")
    result = invoke("check", str(run_dir), "--policy", str(policy))
    assert result.exit_code == 1 and "LIN-001" in result.output and "run digest does not match" in result.output


def _signed_by(tmp_path: Path, run_dir: Path, who: str, name: str = "Dana") -> Path:
    """A key made for `who`, an allowed signers file listing it, and a sign-off by `name` signed with it."""
    key = keygen(tmp_path / who)
    allowed = tmp_path / f"{who}.allowed_signers"
    allowed.write_text(f"{who}@bank.example {key.with_suffix('.pub').read_text()}")
    sign_off(run_dir, name, "risk", key)
    return allowed


def test_check_verifies_the_signoffs_against_allowed_signers_and_fails_closed(run_dir, tmp_path):
    policy = tmp_path / "lineage.yaml"
    policy.write_text(textwrap.dedent(LINEAGE_POLICY).lstrip())
    allowed = _signed_by(tmp_path, run_dir, "dana")
    assert invoke("check", str(run_dir), "--policy", str(policy), "--allowed-signers", str(allowed)).exit_code == 0
    # Without allowed signers, the gate cannot tell whose key signed: a signed run fails, saying what to pass.
    result = invoke("check", str(run_dir), "--policy", str(policy))
    assert result.exit_code == 1 and "LIN-001" in result.output
    assert ("signoff.json: the sign-off by Dana (risk) at" in result.output
            and "is signed, but no allowed signers file says whose keys count: pass --allowed-signers FILE"
            in result.output)

    # Forged: the report edited and rendered again with every digest rewritten, and Mallory signs as Dana.
    (run_dir / "signoff.json").unlink()
    forge_report(run_dir, lambda r: r["data"]["counts"].update(quarantined=0))
    _signed_by(tmp_path, run_dir, "mallory", name="Dana")
    result = invoke("check", str(run_dir), "--policy", str(policy), "--allowed-signers", str(allowed))
    assert result.exit_code == 1 and "LIN-001" in result.output
    assert "Dana (risk)" in result.output and "signed with a key that is not in the allowed signers" in result.output
    assert "no sign-off of the run as it is now is signed by a key the allowed signers file lists" in result.output
    # The forged sign-off removed too: no digest is secret, so only the allowed signers can fail it.
    (run_dir / "signoff.json").unlink()
    forge_report(run_dir, lambda r: None)
    assert invoke("check", str(run_dir), "--policy", str(policy)).exit_code == 0
    result = invoke("check", str(run_dir), "--policy", str(policy), "--allowed-signers", str(allowed))
    assert result.exit_code == 1 and "no sign-off of the run as it is now is signed" in result.output


def test_check_calls_an_unreadable_allowed_signers_file_invalid_input(run_dir, tmp_path):
    policy = tmp_path / "lineage.yaml"
    policy.write_text(textwrap.dedent(LINEAGE_POLICY).lstrip())
    allowed = tmp_path / "allowed_signers"
    allowed.write_text("just-a-name\n")
    result = invoke("check", str(run_dir), "--policy", str(policy), "--allowed-signers", str(allowed))
    assert result.exit_code == 2 and f"{allowed}:1:1: not 'principals [options] key-type base64-key'" in result.output


def test_check_fails_a_rendering_edited_after_the_run(run_dir, tmp_path):
    policy = tmp_path / "lineage.yaml"
    policy.write_text(textwrap.dedent(LINEAGE_POLICY).lstrip())
    html = (run_dir / "report.html").read_text().replace("</body>", "<p>All checks passed.</p></body>")
    (run_dir / "report.html").write_text(html)
    write_digests(run_dir)
    result = invoke("check", str(run_dir), "--policy", str(policy))
    assert result.exit_code == 1 and "report.html: differs from what fttool renders" in result.output


def test_openlineage_event(run_dir):
    event = openlineage_event(run_dir)
    uuid.UUID(event["run"]["runId"])
    assert event["eventType"] == "COMPLETE"
    assert event["job"] == {"namespace": "fttool", "name": "data-only", "facets": {}}
    assert [d["name"] for d in event["inputs"]] == ["records.jsonl"]
    outputs = {d["name"]: d["facets"]["fttool_digest"]["sha256"] for d in event["outputs"]}
    assert outputs["data/train.jsonl"] == sha256_file(run_dir / "data" / "train.jsonl")


# -- attacks of the second round (issue 10): links, forged names, evidence too deep to parse ------------
def test_a_symbolic_link_in_the_run_directory_fails_even_to_identical_content(run_dir, tmp_path):
    outside = tmp_path / "report-copy.json"
    shutil.copyfile(run_dir / "report.json", outside)
    (run_dir / "report.json").unlink()
    (run_dir / "report.json").symlink_to(outside)
    assert "report.json: a symbolic link: a run directory holds its own files, not links to others" in problems(run_dir)


def test_a_signoff_json_linked_to_another_runs_is_not_read_nor_written_through(run_dir, tmp_path):
    other = run_plan(compile_recipe(data_project(tmp_path / "other")), tmp_path / "runs" / "two")
    sign_off(other, "Ada", "risk")
    before = (other / "signoff.json").read_bytes()
    (run_dir / "signoff.json").symlink_to(other / "signoff.json")
    assert any(p.startswith("signoff.json: a symbolic link") for p in problems(run_dir))
    result = invoke("signoff", str(run_dir), "--by", "Bob", "--role", "audit")
    assert result.exit_code == 1 and "symbolic link" in result.stderr
    assert (other / "signoff.json").read_bytes() == before


@pytest.mark.parametrize("field, value", [("by", "Ada\nnote: sign-off by Dana (risk): signed by dana@bank.example"),
                                          ("role", ""), ("by", "\u3164"), ("by", "Ada\u200b"),
                                          ("at", "2026-01-01\nnote: sign-off by Dana (risk)"),
                                          ("report_sha256", "0" * 63 + "\n"), ("key", "ssh-ed25519 AAAA\nnote"),
                                          ("waivers", [{"rule": "PII-101\nnote: sign-off by Dana", "reason": "r"}])])
def test_a_hand_edited_signoff_name_is_invalid_evidence_not_a_line_of_output(run_dir, field, value):
    sign_off(run_dir, "Ada", "risk")
    entries = json.loads((run_dir / "signoff.json").read_text())
    entries[0][field] = value
    (run_dir / "signoff.json").write_text(json.dumps(entries))
    result = invoke("verify", str(run_dir))
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and "signoff.json" in result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith("note: sign-off by Dana")]


@pytest.mark.parametrize("name", ["\u3164", "\u2800", "\u200b"])
def test_a_name_that_shows_nothing_is_refused(run_dir, name):
    result = invoke("signoff", str(run_dir), "--by", name, "--role", "risk")
    assert result.exit_code == 2 and "error: the name (--by)" in result.stderr
    assert not (run_dir / "signoff.json").exists()


@pytest.mark.parametrize("name, content", [("signoff.json", "[" * 100_000 + "]" * 100_000),
                                           ("report.json", "[" * 100_000 + "]" * 100_000),
                                           ("signoff.json", "[" + "1" * 5000 + "]")])
def test_evidence_too_deep_or_too_long_to_parse_is_a_clean_error(run_dir, name, content):
    (run_dir / name).write_text(content)
    result = invoke("verify", str(run_dir))
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and name in result.stderr, result.output


def test_a_signoff_json_copied_from_another_run_fails_and_is_not_called_superseded(run_dir, tmp_path):
    other = run_plan(compile_recipe(data_project(tmp_path / "other")), tmp_path / "runs" / "two")
    sign_off(other, "Ada", "risk")
    shutil.copyfile(other / "signoff.json", run_dir / "signoff.json")
    result = invoke("verify", str(run_dir))
    assert result.exit_code == 1 and "the run changed after Ada (risk)" in result.stderr
    assert "before fttool added to it" not in result.stderr


def test_fttool_report_never_writes_through_a_link_to_a_file_elsewhere(run_dir, tmp_path):
    victim = tmp_path / "notes.html"
    victim.write_text("keep me\n")
    (run_dir / "report.html").unlink()
    (run_dir / "report.html").symlink_to(victim)
    result = invoke("report", str(run_dir))
    assert result.exit_code == 2 and "report.html is a symbolic link" in result.stderr
    assert victim.read_text() == "keep me\n"


@pytest.mark.parametrize("linked", ["review/review.csv", "review"])
def test_the_review_sheet_is_never_written_through_a_link(run_dir, tmp_path, linked):
    test_ids = [json.loads(line)["id"] for line in (run_dir / "data" / "test.jsonl").read_text().splitlines()]
    (run_dir / "evaluation").mkdir()
    (run_dir / "evaluation" / "predictions.jsonl").write_text(
        "".join(json.dumps({"id": i, "base": "b", "tuned": "t"}) + "\n" for i in test_ids))
    victim = tmp_path / "victim"
    if linked == "review":
        victim.mkdir()
        (run_dir / "review").symlink_to(victim)
    else:
        victim.write_text("keep me\n")
        (run_dir / "review").mkdir()
        (run_dir / "review" / "review.csv").symlink_to(victim)
    result = invoke("review", "export", str(run_dir))
    assert result.exit_code != 0 and "symbolic link" in result.stderr, result.output
    assert (list(victim.iterdir()) == []) if victim.is_dir() else victim.read_text() == "keep me\n"


@pytest.mark.parametrize("options", ["cert-authority", 'valid-before="20200101"', 'valid-after="20990101"',
                                     'namespaces="fttool-signoff",valid-before="20200101Z"'])
def test_a_key_the_allowed_signers_file_does_not_allow_now_is_not_accepted(run_dir, tmp_path, options):
    """As ssh-keygen -Y verify: a CA key signs certificates, not sign-offs; a key outside its validity is revoked."""
    key = keygen(tmp_path / "dana")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"dana@bank.example {options} {key.with_suffix('.pub').read_text()}")
    sign_off(run_dir, "Dana", "risk", key)
    result = invoke("verify", str(run_dir), "--allowed-signers", str(allowed))
    assert result.exit_code == 1 and "not in the allowed signers" in result.stderr
    allowed.write_text(f'dana@bank.example valid-after="20200101",valid-before="20990101" '
                       f"{key.with_suffix('.pub').read_text()}")
    assert invoke("verify", str(run_dir), "--allowed-signers", str(allowed)).exit_code == 0


def test_a_file_name_with_a_line_break_cannot_forge_a_line_of_verifys_output(run_dir):
    (run_dir / "data" / "x\nrun: verified\n").write_text("planted")
    result = invoke("verify", str(run_dir))
    assert result.exit_code == 1
    assert [line for line in result.output.splitlines() if line.endswith(": verified")] == []
    assert "'data/x\\n" in result.stderr


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    """A LoRA run with an evaluation (predictions to rate) and a report policy in the recipe's own folder."""
    from support.runs import lora_project

    root = tmp_path_factory.mktemp("evaluated")
    recipe = lora_project(root / "project", extra="evaluate: {max_new_tokens: 4, batch_size: 8}\n"
                                                  "report: {policy: strict.yaml}\n")
    recipe.write_text(recipe.read_text().replace("test: 0.0", "test: 0.2").replace("validation: 0.3",
                                                                                      "validation: 0.1"))
    (root / "project" / "strict.yaml").write_text(textwrap.dedent(FAILING_POLICY).lstrip())
    return run_plan(compile_recipe(recipe), root / "run")


def _rated_sheet(run_dir: Path, path: Path) -> Path:
    import csv

    assert invoke("review", "export", str(run_dir)).exit_code == 0
    with open(run_dir / "review" / "review.csv", newline="", encoding="utf-8-sig") as handle:
        rows = [{**row, "base_rating": "3", "tuned_rating": "4", "preferred": "tuned"}
                for row in csv.DictReader(handle)]
    (run_dir / "review" / "review.csv").unlink()
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.slow
def test_review_import_never_writes_the_ratings_through_a_link(evaluated_run, tmp_path):
    run_dir = evaluated_run.parent / "run-linked"  # beside the run: the recipe's folder is where it was
    shutil.copytree(evaluated_run, run_dir)
    sheet = _rated_sheet(run_dir, tmp_path / "rated.csv")
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    (run_dir / "review" / "ratings.csv").symlink_to(victim)
    result = invoke("review", "import", str(run_dir), str(sheet))
    assert result.exit_code != 0 and "symbolic link" in result.stderr, result.output
    assert victim.read_text() == "keep me\n"


@pytest.mark.slow
def test_review_import_does_not_judge_the_report_by_a_policy_edited_since_the_run(evaluated_run, tmp_path):
    """Loosening the policy file, then importing ratings, would rewrite a failed policy as passed with new digests."""
    project = Path(json.loads((evaluated_run / "report.json").read_text())["recipe"]["path"])
    run_dir = evaluated_run.parent / "run-copy"
    shutil.copytree(evaluated_run, run_dir)
    sheet = _rated_sheet(run_dir, tmp_path / "rated.csv")
    policy = (run_dir / project).parent / "strict.yaml"
    original, judged = policy.read_text(), (run_dir / "report.json").read_bytes()
    try:
        policy.write_text(original.replace("op: \"==\"", "op: \"!=\""))
        result = invoke("review", "import", str(run_dir), str(sheet))
        assert result.exit_code != 0 and "strict.yaml" in result.stderr and "changed since the run" in result.stderr
        assert (run_dir / "report.json").read_bytes() == judged
    finally:
        policy.write_text(original)
    assert invoke("review", "import", str(run_dir), str(sheet)).exit_code == 0


@pytest.mark.slow
def test_review_import_of_a_moved_run_says_where_the_policy_is_missing(evaluated_run, tmp_path):
    run_dir = tmp_path / "archive" / "run"
    shutil.copytree(evaluated_run, run_dir)
    sheet = _rated_sheet(run_dir, tmp_path / "rated.csv")
    result = invoke("review", "import", str(run_dir), str(sheet))
    assert result.exit_code == 2 and "the report policy the run was judged by is not there" in result.stderr
    assert isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("name", ["report.json", "report.sha256", "signoff.json"])
def test_evidence_that_is_not_a_regular_file_is_refused_not_waited_on(run_dir, tmp_path, name):
    """A FIFO planted as report.json made verify and the CI gate wait forever for a writer."""
    import os
    import sys

    (run_dir / name).unlink(missing_ok=True)
    os.mkfifo(run_dir / name)
    policy = tmp_path / "lineage.yaml"
    policy.write_text(textwrap.dedent(LINEAGE_POLICY).lstrip())
    for command in (["verify", str(run_dir)], ["check", str(run_dir), "--policy", str(policy)]):
        result = subprocess.run([sys.executable, "-m", "fttool", *command], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 2 and "not a regular file" in result.stderr, (command, result.stderr)


def test_with_allowed_signers_a_run_needs_a_signoff_signed_by_one_of_them(run_dir, tmp_path):
    """Otherwise a forger edits the report, recomputes every digest, deletes signoff.json, and the run verifies."""
    key = keygen(tmp_path / "dana")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"dana@bank.example {key.with_suffix('.pub').read_text()}")
    sign_off(run_dir, "Dana", "risk", key)
    assert invoke("verify", str(run_dir), "--allowed-signers", str(allowed)).exit_code == 0
    (run_dir / "signoff.json").unlink()
    forge_report(run_dir, lambda r: r["data"]["counts"].update(quarantined=0))
    assert verify(run_dir) == []  # the digests are not secret, and the renderings can be made again
    result = invoke("verify", str(run_dir), "--allowed-signers", str(allowed))
    assert result.exit_code == 1 and "no sign-off of the run as it is now is signed by a key" in result.stderr
    sign_off(run_dir, "Sam", "audit")  # an unsigned approval names nobody the file vouches for
    assert invoke("verify", str(run_dir), "--allowed-signers", str(allowed)).exit_code == 1
