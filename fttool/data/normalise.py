"""One raw input record (a JSON object from any container) into fttool's record shape, or the reason it cannot be.

Formats: alpaca, prompt_completion and text take string fields; chat (`messages` of {role, content}) and
sharegpt (`conversations` of {from, value}) become `chat` records. A chat's content may be a string or a list
of typed parts ({type: text, text: ...}; LLaMA-Factory writes `value` for `text`), and an assistant turn with
LLaMA-Factory's `loss_weight: 0` is kept as context only (`trained: false`). Tool calls (ShareGPT's
`function_call`) and tool results (`observation`) become messages of role `tool_call` (the call's JSON text)
and `tool`; a record's `tools` (a JSON string or list of function schemas) is kept parsed as `tools`.

Rejections name fields, positions and JSON types but never values: a rejected record may hold personal data.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from fttool.data.containers import Rejected, a_json_type
from fttool.data.records import CHAT_ROLES, MODEL_ROLES, text_fields
from fttool.data.settings import CHAT_FORMATS, SourceSettings

# ShareGPT speaker names; some exports already use fttool's role names, which are accepted as they are.
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "function_call": "tool_call", "observation": "tool",
                  **{role: role for role in CHAT_ROLES}}
CANONICAL_ROLES = {role: role for role in CHAT_ROLES}
SHAREGPT_KEY = "conversations"
# Keys a typed content part may hold its text under: OpenAI's and LLaMA-Factory's spellings.
PART_TEXT_KEYS = ("text", "value")


def record_id(fields: dict) -> str:
    """Stable id from the format's fields only, so the same example gets the same id in any source."""
    return "r" + hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def _label(file_key: str, canonical: str) -> str:
    return f"field '{file_key}'" if file_key == canonical else f"field '{file_key}' ({canonical})"


def _required_text(container: dict, key: str, label: str) -> str:
    if key not in container:
        raise Rejected("missing_field", f"{label} is missing")
    value = container[key]
    if not isinstance(value, str):
        raise Rejected("wrong_type", f"{label} is {a_json_type(value)}, expected a string")
    if not value.strip():
        raise Rejected("empty_field", f"{label} is empty")
    return value


def _optional_text(container: dict, key: str, label: str) -> str:
    value = container.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Rejected("wrong_type", f"{label} is {a_json_type(value)}, expected a string")
    return value


def _text_fields(obj: dict, fmt: str, names: Mapping[str, str]) -> tuple[dict, set[str]]:
    """The fields of a format other than chat in canonical names, and the file keys they came from."""
    fields = {}
    for canonical, key in names.items():
        read = _optional_text if canonical == "input" else _required_text  # alpaca's input may be absent
        fields[canonical] = read(obj, key, _label(key, canonical))
    return fields, set(names.values())


def _part_text(part: Any, where: str) -> str:
    if not isinstance(part, dict):
        raise Rejected("wrong_type", f"{where} is {a_json_type(part)}, expected an object {{type: text, text: ...}}")
    if part.get("type") != "text":
        kind = part.get("type")
        named = f"type '{kind}'" if isinstance(kind, str) and kind.isidentifier() else "no text type"
        raise Rejected("unsupported_content", f"{where} has {named}; only text parts ({{type: text, text: ...}}) "
                                              "can be trained on: remove other parts or convert them to text")
    key = next((key for key in PART_TEXT_KEYS if key in part), "text")
    return _required_text(part, key, f"{where}.{key}")


def _content(turn: dict, key: str, where: str) -> str:
    """A turn's text: a string, or a list of text parts joined by newlines."""
    value = turn.get(key)
    if not isinstance(value, list):
        return _required_text(turn, key, f"{where}.{key}")
    if not value:
        raise Rejected("empty_field", f"{where}.{key} is an empty array")
    return "\n".join(_part_text(part, f"{where}.{key}[{index}]") for index, part in enumerate(value))


def _tool_call_content(content: str, where: str) -> str:
    """A tool call must be a JSON object naming the function, so that a chat template can render it."""
    try:
        call = json.loads(content)
    except ValueError:
        raise Rejected("malformed_tool_call", f"{where} is not valid JSON; a tool call is "
                                              '{"name": ..., "arguments": {...}}') from None
    calls = call if isinstance(call, list) else [call]
    if not calls or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in calls):
        raise Rejected("malformed_tool_call", f'{where} does not name a function: a tool call is '
                                              '{"name": ..., "arguments": {...}}')
    return content


