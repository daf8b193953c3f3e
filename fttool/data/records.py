"""Reading and writing JSONL record files, streaming, and the text fields of each format."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

# The text-bearing fields of each record format, in the internal (normalised) field names.
FORMAT_FIELDS = {
    "alpaca": ("instruction", "input", "output"),
    "prompt_completion": ("prompt", "completion"),
    "chat": ("messages",),
    "text": ("text",),
    "preference": ("chosen", "rejected"),  # after the prompt's messages
    "kto": ("completion",),
}
# Formats whose records hold chat messages (for preference data, the prompt's turns).
MESSAGE_FORMATS = ("chat", "preference", "kto")
# tool_call: a call the model makes (its content the call's JSON text); tool: the result it is given back.
CHAT_ROLES = ("system", "user", "assistant", "tool_call", "tool")
# Roles whose turns are the model's own output, and so can be trained on.
MODEL_ROLES = ("assistant", "tool_call")
SPLITS = ("train", "validation", "test")


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def read_lines(path: Path) -> Iterator[str]:
    """The non-blank lines of a JSONL records file, each one record, for a worker to parse (fttool.data.per_record)."""
    with open(path, encoding="utf-8") as handle:
        yield from (line for line in handle if line.strip())


def write_jsonl(path: Path, records: Iterable[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True, allow_nan=False) + "\n")
            count += 1
    return count


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def text_fields(record: dict) -> Iterator[tuple[str, str]]:
    """(field path, text) for every text in a record; chat messages as messages[i].content."""
    if record["format"] in MESSAGE_FORMATS:
        for index, message in enumerate(record["messages"]):
            yield f"messages[{index}].content", message["content"]
    for name in FORMAT_FIELDS[record["format"]]:
        if name != "messages" and record.get(name):
            yield name, record[name]


def map_text_fields(record: dict, transform: Callable[[str, str], str]) -> dict:
    """A copy of `record` with transform(field path, text) applied to each text field."""
    out = dict(record)
    if record["format"] in MESSAGE_FORMATS:
        out["messages"] = [
            {**message, "content": transform(f"messages[{index}].content", message["content"])}
            for index, message in enumerate(record["messages"])]
    for name in FORMAT_FIELDS[record["format"]]:
        if name != "messages" and record.get(name):
            out[name] = transform(name, record[name])
    return out


def prompt_and_response(record: dict) -> tuple[str, str]:
    """The text a model is prompted with and the text it should produce, for training and evaluation."""
    fmt = record["format"]
    if fmt == "alpaca":
        if record.get("input"):
            prompt = (f"### Instruction:\n{record['instruction']}\n\n### Input:\n{record['input']}\n\n"
                      "### Response:\n")
        else:
            prompt = f"### Instruction:\n{record['instruction']}\n\n### Response:\n"
        return prompt, record["output"]
    if fmt == "prompt_completion":
        return record["prompt"], record["completion"]
    if fmt == "text":
        return "", record["text"]  # plain text has no prompt: the model learns the whole text
    messages = record["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] in MODEL_ROLES)
    return chat_prefix(record, messages[:last]) + "<|assistant|>\n", messages[last]["content"]


def chat_prefix(record: dict, messages: list[dict]) -> str:
    """Chat turns as plain text, for models without a chat template; the record's tools come first.

    A tool call is marked as an assistant turn, since the model produces it after the same generation prompt.
    """
    tools = f"<|tools|>\n{json.dumps(record['tools'], ensure_ascii=False)}\n" if record.get("tools") else ""
    return tools + "".join(f"<|{'assistant' if m['role'] == 'tool_call' else m['role']}|>\n{m['content']}\n"
                           for m in messages)
