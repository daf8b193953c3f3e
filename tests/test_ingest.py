import datetime
import json
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import alpaca
from support.data import ingest_params, tiny_tokenizer

from fttool.data import containers
from fttool.data.hub import HubSourceError
from fttool.data.records import map_text_fields, prompt_and_response, read_jsonl, text_fields
from fttool.data.settings import IngestParams
from fttool.pipeline.params import build
from fttool.recipe import RecipeInvalid, compile_recipe
from fttool.stages.ingest import IngestStage
from fttool.training.examples import IGNORED_LABEL, tokenized_example

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
    return ingest_params([
        {"path": "data/messy.jsonl", "format": "alpaca"},
        {"path": "data/chat.jsonl", "format": "chat", "tag": "chats"},
        {"path": "data/mapped.jsonl", "format": "alpaca", "tag": "faq",
         "fields": {"instruction": "question", "output": "answer"}},
    ])


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
        {"path": "data/messy.jsonl", "tag": "messy.jsonl", "format": "alpaca", "container": "jsonl", "lines": 12,
         "kept": 3, "quarantined": 9, "meta_fields": {"id": 1, "region": 1}},
        {"path": "data/chat.jsonl", "tag": "chats", "format": "chat", "container": "jsonl", "lines": 6, "kept": 2,
         "quarantined": 4, "meta_fields": {"lang": 1}},
        {"path": "data/mapped.jsonl", "tag": "faq", "format": "alpaca", "container": "jsonl", "lines": 2, "kept": 1,
         "quarantined": 1, "meta_fields": {"topic": 1}},
    ]


def test_prompt_completion_and_byte_order_mark(run_stage, tmp_path):
    (tmp_path / "pc.jsonl").write_bytes(
        b'\xef\xbb\xbf{"prompt": "2+2?", "completion": "4"}\r\n{"prompt": "3+3?"}\r\n')
    result, outputs = run_stage("ingest", ingest_params([
        {"path": "pc.jsonl", "format": "prompt_completion"}], max_chars=100), {})
    [record] = read_jsonl(outputs["records"])
    assert (record["prompt"], record["completion"], record["meta"]) == ("2+2?", "4", {})
    [rejected] = read_jsonl(outputs["quarantine"])
    assert (rejected["line"], rejected["reason"], rejected["message"]) == (
        2, "missing_field", "field 'completion' is missing")
    assert result.records_read == 2


def test_identical_examples_get_the_same_id_across_sources(run_stage, tmp_path):
    (tmp_path / "a.jsonl").write_text('{"instruction": "Q", "output": "A", "region": "x"}\n')
    (tmp_path / "b.jsonl").write_text('{"q": "Q", "a": "A"}\n')
    _, outputs = run_stage("ingest", ingest_params([
        {"path": "a.jsonl", "format": "alpaca"},
        {"path": "b.jsonl", "format": "alpaca", "fields": {"instruction": "q", "output": "a"}}], max_chars=100), {})
    first, second = read_jsonl(outputs["records"])
    assert first["id"] == second["id"] == alpaca("Q", "A")["id"]
    assert (first["source"], second["source"]) == ("a.jsonl", "b.jsonl")


def test_external_inputs_are_the_source_paths(messy_sources):
    assert IngestStage.external_inputs(build(IngestParams, messy_sources)) == [
        "data/messy.jsonl", "data/chat.jsonl", "data/mapped.jsonl"]


def ingest_one(run_stage, path: str, fmt: str = "alpaca", **source):
    """Ingest one source; returns the result, the records and the quarantine entries."""
    result, outputs = run_stage("ingest", ingest_params([{"path": path, "format": fmt, **source}]), {})
    records, quarantine = list(read_jsonl(outputs["records"])), list(read_jsonl(outputs["quarantine"]))
    assert result.records_read - sum(result.removed.values()) == len(records)
    assert sum(result.removed.values()) == len(quarantine)
    for entry in quarantine:
        assert not any(secret in entry["message"] for secret in SECRETS), entry
    return result, records, quarantine


