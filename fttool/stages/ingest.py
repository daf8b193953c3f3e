"""Read the recipe's JSONL sources into fttool's record shape, quarantining each line that is unusable.

Every line is decoded, parsed and checked on its own, so one bad line costs one record, never the run.
Quarantine messages name fields, positions and JSON types but never values: a rejected line may hold
personal data, and quarantine.jsonl is kept with the run for reviewers.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO, Mapping

from fttool.records import CHAT_ROLES, FORMAT_FIELDS, text_fields
from fttool.stages.base import Stage, StageContext, StageResult

UTF8_BOM = b"\xef\xbb\xbf"
# ShareGPT speaker names; some exports already use fttool's role names, which are accepted as they are.
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system", "user": "user", "assistant": "assistant"}
CANONICAL_ROLES = {role: role for role in CHAT_ROLES}
SHAREGPT_KEY = "conversations"


class Rejected(Exception):
    """Why a line cannot become a record: a reason code and a message that holds no record content."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def record_id(fields: dict) -> str:
    """Stable id from the format's fields only, so the same example gets the same id in any source."""
    return "r" + hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def _a_json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _label(file_key: str, canonical: str) -> str:
    return f"field '{file_key}'" if file_key == canonical else f"field '{file_key}' ({canonical})"


def _required_text(container: dict, key: str, label: str) -> str:
    if key not in container:
        raise Rejected("missing_field", f"{label} is missing")
    value = container[key]
    if not isinstance(value, str):
        raise Rejected("wrong_type", f"{label} is {_a_json_type(value)}, expected a string")
    if not value.strip():
        raise Rejected("empty_field", f"{label} is empty")
    return value


def _reject_constant(name: str):
    # json accepts NaN and Infinity, but they are not JSON and later readers would choke on them.
    raise ValueError(f"{name} is not allowed")


