"""A seeded records file with every kind of duplicate and every cleaning rule, for output-identity tests of dedup
and split: distinct alpaca, chat, prompt/completion and text records, exact copies (case and spacing changed),
one-word near copies, decomposed accents, control characters and blank runs."""
from __future__ import annotations

import hashlib
import json
import random

WORDS = [f"w{i}" for i in range(300)] + ["Café", "naïve", "Zürich", "résumé", "ﬁne", "Ω"]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _id(fields: dict) -> str:
    return "r" + hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def _record(fmt: str, fields: dict, region: str) -> dict:
    return {"id": _id(fields), "source": "fixture", "format": fmt, **fields, "meta": {"region": region}}


def _distinct(rng: random.Random, index: int) -> dict:
    region = rng.choice(("north", "south", "east", "west"))
    kind = index % 4
    if kind == 0:
        return _record("alpaca", {"instruction": _text(rng, 8), "input": rng.choice(("", _text(rng, 6))),
                                  "output": _text(rng, rng.randint(15, 40))}, region)
    if kind == 1:
        return _record("chat", {"messages": [{"role": "user", "content": _text(rng, 10)},
                                             {"role": "assistant", "content": _text(rng, 25)}]}, region)
    if kind == 2:
        return _record("prompt_completion", {"prompt": _text(rng, 9), "completion": _text(rng, 20)}, region)
    return _record("text", {"text": _text(rng, rng.randint(2, 30))}, region)


def _messy(rng: random.Random, text: str) -> str:
    """The text with something each cleaning rule changes."""
    choice = rng.randrange(4)
    if choice == 0:
        return text.replace("Café", "Cafe\u0301") + " Cafe\u0301"
    if choice == 1:
        return text + "\x00\x07 \x85end\r\nline\x9f"
    if choice == 2:
        return text.replace(" ", "  \t", 2) + "   \n  indented"
    return text


def fixture_records(n: int = 400, seed: int = 11) -> list[dict]:
    """n records: about 70% distinct, 10% exact copies, 10% one-word near copies, 10% messy texts."""
    rng = random.Random(seed)
    records: list[dict] = []
    for index in range(n):
        roll = rng.random()
        earlier = [r for r in records[-50:] if r["format"] != "chat"]
        if earlier and roll < 0.1:
            copy = dict(rng.choice(earlier))
            for name in ("instruction", "output", "prompt", "completion", "text"):
                if copy.get(name):
                    copy[name] = "  ".join(copy[name].upper().split())
            records.append(copy)
        elif earlier and roll < 0.2:
            copy = dict(rng.choice(earlier))
            name = {"alpaca": "output", "prompt_completion": "completion", "text": "text"}[copy["format"]]
            words = copy[name].split()
            words[rng.randrange(len(words))] = "changed"
            copy[name] = " ".join(words)
            copy["id"] = _id({key: copy[key] for key in copy if key not in ("id", "source", "format", "meta")})
            records.append(copy)
        elif roll < 0.3:
            record = _distinct(rng, index)
            name = {"alpaca": "output", "prompt_completion": "completion", "text": "text"}.get(record["format"])
            if name:
                record[name] = _messy(rng, record[name])
            records.append(record)
        else:
            records.append(_distinct(rng, index))
    return records