def where_and_why(quarantine: list[dict]) -> list[tuple]:
    return [(q["line"], q["reason"], q["message"]) for q in quarantine]


JSON_ARRAY = b"""\
[
  {"instruction": "Opening hours?", "output": "Nine to five."},
  {
    "instruction": "Fee?",
    "output": "None.",
    "tags": ["a]", "{b"]
  },
  {"instruction": "Call Jane Roe", "output": SECRET},
  ["Jane Roe"],
  {"instruction": "caf\xe9 SECRET", "output": "ok"},
  {"instruction": "Card lost?", "output": "Block it in the app."}
]
"""


@pytest.mark.parametrize("window", [1, 7, containers.JSON_CHUNK_CHARS])
def test_json_array_quarantines_a_malformed_element_and_keeps_line_numbers(run_stage, tmp_path, monkeypatch, window):
    monkeypatch.setattr(containers, "JSON_CHUNK_CHARS", window)  # elements cut across reads must decode the same
    (tmp_path / "faq.json").write_bytes(JSON_ARRAY)
    result, records, quarantine = ingest_one(run_stage, "faq.json")
    assert [r["instruction"] for r in records] == ["Opening hours?", "Fee?", "Card lost?"]
    assert records[1]["meta"] == {"tags": ["a]", "{b"]}
    assert where_and_why(quarantine) == [
        (8, "malformed_json", "not valid JSON: Expecting value at character 44 of the element"),
        (9, "not_an_object", "the element is an array, expected a JSON object"),
        (10, "invalid_utf8", "byte 21 of the element is not valid UTF-8"),
    ]
    assert result.records_read == 6
    assert result.summary["sources"][0]["container"] == "json"


@pytest.mark.parametrize("content, line, problem", [
    (b'[{"instruction": "Q", "output": "A"},\n {"instruction": "Jane Roe', 2, "the file ends inside this element"),
    (b'[{"instruction": "Q", "output": "A"}\n', 2, "the file ends before the array's closing ']'"),
    (b'[{"instruction": "Q", "output": "A"}]\n\n{"SECRET": 1}', 3, "there is more after the array's closing ']'"),
])
def test_json_array_broken_beyond_recovery_quarantines_the_rest_once(run_stage, tmp_path, content, line, problem):
    (tmp_path / "cut.json").write_bytes(content)
    result, records, quarantine = ingest_one(run_stage, "cut.json")
    assert [r["instruction"] for r in records] == ["Q"]
    assert where_and_why(quarantine) == [(line, "unreadable_rest", f"{problem}; the rest of the file is not read")]
    assert result.records_read == 2 and result.removed == {"unreadable_rest": 1}


def test_a_json_file_that_is_not_an_array_is_one_quarantined_entry(run_stage, tmp_path):
    (tmp_path / "one.json").write_text('\n{"instruction": "Q", "output": "A"}\n')
    result, records, quarantine = ingest_one(run_stage, "one.json")
    assert records == [] and result.records_read == 1
    assert where_and_why(quarantine) == [(2, "unreadable_rest", "the file is not a JSON array: it does not start "
                                                                "with '['; the rest of the file is not read")]


CSV = b"""\
instruction,input,output,region
How do I reset my PIN?,,Use the app.,north
"Two lines,
with a comma",,"And ""quotes""
over two lines",south

Fee?,,None.
Jane Roe,,
SECRET,12345
Rates?,,3%.,east,SECRET
"Jane Roe"SECRET,,x,y
Opening hours?,,Nine to five.,"caf\xe9"
Card lost?,,Block it.,west
"""


