"""Addresses at names reserved for documentation and testing (RFC 2606, RFC 6761), which no one can hold.

example.com, example.net and example.org, and every name under the .example, .test, .invalid and .localhost
top-level domains, are reserved: mail to them is never delivered, so "recipient@example.com" in a code sample is
nobody's address. The local part can still name a real person ("maria.gonzalez@example.com" in an export whose
domains were replaced): an address whose local part holds a given name from the names lexicon (fttool.pii.names), or
a surname beside another word ("j.doe", "amara.okafor": the lexicon lacks many given names), stays a finding. A
surname alone does not count: the Census surname list holds many ordinary words ("boss", "test", "sales").
"""
from __future__ import annotations

import re

RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_TOP_LEVEL = ("example", "test", "invalid", "localhost")


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
    full_name = len(words) > 1 and any(word in surnames for word in words)
    return not (full_name or any(word in given for word in words))
