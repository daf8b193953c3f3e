import datetime
import json
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import alpaca
from support.data import ingest_params

from fttool.data import containers
from fttool.data.records import map_text_fields, prompt_and_response, read_jsonl, text_fields
from fttool.data.settings import IngestParams
from fttool.pipeline.params import build
from fttool.recipe import RecipeInvalid, compile_recipe
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
         "kept": 3, "quarantined": 9},
        {"path": "data/chat.jsonl", "tag": "chats", "format": "chat", "container": "jsonl", "lines": 6, "kept": 2,
         "quarantined": 4},
        {"path": "data/mapped.jsonl", "tag": "faq", "format": "alpaca", "container": "jsonl", "lines": 2, "kept": 1,
         "quarantined": 1},
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
