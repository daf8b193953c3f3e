"""A text that is, as a whole, a person's name: a name field ("MARK EDMONDS", "LOIACONO, JOSEPH", "Dr. Jane Roe M.D.").

The NER reads sentences; a field that holds only a name gives it none, and the small spaCy model misses names in
capitals, in lower case, in "Surname, Given" order or with titles and degrees around them. This rule reads the layout
instead. A text is a name field when it holds one person, or a couple joined by "and" or "&", each written as
- optional forms of address (Mr, Mrs, Ms, Dr, Prof, Rev, ...),
- name words, initials ("J", "C.D.") and at most one nickname in quotes or parentheses ("Brian "Buck" Rogers"),
- optional generational and professional suffixes (Jr, Sr, II-IV, MD, M.D., PhD, RN, Esq, ...), after a comma or not,
- in given-first order, or "Surname, Given" order ("HARNISCH JR, FREDERICK L").
Evidence that it is a person and not a company, a title or a phrase: a form of address, or a given name of fttool's
lexicons (fttool.pii.names, case folded) where a given name stands (before the surname; first after the comma in
"Surname, Given" order); and nothing that speaks against one: no digits or other symbols, no stop word but the
connectors, no organisation word (legal forms and kinds of organisation), no ordinary word that is no name (a
dictionary word that is neither a surname nor a given name), no name that lies inside a place the NER found. A couple
names its surname ("joseph & golnar phillips"): its last person has one, and its first has evidence of its own, so
"Romeo and Juliet" and "Barnes & Noble" are not couples. The words of a text share one case pattern.

Each person found is one span, from its first form of address or name word to its last suffix; connectors are left
out. Offsets are the text's own (the scrubber analyses normal form and maps findings back).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from fttool.pii.names import ORGANISATION_WORDS, lexicon

# Common English forms of address and the offices most often written before a name, with or without a full stop.
FORMS_OF_ADDRESS = frozenset("""
    mr mrs ms miss mx messrs mmes dr drs prof professor rev revd reverend fr father pastor bishop rabbi imam sir
    dame hon senator sen congressman congresswoman representative rep governor gov mayor judge
""".split())
# Generational suffixes and the degrees, licences and post-nominals most often written after a name in the US and UK.
SUFFIXES = frozenset("""
    jr jnr sr snr ii iii iv
    md do dds dmd dvm od dc dpm phd edd psyd jd llm mba mph msw lcsw cpa cfa cfp esq rn bsn msn lpn np aprn crna
    lncc facs facp faan frcs mrcp obe mbe cbe kc qc pe
""".split())
CONNECTORS = frozenset({"and", "&"})
# Surname particles, written in lower case inside a name ("Jur van den Berg", "Maria de la Cruz").
PARTICLES = frozenset("van von der den de del della di da das dos du la le ten ter mc mac st bin ibn al el ben".split())
# Words that make a text an organisation: ORGANISATION_WORDS (fttool.pii.names), common legal-form abbreviations of
# the US, UK and EU forms that ISO 20275's entity legal forms list (written by hand, not generated from that list),
# and kinds of organisation that name no person.
ORGANISATION_FIELD_WORDS = ORGANISATION_WORDS | frozenset("""
    lp pllc pc pa plc gmbh kg ag sa sas sarl srl spa nv bv oy ab aps asa kk pty pvt dba aka fka
    associates association center centre fund pac church cemetery chapel parish ministries mission temple
    firm law office offices union league local chamber federation alliance coalition campaign citizens friends
    sons brothers bros family trust estate medical health dental care center systems farm farms ranch
    construction builders realty properties management marketing productions design designs supply supplies
    museum library gallery theatre theater orchestra band choir
