"""Street addresses: a pattern recognizer for the US, UK, Canadian and common continental European forms.

presidio has no recognizer for street addresses. usaddress parses a string already known to be a US address (it
does not find one in running text) and pyap finds US, Canadian and British ones only, so these patterns are built
on a lexicon of street-type words in the languages of those forms:
- number first (US, UK, CA, AU, FR): "1755 Nelson Mandela Drive", "8 Wressle Road", "107 Rue Abdelaziz Thâalbi";
- name first, number after (DE, NL, CH, AT, Nordic, CZ, PL, HU, ES, IT, PT): "Nassaustraat 123", "Ziegelgasse 26",
  "Calle Mayor 5", "Via Roma 10";
- a unit ("Apt. 018", "Suite 446", "Flat 2", Canada Post's "Bureau 1105") after a street, alone after an address
  word, or on a line of its own; a post office box ("PO Box 472", Canada Post's "Case postale 710", "C.P. 500");
- postcodes: UK and Canadian forms outright, a US ZIP (+4) only beside a state code or an address word;
- anything after "address:" or "lives at/on" up to the end of its line ("IP address:", "e-mail address:" and other
  addresses that are not a place excepted: their own recognizers type them);
- the short lines right after a street line that hold a unit, a place or a postcode, and on the street's own line
  the capitalised place names up to the UK or Canadian postcode that closes it, or through the US state and ZIP Code
  that close it (`address_blocks`).
Matching is case-insensitive (texts in lower case are common), so the street word carries the evidence.
"""
from __future__ import annotations

# English street words and USPS abbreviations (Publication 28), any case.
STREET_WORDS = (
    "street", "st", "road", "rd", "avenue", "ave", "av", "boulevard", "blvd", "drive", "lane", "ln", "terrace", "ter",
    "crescent", "cres", "parkway", "pkwy", "highway", "hwy", "hgwy", "expressway", "expy", "freeway", "fwy",
    "turnpike", "tpke", "mews", "gardens", "cir", "ct", "pl", "plz", "pt", "trl", "cv", "xing", "hts", "sq",
)
# Street words that are also everyday words ("3 miles to the park"): only capitalised or in capitals, as in
# "Kate Edger Place", "LIMELIGHT CIR".
STREET_WORDS_CAPITALISED = ("Way", "Court", "Place", "Square", "Close", "Grove", "Circle", "Trail", "Row", "Walk",
                            "Hill", "Park", "Dr", "Loop", "Pointe", "Point", "Run", "Pass", "Path", "Pike", "Cove",
                            "Crossing", "Heights", "Ridge", "View", "Wynd", "Market", "Center", "Centre", "Plaza")
DIRECTIONS = r"(?:n|s|e|w|ne|nw|se|sw|north|south|east|west|northeast|northwest|southeast|southwest)"
# Numbered roads: "198 Route 690", "3252 rt 60 east", "88175 US Highway 278".
NUMBERED_ROADS = r"(?:state\s+|us\s+|county\s+|old\s+state\s+)?(?:route|rte|rt|highway|hwy|road|loop|sr|cr)"
STREET_WORDS_BEFORE_NAME = (
    "rue", "avenue", "boulevard", "chemin", "allée", "impasse", "quai", "place", "calle", "avenida", "paseo",
    "plaza", "carrer", "via", "viale", "piazza", "corso", "largo", "rua", "praça", "travessa", "ulica", "ul",
    "aleja", "al", "plac", "náměstí", "nám", "boul",  # Canada Post's abbreviation of boulevard
)
# Suffixes of one-word street names (German, Dutch, Nordic, Czech, Hungarian, Polish, ...): "Auerstrasse".
STREET_SUFFIXES = (
    "straße", "strasse", "str", "gasse", "weg", "allee", "platz", "ring", "damm", "ufer", "steig", "chaussee",
    "straat", "laan", "plein", "gracht", "kade", "singel", "dijk", "gade", "vej", "gata", "gatan", "vägen", "väg",
    "veien", "vei", "katu", "tie", "utca", "útja", "út", "ulice", "třída",
)

_WORD = r"[\p{L}][\p{L}'’.-]*"
# Words that do not stand inside a street name: "12 points in the park", "3 miles to the road".
_NOT_NAME = (r"(?!(?:the|a|an|to|in|on|of|for|and|or|at|by|from|with|into|down|up|across|along|past|miles?|km|"
             r"kilometers?|kilometres?|blocks?|minutes?|hours?|times?|points?|goals?|steps?|feet|yards?|meters?)\b)")
