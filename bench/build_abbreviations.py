"""Build fttool/pii/abbreviations.txt: abbreviations in capitals that WordNet knows, none of them as a place.

spaCy's small English model tags "AI" as a place (GPE) wherever it stands ("As an AI language model", "AI is
changing healthcare"), so LLM instruction data lost every "AI" to <LOCATION>. WordNet 3.0 (Debian's wordnet-base)
files each noun sense under a lexicographer file; places are noun.location. Kept: every noun written in capitals
(2 to 6 letters) none of whose senses is in noun.location: "AI" (artificial intelligence), "EU" (a group), "IT",
"CEO", "TV". Abbreviations WordNet knows as places stay places ("US", "UK", "CA", "NY"), and so does any it does not
know ("UAE", "NYC"): the NER is trusted there. The postal codes of states, provinces and territories are places too,
as every address of their country writes them, although WordNet knows only other senses of some: USPS's (as
fttool.pii.addresses.US_STATES has them: "MP"), Canada Post's ("AB", "MB", "NB", "NT") and Australia Post's ("NSW",
"SA"). ISO 3166 country codes are not excluded: "AI" (Anguilla) is the word this list is for, and "IT", "SE" and
"AU" are kept too; a country is rarely written as its code in running text.

    python bench/build_abbreviations.py
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_given_names import wordnet_synsets  # noqa: E402  (same directory: the WordNet reader both builders use)

WORDNET = Path("/usr/share/wordnet")
NOUN_LOCATION = "15"  # WordNet's lexicographer file noun.location
OUTPUT = Path(__file__).resolve().parents[1] / "fttool" / "pii" / "abbreviations.txt"
ABBREVIATION = re.compile(r"^[A-Z]{2,6}$")
# Canada Post's symbols of the provinces and territories, and Australia Post's of the states and territories.
CANADIAN_PROVINCES = frozenset("AB BC MB NB NL NS NT NU ON PE QC SK YT".split())
AUSTRALIAN_STATES = frozenset("ACT NSW NT QLD SA TAS VIC WA".split())


def abbreviations(wordnet: Path) -> list[str]:
    """The nouns WordNet writes in capitals, none of whose senses is a place."""
    files: dict[str, set[str]] = defaultdict(set)
    for lexfile, words in wordnet_synsets(wordnet, "noun"):
        for word in words:
            if ABBREVIATION.match(word):
                files[word].add(lexfile)
    from fttool.pii.addresses import US_STATES

    postal = CANADIAN_PROVINCES | AUSTRALIAN_STATES | set(US_STATES)
    return sorted(word for word, lexfiles in files.items() if NOUN_LOCATION not in lexfiles and word not in postal)


def licence(wordnet: Path) -> list[str]:
    """WordNet's licence, as its data files open with it: it asks to appear on every copy of any part."""
    lines = []
    for line in (wordnet / "data.noun").read_text(encoding="latin-1").splitlines():
        if not line.startswith(" "):
            break
        lines.append(line.strip().split(None, 1)[1].rstrip() if len(line.split()) > 1 else "")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordnet", type=Path, default=WORDNET)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    words = abbreviations(args.wordnet)
    header = [
        "# Abbreviations in capitals that WordNet 3.0 knows as nouns, none of them in its noun.location file; built by",
        "# bench/build_abbreviations.py from WordNet 3.0's data.noun, under its licence:",
        "#",
    ] + [f"# {line}".rstrip() for line in licence(args.wordnet)]
    args.output.write_text("\n".join(header + words) + "\n", encoding="utf-8")
    print(f"{len(words)} abbreviations written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
