"""The spans no augmentation method may change, and the tokenizer that rebuilds text around changed words.

Protected spans are PII placeholders (<PERSON>, <PERSON_3f2a91c0>), code (``` fenced blocks and `inline`
code), URLs, e-mail addresses and any word with a digit in it. Methods that send whole lines through a
model swap each protected span for a numbered marker ("[0]") with `shield` and put it back with `unshield`.
Only the standard library is imported here: fttool.augment.methods and fttool.augment.wordnet both use it.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence

PROTECTED = (r"```[\s\S]*?(?:```|\Z)"  # fenced code; an unclosed fence protects the rest of the text
             r"|`[^`\n]+`"
             r"|<[A-Z][A-Z0-9_]*(?:_[0-9a-f]+)?>"  # placeholders and keyed-hash pseudonyms left by the PII stage
             r"|(?:https?|ftp)://\S+|www\.\S+"
             r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
             # 4.5, 1,000, 12:30 and v2.1 as one token, so their inner punctuation cannot be re-spaced
             r"|(?<!\w)[^\W\d]*\d(?:[\w.,:/-]*\w)?")
# Every non-blank character belongs to a token, so the text between tokens is only whitespace.
TOKEN = re.compile(rf"{PROTECTED}|\w+(?:['’-]\w+)*|[^\w\s]")
# Tokens this matches (anchored at the start) are protected: protected spans and anything with a digit.
SKIP_TOKEN = rf"(?:{PROTECTED})\Z|.*\d"
_SKIP_TOKEN = re.compile(SKIP_TOKEN)
MARKER = re.compile(r"\[\s*(\d+)\s*\]")  # tokenizers may space out "[0]" as "[ 0 ]"
# Model tokens never to mask: marker pieces. RoBERTa's "Ġ[" is not plain punctuation, so brackets are named.
MARKER_PIECE = r".*[\d\[\]]"
LETTER = re.compile(r"[^\W\d_]")
PLAIN_WORD = re.compile(r"[^\W\d]+(?:['’-][^\W\d]+)*")  # no digit, so never protected


def protected_spans(text: str) -> list[str]:
    """The spans no method may change, in order."""
    return [m.group() for m in TOKEN.finditer(text) if _SKIP_TOKEN.match(m.group())]


def is_structured(text: str) -> bool:
    """Whether the text parses as JSON: structured data is left exactly as it is."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def shield(text: str) -> tuple[str, list[str]]:
    """The text with each protected span replaced by a marker [i], and the spans.

    Every digit of the text is inside a protected span, so the markers are the only digits left.
    """
    spans: list[str] = []

    def mark(match: re.Match) -> str:
        if not _SKIP_TOKEN.match(match.group()):
            return match.group()
        spans.append(match.group())
        return f"[{len(spans) - 1}]"

    return TOKEN.sub(mark, text), spans


def unshield(text: str, spans: list[str]) -> str | None:
    """The text with its markers replaced by the spans; None unless every marker is there exactly once."""
    found = sorted(int(m.group(1)) for m in MARKER.finditer(text))
    if found != list(range(len(spans))):
        return None
    return MARKER.sub(lambda m: spans[int(m.group(1))], text)




class SpanTokenizer:
    """Splits text into tokens and remembers the whitespace between them, so that join() rebuilds the
    original text around the changed words byte for byte (nlpaug's own tokenizer re-spaces punctuation).

    nlpaug calls split and join in turn for one text, so the state lives only for one augmentation.
    """

    def __init__(self):
        self.tokens: list[str] = []  # of the text being augmented
        self._gaps: list[str] = []

    def split(self, text: str) -> list[str]:
        tokens, gaps, end = [], [], 0
        for match in TOKEN.finditer(text):
            gaps.append(text[end:match.start()])
            tokens.append(match.group())
            end = match.end()
        gaps.append(text[end:])
        self.tokens, self._gaps = tokens, gaps
        return tokens

    def join(self, tokens: list[str]) -> str:
        positions: Sequence[int]
        if len(tokens) == len(self.tokens):  # substitutions and swaps keep every position
            positions = range(len(tokens))
        else:
            positions = self._kept_positions(tokens)
        # A kept token takes the whitespace that preceded it; the first one takes the text's leading whitespace.
        parts = [self._gaps[0]]
        for index, (position, token) in enumerate(zip(positions, tokens)):
            parts.append((self._gaps[position] if index else "") + token)
        return "".join(parts) + self._gaps[-1]

    def _kept_positions(self, tokens: list[str]) -> list[int]:
        """Where each token of a shortened list stood; deletion may re-capitalise the new first word."""
        positions, start = [], 0
        for token in tokens:
            folded = token.casefold()
            while start < len(self.tokens) and self.tokens[start].casefold() != folded:
                start += 1
            if start == len(self.tokens):
                raise RuntimeError("nlpaug returned tokens that are not a subsequence of the original text")
            positions.append(start)
            start += 1
        return positions


