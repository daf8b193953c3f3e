"""Records as training examples: prompt and response formatted as the model will be prompted, tokenised once,
with everything but the model's own turns masked from the loss. Training, DP training, evaluation and the canary
check all use these.

A chat trains on every assistant turn (tool calls included), as TRL's assistant-only loss does, unless its record
says `assistant_turns: last`; evaluation always prompts with the chat up to its last assistant turn. With a chat
template, a tool call is rendered as the template intends (an assistant message with `tool_calls`) and the record's
`tools` go to the template's `tools=`; a template that knows neither gets the call as assistant text, the result as
a user turn and the tools as a system message, so that nothing the record holds is left out.
"""
from __future__ import annotations

import json
from typing import Any

from fttool.data.records import MODEL_ROLES, chat_prefix, prompt_and_response, read_jsonl

IGNORED_LABEL = -100  # the label PyTorch's cross-entropy (and so every HF model) leaves out of the loss
TOOLS_PREAMBLE = "You can call these tools (JSON schemas):\n"


def conversation(record: dict) -> list[dict]:
    """The record as chat messages in fttool's roles, ending with the last turn the model produces."""
    if record["format"] == "chat":
        messages = record["messages"]
        last = max(i for i, m in enumerate(messages) if m["role"] in MODEL_ROLES)
        return [{"role": m["role"], "content": m["content"]} for m in messages[:last + 1]]
    if record["format"] == "alpaca":
        request = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
        return [{"role": "user", "content": request}, {"role": "assistant", "content": record["output"]}]
    return [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["completion"]}]


def chat_messages(record: dict) -> tuple[list[dict], str]:
    """The prompt as chat messages and the response (the last model turn), in fttool's roles."""
    messages = conversation(record)
    return messages[:-1], messages[-1]["content"]


def uses_chat_template(tokenizer, record: dict) -> bool:
    # Plain text has no prompt and no turns: it is trained as it is, whatever the tokenizer.
    return bool(tokenizer.chat_template) and record["format"] != "text"


def _tool_calls(content: str) -> list[dict]:
    """A tool call's JSON text as the `tool_calls` of an assistant message (arguments as an object)."""
    calls = json.loads(content)
    calls = calls if isinstance(calls, list) else [calls]
    rendered = []
    for call in calls:
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):  # some exports double-encode the arguments
            try:
                arguments = json.loads(arguments)
            except ValueError:
                pass
        rendered.append({"type": "function", "function": {"name": call["name"], "arguments": arguments}})
    return rendered


def template_messages(tokenizer, messages: list[dict], tools: list | None) -> list[dict]:
    """fttool's chat messages as the tokenizer's chat template takes them."""
    template = tokenizer.chat_template or ""
    knows_calls, knows_tools = "tool_calls" in template, "tools" in template
    rendered: list[dict[str, Any]] = []
    if tools and not knows_tools:
        rendered.append({"role": "system", "content": TOOLS_PREAMBLE + json.dumps(tools, ensure_ascii=False)})
    for message in messages:
        if message["role"] == "tool_call":
            rendered.append({"role": "assistant", "content": "", "tool_calls": _tool_calls(message["content"])}
                            if knows_calls else {"role": "assistant", "content": message["content"]})
        elif message["role"] == "tool" and not knows_calls:
            rendered.append({"role": "user", "content": message["content"]})
        else:
            rendered.append(message)
    return rendered


def _render(tokenizer, record: dict, messages: list[dict], generation_prompt: bool) -> str:
    """The text of `messages` (the first turns of the record's conversation) as the model sees it."""
    if uses_chat_template(tokenizer, record):
        tools = record.get("tools")
        template_tools = tools if tools and "tools" in (tokenizer.chat_template or "") else None
        return tokenizer.apply_chat_template(template_messages(tokenizer, messages, tools), tools=template_tools,
                                             tokenize=False, add_generation_prompt=generation_prompt)
    return chat_prefix(record, messages) + ("<|assistant|>\n" if generation_prompt else "")


def prompt_and_sequence_ids(tokenizer, record: dict) -> tuple[list[int], list[int]]:
    """(ids of the prompt alone, ids of prompt and last response), formatted the way the model will be prompted."""
    if uses_chat_template(tokenizer, record):
        messages = conversation(record)
        prompt_text = _render(tokenizer, record, messages[:-1], generation_prompt=True)
        full_text = _render(tokenizer, record, messages, generation_prompt=False)
        # The template writes the special tokens itself; adding them again would double the BOS token.
        return (tokenizer(prompt_text, add_special_tokens=False)["input_ids"],
                tokenizer(full_text, add_special_tokens=False)["input_ids"])
    prompt, response = prompt_and_response(record)
    full = tokenizer(prompt + response)["input_ids"]
    if tokenizer.eos_token_id is not None and full[-1:] != [tokenizer.eos_token_id]:
        full = full + [tokenizer.eos_token_id]  # so the model learns to stop
    return tokenizer(prompt)["input_ids"], full


