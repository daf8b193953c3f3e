import json
from pathlib import Path

import pytest

from conftest import alpaca
from fttool.records import read_jsonl
from fttool.stages.ingest import IngestStage

# Planted in rejected lines; none may appear in a quarantine message.
SECRETS = ["Jane Roe", "078-05-1120", "jane@example.com", "SECRET", "12345", "moderator", "Mallory"]

ALPACA_LINES = [
    b'{"instruction": "How do I reset my PIN?", "output": "Use the app.", "region": "north"}',  # 1 kept
    b"",  # 2 blank
    b'{"instruction": "Call Jane Roe", "output": ',  # 3
    b'{"instruction": "caf\xe9 SECRET", "output": "ok"}',  # 4 latin-1 byte
    b'["Jane Roe", "078-05-1120"]',  # 5
    b'{"instruction": "jane@example.com"}',  # 6
    b'{"instruction": "   ", "output": "SECRET"}',  # 7
    b'{"instruction": "SECRET", "output": 12345}',  # 8
    b'{"instruction": "SECRET", "output": "' + b"x" * 300 + b'"}',  # 9 over max_chars
    b"   \t",  # 10 blank
    b'{"instruction": "Opening hours?", "output": "Nine to five."}',  # 11 kept, no input
    b'{"instruction": "SECRET", "output": NaN}',  # 12
    b'{"instruction": "\\ud800 SECRET", "output": "ok"}',  # 13 lone surrogate
    b'{"instruction": "Fee?", "input": null, "output": "None.", "id": "theirs-7"}',  # 14 kept
]