# "5th Ave", "42ND CT", and numbered streets with a letter as Canada Post writes them: "14952 121A ST" (not a bare
# number: "2 100 ct" is a count)
_NAME_WORD = rf"{_NOT_NAME}(?:\d{{1,3}}(?:st|nd|rd|th|[a-z])\b|{_WORD})"
# A civic number, with a range or, Canada Post's form, the unit before it: "185-187", "104-18663"
_NUMBER = r"\d{1,5}[a-z]?(?:[-/]\d{1,5}[a-z]?)?"
# Unit designators: USPS Publication 28's and Canada Post's, English and French (bureau, unité, app.)
_UNIT = (r"(?:,?\s+(?:apt|apartment|app|appartement|suite|ste|unit|unité|bureau|flat|fl|floor|room|#)\.?\s*#?"
         r"(?:\d{1,5}[a-z]?|[a-z]\d{0,4})\b)?")
# "16th St NW", "Terrace North": on the street's own line; a line that starts with a direction is a place
# ("East Finchley", "North York"), the block's next line.
_AFTER = rf"(?:[^\S\n]+{DIRECTIONS}\b\.?)?"
_CAPITALISED = sorted(STREET_WORDS_CAPITALISED + tuple(word.upper() for word in STREET_WORDS_CAPITALISED),
                     key=len, reverse=True)
_STREET_WORD = "|".join(sorted(STREET_WORDS, key=len, reverse=True)) + "|(?-i:" + "|".join(_CAPITALISED) + ")"
_BEFORE_NAME = "|".join(sorted(STREET_WORDS_BEFORE_NAME, key=len, reverse=True))
_SUFFIX = "|".join(sorted(STREET_SUFFIXES, key=len, reverse=True))
UK_POSTCODE = r"[a-z]{1,2}\d[a-z\d]?\s+\d[abd-hjlnp-uw-z]{2}"
CANADIAN_POSTCODE = r"[abceghj-nprstvxy]\d[abceghj-nprstv-z]\s?\d[abceghj-nprstv-z]\d"
ADDRESS_CONTEXT = ["address", "addresses", "lives", "live", "living", "located", "street", "ship", "deliver",
                   "delivery", "billing", "shipping", "mail", "post", "zip", "postcode", "postal", "return"]

# (name, regex, score); all matched case-insensitively.
ADDRESS_PATTERNS = (
    ("number, name, street word",
     rf"\b{_NUMBER}(?:\s+\d{{1,5}})?\s+(?:{DIRECTIONS}\.?\s+)?(?:{_NAME_WORD}\s+){{1,3}}(?:{_STREET_WORD})\b\.?"
     rf"{_AFTER}{_UNIT}", 0.5),
    ("number, numbered road", rf"\b{_NUMBER}\s+{NUMBERED_ROADS}\s+\d{{1,4}}[a-z]?\b{_AFTER}{_UNIT}", 0.5),
    ("number, street word, name",
     rf"\b{_NUMBER}(?:\s+\d{{1,5}})?,?\s+(?:{_BEFORE_NAME})\.?\s+(?:{_WORD}\s+){{0,3}}{_WORD}{_UNIT}", 0.6),
    ("street word, name, number",
     rf"\b(?:{_BEFORE_NAME})\.?\s+(?:{_WORD}\s+){{0,3}}?{_WORD},?\s+{_NUMBER}\b{_UNIT}", 0.5),
    ("one-word street, number", rf"\b[\p{{L}}-]{{2,}}(?:{_SUFFIX})\.?\s+{_NUMBER}\b{_UNIT}", 0.6),
    ("number, name, street suffix word, number",
     rf"\b(?:{_NUMBER}\s+)?(?:{_NAME_WORD}\s+){{1,3}}(?:{_SUFFIX})\.?\s+{_NUMBER}\b{_UNIT}", 0.5),
    ("unit", r"\b(?:apt|apartment|suite|ste|flat)\.?\s*#?\d{1,5}[a-z]?\b", 0.3),
    # A line that holds nothing but a unit is the secondary line of an address block (USPS Publication 28's
    # designators); the lines after it continue the block. Not "unit" or "room": "Unit 3" heads a chapter.
    ("unit line", r"(?<=^[^\S\n]*)(?:apt|apartment|suite|ste|flat)\.?[^\S\n]*#?\d{1,5}[a-z]?(?=[^\S\n]*$)", 0.5),
    # USPS Publication 28's and Canada Post's forms (PO BOX, CASE POSTALE, CP).
    ("post office box", r"\b(?:p\.?[^\S\n]?o\.?[^\S\n]?box|post[^\S\n]+office[^\S\n]+box|case[^\S\n]+postale|c\.p\.)"
                        r"[^\S\n]*#?\d{1,6}\b", 0.5),
    ("uk postcode", rf"\b{UK_POSTCODE}\b", 0.4),
    ("canadian postcode", rf"\b{CANADIAN_POSTCODE}\b", 0.4),
    ("us zip", r"(?<=\b[a-z]{2},?\s)\d{5}(?:-\d{4})?\b|\b\d{5}(?:-\d{4})?\b", 0.1),
    ("introduced address",
     r"(?<=\b(?:(?<!\b(?:ip|ipv[46]|mac|e-?mail|web|website|internet|wallet|server|memory|network|hardware|url)\s)"
     r"address(?:es)?(?: is| was)?\s*[:,-]?|lives (?:at|on)|live (?:at|on)|located at|ship(?:ped)? to|"
     r"return (?:it )?to)\s+)(?=[^\n]{0,15}\d)[^\n]{3,80}?(?=[.;!?](?:\s|$)|\n|$|,? (?:and|in case|for|so|but) )",
     0.5),
)