def test_csv_rows_keep_their_physical_line_numbers(run_stage, tmp_path):
    (tmp_path / "faq.csv").write_bytes(CSV)
    result, records, quarantine = ingest_one(run_stage, "faq.csv")
    assert [(r["instruction"], r["input"], r["output"], r["meta"]) for r in records] == [
        ("How do I reset my PIN?", "", "Use the app.", {"region": "north"}),
        ("Two lines,\nwith a comma", "", 'And "quotes"\nover two lines', {"region": "south"}),
        ("Fee?", "", "None.", {}),  # a row cut short lacks the cells after it
        ("Card lost?", "", "Block it.", {"region": "west"}),
    ]
    assert where_and_why(quarantine) == [
        (8, "empty_field", "field 'output' is empty"),
        (9, "missing_field", "field 'output' is missing"),
        (10, "malformed_csv", "the row has 5 cells but the header names 4 columns"),
        (11, "malformed_csv", "not valid CSV: ',' expected after '\"'"),
        (12, "invalid_utf8", "the cell in column 'region' is not valid UTF-8"),
    ]
    assert result.records_read == 9 and result.summary["blank_lines"] == 1
    assert result.summary["sources"][0]["container"] == "csv"


def test_csv_values_are_strings(run_stage, tmp_path):
    (tmp_path / "n.csv").write_text("prompt,completion,score\n2+2?,4,0.9\n")
    _, [record], _ = ingest_one(run_stage, "n.csv", "prompt_completion")
    assert (record["completion"], record["meta"]) == ("4", {"score": "0.9"})


def test_parquet_rows_stream_in_batches_and_name_their_row(run_stage, tmp_path, monkeypatch):
    monkeypatch.setattr(containers, "PARQUET_BATCH_ROWS", 2)  # rows are numbered across batches
    table = pa.table({
        "instruction": ["How do I reset my PIN?", "Jane Roe", "Fee?", "SECRET"],
        "output": ["Use the app.", None, "None.", "ok"],
        "input": [None, None, None, 12345],
        "asked": [datetime.date(2024, 5, 1), None, None, None],
    })
    pq.write_table(table, tmp_path / "faq.parquet", row_group_size=3)
    result, records, quarantine = ingest_one(run_stage, "faq.parquet")
    assert [(r["instruction"], r["input"], r["meta"]) for r in records] == [
        ("How do I reset my PIN?", "", {"asked": "2024-05-01"}), ("Fee?", "", {"asked": None})]
    assert where_and_why(quarantine) == [
        (2, "wrong_type", "row 2: field 'output' is null, expected a string"),
        (4, "wrong_type", "row 4: field 'input' is a number, expected a string"),
    ]
    assert result.records_read == 4 and result.summary["sources"][0]["container"] == "parquet"


def test_a_parquet_column_of_the_wrong_type_rejects_every_row(run_stage, tmp_path):
    pq.write_table(pa.table({"prompt": ["2+2?", "3+3?"], "completion": [4, 6]}), tmp_path / "sums.parquet")
    result, records, quarantine = ingest_one(run_stage, "sums.parquet", "prompt_completion")
    assert records == [] and result.removed == {"wrong_type": 2}
    assert [q["message"] for q in quarantine] == [f"row {n}: field 'completion' is a number, expected a string"
                                                  for n in (1, 2)]


