"""Throughput of fttool's PII stage against a plain per-record presidio loop, on the same records.

(a) plain loop: for every record, for every text field, presidio's AnalyzerEngine.analyze then
    AnonymizerEngine.anonymize (replace with <TYPE>), with an analyzer built the documented way
    (NlpEngineProvider, offline, the same spaCy model) and the stage's default entity list and threshold;
(b) fttool's PII stage, run through a StageContext (as tests/conftest.py's run_stage does) with the recipe
    schema's default `pii` settings, reading and writing JSONL.

Records: N realistic support records (default 3000; chat and alpaca, 2-3 text fields each) generated with
Faker (seeded): about 25% carry PII (names, e-mails, phones, cards, SSNs, IPs, from the templates of
bench/pii_quality.py), a shared system prompt and common questions repeat as exact duplicate texts.

Runs alternate a, b, a, b, ... (--runs each, default 3); the figure is records/s of the median run, not
counting the one-time engine load (measured separately: building each analyzer and its first call). The
stage's worker processes, when it starts them, load their own engines inside the timed run: that is part
of its per-run cost. Recall: share of planted values whose text no longer appears in the output, for
both. Exit 1 when the median ratio b/a is below --min-ratio (default 2.0) or b's recall is below a's.

    python bench/pii_throughput.py                    # print the table
    python bench/pii_throughput.py --write-docs       # also write "## PII throughput" in docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pii_quality as quality  # noqa: E402  (same directory: the PII templates, stage runner, docs writer)

ROOT = quality.ROOT

SYSTEM_PROMPT = "You are a helpful customer support assistant for Northwind Devices. Be concise and polite."
OPENINGS = ["Hi,", "Hello,", "Hey there,", "Good morning,", "Hi support,", "", "", "Quick question:", "Help!",
            "Hello team,"]
PROBLEMS = [
    "my {product} won't turn on after the last update",
    "the {app} app keeps crashing when I open {screen}",
    "I was charged twice for my {plan} subscription this month",
    "I can't find where to change my password in {screen}",
    "the {product} disconnects from Wi-Fi every {minutes} minutes",
    "my order #{order} still shows as processing after {days} days",
    "the screen on my {product} flickers when brightness is low",
    "sync between the {app} app and the web dashboard stopped working",
    "I want to cancel my {plan} plan before it renews",
    "the battery on my {product} drops to {percent}% overnight",
    "I get error {error} when I try to sign in",
    "notifications from the {app} app arrive hours late",
    "the replacement {product} I received is the wrong colour",
    "exporting reports to CSV from {screen} gives an empty file",
    "two-factor codes are not arriving by SMS",
    "the {product} makes a clicking noise when charging",
]
DETAILS = [
    "I already tried restarting it twice.", "This started on {weekday}.", "It worked fine until last week.",
    "I'm on version {version}.", "Nothing in the FAQ helped.", "It happens on both my phone and laptop.",
    "Is this a known issue?", "I need it working before {weekday}.", "I reinstalled the app but no luck.",
    "The status page says everything is operational.", "", "",
]
CLOSINGS = ["Thanks!", "Thank you.", "Any ideas?", "Please advise.", "Cheers.", "", "", "Appreciate the help."]
ANSWERS = [
    "Sorry to hear that. Please hold the power button for {seconds} seconds, then release it and try again.",
    "I've checked your account and issued a refund for the duplicate charge; it should appear in {days} business days.",
    "You can change your password under {screen} > Security > Change password.",
    "Please update to version {version}, which fixes this issue, and let us know if it persists.",
    "I've escalated this to our hardware team; you'll receive a prepaid return label by email.",
    "Your order is delayed at the warehouse; the new estimated delivery date is {weekday}.",
    "Cancelling is possible from {screen} > Subscription; you'll keep access until the end of the period.",
    "Error {error} means the session expired; signing out and back in resolves it.",
    "Please try forgetting the Wi-Fi network on the {product} and reconnecting to the 2.4 GHz band.",
    "Thanks for reporting this. Our engineers are aware and a fix is planned for the next release.",
    "SMS codes can be delayed by carriers; you can switch to an authenticator app under {screen}.",
    "A replacement {product} in the right colour ships today; no need to return the other one.",
]
COMMON_QUESTIONS = ["How do I reset my password?", "Where can I download my invoice?",
                    "How do I cancel my subscription?",
                    "Is there a student discount?", "How long does shipping take?", "Can I change my delivery address?"]
FILL = {
    "product": ["Pixel 8 Pro", "Galaxy S23", "MacBook Air", "Echo Dot", "Nest Hub", "Kindle Oasis", "Fire TV Stick",
                "Surface Pro 9", "Sonos One", "Apple Watch", "ThinkPad X1", "Roku Ultra"],
    "app": ["Northwind", "Companion", "Home", "Fitness", "Photos", "Wallet"],
    "screen": ["Settings", "Account", "Preferences", "Reports", "Billing", "Profile"],
    "plan": ["Basic", "Plus", "Premium", "Family", "Business"],
    "weekday": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
}


def _fill(template: str, rng: random.Random) -> str:
    values = {key: rng.choice(choices) for key, choices in FILL.items()}
    values.update(minutes=rng.randint(2, 59), order=rng.randint(100000, 999999), days=rng.randint(2, 14),
                  percent=rng.randint(5, 60), error=f"E{rng.randint(100, 999)}", seconds=rng.choice((10, 15, 30)),
                  version=f"{rng.randint(2, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}")
    return template.format(**values)


def generate(n: int, seed: int, pii_share: float = 0.25):
    """n records (chat and alpaca) and, per record, the planted values: (record, [(field, type, value)])."""
    rng = random.Random(seed)
    values = quality.Values(seed)
    pii_templates = [t for items in quality.TEMPLATES.values() for t in items]
    records, planted = [], []
    for i in range(n):
        if rng.random() < 0.12:
            user = rng.choice(COMMON_QUESTIONS)  # an exact duplicate of other records' text
        else:
            parts = [rng.choice(OPENINGS), _fill(rng.choice(PROBLEMS), rng).capitalize() + ".",
                     _fill(rng.choice(DETAILS), rng), rng.choice(CLOSINGS)]
            user = " ".join(p for p in parts if p)
        gold: list[tuple[str, str, str]] = []
        if rng.random() < pii_share:
            sample = quality.fill(rng.choice(pii_templates), values, "pii")
            user = f"{user} {sample.text}" if rng.random() < 0.5 else f"{sample.text} {user}"
            gold = [(g.type, sample.text[g.start:g.end]) for g in sample.gold]
        answer = _fill(rng.choice(ANSWERS), rng)
        if rng.random() < 0.6:
            turns = [("user", user), ("assistant", answer)]
            if rng.random() < 0.7:
                turns.insert(0, ("system", SYSTEM_PROMPT))
            record = {"id": f"t{i:06d}", "source": "bench", "format": "chat",
                      "messages": [{"role": r, "content": c} for r, c in turns], "meta": {}}
            field = "messages"
        else:
            record = {"id": f"t{i:06d}", "source": "bench", "format": "alpaca", "instruction": user,
                      "input": "", "output": answer, "meta": {}}
            field = "instruction"
        records.append(record)
        planted.append([(field, kind, value) for kind, value in gold])
    return records, planted


def record_text(record: dict) -> str:
    from fttool.data.records import text_fields

    return "\n".join(text for _, text in text_fields(record))


def recall(outputs: list[dict], planted: list[list[tuple[str, str, str]]]) -> tuple[float, Counter, Counter]:
    total, removed = Counter(), Counter()
    for record, gold in zip(outputs, planted):
        text = record_text(record)
        for _, kind, value in gold:
            total[kind] += 1
            removed[kind] += value not in text
    return sum(removed.values()) / max(1, sum(total.values())), total, removed


class PlainLoop:
    """(a): presidio used the plain way, one record and one field at a time."""

    def __init__(self, params: dict):
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine

        provider = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": params["language"], "model_name": params["nlp_model"]}]})
        self.analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=[params["language"]])
        self.anonymizer = AnonymizerEngine()
        self.language = params["language"]
        self.entities = list(params["entities"])
        self.threshold = params["score_threshold"]
        # The first call pays for lazy set-up (tldextract's suffix list for the e-mail recognizer): load time.
        self.scrub("Write to jane.doe@example.com or call +1 415-555-0132.")

    def scrub(self, text: str) -> str:
        results = self.analyzer.analyze(text=text, language=self.language, entities=self.entities,
                                        score_threshold=self.threshold)
        return self.anonymizer.anonymize(text=text, analyzer_results=results).text if results else text

    def run(self, records: list[dict]) -> list[dict]:
        from fttool.data.records import map_text_fields

        return [map_text_fields(record, lambda _path, text: self.scrub(text)) for record in records]


def measure_load(key: str) -> int:
    """Print the seconds that building engine `key` takes in this (fresh) process, imports included."""
    started = time.perf_counter()
    params = quality.default_params()
    if key == "a":
        PlainLoop(params)
    else:
        with tempfile.TemporaryDirectory(prefix="fttool-pii-load-") as tmp:
            warm_up = {"train": [quality.text_record(0, "Call Jane Doe at +1 415-555-0132.")]}
            quality.run_stage(warm_up, params, Path(tmp))
    print(f"{time.perf_counter() - started:.3f}")
    return 0


def split_records(records: list[dict]) -> dict[str, list[dict]]:
    n = len(records)
    return {"train": records[: n * 8 // 10], "validation": records[n * 8 // 10: n * 9 // 10],
            "test": records[n * 9 // 10:]}


def run_stage_timed(splits: dict[str, list[dict]], params: dict, directory: Path) -> tuple[float, list[dict], dict]:
    started = time.perf_counter()
    result, outputs = quality.run_stage(splits, params, directory)
    seconds = time.perf_counter() - started
    return seconds, [r for split in ("train", "validation", "test") for r in outputs[split]], result.summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each, alternated (default 3)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--min-ratio", type=float, default=2.0)
    parser.add_argument("--workers", type=int, help="override pii.workers for (b) (default: the schema default)")
    parser.add_argument("--compare-workers", type=int, metavar="N",
                        help="also time the stage with pii.workers N, alternated with the others (a reference row)")
    # internal: one load, in a fresh process
    parser.add_argument("--measure-load", choices=["a", "b"], help=argparse.SUPPRESS)
    parser.add_argument("--write-docs", action="store_true",
                        help="write the '## PII throughput' section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    for name in ("presidio-analyzer", "presidio-anonymizer"):
        logging.getLogger(name).setLevel(logging.ERROR)  # (a)'s default config warns about unmapped spaCy labels

    if args.measure_load:
        return measure_load(args.measure_load)

    wall_started = time.perf_counter()
    records, planted = generate(args.records, args.seed)
    splits = split_records(records)
    params = quality.default_params()
    if args.workers is not None:
        params["workers"] = args.workers
    texts = [text for record in records for text in record_text(record).split("\n")]
    n_texts, n_distinct = len(texts), len(set(texts))
    with_pii = sum(bool(g) for g in planted)
    load_before = os.getloadavg()
    print(f"{args.records} records ({with_pii} with planted PII, {sum(map(len, planted))} values), {n_texts} texts, "
          f"{n_distinct} distinct; load average {quality.load_average()}", flush=True)

    # Each engine's one-time load (imports, spaCy model, presidio registry, first call) in a fresh process.
    loads = {key: float(subprocess.run([sys.executable, __file__, "--measure-load", key], check=True,
                                       capture_output=True, text=True).stdout.split()[-1]) for key in ("a", "b")}
    print(f"one-time engine load, fresh process: (a) {loads['a']:.1f} s, (b) {loads['b']:.1f} s", flush=True)
    plain = PlainLoop(params)
    with tempfile.TemporaryDirectory(prefix="fttool-pii-tput-") as tmp:
        quality.run_stage({"train": [quality.text_record(0, "Call Jane Doe at +1 415-555-0132.")]}, params,
                          Path(tmp) / "warm")  # builds the stage's engines in this process
        variants = {"a": None, "b": params}
        if args.compare_workers is not None:
            variants["c"] = {**params, "workers": args.compare_workers}
        times = {key: [] for key in variants}
        recalls = {}
        summary = {}
        for run in range(args.runs):
            for key, variant in variants.items():
                if variant is None:
                    started = time.perf_counter()
                    out = plain.run(records)
                    times[key].append(time.perf_counter() - started)
                else:
                    seconds, out, variant_summary = run_stage_timed(splits, variant, Path(tmp) / f"run{run}{key}")
                    times[key].append(seconds)
                    summary = variant_summary if key == "b" else summary
                if run == 0:
                    recalls[key] = recall(out, planted)
            print(f"run {run + 1}: " + "  ".join(f"({k}) {v[-1]:.1f} s" for k, v in times.items())
                  + f"; load average {quality.load_average()}", flush=True)
    load_after = os.getloadavg()

    median = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: args.records / median[k] for k in median}
    ratios = [a / b for a, b in zip(times["a"], times["b"])]
    ratio = rate["b"] / rate["a"]
    rows = []
    labels = {"a": "(a) plain AnalyzerEngine.analyze + AnonymizerEngine.anonymize per record",
              "b": f"(b) fttool PII stage, defaults (workers {params.get('workers') or 'the cores available'})",
              "c": f"(reference) fttool PII stage, workers {args.compare_workers}"}
    for key in times:
        label = labels[key]
        r, _, _ = recalls[key]
        rows.append(f"| {label} | {', '.join(f'{t:.1f}' for t in times[key])} | {median[key]:.1f} | {rate[key]:.0f} | "
                    f"{rate[key] / rate['a']:.2f} | {r:.3f} |")
    table = ("| pipeline | run times, s | median s | records/s | × (a) | recall of planted values |\n"
             "|---|---|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n")
    _, total, removed_a = recalls["a"]
    _, _, removed_b = recalls["b"]
    per_type = ", ".join(f"{k} {removed_a[k]}/{removed_b[k]} of {total[k]}" for k in sorted(total))
    print()
    print(table)
    pairs = ", ".join(f"{x:.2f}" for x in ratios)
    print(f"ratio (b)/(a) of median records/s: {ratio:.2f} (per alternated pair: {pairs})")
    print(f"planted values removed, (a)/(b) of total: {per_type}")
    print(f"stage summary: records_with_pii {summary.get('records_with_pii')}, "
          f"residual_total {summary.get('residual_total')}")
    failures = []
    if ratio < args.min_ratio:
        failures.append(f"ratio {ratio:.2f} < {args.min_ratio}")
    if recalls["b"][0] < recalls["a"][0]:
        failures.append(f"recall of (b) {recalls['b'][0]:.3f} < recall of (a) {recalls['a'][0]:.3f}")
    verdict = "PASS" if not failures else "FAIL: " + "; ".join(failures)
    print(verdict)

    if args.write_docs:
        command = "python bench/pii_throughput.py --write-docs" \
            + (f" --records {args.records}" if args.records != 3000 else "") \
            + (f" --workers {args.workers}" if args.workers is not None else "") \
            + (f" --compare-workers {args.compare_workers}" if args.compare_workers is not None else "") \
            + (f" --runs {args.runs}" if args.runs != 3 else "")
        wall = time.perf_counter() - wall_started
        body = f"""Command: `{command}` (seed {args.seed}, {args.runs} runs of each,
alternated a, b, a, b, ...; {wall / 60:.1f} min in all).
Machine: {quality.machine()}; {quality.versions()}. Run {time.strftime('%Y-%m-%d %H:%M %Z')}; load average
{' / '.join(f'{x:.2f}' for x in load_before)} before and {' / '.join(f'{x:.2f}' for x in load_after)} after
(1 / 5 / 15 min; the machine is shared, so timings are noisy).

Data: {args.records} support records (chat and alpaca; {n_texts} text fields, {n_distinct} distinct texts:
a shared system prompt and common questions repeat), {with_pii} of them ({with_pii / args.records:.0%}) with
{sum(map(len, planted))} planted values (names, e-mails, phones, cards, SSNs, IPs). Both sides use
{params['nlp_model']}, entities {', '.join(params['entities'])}, score threshold {params['score_threshold']};
(b) uses every schema default (workers {params.get('workers') or 'the cores available: ' + str(os.cpu_count())}).

One-time engine load (imports, model, registry, first call; each in a fresh process), not in the timed runs:
(a) {loads['a']:.1f} s, (b) {loads['b']:.1f} s. When the stage starts worker processes, each loads its own engine inside
the timed run: that is part of its per-run cost.

{table}
Ratio (b)/(a) of median records/s: **{ratio:.2f}** (per alternated pair:
{', '.join(f'{x:.2f}' for x in ratios)}; target ≥ {args.min_ratio}).
Planted values removed, (a)/(b) of total: {per_type}.

Result: {verdict}.
"""
        quality.write_section(f"## PII throughput\n\n{body.strip()}\n")
        print(f"wrote '## PII throughput' in {quality.DOCS.relative_to(ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