def _message(turn: Any, where: str) -> dict:
    if not isinstance(turn, dict):
        raise Rejected("wrong_type", f"{where} is {a_json_type(turn)}, expected an object")
    if "from" in turn and "role" not in turn:
        role_key, content_key, roles = "from", "value", SHAREGPT_ROLES
    else:
        role_key, content_key, roles = "role", "content", {**CANONICAL_ROLES, **SHAREGPT_ROLES}
    role = _required_text(turn, role_key, f"{where}.{role_key}")
    if role not in roles:
        raise Rejected("unknown_role", f"{where}.{role_key} is not a known role (expected one of: "
                                       f"{', '.join(roles)})")
    content = _content(turn, content_key, where)
    if roles[role] == "tool_call":
        content = _tool_call_content(content, f"{where}.{content_key}")
    message: dict[str, Any] = {"role": roles[role], "content": content}
    weight = turn.get("loss_weight")
    if weight is not None:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise Rejected("wrong_type", f"{where}.loss_weight is {a_json_type(weight)}, expected a number")
        if weight == 0 and message["role"] in MODEL_ROLES:
            message["trained"] = False  # LLaMA-Factory's loss_weight 0: the turn is context, not a target
    return message


def _tools(obj: dict, key: str) -> list | None:
    """The function schemas a chat may call, parsed; None when the record has none."""
    value = obj.get(key)
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise Rejected("malformed_tools", f"{_label(key, 'tools')} is a string but not valid JSON") from None
    tools = [value] if isinstance(value, dict) else value
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        raise Rejected("malformed_tools", f"{_label(key, 'tools')} is {a_json_type(value)}, expected an array "
                                          "of function schemas")
    return tools or None


def _chat_fields(obj: dict, names: Mapping[str, str]) -> tuple[dict, set[str]]:
    """Chat messages as [{role, content}] (a system prompt first), and the tools the chat may call."""
    key = names["messages"]
    if key == "messages" and key not in obj and SHAREGPT_KEY in obj:
        key = SHAREGPT_KEY  # ShareGPT data declared as chat, as fttool has always accepted
    if key not in obj:
        also = f" (nor '{SHAREGPT_KEY}')" if key == "messages" else ""
        raise Rejected("missing_field", f"{_label(key, 'messages')} is missing{also}")
    turns = obj[key]
    if not isinstance(turns, list):
        raise Rejected("wrong_type", f"{_label(key, 'messages')} is {a_json_type(turns)}, expected an array")
    if not turns:
        raise Rejected("empty_field", f"{_label(key, 'messages')} is an empty array")
    messages = [_message(turn, f"{key}[{index}]") for index, turn in enumerate(turns)]
    used = {key, names["tools"]}
    system_key = names.get("system")
    if system_key and obj.get(system_key) not in (None, ""):
        messages.insert(0, {"role": "system", "content": _required_text(obj, system_key, _label(system_key, "system"))})
        used.add(system_key)
    if not any(message["role"] in MODEL_ROLES for message in messages):
        raise Rejected("no_assistant_message", f"{_label(key, 'messages')} has no assistant message")
    fields: dict[str, Any] = {"messages": messages}
    tools = _tools(obj, names["tools"])
    if tools is not None:
        fields["tools"] = tools
    return fields, used


def normalised(value: Any, unit: str, source: SourceSettings, max_chars: int) -> dict:
    """One input record as a record; raises Rejected."""
    if not isinstance(value, dict):
        raise Rejected("not_an_object", f"the {unit} is {a_json_type(value)}, expected a JSON object")
    chat = source.format in CHAT_FORMATS
    if chat:
        fields, used = _chat_fields(value, source.fields)
    else:
        fields, used = _text_fields(value, source.format, source.fields)
    record = {"id": record_id(fields), "source": source.tag, "format": "chat" if chat else source.format, **fields,
              "meta": {key: item for key, item in value.items() if key not in used}}
    if chat:
        record["assistant_turns"] = source.assistant_turns
    length = sum(len(text) for _, text in text_fields(record))
    if length > max_chars:
        raise Rejected("too_long", f"text is {length} characters, above max_chars {max_chars}")
    return record


def record_line(record: dict) -> bytes:
    """A record serialised for a JSONL records file; raises Rejected when it cannot be written as strict JSON in
    UTF-8."""
    try:
        return (json.dumps(record, ensure_ascii=False, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a \ud800-style escape decodes to a lone surrogate, which UTF-8 cannot hold
        raise Rejected("invalid_utf8", "a \\u escape encodes an unpaired surrogate, which is not valid UTF-8") from None
    except ValueError:  # 1e999 parses as infinity, and a parquet column can hold NaN
        raise Rejected("non_finite_number", "a number is NaN or infinite (1e999 overflows to infinity); JSON has "
                       "no such value, so write it as a string or a finite number") from None
