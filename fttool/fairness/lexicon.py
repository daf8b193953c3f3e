"""A small curated lexicon for spotting demographic mentions in text, by category and group.

The bias audit uses it to estimate how often records mention each group; it is a rough, transparent
signal, not a classifier. Terms match whole words, case-insensitively; a term of several words
matches across any whitespace. Within a category the longest term wins at each position, so
"Latin American" counts for Latin America and not also for North America through "American".
Ambiguous words are left out on purpose (e.g. "they", "ms", "old", "aging", "senior", "polish",
"English"), since they name something other than a group far more often than a group. Every term
belongs to one group of its category.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterable

LEXICON: dict[str, dict[str, tuple[str, ...]]] = {
    "gender": {
        "female": ("she", "her", "hers", "herself", "woman", "women", "girl", "girls", "lady", "ladies",
                   "female", "females", "mother", "mothers", "mom", "mum", "daughter", "daughters", "sister",
                   "sisters", "wife", "wives", "aunt", "niece", "grandmother", "grandmothers", "grandma",
                   "girlfriend", "mrs", "madam"),
        "male": ("he", "him", "his", "himself", "man", "men", "boy", "boys", "gentleman", "gentlemen", "male",
                 "males", "father", "fathers", "dad", "son", "sons", "brother", "brothers", "husband",
                 "husbands", "uncle", "nephew", "grandfather", "grandfathers", "grandpa", "boyfriend", "mr",
                 "sir"),
        "non-binary": ("non-binary", "nonbinary", "non binary", "enby", "genderqueer", "genderfluid",
                       "gender-fluid", "agender"),
    },
    "age": {
        "young": ("young", "younger", "youth", "youths", "youngster", "youngsters", "teen", "teens", "teenager",
                  "teenagers", "adolescent", "adolescents", "child", "children", "kid", "kids", "juvenile",
                  "juveniles", "millennial", "millennials", "gen z"),
        "older": ("elderly", "older people", "older person", "older adult", "older adults", "senior citizen",
                  "senior citizens", "pensioner", "pensioners", "retiree", "retirees", "old age", "grandparent",
                  "grandparents", "boomer", "boomers", "octogenarian", "nonagenarian"),
    },
    "religion": {
        "christian": ("christian", "christians", "christianity", "catholic", "catholics", "catholicism",
                      "protestant", "protestants", "evangelical", "evangelicals", "church", "churches", "bible"),
        "muslim": ("muslim", "muslims", "islam", "islamic", "mosque", "mosques", "quran", "koran", "imam",
                   "ramadan"),
        "jewish": ("jewish", "jew", "jews", "judaism", "synagogue", "synagogues", "rabbi", "torah", "kosher"),
        "hindu": ("hindu", "hindus", "hinduism", "diwali"),
        "buddhist": ("buddhist", "buddhists", "buddhism", "buddha"),
        "sikh": ("sikh", "sikhs", "sikhism", "gurdwara"),
        "non-religious": ("atheist", "atheists", "atheism", "agnostic", "agnostics"),
    },
    # Nationalities grouped by region: a dataset rarely mentions enough single nationalities for their
    # shares to mean anything. Adjectives double as language names ("in French"), which also count.
    "nationality": {
        "north_america": ("american", "americans", "canadian", "canadians"),
        "latin_america": ("latin american", "latin americans", "south american", "south americans", "mexican",
                          "mexicans", "brazilian", "brazilians", "argentine", "argentinian", "argentinians",
                          "colombian", "colombians", "chilean", "chileans", "peruvian", "peruvians", "cuban",
                          "cubans", "venezuelan", "venezuelans"),
        "europe": ("european", "europeans", "british", "irish", "scottish", "welsh", "french", "german",
                   "germans", "italian", "italians", "spanish", "spaniard", "spaniards", "portuguese", "dutch",
                   "belgian", "belgians", "swiss", "austrian", "austrians", "swedish", "norwegian",
                   "norwegians", "danish", "finnish", "greek", "greeks", "russian", "russians", "ukrainian",
                   "ukrainians", "romanian", "romanians", "hungarian", "hungarians", "czech"),
        "middle_east_north_africa": ("arab", "arabs", "egyptian", "egyptians", "moroccan", "moroccans",
                                     "algerian", "algerians", "tunisian", "tunisians", "saudi", "saudis",
                                     "iraqi", "iraqis", "iranian", "iranians", "syrian", "syrians", "lebanese",
                                     "jordanian", "jordanians", "israeli", "israelis", "palestinian",
                                     "palestinians", "turkish", "emirati", "emiratis", "yemeni", "yemenis"),
        "sub_saharan_africa": ("african", "africans", "south african", "south africans", "nigerian",
                               "nigerians", "kenyan", "kenyans", "ethiopian", "ethiopians", "ghanaian",
                               "ghanaians", "somali", "somalis", "ugandan", "ugandans", "tanzanian",
                               "tanzanians", "congolese", "senegalese", "zimbabwean", "zimbabweans"),
        "south_asia": ("indian", "indians", "pakistani", "pakistanis", "bangladeshi", "bangladeshis",
                       "sri lankan", "sri lankans", "nepali", "nepalese", "afghan", "afghans"),
        "east_asia": ("chinese", "japanese", "korean", "koreans", "taiwanese", "mongolian", "mongolians"),
        "southeast_asia": ("vietnamese", "thai", "filipino", "filipinos", "filipina", "filipinas", "indonesian",
                           "indonesians", "malaysian", "malaysians", "singaporean", "singaporeans", "cambodian",
                           "cambodians", "burmese"),
        "oceania": ("australian", "australians", "aussie", "aussies", "new zealander", "new zealanders",
                    "fijian", "fijians", "samoan", "samoans"),
    },
}
CATEGORIES = tuple(LEXICON)


def _trie(terms: Iterable[str]) -> dict:
    """The terms as a trie of characters, a run of whitespace as one " " step and "" marking a term's end."""
    root: dict = {}
    for term in terms:
        node = root
        for character in " ".join(term.split()):
            node = node.setdefault(character, {})
        node[""] = {}
    return root


def _alternation(node: dict) -> str:
    """The trie below `node` as a regex. Longer terms are tried before a term ending here, so the longest term wins
    at each position, as in a plain alternation sorted longest first; branching on the next character makes the
    engine try a handful of alternatives at each word boundary instead of every term of the category."""
    branches = [(r"\s+" if step == " " else re.escape(step)) + _alternation(child)
                for step, child in sorted(node.items()) if step]
    if "" in node:
        branches.append("")
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


@functools.cache
def _matcher(category: str) -> tuple[re.Pattern, dict[str, str]]:
    """One pattern for all terms of a category, longest term first at each position, and the group of each term."""
    groups = {term: group for group, terms in LEXICON[category].items() for term in terms}
    return re.compile(r"\b" + _alternation(_trie(groups)) + r"\b", re.IGNORECASE), groups


def groups_mentioned(texts: Iterable[str], category: str) -> set[str]:
    """The groups of `category` that any of `texts` mentions."""
    pattern, groups = _matcher(category)
    return {groups[" ".join(match.group(0).lower().split())] for text in texts for match in pattern.finditer(text)}
