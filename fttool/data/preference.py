"""Preference data: pairs (a prompt, a chosen and a rejected response) and KTO's unpaired, labelled responses.

Input formats:
- `preference`: {prompt, chosen, rejected}, as TRL's and axolotl's `chatml.intel` records write them (axolotl's
  `question` is read when there is no `prompt`; a `system` prompt goes first). The prompt is a string or a list of
  chat messages; each response is a string, one message, or a list holding one assistant message (TRL's
  conversational format).
- `sharegpt_preference`: LLaMA-Factory's pairs: `conversations` ({from, value} turns) plus `chosen` and `rejected`
  turns.
- `kto`: a prompt and one response with a boolean `label` (desirable or not): {prompt, completion, label}, or
  LLaMA-Factory's {messages, label} whose last assistant message is the response.

Records: `preference` {messages (the prompt turns), chosen, rejected} and `kto` {messages, completion, label}, with
id, source and meta as every record has. A pair whose chosen and rejected responses are the same text teaches
nothing and is quarantined (`identical_pair`). The split keeps every pair of one prompt in one split
(`prompt_unit`) and checks leakage on the prompt alone (`prompt_view`).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from statistics import mean, median
from typing import Any

from fttool.data.containers import Rejected, a_json_type
from fttool.data.normalise import _label, _message, _required_text, _tools, record_id
from fttool.data.records import MODEL_ROLES, text_fields
from fttool.data.settings import SourceSettings

# Input formats read here, and the record format each becomes.
PREFERENCE_INPUTS = {"preference": "preference", "sharegpt_preference": "preference", "kto": "kto"}
# Record formats of preference data.
PAIR_FORMATS = ("preference", "kto")
AXOLOTL_PROMPT_KEY = "question"  # axolotl's chatml.intel records name the prompt so
# Meta keys that score each response (UltraFeedback's binarized exports): equal scores are a tie.
SCORE_KEYS = ("score_chosen", "score_rejected")


def is_preference(record: Mapping) -> bool:
    return record["format"] in PAIR_FORMATS


def _prompt_messages(value: Any, label: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "user", "content": _required_text({"p": value}, "p", label)}]
    if not isinstance(value, list) or not value:
        raise Rejected("wrong_type" if not isinstance(value, list) else "empty_field",
                       f"{label} is {a_json_type(value)}, expected a string or a non-empty array of messages")
    return [_message(turn, f"{label}[{index}]") for index, turn in enumerate(value)]


def _response(obj: dict, key: str) -> str:
    """A response: a string, one turn ({role, content} or {from, value}), or a list holding one model turn."""
    label = _label(key, key)
    if key not in obj:
        raise Rejected("missing_field", f"{label} is missing")
    value = obj[key]
    if isinstance(value, str):
        return _required_text(obj, key, label)
    turns = value if isinstance(value, list) else [value]
    if len(turns) != 1:
        raise Rejected("multi_turn_response", f"{label} has {len(turns)} turns; a response is one assistant turn")
    message = _message(turns[0], label)
    if message["role"] not in MODEL_ROLES:
        raise Rejected("unknown_role", f"{label} is a '{message['role']}' turn; a response is an assistant turn")
    return message["content"]


def _with_system(obj: dict, names: Mapping[str, str], messages: list[dict]) -> tuple[list[dict], set[str]]:
    system_key = names.get("system")
    if not system_key or obj.get(system_key) in (None, "") or messages[0]["role"] == "system":
        return messages, set()
    return [{"role": "system", "content": _required_text(obj, system_key, _label(system_key, "system"))},
            *messages], {system_key}


def _pair_fields(obj: dict, source: SourceSettings) -> tuple[dict, set[str]]:
    names = source.fields
    if source.format == "sharegpt_preference":
        key = names["messages"]
        if key not in obj:
            raise Rejected("missing_field", f"{_label(key, 'messages')} is missing")
        prompt = _prompt_messages(obj[key], _label(key, "messages"))
    else:
        key = names["prompt"]
        if key not in obj and key == "prompt" and AXOLOTL_PROMPT_KEY in obj:
            key = AXOLOTL_PROMPT_KEY
        if key not in obj:
            raise Rejected("missing_field", f"{_label(key, 'prompt')} is missing")
        prompt = _prompt_messages(obj[key], _label(key, "prompt"))
    messages, used = _with_system(obj, names, prompt)
    chosen, rejected = _response(obj, names["chosen"]), _response(obj, names["rejected"])
    if " ".join(chosen.split()) == " ".join(rejected.split()):
        raise Rejected("identical_pair", f"{_label(names['chosen'], 'chosen')} and "
                                         f"{_label(names['rejected'], 'rejected')} are the same text: the pair "
                                         "prefers nothing; remove it or fix the rejected response")
    fields: dict[str, Any] = {"messages": messages, "chosen": chosen, "rejected": rejected}
    return fields, used | {key, names["chosen"], names["rejected"], names.get("tools", "")}


def _kto_fields(obj: dict, source: SourceSettings) -> tuple[dict, set[str]]:
    names = source.fields
    if names["messages"] in obj:
        key = names["messages"]
        turns = _prompt_messages(obj[key], _label(key, "messages"))
        if turns[-1]["role"] not in MODEL_ROLES:
            raise Rejected("no_assistant_message", f"{_label(key, 'messages')} does not end with the assistant's "
                                                   "response, which the label judges")
        prompt, completion, used = turns[:-1], turns[-1]["content"], {key}
        if not prompt:
            raise Rejected("empty_field", f"{_label(key, 'messages')} has no prompt before the response")
    else:
        prompt_key, completion_key = names["prompt"], names["completion"]
        if prompt_key not in obj:
            raise Rejected("missing_field", f"{_label(names['messages'], 'messages')} and "
                                            f"{_label(prompt_key, 'prompt')} are missing")
        prompt = _prompt_messages(obj[prompt_key], _label(prompt_key, "prompt"))
        completion = _response(obj, completion_key)
        used = {prompt_key, completion_key}
    label_key = names["label"]
    if label_key not in obj:
        raise Rejected("missing_field", f"{_label(label_key, 'label')} is missing")
    if not isinstance(obj[label_key], bool):
        raise Rejected("wrong_type", f"{_label(label_key, 'label')} is {a_json_type(obj[label_key])}, expected true "
                                     "(desirable) or false (undesirable)")
    messages, system_used = _with_system(obj, names, prompt)
    return ({"messages": messages, "completion": completion, "label": obj[label_key]},
            used | system_used | {label_key, names.get("tools", "")})


def preference_record(value: Any, unit: str, source: SourceSettings, max_chars: int) -> dict:
    """One input record of a preference format as a record; raises Rejected."""
    if not isinstance(value, dict):
        raise Rejected("not_an_object", f"the {unit} is {a_json_type(value)}, expected a JSON object")
    fmt = PREFERENCE_INPUTS[source.format]
    fields, used = (_pair_fields if fmt == "preference" else _kto_fields)(value, source)
    tools = _tools(value, source.fields["tools"]) if "tools" in source.fields else None
    if tools is not None:
        fields["tools"] = tools
    record = {"id": record_id({"format": fmt, **fields}), "source": source.tag, "format": fmt, **fields,
              "meta": {key: item for key, item in value.items() if key not in used}}
    length = sum(len(text) for _, text in text_fields(record))
    if length > max_chars:
        raise Rejected("too_long", f"text is {length} characters, above max_chars {max_chars}")
    return record


def prompt_view(record: dict) -> dict:
    """The record as the split's leakage check compares it: a pair by its prompt alone, other records whole."""
    if not is_preference(record):
        return record
    return {"id": record["id"], "format": "chat", "messages": record["messages"], "meta": record["meta"]}