# A line that continues an address block: a unit, a place, a postcode; short, and no sentence or label in it.
CONTINUATION = r"[^\S\n]*(?:[\p{L}\d][\p{L}\d .,'’()#-]{0,38})[^\S\n]*"
MAX_CONTINUATION_LINES = 4
# Written on one line, a UK or Canadian address runs street, locality, post town (province), postcode (Royal Mail's
# and Canada Post's order): up to five capitalised words between a street and the postcode that closes it.
_PLACE_WORD = r"\(?\p{Lu}[\p{L}'’.-]*\)?"
LOCALITY = (rf"[^\S\n]*,?[^\S\n]*({_PLACE_WORD}(?:,?[^\S\n]+{_PLACE_WORD}){{0,4}}),?[^\S\n]+"
            rf"(?=(?i:{UK_POSTCODE}|{CANADIAN_POSTCODE})\b)")
# USPS Publication 28's last line, written after the street on its line: city, state abbreviation, ZIP Code ("1600
# Grant Street, Denver, CO 80203"). The ZIP goes with the place names: on its own it counts only beside an address word.
US_STATES = ("AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND "
             "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI").split()
US_LAST_LINE = (rf"[^\S\n]*,?[^\S\n]*((?:{_PLACE_WORD},?[^\S\n]+){{1,4}}(?:{'|'.join(US_STATES)}),?[^\S\n]+"
                rf"\d{{5}}(?:-\d{{4}})?)(?!\w)")


def address_blocks(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """For each street-address span, the place names after it on its line up to a UK or Canadian postcode
    (LOCALITY) or through a US state and ZIP Code (US_LAST_LINE), and the continuation lines after it: up to four
    short lines (one blank line may come between) with no colon, question or sentence end, as in a letter's or a
    form's address block.

    Each line is a span of its own, without its indent: a line that another finding overlaps (a country the NER
    calls a place, before its postcode) then loses only that part when the anonymizer resolves the overlap, where
    one span for the whole block would be cut short there and leave the lines after it."""
    import regex

    line = regex.compile(rf"\n(?:[^\S\n]*\n)?({CONTINUATION})(?=\n|$)")
    locality, us_last_line = regex.compile(LOCALITY), regex.compile(US_LAST_LINE)
    lines = []
    for _, end in spans:
        place = locality.match(text, end) or us_last_line.match(text, end)
        if place:
            lines.append(place.span(1))
            end = place.end(1)
        position = text.find("\n", end)
        if position < 0 or text[end:position].strip(" ,.") != "" and len(text[end:position]) > 40:
            continue
        for _ in range(MAX_CONTINUATION_LINES):
            match = line.match(text, position)
            value = match.group(1) if match else ""
            if not value.strip() or value.rstrip().endswith("."):
                break
            start = match.start(1) + len(value) - len(value.lstrip())
            lines.append((start, match.start(1) + len(value.rstrip())))
            position = match.end(1)
    return lines
