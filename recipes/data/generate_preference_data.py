"""Generate recipes/data/support_pairs.jsonl, the DPO quickstart's synthetic preference pairs.

Made up from templates (no real customer data). Each prompt is a customer question; the chosen response answers
it helpfully, the rejected one brushes the customer off. Planted on purpose so that the report has something to
show: personal data in prompts and in both responses (names, e-mail addresses, phone numbers), exact and
case/whitespace duplicates of whole pairs, several pairs for one prompt (kept together by the split), pairs whose
chosen and rejected are the same text (quarantined), scores with ties, and one malformed JSON line.

Run: python recipes/data/generate_preference_data.py
"""
from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("support_pairs.jsonl")
SEED = 11
PRODUCTS = ["current account", "savings account", "credit card", "home insurance", "car insurance",
            "mortgage", "travel insurance", "personal loan", "debit card", "pension plan"]
CHANNELS = ["app", "web", "phone"]
REGIONS = ["north", "south", "east", "west"]
QUESTIONS = [
    ("How do I close my {p}?",
     "You can close your {p} in the {c}: open Settings, choose the {p} and select Close. We confirm within two "
     "working days."),
    ("What is the fee for a late payment on my {p}?",
     "The late fee for a {p} is in your tariff sheet. Set up a payment plan in the {c} before the due date and the "
     "fee is waived."),
    ("Can I add a second holder to my {p}?",
     "Yes. Start the request in the {c}; the second holder gets an invitation and the {p} is shared once both "
     "have signed."),
    ("How long does a claim on my {p} take?",
     "Most claims on a {p} are decided within ten working days. Follow the status in the {c}."),
    ("I lost my {p} documents. What should I do?",
     "Every document for your {p} is in the {c} under Documents; download it or order a printed copy."),
    ("How do I change the address on my {p}?",
     "Open Profile in the {c}, edit the address and confirm with the code we send; your {p} is updated at once."),
]
BRUSH_OFFS = [
    "That is not something we can help with.",
    "Please read the terms and conditions.",
    "No.",
    "Call us some other time.",
    "I do not know, ask someone else.",
]
NAMES = [("Aisha Khan", "aisha.khan@example.org", "(212) 555-0187"),
         ("Tom Becker", "tom.becker@example.com", "(415) 555-0143"),
         ("Maria Rossi", "m.rossi@example.net", "(646) 555-0199")]


def pair(rng: random.Random, question: str, answer: str) -> dict:
    product, channel = rng.choice(PRODUCTS), rng.choice(CHANNELS)
    score_chosen = rng.choice([7, 8, 9, 10])
    return {"prompt": question.format(p=product), "chosen": answer.format(p=product, c=channel),
            "rejected": rng.choice(BRUSH_OFFS), "region": rng.choice(REGIONS), "channel": channel,
            "score_chosen": score_chosen, "score_rejected": rng.choice([2, 3, 4, score_chosen])}


def generate() -> list[str]:
    rng = random.Random(SEED)
    records = [pair(rng, *rng.choice(QUESTIONS)) for _ in range(220)]
    for index in range(0, 12):  # personal data in the prompt and in both responses
        name, email, phone = NAMES[index % len(NAMES)]
        record = records[index * 7]
        where = index % 3
        if where == 0:
            record["prompt"] = f"My name is {name}, e-mail {email}. {record['prompt']}"
        elif where == 1:
            record["chosen"] = f"Dear {name}, {record['chosen']} We will call you on {phone}."
        else:
            record["rejected"] = f"{name}, write to {email} instead. {record['rejected']}"
    for index in range(0, 10):  # a second pair for the same prompt, with another brush-off
        extra = dict(records[index * 11])
        extra["rejected"] = BRUSH_OFFS[(index + 2) % len(BRUSH_OFFS)] + " Goodbye."
        records.append(extra)
    for index in range(0, 6):  # exact and case/whitespace duplicates of whole pairs
        copy = dict(records[index * 13])
        if index % 2:
            copy["chosen"] = "  " + copy["chosen"].upper() + " "
        records.append(copy)
    for index in range(0, 3):  # the same text chosen and rejected: quarantined
        same = dict(records[index * 17])
        same["rejected"] = same["chosen"]
        records.append(same)
    for index in range(0, 4):  # axolotl's chatml.intel spelling of the prompt, with a system prompt
        record = records[index * 19]
        record["question"] = record.pop("prompt")
        record["system"] = "You are the bank's support assistant."
    rng.shuffle(records)
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    lines.insert(57, '{"prompt": "How do I close my account?", "chosen": "Open Settings"')  # malformed JSON
    return lines


if __name__ == "__main__":
    OUT.write_text("\n".join(generate()) + "\n", encoding="utf-8")
