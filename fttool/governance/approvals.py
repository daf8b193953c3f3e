"""signoff.json as fttool writes it: its entries' shape, names as one line of visible text, and which approve
report.json as it is now.

A module of its own, importing nothing of fttool's but the run layout and digests, so that the renderings (which
list the sign-offs) and verify (which renders them again to check them) can both read sign-offs.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from pathlib import Path

from fttool.pipeline.digest import sha256_file
from fttool.pipeline.layout import RunLayout

_SHA256 = re.compile(r"[0-9a-f]{64}")


class EvidenceError(Exception):
    """A file of the run's evidence cannot be read at all (not JSON, not in its format); the message says which."""

    def __init__(self, message: str, file: Path | None = None, line: int = 1):
        super().__init__(message)
        self.file, self.line = file, line  # where, when the error is about one file's content


def unreadable(file: Path, line: int, why: str) -> EvidenceError:
    return EvidenceError(f"{file}:{line}: {why}; restore the file fttool wrote", file, line)


def require_regular(path: Path) -> None:
    """EvidenceError when `path` is there but is no regular file: reading a FIFO planted there would hang."""
    if path.exists() and not path.is_file():
        raise unreadable(path, 1, "not a regular file")


# Characters that show nothing although Unicode calls them letters or symbols (Hangul fillers, the blank
# Braille pattern, the combining grapheme joiner): a name made of them reads as no name at all.
_BLANK_LOOKING = frozenset("\u034f\u115f\u1160\u2800\u3164\uffa0")


def single_line(value: str, what: str) -> str:
    """`value` stripped and in NFC; ValueError unless it is visible text on one line without control characters.

    Names, roles and waiver reasons are shown in verify's output, the report and the exported model card, so
    none may hold a line break or an invisible character that would make one name look like another.
    """
    text = unicodedata.normalize("NFC", (value or "").strip()) if isinstance(value, str) else ""
    if not text:
        raise ValueError(f"{what} is empty; give it as non-empty text")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") or ch in _BLANK_LOOKING for ch in text):
        raise ValueError(f"{what} {text!r} holds a line break, control or invisible character; give it on one line "
                         "in visible characters")
    if not any(unicodedata.category(ch)[0] in "LNPS" for ch in text):
        raise ValueError(f"{what} {text!r} shows nothing; give it as visible text")
    return text


def read_signoffs(run_dir: Path) -> list[dict]:
    """The entries of signoff.json ([] when there is none); EvidenceError when it is not a list of sign-offs."""
    path = RunLayout(Path(run_dir)).signoffs
    require_regular(path)
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, huge integers
        raise unreadable(path, getattr(exc, "lineno", 1), f"not valid JSON ({exc})") from None
    fields = ("by", "role", "at", "report_sha256")
    if not isinstance(entries, list) or not all(map(_is_signoff, entries)):
        raise unreadable(path, 1, f"not a list of sign-offs with {', '.join(fields)} (and optionally run_digest, "
                                   "waivers, signature, key)")
    for entry in entries:
        texts = [(entry["by"], "a name (by)"), (entry["role"], "a role"),
                 *((w["rule"], "a waived rule") for w in entry.get("waivers", [])),
                 *((w["reason"], f"the reason for waiving {w['rule']!r}") for w in entry.get("waivers", []))]
        try:
            for value, what in texts:
                if single_line(value, what) != value:
                    raise ValueError(f"{what} {value!r} is not as fttool writes it (stripped, NFC)")
        except ValueError as exc:  # verify prints names: a forged line break must not forge a line of its output
            raise unreadable(path, 1, f"{exc}, which fttool signoff never writes") from None
    return entries


_PUBLIC_KEY = re.compile(r"ssh-ed25519 [A-Za-z0-9+/]+={0,2}")


def _is_time(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_signoff(entry) -> bool:
    """The shape fttool writes: text fields, digests as sha256 hex, the time in ISO 8601, the key as OpenSSH writes
    it, and waivers as a list of {rule, reason} (their text is checked by read_signoffs, as names are)."""
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("by", "role", "at",
                                                                                      "report_sha256")):
        return False
    if not all(isinstance(entry[k], str) for k in ("run_digest", "signature", "key") if k in entry):
        return False
    if not (all(_SHA256.fullmatch(entry[k]) for k in ("report_sha256", "run_digest") if k in entry)
            and _is_time(entry["at"]) and ("key" not in entry or _PUBLIC_KEY.fullmatch(entry["key"]))):
        return False
    waivers = entry.get("waivers", [])
    return isinstance(waivers, list) and all(
        isinstance(w, dict) and isinstance(w.get("rule"), str) and isinstance(w.get("reason"), str) for w in waivers)


def given_signoffs(run_dir: Path) -> list[dict]:
    """signoff.json's entries, each with `approves`: whether it approved report.json as it is now."""
    report_digest = sha256_file(RunLayout(Path(run_dir)).report)
    return [{**entry, "approves": entry.get("report_sha256") == report_digest} for entry in read_signoffs(run_dir)]