def _parse(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise Rejected("invalid_utf8", f"byte {exc.start + 1} of the line is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise Rejected("malformed_json", f"not valid JSON: {exc.msg} at character {exc.pos + 1}") from None
    except ValueError as exc:
        raise Rejected("malformed_json", f"not valid JSON: {exc}") from None
    except RecursionError:
        raise Rejected("malformed_json", "not valid JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise Rejected("not_an_object", f"the line is {_a_json_type(value)}, expected a JSON object")
    return value


def _optional_text(container: dict, key: str, label: str) -> str:
    value = container.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Rejected("wrong_type", f"{label} is {_a_json_type(value)}, expected a string")
    return value


def _text_fields(obj: dict, fmt: str, names: Mapping[str, str]) -> tuple[dict, set[str]]:
    """Alpaca or prompt/completion fields in canonical names, and the file keys they came from."""
    fields = {}
    for canonical in FORMAT_FIELDS[fmt]:
        key = names[canonical]
        read = _optional_text if canonical == "input" else _required_text  # alpaca's input may be absent
        fields[canonical] = read(obj, key, _label(key, canonical))
    return fields, {names[canonical] for canonical in fields}


def _chat_fields(obj: dict, names: Mapping[str, str]) -> tuple[dict, set[str]]:
    """Chat messages as [{role, content}], from `messages` or a ShareGPT `conversations` list."""
    key = names["messages"]
    if key == "messages" and key not in obj and SHAREGPT_KEY in obj:
        key = SHAREGPT_KEY
    if key not in obj:
        also = f" (nor '{SHAREGPT_KEY}')" if key == "messages" else ""
        raise Rejected("missing_field", f"{_label(key, 'messages')} is missing{also}")
    turns = obj[key]
    if not isinstance(turns, list):
        raise Rejected("wrong_type", f"{_label(key, 'messages')} is {_a_json_type(turns)}, expected an array")
    if not turns:
        raise Rejected("empty_field", f"{_label(key, 'messages')} is an empty array")
    messages = []
    for index, turn in enumerate(turns):
        where = f"{key}[{index}]"
        if not isinstance(turn, dict):
            raise Rejected("wrong_type", f"{where} is {_a_json_type(turn)}, expected an object")
        if "from" in turn and "role" not in turn:
            role_key, content_key, roles = "from", "value", SHAREGPT_ROLES
        else:
            role_key, content_key, roles = "role", "content", CANONICAL_ROLES
        role = _required_text(turn, role_key, f"{where}.{role_key}")
        content = _required_text(turn, content_key, f"{where}.{content_key}")
        if role not in roles:
            raise Rejected("unknown_role", f"{where}.{role_key} is not a known role (expected one of: "
                                           f"{', '.join(roles)})")
        messages.append({"role": roles[role], "content": content})
    if not any(message["role"] == "assistant" for message in messages):
        raise Rejected("no_assistant_message", f"{_label(key, 'messages')} has no assistant message")
    return {"messages": messages}, {key}


def _record_line(raw: bytes, fmt: str, names: Mapping[str, str], tag: str, max_chars: int) -> bytes:
    """The line as a record, serialised for records.jsonl; raises Rejected."""
    obj = _parse(raw)
    fields, used = _chat_fields(obj, names) if fmt == "chat" else _text_fields(obj, fmt, names)
    record = {"id": record_id(fields), "source": tag, "format": fmt, **fields,
              "meta": {key: value for key, value in obj.items() if key not in used}}
    length = sum(len(text) for _, text in text_fields(record))
    if length > max_chars:
        raise Rejected("too_long", f"text is {length} characters, above max_chars {max_chars}")
    try:
        return (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a \ud800-style escape decodes to a lone surrogate, which UTF-8 cannot hold
        raise Rejected("invalid_utf8", "a \\u escape encodes an unpaired surrogate, which is not valid UTF-8") from None


def _field_names(source: Mapping[str, Any]) -> dict[str, str]:
    """Canonical field name -> the name used in the file (the compiler rejects unknown canonical names)."""
    fmt = source["format"]
    mapping = source.get("fields") or {}
    return {canonical: mapping.get(canonical, canonical) for canonical in FORMAT_FIELDS[fmt]}


class IngestStage(Stage):
    name = "ingest"
    reads = ()
    writes = ("records",)
    artifacts = {"quarantine": "quarantine.jsonl"}
    report_section = "data.ingest"

    @classmethod
    def external_inputs(cls, params: Mapping[str, Any]) -> list[str]:
        return [source["path"] for source in params["sources"]]

    def run(self, ctx: StageContext) -> StageResult:
        reasons: Counter[str] = Counter()
        sources, read, blank = [], 0, 0
        with open(ctx.outputs["records"], "wb") as records_out, open(ctx.outputs["quarantine"], "wb") as quarantine:
            for source in ctx.params["sources"]:
                summary, rejected, source_blank = self._ingest_source(ctx, source, records_out, quarantine)
                sources.append(summary)
                reasons.update(rejected)
                read += summary["lines"]
                blank += source_blank
        removed = dict(sorted(reasons.items()))
        return StageResult(records_read=read, removed=removed,
                           summary={"sources": sources, "quarantined_by_reason": removed, "blank_lines": blank})

    @staticmethod
    def _ingest_source(ctx: StageContext, source: Mapping[str, Any], records_out: BinaryIO,
                       quarantine: BinaryIO) -> tuple[dict, Counter[str], int]:
        """Stream one source; returns its summary, rejections by reason and its blank line count."""
        fmt, max_chars = source["format"], ctx.params["max_chars"]
        names = _field_names(source)
        tag = source.get("tag") or Path(source["path"]).name
        lines = kept = blank = 0
        rejected: Counter[str] = Counter()
        with open(ctx.resolve(source["path"]), "rb") as handle:
            for line_number, raw in ctx.progress(enumerate(handle, start=1), desc=f"ingest {source['path']}"):
                if line_number == 1:
                    raw = raw.removeprefix(UTF8_BOM)  # editors on Windows often start files with one
                if not raw.strip():
                    blank += 1
                    continue
                lines += 1
                try:
                    records_out.write(_record_line(raw, fmt, names, tag, max_chars))
                    kept += 1
                except Rejected as rejection:
                    rejected[rejection.reason] += 1
                    entry = {"source": source["path"], "line": line_number, "reason": rejection.reason,
                             "message": rejection.message}
                    quarantine.write((json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
        summary = {"path": source["path"], "tag": tag, "format": fmt, "lines": lines, "kept": kept,
                   "quarantined": lines - kept}
        return summary, rejected, blank


STAGE = IngestStage