def response_start(prompt_ids: list[int], ids: list[int]) -> int:
    """Where the response begins in `ids`: where the two diverge, not len(prompt_ids), because tokens can
    merge across the prompt/response boundary."""
    return next((i for i, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), min(len(prompt_ids), len(ids)))


def _common_prefix(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def trains_every_turn(record: dict) -> bool:
    """Whether the record is a chat trained on every model turn that is not marked `trained: false`, and has
    more than one model turn or a marked one (otherwise its last turn is all there is to train)."""
    if record["format"] != "chat" or record.get("assistant_turns", "all") != "all":
        return False
    model_turns = [m for m in record["messages"] if m["role"] in MODEL_ROLES]
    return len(model_turns) > 1 or any(m.get("trained") is False for m in model_turns)


def every_turn_ids_and_labels(tokenizer, record: dict) -> tuple[list[int], list[int]]:
    """Ids of the whole chat and labels that keep every model turn (its end-of-turn marker included).

    Each turn's span is found in characters: where the chat up to that turn, rendered, leaves the same chat
    rendered with a generation prompt, to where it ends. A token is trained when it holds a character of a span.
    """
    messages = conversation(record)
    full_text = _render(tokenizer, record, messages, generation_prompt=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] not in MODEL_ROLES or record["messages"][index].get("trained") is False:
            continue
        upto = _render(tokenizer, record, messages[:index + 1], generation_prompt=False)
        if not full_text.startswith(upto):
            raise ValueError(f"record {record['id']}: the chat template renders turn {index} differently inside the "
                             "whole chat, so its tokens cannot be found; set assistant_turns: last for this source")
        before = _render(tokenizer, record, messages[:index], generation_prompt=True)
        spans.append((_common_prefix(before, upto), len(upto)))
    templated = uses_chat_template(tokenizer, record)
    encoded = tokenizer(full_text, add_special_tokens=not templated, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), list(encoded["offset_mapping"])
    labels = [token if any(end > start_span and start < end_span for start_span, end_span in spans)
              else IGNORED_LABEL for token, (start, end) in zip(ids, offsets)]
    if not templated and tokenizer.eos_token_id is not None and ids[-1:] != [tokenizer.eos_token_id]:
        ids, labels = ids + [tokenizer.eos_token_id], labels + [tokenizer.eos_token_id]  # so the model learns to stop
    return ids, labels


def tokenized_example(tokenizer, record: dict, max_seq_length: int, train_on_inputs: bool) -> dict | None:
    """The record's input_ids and labels, cut to max_seq_length; None when no label is left to train on."""
    if trains_every_turn(record):
        ids, labels = every_turn_ids_and_labels(tokenizer, record)
        labels = list(ids) if train_on_inputs else labels
    else:
        prompt_ids, ids = prompt_and_sequence_ids(tokenizer, record)
        prompt_length = response_start(prompt_ids, ids)
        labels = list(ids) if train_on_inputs else [IGNORED_LABEL] * prompt_length + ids[prompt_length:]
    ids, labels = ids[:max_seq_length], labels[:max_seq_length]
    if all(label == IGNORED_LABEL for label in labels):
        return None
    return {"input_ids": ids, "labels": labels}


def tokenized_examples(path, tokenizer, max_seq_length: int, train_on_inputs: bool) -> tuple[list[dict], int]:
    """Examples with input_ids and labels, cut to max_seq_length; and how many were dropped with no label left.
    In memory, for a few records; training writes its splits as Arrow files instead (fttool.training.arrow_examples)."""
    examples, dropped = [], 0
    for record in read_jsonl(path):
        example = tokenized_example(tokenizer, record, max_seq_length, train_on_inputs)
        if example is None:
            dropped += 1
        else:
            examples.append(example)
    return examples, dropped


def trained_token_share(examples: list[dict]) -> tuple[int, int]:
    """(tokens with a label, all tokens) over prepared examples, before padding is added."""
    trained = sum(1 for example in examples for label in example["labels"] if label != IGNORED_LABEL)
    return trained, sum(len(example["labels"]) for example in examples)
