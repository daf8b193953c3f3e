"""Equality probe for PII speed work: everything the scrubber gives on third-party sets, as one file to compare.

For each set (GSM8K test, presidio-research's labelled set, LLaMA-Factory's alpaca and identity demos) it writes one
JSON line per distinct text (scrubbed text, counts, residuals, findings and spans, analysed NLP_BATCH texts at a time
as the workers hand them out), then the record path's output (fttool.pii.records: records written, the tally and the
findings file, with workers from 1000 records), and prints a digest per set. Run it in two trees and compare:

    PYTHONPATH=/tmp/before .venv/bin/python bench/pii_same_outputs.py /tmp/before.jsonl
    PYTHONPATH=. .venv/bin/python bench/pii_same_outputs.py /tmp/after.jsonl --batch 64
    cmp /tmp/before.jsonl /tmp/after.jsonl
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "external"
SETS = {"gsm8k-test": EXTERNAL / "gsm8k" / "test.jsonl",
        "presidio-research": EXTERNAL / "pii-labelled" / "generated_small.json",
        "alpaca_en_demo": EXTERNAL / "llamafactory-data" / "alpaca_en_demo.json",
        "identity": EXTERNAL / "llamafactory-data" / "identity.json"}


def _records(name: str) -> list[dict]:
    path = SETS[name]
    text = path.read_text(encoding="utf-8")
    raw = [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" \
        else json.loads(text)
    return [{"id": f"{name}-{index}", **({"text": item["full_text"]} if "full_text" in item else item)}
            for index, item in enumerate(raw)]


def _params(workers: int):
    from fttool.pii.settings import PiiParams, resolved_pii
    from fttool.pipeline.params import build
    from fttool.recipe.schema import apply_defaults, load_schema

    schema = load_schema()["properties"]
    section = apply_defaults({}, schema["pii"])
    data = apply_defaults({"sources": [{"path": "records.jsonl", "format": "text"}]}, schema["data"])
    return build(PiiParams, resolved_pii({**section, "workers": workers}, data), "pii")


def _outcome(outcome) -> list:
    return [outcome.scrubbed, sorted(outcome.found.items()), sorted(outcome.residual.items()),
            [[f.entity, f.score, f.recognizer, f.context] for f in outcome.findings], [list(s) for s in outcome.spans]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--batch", type=int, help="NLP_BATCH to run with (default: the tree's)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    from fttool.pii import scrubber, workers
    from fttool.pii.records import record_scrubbing, texts_of

    if args.batch:
        scrubber.NLP_BATCH = workers.NLP_BATCH = args.batch
    params = _params(args.workers)
    here = workers.HereAnalysis(scrubber.TextScrubber(params))
    with args.out.open("w", encoding="utf-8") as out:
        for name in SETS:
            records, digest = _records(name), hashlib.sha256()

            def write(row: list, digest=digest) -> None:
                line = json.dumps(row, ensure_ascii=False, sort_keys=True)
                out.write(line + "\n")
                digest.update(line.encode())

            texts = list(dict.fromkeys(text for record in records for text in texts_of(record, frozenset())))
            for outcome in here.start(texts)():
                write(["text", name, _outcome(outcome)])
            findings: list[dict] = []
            with record_scrubbing(params, len(records), on_finding=findings.append) as (scrub, tally):
                written = list(scrub(records))
            for record in written:
                write(["record", name, record])
            write(["tally", name, [sorted(tally.entities.items()), sorted(tally.residual.items()),
                                   {field: sorted(counts.items()) for field, counts in sorted(tally.by_field.items())},
                                   tally.records_with_pii, findings]])
            print(name, len(texts), "texts", len(written), "records", digest.hexdigest()[:16], flush=True)


if __name__ == "__main__":
    main()