def test_an_unreadable_parquet_file_is_one_quarantined_entry(run_stage, tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 SECRET")
    result, records, quarantine = ingest_one(run_stage, "broken.parquet")
    assert records == [] and result.records_read == 1
    assert where_and_why(quarantine) == [(1, "unreadable_rest", "row 1: the file cannot be read as Parquet "
                                                                "(ArrowInvalid); the rest of the file is not read")]


def test_the_container_key_overrides_the_extension(run_stage, tmp_path):
    (tmp_path / "export.txt").write_text('{"instruction": "Q", "output": "A"}\n')
    result, [record], _ = ingest_one(run_stage, "export.txt", container="jsonl")
    assert record["instruction"] == "Q" and result.summary["sources"][0]["container"] == "jsonl"


def test_text_format(run_stage, tmp_path):
    (tmp_path / "notes.ndjson").write_text('{"body": "Rates rose.", "lang": "en"}\n{"body": " "}\n{"text": "x"}\n')
    _, [record], quarantine = ingest_one(run_stage, "notes.ndjson", "text", fields={"text": "body"})
    assert (record["format"], record["text"], record["meta"]) == ("text", "Rates rose.", {"lang": "en"})
    assert [q["message"] for q in quarantine] == ["field 'body' (text) is empty", "field 'body' (text) is missing"]
    assert list(text_fields(record)) == [("text", "Rates rose.")]
    assert map_text_fields(record, lambda path, text: text.upper())["text"] == "RATES ROSE."
    assert prompt_and_response(record) == ("", "Rates rose.")


def write_recipe(tmp_path: Path, sources: str) -> Path:
    for name in ("a/d.jsonl", "b/d.jsonl"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text('{"instruction": "Q", "output": "A"}\n')
    path = tmp_path / "recipe.yaml"
    path.write_text("name: tags\ndata:\n  sources:\n" + textwrap.indent(textwrap.dedent(sources).lstrip(), "    "))
    return path


def compile_errors(path: Path) -> list[str]:
    with pytest.raises(RecipeInvalid) as info:
        compile_recipe(path)
    return [str(error) for error in info.value.errors]


def test_two_sources_with_the_same_tag_are_a_compile_error(tmp_path):
    path = write_recipe(tmp_path, """
        - {path: a/d.jsonl, format: alpaca, tag: faq}
        - {path: b/d.jsonl, format: alpaca, tag: faq}
        """)
    assert compile_errors(path) == [f"{path}:5:46: tag 'faq' is already used by data.sources[0]; "
                                    "give each source its own tag (at data.sources[1].tag)"]


def test_sources_tagged_by_the_same_file_name_are_a_compile_error(tmp_path):
    path = write_recipe(tmp_path, """
        - {path: a/d.jsonl, format: alpaca}
        - {path: b/d.jsonl, format: alpaca}
        - {path: b/d.jsonl, format: alpaca, tag: b}
        """)
    assert compile_errors(path) == [f"{path}:5:14: tag 'd.jsonl' is already used by data.sources[0]; "
                                    "give each source its own tag (at data.sources[1].path)"]


def test_a_source_whose_container_cannot_be_told_is_a_compile_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "d.txt").write_text("")
    path = write_recipe(tmp_path, """
        - {path: a/d.txt, format: alpaca}
        - {path: a/d.txt, format: chat, container: csv, tag: chats}
        """)
    assert compile_errors(path) == [
        f"{path}:4:14: cannot tell how 'a/d.txt' is stored from its extension; add container: one of jsonl, json, "
        "csv, parquet (at data.sources[0].path)",
        f"{path}:5:31: CSV cells are plain strings, so a CSV source cannot hold chat messages "
        "(at data.sources[1].format)",
    ]


# -- chats in the shapes other tools export: ShareGPT tool calls, typed content parts --------------------------
TOOLS = [{"name": "get_rate", "description": "Exchange rate", "parameters": {"type": "object", "properties": {
    "currency": {"type": "string"}}, "required": ["currency"]}}]


def tool_chat(**extra) -> dict:
    """A ShareGPT record shaped like LLaMA-Factory's glaive tool-call demo: a call, its result, two answers."""
    return {"conversations": [
        {"from": "human", "value": "Hi there"},
        {"from": "gpt", "value": "Hello friend"},
        {"from": "human", "value": "Rate for EUR?"},
        {"from": "function_call", "value": json.dumps({"name": "get_rate", "arguments": {"currency": "EUR"}})},
        {"from": "observation", "value": json.dumps({"rate": 1.1})},
        {"from": "gpt", "value": "It is 1.1 today"}], "tools": json.dumps(TOOLS), **extra}


def test_sharegpt_tool_calls_become_tool_call_and_tool_messages(run_stage, tmp_path):
    (tmp_path / "tools.json").write_text(json.dumps([tool_chat(system="You convert money."), tool_chat()]))
    result, records, quarantine = ingest_one(run_stage, "tools.json", "sharegpt")
    assert quarantine == [] and len(records) == 2
    first = records[0]
    assert first["format"] == "chat" and first["assistant_turns"] == "all" and first["meta"] == {}
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant", "user", "tool_call", "tool",
                                                       "assistant"]
    assert first["messages"][0]["content"] == "You convert money."
    assert first["tools"] == TOOLS
    assert result.summary["sources"][0]["format"] == "sharegpt"


