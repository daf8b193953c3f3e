"""Records as training examples: prompt and response formatted as the model will be prompted, tokenised once,
with the prompt masked from the loss. Training, DP training, evaluation and the canary check all use these.
"""
from __future__ import annotations

from fttool.data.records import prompt_and_response, read_jsonl

IGNORED_LABEL = -100  # the label PyTorch's cross-entropy (and so every HF model) leaves out of the loss


def chat_messages(record: dict) -> tuple[list[dict], str]:
    """The prompt as chat messages and the response, for a tokenizer with a chat template."""
    if record["format"] == "chat":
        messages = record["messages"]
        last_assistant = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:last_assistant]]
        return prompt, messages[last_assistant]["content"]
    if record["format"] == "alpaca":
        request = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
        return [{"role": "user", "content": request}], record["output"]
    return [{"role": "user", "content": record["prompt"]}], record["completion"]


def uses_chat_template(tokenizer, record: dict) -> bool:
    # Plain text has no prompt and no turns: it is trained as it is, whatever the tokenizer.
    return bool(tokenizer.chat_template) and record["format"] != "text"


def prompt_and_sequence_ids(tokenizer, record: dict) -> tuple[list[int], list[int]]:
    """(ids of the prompt alone, ids of prompt and response), formatted the way the model will be prompted."""
    if uses_chat_template(tokenizer, record):
        prompt, response = chat_messages(record)
        prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        full_text = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": response}],
                                                  tokenize=False)
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


def tokenized_example(tokenizer, record: dict, max_seq_length: int, train_on_inputs: bool) -> dict | None:
    """The record's input_ids and labels, cut to max_seq_length; None when no label is left to train on."""
    prompt_ids, ids = prompt_and_sequence_ids(tokenizer, record)
    prompt_length = response_start(prompt_ids, ids)
    labels = list(ids) if train_on_inputs else [IGNORED_LABEL] * prompt_length + ids[prompt_length:]
    ids, labels = ids[:max_seq_length], labels[:max_seq_length]
    if all(label == IGNORED_LABEL for label in labels):
        return None
    return {"input_ids": ids, "labels": labels}


def tokenized_examples(path, tokenizer, max_seq_length: int, train_on_inputs: bool) -> tuple[list[dict], int]:
    """Examples with input_ids and labels, cut to max_seq_length; and how many were dropped with no label left."""
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
