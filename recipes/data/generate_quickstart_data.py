"""Generate recipes/data/support.jsonl, the quickstart's synthetic customer-support records.

The records are made up from templates (no real customer data). A few problems are planted on
purpose so that the quickstart report has something to show: personal data (names, e-mail
addresses, phone and card numbers), exact and case/whitespace duplicates, and lines that must be
quarantined (malformed JSON, a missing field, a wrongly typed field).

Run: python recipes/data/generate_quickstart_data.py
"""
from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("support.jsonl")
SEED = 7

PRODUCTS = ["current account", "savings account", "credit card", "home insurance", "car insurance",
            "mortgage", "travel insurance", "personal loan", "debit card", "pension plan"]
REGIONS = ["north", "south", "east", "west"]
REGION_WEIGHTS = [0.4, 0.3, 0.2, 0.1]
CHANNELS = ["app", "web", "phone"]

TASKS = [
    ("How do I close my {p}?",
     "You can close your {p} in the {c}: open Settings, choose the {p} and select Close. Any remaining "
     "balance is moved to an account you choose, and we send a confirmation within two working days."),
    ("What is the fee for a late payment on my {p}?",
     "A late payment on a {p} costs a fixed fee that is shown in your tariff sheet. If you expect to be "
     "late, set up a payment plan in the {c} before the due date and the fee is waived."),
    ("Can I add a second holder to my {p}?",
     "Yes. Both holders need to confirm their identity. Start the request in the {c}; the second holder "
     "receives an invitation and the {p} is shared once both have signed."),
    ("How long does a claim on my {p} take?",
     "Most claims on a {p} are decided within ten working days. You can follow the status in the {c}, and "
     "we contact you if we need more documents."),
    ("I lost my {p} documents. What should I do?",
     "No problem: every document for your {p} is available in the {c} under Documents. You can download "
     "or order a printed copy, which arrives within five working days."),
    ("Why was my {p} application declined?",
     "Applications for a {p} are assessed on affordability and credit history. The decision letter in the "
     "{c} lists the main reasons, and you may ask for a review by a person."),
    ("How do I change the address on my {p}?",
     "Update your address once in the {c} under Profile and it applies to your {p} and every other product. "
     "For security we send a code to your registered phone."),
    ("Explain the interest on my {p} in simple words.",
     "Interest on a {p} is calculated daily on the balance and added monthly. The {c} shows the rate and a "
     "worked example for your balance."),
    ("Is there a cooling-off period for a {p}?",
     "Yes, you can cancel a new {p} within fourteen days without a reason and without a fee. Use the {c} or "
     "write to us; any amount paid is refunded."),
    ("How can I dispute a transaction on my {p}?",
     "Open the transaction in the {c} and choose Dispute. We may ask for receipts. While we investigate, the "
     "amount is shown as disputed on your {p}."),
]
CONTEXTS = ["", "I am a new customer.", "I have been a customer for ten years.", "I am travelling abroad.",
            "My partner usually manages this."]

# Planted personal data: the PII stage must replace all of it before training.
PII_RECORDS = [
    {"instruction": "Please call me back about my mortgage.",
     "input": "My name is Maria Gonzalez and my number is +1 415-555-0132.",
     "output": "Thank you. An adviser will call you back within one working day about your mortgage."},
    {"instruction": "Update my contact e-mail for the savings account.",
     "input": "The new address is john.smith@example.com, please confirm.",
     "output": "Your contact e-mail for the savings account is updated. We sent a confirmation to the new address."},
    {"instruction": "My card was charged twice.",
     "input": "Card number 4111 1111 1111 1111, charged twice on Monday.",
     "output": "We are sorry. The duplicate charge is marked as disputed and will be refunded within five days."},
    {"instruction": "Send the insurance certificate to my colleague.",
     "input": "Her name is Aisha Khan, e-mail aisha.khan@example.org, phone (212) 555-0187.",
     "output": "We can only send documents to the policy holder. Please forward the certificate from the app."},
    {"instruction": "Why is my loan payment higher this month?",
     "input": "I am Peter Novak, social security number 078-05-1120.",
     "output": "Your loan payment changed because the variable rate was updated. We never need your social "
               "security number in a chat; please do not share it."},
]

BAD_LINES = [
    '{"instruction": "How do I reset my PIN?", "output": "Use the app under Cards > PIN."',  # malformed JSON
    json.dumps({"instruction": "What are your opening hours?", "region": "north"}),  # missing output
    json.dumps({"instruction": "Is the branch open on Sunday?", "input": "", "output": 42, "region": "east"}),
]


def generate() -> list[str]:
    rng = random.Random(SEED)
    records = []
    for product in PRODUCTS:
        for question, answer in TASKS:
            for channel in CHANNELS:
                records.append({"instruction": question.format(p=product),
                                "input": rng.choice(CONTEXTS),
                                "output": answer.format(p=product, c="app" if channel == "app" else channel),
                                "region": rng.choices(REGIONS, REGION_WEIGHTS)[0], "channel": channel})
    rng.shuffle(records)
    records = records[:280]
    for record in PII_RECORDS:
        records.append({**record, "region": rng.choice(REGIONS), "channel": "web"})
    for record in rng.sample(records[:150], 6):  # exact duplicates
        records.append(dict(record))
    for record in rng.sample(records[:150], 3):  # duplicates after case and whitespace normalisation
        records.append({**record, "instruction": "  " + record["instruction"].upper() + " "})
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    rng.shuffle(lines)
    for offset, bad in zip((11, 57, 123), BAD_LINES):
        lines.insert(offset, bad)
    return lines


if __name__ == "__main__":
    OUT.write_text("\n".join(generate()) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