@pytest.mark.parametrize("change, reason, message", [
    ({"tools": "[{not json"}, "malformed_tools", "field 'tools' is a string but not valid JSON"),
    ({"tools": 7}, "malformed_tools", "field 'tools' is a number, expected an array of function schemas"),
    ({"call": "get_rate(EUR)"}, "malformed_tool_call",
     'conversations[3].value is not valid JSON; a tool call is {"name": ..., "arguments": {...}}'),
    ({"call": '{"arguments": {}}'}, "malformed_tool_call",
     'conversations[3].value does not name a function: a tool call is {"name": ..., "arguments": {...}}'),
])
def test_broken_tools_and_tool_calls_are_quarantined_with_a_reason(run_stage, tmp_path, change, reason, message):
    record = tool_chat()
    if "call" in change:
        record["conversations"][3]["value"] = change["call"]
    else:
        record.update(change)
    (tmp_path / "tools.jsonl").write_text(json.dumps(record) + "\n")
    _, records, quarantine = ingest_one(run_stage, "tools.jsonl", "sharegpt")
    assert records == [] and where_and_why(quarantine) == [(1, reason, message)]


def test_typed_text_parts_are_joined_and_other_parts_quarantined(run_stage, tmp_path):
    lines = [
        {"messages": [{"role": "user", "content": [{"type": "text", "value": "hi"}], "loss_weight": 0.0},
                      {"role": "assistant", "content": [{"type": "text", "value": "Hello!"}], "loss_weight": 1.0}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Look:"}, {"type": "text", "text": "ok?"}]},
                      {"role": "assistant", "content": "Fine."}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]},
                      {"role": "assistant", "content": "A cat."}]},
        {"messages": [{"role": "user", "content": []}, {"role": "assistant", "content": "A cat."}]},
    ]
    (tmp_path / "parts.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    _, records, quarantine = ingest_one(run_stage, "parts.jsonl", "chat")
    assert [[m["content"] for m in r["messages"]] for r in records] == [["hi", "Hello!"], ["Look:\nok?", "Fine."]]
    assert where_and_why(quarantine) == [
        (3, "unsupported_content", "messages[0].content[0] has type 'image_url'; only text parts ({type: text, "
                                   "text: ...}) can be trained on: remove other parts or convert them to text"),
        (4, "empty_field", "messages[0].content is an empty array")]


def test_summary_names_the_quarantine_file_and_its_top_reasons(ingested):
    result, _, quarantine = ingested
    summary = result.summary["quarantine"]
    assert summary["path"] == "quarantine.jsonl" and summary["records"] == len(quarantine)
    top = summary["top_reasons"]
    assert len(top) == 3 and [t["count"] for t in top] == sorted((t["count"] for t in top), reverse=True)
    first = next(q for q in quarantine if q["reason"] == top[0]["reason"])
    assert top[0]["example"] == {key: first[key] for key in ("source", "line", "message")}
    assert result.summary["kept"] == sum(source["kept"] for source in result.summary["sources"])


def test_fields_outside_the_format_are_counted_per_source_as_metadata_not_trained_on(run_stage, tmp_path):
    """A record's extra keys become meta, which training never reads: the summary (and so the report) names them
    with how many records hold each, so a quirk such as GPTeacher's example_input is not lost unseen."""
    rows = [{"instruction": "Q1", "output": "A1", "region": "north"},
            {"instruction": "Q2", "input": "", "output": "A2", "example_input": "the real input", "region": "south"},
            {"instruction": "Q3", "output": "A3"}]
    (tmp_path / "extra.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result, records, _ = ingest_one(run_stage, "extra.jsonl")
    assert len(records) == 3
    assert result.summary["sources"][0]["meta_fields"] == {"example_input": 1, "region": 2}


# -- validate looks at the data ---------------------------------------------------------------------------------
def test_validate_reports_a_fields_mapping_that_matches_nothing(tmp_path):
    lines = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(150)]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(textwrap.dedent("""
        name: mapped
        data:
          sources:
            - path: qa.jsonl
              format: prompt_completion
              fields: {prompt: query, completion: answer}
            - {path: qa.jsonl, format: alpaca, tag: second}
        """).lstrip())
    with pytest.raises(RecipeInvalid) as info:
        compile_recipe(recipe)
    assert [str(error) for error in info.value.errors] == [
        f"{recipe}:6:24: fields.prompt 'query' not found in the first 100 records of qa.jsonl; keys seen: answer, "
        "question (map it with fields: {prompt: <key>}) (at data.sources[0].fields.prompt)",
        f"{recipe}:7:7: field 'instruction' not found in the first 100 records of qa.jsonl; keys seen: answer, "
        "question (map it with fields: {instruction: <key>}) (at data.sources[1])",
        f"{recipe}:7:7: field 'output' not found in the first 100 records of qa.jsonl; keys seen: answer, "
        "question (map it with fields: {output: <key>}) (at data.sources[1])"]


def test_validate_reports_a_file_its_container_cannot_read_before_any_record(tmp_path):
    """A .json file that is not an array (JSON Lines, or one nested object) would be quarantined whole by the run;
    validate says so, with the line and the fix, instead of calling the recipe valid."""
    (tmp_path / "lines.json").write_text('{"instruction": "Q1", "output": "A1"}\n'
                                         '{"instruction": "Q2", "output": "A2"}\n')
    (tmp_path / "nested.json").write_text('\n{"group": {"entity": ["a prompt"]}}\n')
    (tmp_path / "cut.json").write_text('[{"instruction": "Q", "output": "A"},\n {"instruction": "Q2')
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(textwrap.dedent("""
        name: containers
        data:
          sources:
            - {path: lines.json, format: alpaca}
            - {path: nested.json, format: text}
            - {path: cut.json, format: alpaca}
        """).lstrip())
    with pytest.raises(RecipeInvalid) as info:
        compile_recipe(recipe)
    assert [str(error) for error in info.value.errors] == [
        f"{recipe}:4:14: lines.json cannot be read as json: line 1: the file is not a JSON array: it does not start "
        "with '['; a run would quarantine the whole file (set container: jsonl if it holds one JSON object a line) "
        "(at data.sources[0].path)",
        f"{recipe}:5:14: nested.json cannot be read as json: line 2: the file is not a JSON array: it does not start "
        "with '['; a run would quarantine the whole file (set container: jsonl if it holds one JSON object a line) "
        "(at data.sources[1].path)"]


# -- hub datasets at a pinned revision ----------------------------------------------------------------------------
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A local directory laid out like the hub cache, holding org/faq with branch main at COMMIT; offline."""
    repo = tmp_path / "hub" / "datasets--org--faq"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    data = repo / "snapshots" / COMMIT / "data"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text('{"instruction": "Q1", "output": "A1"}\n{"instruction": "Q2"}\n')
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    return repo / "snapshots" / COMMIT


def test_a_hub_source_is_read_at_its_resolved_commit_and_hashed_like_a_file(run_stage, hub_cache):
    params = ingest_params([{"hub": "org/faq", "revision": "main", "split": "train", "format": "alpaca"}])
    result, outputs = run_stage("ingest", params, {})
    assert [r["instruction"] for r in read_jsonl(outputs["records"])] == ["Q1"]
    assert where_and_why(list(read_jsonl(outputs["quarantine"]))) == [
        (2, "wrong_type", "row 2: field 'output' is null, expected a string")]  # datasets fills absent columns
    [source] = result.summary["sources"]
    assert (source["hub"], source["revision"], source["commit"], source["tag"]) == ("org/faq", "main", COMMIT,
                                                                                   "org/faq")
    assert IngestStage.external_inputs(build(IngestParams, params)) == [str(hub_cache)]


def test_a_hub_revision_missing_from_the_cache_fails_naming_it(run_stage, hub_cache):
    params = ingest_params([{"hub": "org/faq", "revision": "v2", "split": "train", "format": "alpaca"}])
    with pytest.raises(HubSourceError, match="hub dataset org/faq at revision v2 is neither in the hub cache"):
        run_stage("ingest", params, {})


def test_a_source_needs_a_path_or_a_pinned_hub_dataset(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: hub\ndata:\n  sources:\n    - {hub: org/faq, format: alpaca}\n")
    with pytest.raises(RecipeInvalid) as info:
        compile_recipe(recipe)
    assert [error.message for error in info.value.errors] == [
        "hub source 'org/faq' needs revision and split: the revision (a branch, tag or commit) pins the data so that "
        "the run can be repeated, the split names the part to read, e.g. {hub: org/name, revision: main, split: train}"]


# -- chats as training examples: every assistant turn, tool calls rendered by the template ------------------------
# A template in the style of Qwen's: tools go to `tools=`, a call is an assistant message with tool_calls.
TOOL_TEMPLATE = (
    "{%- if tools %}<tools>{{ tools | tojson }}</tools>{% endif %}"
    "{%- for m in messages %}<{{ m.role }}>{% if m.tool_calls %}{% for c in m.tool_calls %}<call>{{ c.function.name }}"
    " {{ c.function.arguments | tojson }}</call>{% endfor %}{% else %}{{ m.content }}{% endif %}</{{ m.role }}>"
    "{% endfor %}{%- if add_generation_prompt %}<assistant>{% endif %}")


@pytest.fixture
def tool_record(run_stage, tmp_path):
    (tmp_path / "tools.jsonl").write_text(json.dumps(tool_chat()) + "\n")
    _, [record], _ = ingest_one(run_stage, "tools.jsonl", "sharegpt")
    return record


def trained_text(tokenizer, example: dict) -> str:
    return tokenizer.decode([token for token, label in zip(example["input_ids"], example["labels"])
                             if label != IGNORED_LABEL])


@pytest.mark.parametrize("template", [None, TOOL_TEMPLATE])
def test_a_chat_trains_on_every_assistant_turn_or_the_last_only(tool_record, template):
    tokenizer = tiny_tokenizer([json.dumps(tool_chat()), "<|assistant|> <tools> <call> </s>"])
    tokenizer.chat_template = template
    every = tokenized_example(tokenizer, tool_record, 1024, train_on_inputs=False)
    last = tokenized_example(tokenizer, {**tool_record, "assistant_turns": "last"}, 1024, train_on_inputs=False)
    assert every["input_ids"][:len(last["input_ids"]) - 1] == last["input_ids"][:-1]
    whole, trained = tokenizer.decode(every["input_ids"]), trained_text(tokenizer, every)
    for kept in ("Hello friend", "get_rate", '"EUR"', "It is 1.1 today"):
        assert kept in trained
    for masked in ("Hi there", "Rate for EUR?", '"rate": 1.1', "Exchange rate"):
        assert masked in whole and masked not in trained
    assert trained_text(tokenizer, last).startswith("It is 1.1 today")
    assert "Hello friend" not in trained_text(tokenizer, last)
    if template:  # the template's own tool rendering: tools=, and the call as tool_calls
        assert whole.startswith("<tools>") and "<call>get_rate" in whole and "<tool>" in whole
    else:
        assert whole.startswith("<|tools|>") and trained.endswith("</s>")


def test_a_template_without_tool_support_still_sees_the_tools_and_the_call(tool_record):
    tokenizer = tiny_tokenizer([json.dumps(tool_chat())])
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>"
                               "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    example = tokenized_example(tokenizer, tool_record, 1024, train_on_inputs=False)
    whole = tokenizer.decode(example["input_ids"])
    assert whole.startswith("<system>You can call these tools") and '"name": "get_rate"' in trained_text(
        tokenizer, example)
    assert '<user>{"rate": 1.1}</user>' in whole


def test_non_finite_numbers_are_quarantined_and_never_written(run_stage, tmp_path):
    """1e999 parses as infinity and json would write it as a bare Infinity, which is not JSON."""
    path = tmp_path / "numbers.jsonl"
    path.write_text('{"instruction": "a", "output": "b", "score": 1e999}\n{"instruction": "c", "output": "d"}\n')
    result, records, quarantine = ingest_one(run_stage, str(path))
    assert result.removed == {"non_finite_number": 1}
    assert [(q["line"], q["reason"]) for q in quarantine] == [(1, "non_finite_number")]
    assert [record["instruction"] for record in records] == ["c"]


def test_loss_weight_zero_keeps_an_assistant_turn_as_context(run_stage, tmp_path):
    turns = [("user", "Hi there", 0.0), ("assistant", "Hello friend", 0.0), ("user", "Rate for EUR?", 0.0),
             ("assistant", "It is 1.1 today", 1.0)]
    line = {"messages": [{"role": role, "content": [{"type": "text", "value": text}], "loss_weight": weight}
                         for role, text, weight in turns]}
    bad = {"messages": [{"role": "user", "content": "Hi", "loss_weight": "none"},
                        {"role": "assistant", "content": "Yo"}]}
    (tmp_path / "v1.jsonl").write_text(json.dumps(line) + "\n" + json.dumps(bad) + "\n")
    _, [record], quarantine = ingest_one(run_stage, "v1.jsonl", "chat")
    assert [m.get("trained", True) for m in record["messages"]] == [True, False, True, True]
    assert where_and_why(quarantine) == [(2, "wrong_type", "messages[0].loss_weight is a string, expected a number")]
    tokenizer = tiny_tokenizer([json.dumps(line)])
    trained = trained_text(tokenizer, tokenized_example(tokenizer, record, 1024, train_on_inputs=False))
    assert "It is 1.1 today" in trained and "Hello friend" not in trained


def _ingest_with_workers(path: Path, fmt: str, workers: int) -> tuple[bytes, bytes, dict, int, dict]:
    """Ingest one source through the library with the worker threshold at 0: records file, quarantine file,
    source summary, blank lines and quarantine summary."""
    import io

    from fttool.data.ingest import Quarantine, ingest_source, open_source
    from fttool.data.settings import EngineSettings, RaySettings, SourceSettings

    source = build(SourceSettings, ingest_params([{"path": str(path), "format": fmt}])["sources"][0], "source")
    records_out, quarantined = io.BytesIO(), io.BytesIO()
    quarantine = Quarantine(quarantined, "quarantine.jsonl")
    summary, blank = ingest_source(source, open_source(source, Path), 200, records_out, quarantine,
                                   EngineSettings("local", workers, RaySettings("", None)), min_records_for_workers=0)
    return records_out.getvalue(), quarantined.getvalue(), summary, blank, quarantine.summary()


@pytest.mark.slow  # spawns worker processes
@pytest.mark.parametrize("fmt, container", [("alpaca", "jsonl"), ("sharegpt", "json")])
def test_output_is_byte_identical_with_worker_processes(tmp_path, fmt, container):
    # Four batches of every kind of line: kept, blank, unreadable, rejected by normalising or when serialised.
    path = tmp_path / f"messy.{container}"
    if container == "jsonl":
        write_lines(path, [ALPACA_LINES[i % len(ALPACA_LINES)].replace(b"PIN", b"PIN %d" % i) for i in range(1800)])
    else:
        chats = [{"conversations": [{"from": "human", "value": f"question {i}"}, {"from": "gpt", "value": "no"}],
                  "team": i % 3} if i % 7 else {"conversations": []} for i in range(1800)]
        path.write_text(json.dumps(chats, indent=1))
    one = _ingest_with_workers(path, fmt, 1)
    assert one[2]["kept"] > 300 and one[2]["quarantined"] > 200
    assert _ingest_with_workers(path, fmt, 2) == one