""".split())
MAX_NAME_TOKENS = 6  # name words, initials and nicknames of one person
MAX_CHARS = 120
POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)
MIN_COMMON_WORD_CHARS = 4  # shorter common words are often surnames too ("Su", "Li", "Lin", "Ma")

TOKEN = re.compile(r"""
    (?P<word>(?:[^\W\d_]{1,2}\.){2,}|[^\W\d_]+(?:['’-][^\W\d_]+)*\.?)
  | (?P<amp>&) | (?P<comma>,) | (?P<open>[("“]) | (?P<close>[)"”]) | (?P<space>\s+)
""", re.VERBOSE)


@dataclass(frozen=True)
class Token:
    """A word or a punctuation mark of the text, at its offsets."""
    text: str
    start: int
    end: int
    kind: str  # word, amp, comma, open, close

    @property
    def key(self) -> str:
        return self.text.lower().replace(".", "").replace("’", "'")


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS) - CONNECTORS


def tokens(text: str) -> list[Token] | None:
    """The text's words and punctuation, or None when anything else (a digit, a symbol) is in it."""
    out, position = [], 0
    for match in TOKEN.finditer(text):
        if match.start() != position:
            return None
        position = match.end()
        if match.lastgroup != "space":
            out.append(Token(match.group(), match.start(), match.end(), str(match.lastgroup)))
    return out if position == len(text) else None


def _kind(token: Token) -> str:
    """address, suffix, initial, connector or name: what a word is in a name."""
    key = token.key
    if token.kind == "amp" or key == "and":
        return "connector"
    if key in FORMS_OF_ADDRESS:
        return "address"
    if key in SUFFIXES:
        return "suffix"
    if len(key) == 1 or (token.text.count(".") >= 2 and len(key) == token.text.count(".")):
        return "initial"
    return "name"


@dataclass(frozen=True)
class Person:
    """One person of a name field: its span (forms of address to suffixes) and what the evidence is read from."""
    start: int
    end: int
    name_words: tuple[Token, ...]  # name words, nicknames included, not initials
    nickname: tuple[Token, ...]
    initials: tuple[Token, ...]
    addressed: bool  # a form of address leads
    given: tuple[Token, ...]  # words where a given name stands
    has_surname: bool


def _split(items: list[Token], at: Callable[[Token], bool]) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    for token in items:
        if at(token):
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


@dataclass(frozen=True)
class Segment:
    """One part of a person between commas: its forms of address, then its words (name words, initials and a
    nickname's words), then its suffixes."""
    addressed: bool
    body: tuple[Token, ...]
    nickname: tuple[Token, ...]

    def name_words(self) -> list[Token]:
        return [t for t in self.body if _kind(t) != "initial"]


def _nickname(segment: list[Token], index: int, tail: int) -> list[Token] | None:
    """The words of a nickname whose opening quote or parenthesis is segment[index], or None."""
    opening = segment[index].text
    close = next((i for i in range(index + 1, min(tail, index + 4))
                  if segment[i].kind in ("close", "open") and _closes(opening, segment[i].text)), None)
    words = segment[index + 1:close] if close else []
    return words if words and all(t.kind == "word" for t in words) else None


def _segment(segment: list[Token]) -> Segment | None:
    """The segment laid out as a name, or None."""
    kinds = [_kind(t) if t.kind == "word" else t.kind for t in segment]
    lead = 0
    while lead < len(kinds) and kinds[lead] == "address":
        lead += 1
    tail = len(kinds)
    while tail > lead + 1 and kinds[tail - 1] == "suffix":
        tail -= 1
    body: list[Token] = []
    nickname: list[Token] = []
    index = lead
    while index < tail:
        if segment[index].kind == "open" and not nickname and index > lead:
            found = _nickname(segment, index, tail)
            if found is None:
                return None
            nickname = found
            body += found
            index += len(found) + 2
            continue
        if segment[index].kind != "word" or kinds[index] == "address":
            return None
        body.append(segment[index])
        index += 1
    return Segment(lead > 0, tuple(body), tuple(nickname))


def _closes(opening: str, closing: str) -> bool:
    return {"(": ")", '"': '"', "“": "”"}[opening] == closing


def person(items: list[Token]) -> Person | None:
    """One person's tokens (no connector) read as a name, in given-first or "Surname, Given" order, or None."""
    parts = _split(items, lambda token: token.kind == "comma")
    if not items or any(not part for part in parts):
        return None
    named = [part for part in parts if not all(t.kind == "word" and _kind(t) == "suffix" for t in part)]
    if not named or named[0] is not parts[0] or len(named) > 2:
        return None
    segments = [_segment(part) for part in named]
    if any(segment is None for segment in segments):
        return None
    read = [segment for segment in segments if segment is not None]
    words = tuple(t for segment in read for t in segment.name_words())
    initials = tuple(t for segment in read for t in segment.body if _kind(t) == "initial")
    nickname = tuple(t for segment in read for t in segment.nickname)
    if len(read) == 2:  # "Surname, Given": the given name is the first word after the comma
        given_words = [t for t in read[1].name_words() if t not in nickname]
        if not read[0].name_words() or not given_words:
            return None
        given, has_surname = (given_words[0], *nickname), True
    else:
        plain = [t for t in words if t not in nickname]
        given = (*plain[:-1], *nickname) if len(plain) > 1 else (*plain, *nickname)
        has_surname = len(plain) > 1
    if len(words) + len(initials) > MAX_NAME_TOKENS:
        return None
    return Person(items[0].start, items[-1].end, words, nickname, initials,
                  any(segment.addressed for segment in read), given, has_surname)


def _case(word: str) -> str:
    return "lower" if word.islower() else "upper" if word.isupper() else "title" if word[0].isupper() else "other"


def _is_among(key: str, words: frozenset[str]) -> bool:
    """The word or, for a plural that is no surname ("Rocky Mountains", not "Chambers"), its singular."""
    if key in words:
        return True
    return key not in lexicon()[1] and ((key.endswith("s") and key[:-1] in words)
                                        or (key.endswith("es") and key[:-2] in words))


def _speaks_against(people: list[Person], common_words: frozenset[str]) -> bool:
    """Anything that makes the text a phrase or an organisation rather than a name (see the module)."""
    given_names, surnames = lexicon()
    stop = _stop_words()
    words = [t for p in people for t in p.name_words]
    if any(_is_among(t.key, ORGANISATION_FIELD_WORDS) or POSSESSIVE.search(t.text)
           or (t.key in stop and (t.key not in given_names or t.text.islower())) for t in words):
        return True  # a possessive names a shop or a work ("Jimmy Sung's"); "my" is a stop word, "My" a name
    if any(t.key in ORGANISATION_FIELD_WORDS for p in people for t in p.initials):
        return True  # "Phillip S. Miller P.C."
    cases = {_case(t.text) for t in words if t.key not in PARTICLES}
    if "other" in cases or ("lower" in cases and len(cases) > 1):
        return True
    nicknames = {t for p in people for t in p.nickname}
    return any(_is_among(t.key, common_words) and t.key not in surnames and t.key not in given_names
               and len(t.key) >= MIN_COMMON_WORD_CHARS and "'" not in t.key and t.key not in PARTICLES
               for t in words if t not in nicknames)


def _evident(one: Person) -> bool:
    given_names = lexicon()[0]
    return one.addressed or any(t.key in given_names for t in one.given)


def name_field_spans(text: str, common_words: frozenset[str] = frozenset(),
                     places: tuple[tuple[int, int], ...] = ()) -> list[tuple[int, int]]:
    """The spans of the people a text names when the whole text is a name by layout (one span per person of a
    couple), else []. `common_words`: see `common_words`; `places`: the spans the NER took for places, which veto
    a person whose name words all lie inside them ("San Francisco", "Paris, France")."""
    if len(text) > MAX_CHARS or "\n" in text.strip() or len(text.split()) < 2:
        return []
    items = tokens(text)
    if not items:
        return []
    while items and items[-1].kind == "comma":
        items = items[:-1]
    if items and items[-1].text.endswith(".") and _kind(items[-1]) == "name":
        return []  # a full stop after a whole word at the end ends a sentence ("I will succeed.")
    parts = _split(items, lambda token: _kind(token) == "connector")
    if len(parts) > 2 or any(not part for part in parts):
        return []
    people = []
    for part in parts:
        if all(t.kind == "word" and _kind(t) == "address" for t in part):
            people.append(Person(part[0].start, part[-1].end, (), (), (), True, (), False))
            continue
        one = person(part)
        if one is None:
            return []
        people.append(one)
    if not _evident(people[0]) or _speaks_against(people, common_words) or not any(p.name_words for p in people):
        return []
    if len(people) == 2 and not people[-1].has_surname:
        return []
    if any(p.name_words and all(any(a <= t.start and t.end <= b for a, b in places) for t in p.name_words)
           for p in people):
        return []
    return [(p.start, p.end) for p in people if p.name_words]


def common_words(nlp) -> frozenset[str]:
    """The lemmas a spaCy pipeline's rule lemmatizer knows (WordNet's index words in spaCy's English models), or an
    empty set for a pipeline without that table: a name word that is one of these and no name of fttool's lexicons
    ("Serena Concrete", "Ted Kohl Brokerage") makes a text a phrase or a business, not a name."""
    if "lemmatizer" not in getattr(nlp, "component_names", ()):
        return frozenset()
    lookups = getattr(nlp.get_pipe("lemmatizer"), "lookups", None)
    if lookups is None or not lookups.has_table("lemma_index"):
        return frozenset()
    return frozenset(word for words in lookups.get_table("lemma_index").values() for word in words)
