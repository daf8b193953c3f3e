"""Text as the recognizers should see it, with a map back to the original's offsets.

Evasion costs nothing: a card number in fullwidth digits (４１１１…), an e-mail with a zero-width space inside, or
digits of another script slip past patterns written for ASCII. Before analysis each character is put in NFKC form,
zero-width and other invisible format characters are removed, and every decimal digit of any script becomes its
ASCII digit. Findings are made on that text and mapped back, so what is replaced is the original text.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Invisible characters that split a value without showing: zero-width space, joiners, word joiner, BOM, soft hyphen.
INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e")


@dataclass(frozen=True)
class Normalised:
    """`text` for analysis; `origin[i]` is the original offset of text[i], and origin[len(text)] the original length."""
    text: str
    origin: tuple[int, ...] | None  # None: the text is its own normal form

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of text[start:end]: from its first character's origin to just after its last's."""
        if self.origin is None:
            return start, end
        return self.origin[start], (self.origin[end - 1] + 1 if end > start else self.origin[start])


def _normal_char(char: str) -> str:
    if char in INVISIBLE or unicodedata.category(char) == "Cf":
        return ""
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return str(digit)
    return unicodedata.normalize("NFKC", char)


def normalise(text: str) -> Normalised:
    """The text in the form recognizers read, with its map back; ASCII text is returned as it is."""
    if text.isascii():
        return Normalised(text, None)
    parts: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        normal = _normal_char(char)
        parts.append(normal)
        origin.extend([index] * len(normal))
    normal_text = "".join(parts)
    if normal_text == text:
        return Normalised(text, None)
    origin.append(len(text))
    return Normalised(normal_text, tuple(origin))
