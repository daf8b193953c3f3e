"""Given names and surnames, as evidence that a span the NER calls an organisation is a person.

The lexicon is the US Census Bureau's 1990 name frequency lists (public domain) as the `names` package ships them
(about 5,500 given names and 89,000 surnames), and given names from many countries (given_names.txt beside this
module: names that nomquamgender's sources attest widely, less ordinary English words; see
bench/build_given_names.py), so that "Filip" or "Sumaya" count as much as "Philip" or "Susan". Used only as evidence
beside capitalisation, the tagger and context, never to find names on its own: many surnames are also ordinary words
(White, Young, King).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

# Words that make a capitalised span an organisation whatever names it holds ("Becker Consulting", "Smith & Co").
ORGANISATION_WORDS = frozenset("""
    inc ltd llc llp plc gmbh ag sa bv co corp corporation company companies group holdings bank university college
    school academy institute foundation association society council committee ministry department agency office
    club team party news times post journal press media airlines airways hospital clinic church software consulting
    solutions services systems technologies technology tech labs laboratories studio studios partners capital
    energy motors pharma pharmaceuticals store stores shop cafe restaurant hotel hotels international global
    industries enterprises networks communications entertainment records films pictures games insurance trust fund
""".split())
# Words shortly before an ORG span that speak of people: "founders: Eklund, Becker and Vasquez", "Mr", "called".
PERSON_CONTEXT = re.compile(r"(?i)\b(?:founders?|co-?founders?|partners?|mr|mrs|ms|miss|dr|prof|called|named|"
                            r"ask|tell|told|met|meet|dear|hi|hello|thanks|colleagues?|friends?|"
                            r"wife|husband|son|daughter|brother|sister|mother|father|boss|manager)\b")
CONTEXT_CHARS = 40
MAX_NAME_TOKENS = 3
GIVEN_NAMES = Path(__file__).with_name("given_names.txt")


def _census_file(name: str) -> Path:
    import names

    return Path(names.__file__).parent / name


@lru_cache(maxsize=1)
def lexicon() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, surnames), lower case."""
    def read(*files: str) -> frozenset[str]:
        return frozenset(line.split(None, 1)[0].lower() for file in files
                         for line in _census_file(file).read_text().splitlines() if line.strip())

    international = frozenset(line for line in GIVEN_NAMES.read_text(encoding="utf-8").splitlines()
                              if line and not line.startswith("#"))
    return read("dist.male.first", "dist.female.first") | international, read("dist.all.last")


def place_is_person(span) -> bool:
    """Whether a one-word place (presidio LOCATION) is a given name acting as a subject: "Natalia sold clips"."""
    if len(span) != 1 or not span[0].is_title or span[0].lower_ not in lexicon()[0]:
        return False
    following = span.doc[span.end] if span.end < len(span.doc) else None
    return following is not None and (following.pos_ in ("VERB", "AUX") or following.tag_ == "POS")


def organisation_person_span(span, text: str) -> tuple[int, int] | None:
    """The characters of an ORG span (spaCy) that read as a person's name, or None: its first line, one to three
    capitalised words, none an organisation word, and either led by a given name or all surnames after words
    that speak of people."""
    words = []
    for token in span:
        if token.is_space:
            break  # an address block or signature: the name is the first line
        if not token.is_punct:
            words.append(token)
    if not 1 <= len(words) <= MAX_NAME_TOKENS or not all(t.is_alpha and t.is_title for t in words):
        return None
    lowered = [t.lower_ for t in words]
    if any(word in ORGANISATION_WORDS for word in lowered):
        return None
    given, surnames = lexicon()
    before = text[max(0, span.start_char - CONTEXT_CHARS):span.start_char]
    if lowered[0] in given or (all(word in surnames for word in lowered) and PERSON_CONTEXT.search(before)):
        return words[0].idx, words[-1].idx + len(words[-1])
    return None


# Tags of the word after a subject: "Tomasz lives", "Tomasz said", "Tomasz will", "Tomasz's".
SUBJECT_FOLLOWERS = frozenset({"VBZ", "VBD", "MD", "POS"})


def _reads_as_name(token) -> bool:
    """Tagged a proper noun, or (an unknown word at a sentence start is often tagged NN or JJ) a subject."""
    if token.tag_ == "NNP":
        return True
    following = token.doc[token.i + 1] if token.i + 1 < len(token.doc) else None
    return following is not None and following.tag_ in SUBJECT_FOLLOWERS


def given_name_spans(doc) -> list[tuple[int, int]]:
    """Proper nouns (tagged NNP) or subjects led by a given name that the NER left out: "Tiffany Kilfoyle",
    "Tiffany Gábor", "Tomasz lives". The words after the given name must be capitalised proper nouns; words inside
    any entity are left alone."""
    in_entity = {token.i for span in doc.ents for token in span}
    given = lexicon()[0]
    spans = []
    index = 0
    while index < len(doc):
        token = doc[index]
        if (token.i not in in_entity and token.is_title and len(token) > 2 and token.lower_ in given
                and _reads_as_name(token)):
            end = index + 1
            while end < len(doc) and end - index < MAX_NAME_TOKENS and doc[end].is_title \
                    and doc[end].tag_ == "NNP" and doc[end].i not in in_entity:
                end += 1
            spans.append((token.idx, doc[end - 1].idx + len(doc[end - 1])))
            index = end
        else:
            index += 1
    return spans