CHAT_LINES = [
    json.dumps({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                             {"role": "assistant", "content": "Hello!"}]}).encode(),  # 1 kept
    json.dumps({"conversations": [{"from": "human", "value": "Rates?"}, {"from": "gpt", "value": "3%."}],
                "lang": "en"}).encode(),  # 2 kept, ShareGPT
    json.dumps({"messages": [{"role": "moderator", "content": "Mallory says SECRET"},
                             {"role": "assistant", "content": "ok"}]}).encode(),  # 3
    json.dumps({"messages": [{"role": "user", "content": "Jane Roe here"}]}).encode(),  # 4
    json.dumps({"messages": "Jane Roe"}).encode(),  # 5
    json.dumps({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": 12345}]}).encode(),  # 6
]

MAPPED_LINES = [
    json.dumps({"question": "Card lost?", "answer": "Block it in the app.", "topic": "cards"}).encode(),  # 1 kept
    json.dumps({"question": "SECRET", "reply": "Jane Roe"}).encode(),  # 2
]


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


@pytest.fixture
def messy_sources(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_lines(data / "messy.jsonl", ALPACA_LINES)
    write_lines(data / "chat.jsonl", CHAT_LINES)
    write_lines(data / "mapped.jsonl", MAPPED_LINES)
    return {"max_chars": 200, "sources": [
        {"path": "data/messy.jsonl", "format": "alpaca"},
        {"path": "data/chat.jsonl", "format": "chat", "tag": "chats"},
        {"path": "data/mapped.jsonl", "format": "alpaca", "tag": "faq",
         "fields": {"instruction": "question", "output": "answer"}},
    ]}


@pytest.fixture
def ingested(run_stage, messy_sources):
    result, outputs = run_stage("ingest", messy_sources, {})
    return result, list(read_jsonl(outputs["records"])), list(read_jsonl(outputs["quarantine"]))


def test_quarantine_names_each_rejected_line_and_reason(ingested):
    _, _, quarantine = ingested
    assert [(q["source"], q["line"], q["reason"]) for q in quarantine] == [
        ("data/messy.jsonl", 3, "malformed_json"),
        ("data/messy.jsonl", 4, "invalid_utf8"),
        ("data/messy.jsonl", 5, "not_an_object"),
        ("data/messy.jsonl", 6, "missing_field"),
        ("data/messy.jsonl", 7, "empty_field"),
        ("data/messy.jsonl", 8, "wrong_type"),
        ("data/messy.jsonl", 9, "too_long"),
        ("data/messy.jsonl", 12, "malformed_json"),
        ("data/messy.jsonl", 13, "invalid_utf8"),
        ("data/chat.jsonl", 3, "unknown_role"),
        ("data/chat.jsonl", 4, "no_assistant_message"),
        ("data/chat.jsonl", 5, "wrong_type"),
        ("data/chat.jsonl", 6, "wrong_type"),
        ("data/mapped.jsonl", 2, "missing_field"),
    ]


def test_quarantine_messages_name_fields_but_never_values(ingested):
    _, _, quarantine = ingested
    messages = {q["line"]: q["message"] for q in quarantine if q["source"] == "data/messy.jsonl"}
    assert messages[3] == "not valid JSON: Expecting value at character 44"
    assert messages[4] == "byte 21 of the line is not valid UTF-8"
    assert messages[6] == "field 'output' is missing"
    assert messages[8] == "field 'output' is a number, expected a string"
    assert messages[9] == "text is 306 characters, above max_chars 200"
    chat = {q["line"]: q["message"] for q in quarantine if q["source"] == "data/chat.jsonl"}
    assert chat[6] == "conversations[1].value is a number, expected a string"
    mapped = [q["message"] for q in quarantine if q["source"] == "data/mapped.jsonl"]
    assert mapped == ["field 'answer' (output) is missing"]
    for entry in quarantine:
        for secret in SECRETS:
            assert secret not in entry["message"], (entry, secret)


def test_records_take_the_internal_shape(ingested):
    _, records, _ = ingested
    first, no_input, null_input = records[:3]
    assert first == alpaca("How do I reset my PIN?", "Use the app.", region="north") | {"source": "messy.jsonl"}
    assert no_input["input"] == "" and no_input["meta"] == {}
    assert null_input["input"] == "" and null_input["meta"] == {"id": "theirs-7"}
    assert null_input["id"] != "theirs-7"

    system_chat, sharegpt, mapped = records[3:]
    assert system_chat["source"] == "chats" and [m["role"] for m in system_chat["messages"]] == [
        "system", "user", "assistant"]
    assert sharegpt["messages"] == [{"role": "user", "content": "Rates?"}, {"role": "assistant", "content": "3%."}]
    assert sharegpt["meta"] == {"lang": "en"} and sharegpt["format"] == "chat"
    assert mapped == alpaca("Card lost?", "Block it in the app.", topic="cards") | {"source": "faq"}


def test_every_line_is_accounted_for(ingested):
    result, records, quarantine = ingested
    assert result.records_read == 12 + 6 + 2
    assert result.records_read - sum(result.removed.values()) == len(records) == 6
    assert sum(result.removed.values()) == len(quarantine)
    assert result.removed == {"empty_field": 1, "invalid_utf8": 2, "malformed_json": 2, "missing_field": 2,
                              "no_assistant_message": 1, "not_an_object": 1, "too_long": 1, "unknown_role": 1,
                              "wrong_type": 3}
    assert result.summary["quarantined_by_reason"] == result.removed
    assert result.summary["blank_lines"] == 2
    assert result.summary["sources"] == [
        {"path": "data/messy.jsonl", "tag": "messy.jsonl", "format": "alpaca", "lines": 12, "kept": 3,
         "quarantined": 9},
        {"path": "data/chat.jsonl", "tag": "chats", "format": "chat", "lines": 6, "kept": 2, "quarantined": 4},
        {"path": "data/mapped.jsonl", "tag": "faq", "format": "alpaca", "lines": 2, "kept": 1, "quarantined": 1},
    ]


def test_prompt_completion_and_byte_order_mark(run_stage, tmp_path):
    (tmp_path / "pc.jsonl").write_bytes(
        b'\xef\xbb\xbf{"prompt": "2+2?", "completion": "4"}\r\n{"prompt": "3+3?"}\r\n')
    result, outputs = run_stage("ingest", {"max_chars": 100, "sources": [
        {"path": "pc.jsonl", "format": "prompt_completion"}]}, {})
    [record] = read_jsonl(outputs["records"])
    assert (record["prompt"], record["completion"], record["meta"]) == ("2+2?", "4", {})
    [rejected] = read_jsonl(outputs["quarantine"])
    assert (rejected["line"], rejected["reason"], rejected["message"]) == (
        2, "missing_field", "field 'completion' is missing")
    assert result.records_read == 2


def test_identical_examples_get_the_same_id_across_sources(run_stage, tmp_path):
    (tmp_path / "a.jsonl").write_text('{"instruction": "Q", "output": "A", "region": "x"}\n')
    (tmp_path / "b.jsonl").write_text('{"q": "Q", "a": "A"}\n')
    _, outputs = run_stage("ingest", {"max_chars": 100, "sources": [
        {"path": "a.jsonl", "format": "alpaca"},
        {"path": "b.jsonl", "format": "alpaca", "fields": {"instruction": "q", "output": "a"}}]}, {})
    first, second = read_jsonl(outputs["records"])
    assert first["id"] == second["id"] == alpaca("Q", "A")["id"]
    assert (first["source"], second["source"]) == ("a.jsonl", "b.jsonl")


def test_external_inputs_are_the_source_paths(messy_sources):
    assert IngestStage.external_inputs(messy_sources) == ["data/messy.jsonl", "data/chat.jsonl", "data/mapped.jsonl"]