def prompt_unit(record: dict) -> str:
    """A split unit shared by every pair of the same prompt (exactly: same turns, case and spacing aside)."""
    turns = [[m["role"], " ".join(m["content"].casefold().split())] for m in record["messages"]]
    return "p" + hashlib.sha256(json.dumps(turns).encode("utf-8")).hexdigest()[:16]


def response_record(record: dict, response: str) -> dict:
    """The prompt with one response as a chat record, so that training and evaluation format and tokenise it
    exactly as they do a supervised example (chat template or fttool's plain layout)."""
    chat = {"id": record["id"], "format": "chat", "messages": [*record["messages"],
                                                               {"role": "assistant", "content": response}],
            "assistant_turns": "last", "meta": record.get("meta", {})}
    if record.get("tools"):
        chat["tools"] = record["tools"]
    return chat


def _length_summary(lengths: list[int]) -> dict | None:
    if not lengths:
        return None
    return {"mean": round(mean(lengths), 1), "median": median(lengths), "max": max(lengths)}


def pair_statistics(records: Iterable[dict]) -> dict:
    """Counts and response lengths (characters) of preference records, for the report; never text."""
    pairs = unpaired = desirable = ties = scored = 0
    prompts: set[str] = set()
    chosen: list[int] = []
    rejected: list[int] = []
    longer_chosen = 0
    for record in records:
        prompts.add(prompt_unit(record))
        if record["format"] == "kto":
            unpaired += 1
            desirable += record["label"]
            (chosen if record["label"] else rejected).append(len(record["completion"]))
            continue
        pairs += 1
        chosen.append(len(record["chosen"]))
        rejected.append(len(record["rejected"]))
        longer_chosen += len(record["chosen"]) > len(record["rejected"])
        scores = [record["meta"].get(key) for key in SCORE_KEYS]
        if all(isinstance(score, (int, float)) and not isinstance(score, bool) for score in scores):
            scored += 1
            ties += scores[0] == scores[1]
    return {"pairs": pairs, "unpaired": unpaired, "desirable": desirable, "undesirable": unpaired - desirable,
            "prompts": len(prompts), "chosen_chars": _length_summary(chosen),
            "rejected_chars": _length_summary(rejected),
            "chosen_longer_share": round(longer_chosen / pairs, 4) if pairs else None,
            "scored_pairs": scored, "ties": ties if scored else None}


def alternative_shape_seen(source: SourceSettings, canonical: str, seen: set[str]) -> bool:
    """Whether records of a preference source that lack `canonical` take another shape the format reads: axolotl's
    `question` for the prompt; for KTO, prompt and completion instead of messages, or messages instead of them."""
    if source.format == "preference" and canonical == "prompt":
        return AXOLOTL_PROMPT_KEY in seen
    if source.format == "kto" and canonical == "messages":
        return source.fields["prompt"] in seen
    if source.format == "kto" and canonical in ("prompt", "completion"):
        return source.fields["messages"] in seen
    return False
