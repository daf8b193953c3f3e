"""Addresses at names reserved for documentation and testing (RFC 2606, RFC 6761), which no one can hold.

example.com, example.net and example.org, and every name under the .example, .test, .invalid and .localhost
top-level domains, are reserved: mail to them is never delivered, so "recipient@example.com" in a code sample is
nobody's address. The local part can still name a real person ("maria.gonzalez@example.com" in an export whose
domains were replaced, or a labelled set made with Faker, whose addresses are at example.com, .net and .org): an
address whose local part holds a given name from the names lexicon (fttool.pii.names), or a surname beside another
word ("j.doe", "amara.okafor": the lexicon lacks many given names), stays a finding, and so does one whose words
join such names without a separator, as mail systems' user names do: a given name and a surname in either order
("moniquemartinez", "guerracarolyn"), or an initial and a surname of five letters or more ("lporter"; a shorter one
joined to a letter reads as a word too often: "email", "boss"). A surname alone does not count: the Census surname
list holds many ordinary words ("boss", "test", "sales"). Nor do John and Jane Doe, the placeholder names of legal
and technical writing ("johndoe@example.com"), or a role's mailbox (RFC 2142: info, marketing, sales, ...).
"""
from __future__ import annotations

import re

RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_TOP_LEVEL = ("example", "test", "invalid", "localhost")
PLACEHOLDER_NAMES = frozenset({"johndoe", "janedoe", "doejohn", "doejane"})
# Mailboxes of a role, not a person: RFC 2142's, and the other role names mail systems commonly reserve.
ROLE_MAILBOXES = frozenset("info marketing sales support abuse noc security postmaster hostmaster usenet news "
                           "webmaster www uucp ftp noreply donotreply admin administrator billing contact help "
                           "office team".split())
# A joined pair's surname has four letters or more, its given name three ("amysmith"): shorter pieces of ordinary
# words are names too often ("bill" + "ing", "nore" + "ply").
MIN_GIVEN_JOINED, MIN_SURNAME_JOINED = 3, 4
MIN_SURNAME_AFTER_INITIAL = 5


def reserved_domain(domain: str) -> bool:
    """Whether the domain is, or is under, a name reserved by RFC 2606 or RFC 6761."""
    domain = domain.lower().rstrip(".")
    return domain.rsplit(".", 1)[-1] in RESERVED_TOP_LEVEL or any(
        domain == name or domain.endswith("." + name) for name in RESERVED_DOMAINS)


def nobodys_address(address: str) -> bool:
    """Whether the e-mail address is at a reserved name and its local part names no one."""
    from fttool.pii.names import lexicon

    local, _, domain = address.rpartition("@")
    if not reserved_domain(domain):
        return False
    given, surnames = lexicon()
    words = [word for word in re.split(r"[^a-z]+", local.lower()) if word]
    joined = "".join(words)
    if joined in PLACEHOLDER_NAMES or joined in ROLE_MAILBOXES:
        return True
    full_name = len(words) > 1 and any(word in surnames for word in words)
    return not (full_name or any(word in given or _joined_name(word, given, surnames) for word in words))


def _joined_name(word: str, given: frozenset[str], surnames: frozenset[str]) -> bool:
    """Whether `word` is a given name and a surname joined in either order, or an initial and a surname."""
    if len(word) > MIN_SURNAME_AFTER_INITIAL and word[1:] in surnames:
        return True
    for cut in range(1, len(word)):
        head, tail = word[:cut], word[cut:]
        if len(head) >= MIN_GIVEN_JOINED and head in given and len(tail) >= MIN_SURNAME_JOINED and tail in surnames:
            return True
        if len(head) >= MIN_SURNAME_JOINED and head in surnames and len(tail) >= MIN_GIVEN_JOINED and tail in given:
            return True
    return False
