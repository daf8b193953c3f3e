"""The containers a source can be stored in (JSONL, a JSON array, CSV, Parquet) and their streaming readers.

Each reader yields one raw record at a time with its line number (Parquet: its row number), a `Rejected` for
a record it cannot read, or BLANK for a blank line or row. Readers never hold the whole file: memory stays
bounded by the largest record, whatever the file's size. Messages name positions and JSON types, never values:
a rejected record may hold personal data.
"""
from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

UTF8_BOM = b"\xef\xbb\xbf"
CONTAINER_BY_EXTENSION = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
BLANK = object()  # what a reader yields for a blank line or row: counted in the summary, never as a record
JSON_CHUNK_CHARS = 1 << 20
# An element this large cannot be a training example; giving up there keeps memory bounded on a broken array.
JSON_ELEMENT_MAX_CHARS = 1 << 26
PARQUET_BATCH_ROWS = 1024
NON_WHITESPACE = re.compile(r"[^ \t\n\r]")
# Text files are decoded with errors="surrogateescape", which turns each byte that is not UTF-8 into one of these.
UNDECODABLE_BYTE = re.compile("[\udc80-\udcff]")
# A JSON string, or one structural character; a lone '"' is a string whose end lies beyond the text.
JSON_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[][{},"]', re.DOTALL)


class Rejected(Exception):
    """Why an input record cannot become a record: a reason code and a message that holds no record content."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class UnreadableRest(Rejected):
    """The file is broken beyond recovery at `line`: the rest of it is quarantined as one entry."""

    SUFFIX = "; the rest of the file is not read"

    def __init__(self, line: int, problem: str):
        super().__init__("unreadable_rest", problem + self.SUFFIX)
        self.line = line


def source_tag(source: Mapping[str, Any]) -> str:
    """The source's `tag`, else its file name (a hub source: its dataset name)."""
    return source.get("tag") or (Path(source["path"]).name if source.get("path") else source["hub"])


def source_container(source: Mapping[str, Any]) -> str | None:
    """The source's `container`, else the one its file extension names; None when neither says."""
    return source.get("container") or CONTAINER_BY_EXTENSION.get(Path(source.get("path") or "").suffix.lower())


def a_json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _reject_constant(name: str):
    # json accepts NaN and Infinity, but they are not JSON and later readers would choke on them.
    raise ValueError(f"{name} is not allowed")


STRICT_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _not_json(error: ValueError | RecursionError, start: int = 0, where: str = "") -> Rejected:
    """The rejection for a decoding error; `start` is where the decoded text begins, `where` names it."""
    if isinstance(error, json.JSONDecodeError):
        return Rejected("malformed_json", f"not valid JSON: {error.msg} at character {error.pos - start + 1}{where}")
    if isinstance(error, RecursionError):
        return Rejected("malformed_json", "not valid JSON: nested too deeply")
    return Rejected("malformed_json", f"not valid JSON: {error}")


def _parse_line(raw: bytes) -> Any:
    """The JSON value of one JSONL line, or the Rejected saying why it has none."""
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        return Rejected("invalid_utf8", f"byte {exc.start + 1} of the line is not valid UTF-8")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        return _not_json(error)


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            if line_number == 1:
                raw = raw.removeprefix(UTF8_BOM)  # editors on Windows often start files with one
            yield line_number, _parse_line(raw) if raw.strip() else BLANK


def _element_end(text: str, start: int) -> int | None:
    """Where the array element at `start` ends (the ',' or ']' after it), judged by brackets and strings
    alone so that a malformed element can be stepped over; None when `text` stops before that."""
    depth = 0
    for token in JSON_STRUCTURE.finditer(text, start):
        symbol = token.group()
        if symbol == '"':  # a string that runs on past the end of `text`
            return None
        if symbol in ("[", "{"):
            depth += 1
        elif depth and symbol in ("]", "}"):
            depth -= 1
        elif not depth and symbol in (",", "]"):  # a stray '}' at depth 0 is part of the malformed element
            return token.start()
    return None


class _JsonArrayReader:
    """The elements of a file holding one JSON array, decoded one at a time from a sliding window."""

    def __init__(self, handle: TextIO):
        self.handle = handle
        self.buffer = ""
        self.pos = 0  # the first character of `buffer` not yet consumed
        self.line = 1  # the file's line number at `pos`
        self.at_eof = False

    def _read_more(self) -> None:
        """Append the next chunk of the file to the window, dropping the consumed text."""
        chunk = self.handle.read(JSON_CHUNK_CHARS)
        self.at_eof = not chunk
        self.buffer = self.buffer[self.pos:] + chunk
        self.pos = 0

    def _advance(self, to: int) -> None:
        self.line += self.buffer.count("\n", self.pos, to)
        self.pos = to

    def _next_char(self) -> str:
        """The next character that is not whitespace, now at `pos`; '' at the end of the file."""
        while True:
            found = NON_WHITESPACE.search(self.buffer, self.pos)
            if found:
                self._advance(found.start())
                return found.group()
            self._advance(len(self.buffer))
            if self.at_eof:
                return ""
            self._read_more()

    def elements(self) -> Iterator[tuple[int, Any]]:
        self._read_more()
        if self.buffer.startswith("\ufeff"):  # a byte order mark, as some editors write
            self.pos = 1
        opening = self._next_char()
        if not opening:
            return
        if opening != "[":
            raise UnreadableRest(self.line, "the file is not a JSON array: it does not start with '['")
        self._advance(self.pos + 1)
        while True:
            char = self._next_char()
            if char == "]":
                break
            if char == ",":  # after an element, or an empty slot in a malformed array
                self._advance(self.pos + 1)
                continue
            if not char:
                raise UnreadableRest(self.line, "the file ends before the array's closing ']'")
            line = self.line
            yield line, self._element()
        self._advance(self.pos + 1)
        if self._next_char():
            raise UnreadableRest(self.line, "there is more after the array's closing ']'")

    def _element(self) -> Any:
        """The element at `pos`, consumed up to the ',' or ']' after it; a Rejected when it cannot be read."""
        while True:
            start = self.pos
            try:
                value, end = STRICT_JSON.raw_decode(self.buffer, start)
                delimiter = NON_WHITESPACE.search(self.buffer, end)
                if delimiter and delimiter.group() not in ",]":
                    raise json.JSONDecodeError("Expecting ',' delimiter", self.buffer, delimiter.start())
                # Without a delimiter in the window a number could still be cut short, so read on unless at the end.
                if delimiter or self.at_eof:
                    return self._consume(start, delimiter.start() if delimiter else end, value)
            except (ValueError, RecursionError) as error:
                boundary = _element_end(self.buffer, start)
                if boundary is not None:
                    return self._consume(start, boundary, _not_json(error, start, " of the element"))
                if self.at_eof:
                    raise UnreadableRest(self.line, "the file ends inside this element") from None
            if len(self.buffer) - start > JSON_ELEMENT_MAX_CHARS:
                raise UnreadableRest(self.line, f"no end of this element within {JSON_ELEMENT_MAX_CHARS} characters")
            self._read_more()

    def _consume(self, start: int, stop: int, outcome: Any) -> Any:
        """Move past the element's text; bytes in it that are not UTF-8 reject it whatever it decoded to."""
        undecodable = UNDECODABLE_BYTE.search(self.buffer, start, stop)
        self._advance(stop)
        if undecodable:
            byte = len(self.buffer[start:undecodable.start()].encode("utf-8", "surrogateescape")) + 1
            return Rejected("invalid_utf8", f"byte {byte} of the element is not valid UTF-8")
        return outcome


def _read_json_array(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        yield from _JsonArrayReader(handle).elements()


def _csv_row(header: list[str], cells: list[str]) -> dict | Rejected:
    if len(cells) > len(header):
        return Rejected("malformed_csv", f"the row has {len(cells)} cells but the header names {len(header)} columns")
    for name, cell in zip(header, cells):
        if UNDECODABLE_BYTE.search(cell):
            return Rejected("invalid_utf8", f"the cell in column '{name}' is not valid UTF-8")
    return dict(zip(header, cells))  # a short row lacks its last columns, which then count as missing fields


def _read_csv(path: Path) -> Iterator[tuple[int, Any]]:
    # newline="" lets the csv module see line breaks inside quoted cells; utf-8-sig drops a byte order mark.
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        # strict: a stray quote is an error for that row instead of silently merging cells.
        rows = csv.reader(handle, strict=True)
        header = None
        while True:
            line = rows.line_num + 1  # the row's first physical line; line_num counts the lines read so far
            try:
                cells = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                if header is None:
                    raise UnreadableRest(line, f"the header row is not valid CSV: {exc}") from None
                yield line, Rejected("malformed_csv", f"not valid CSV: {exc}")
                continue
            if not any(cell.strip() for cell in cells):
                yield line, BLANK
            elif header is None:
                if any(UNDECODABLE_BYTE.search(name) for name in cells):
                    raise UnreadableRest(line, "the header row is not valid UTF-8")
                if len(set(cells)) < len(cells):
                    raise UnreadableRest(line, "the header row names a column more than once")
                header = cells
            else:
                yield line, _csv_row(header, cells)


def json_compatible(value: Any) -> Any:
    """A Parquet value as JSON can hold it, so it can be checked and stored like a value read from JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity; pandas writes a missing number as NaN
    if isinstance(value, dict):
        return {key: json_compatible(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):  # Parquet maps arrive as lists of (key, value) tuples
        return [json_compatible(item) for item in value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    # Dates, times, decimals and durations: their ISO or decimal text, as a JSON export would write them.
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _read_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow  # imported here so that compiling a recipe stays fast
    import pyarrow.parquet

    row = 0
    try:
        with pyarrow.parquet.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                for values in batch.to_pylist():
                    row += 1
                    try:
                        item = json_compatible(values)
                    except UnicodeDecodeError:
                        item = Rejected("invalid_utf8", "a binary value of the row is not valid UTF-8")
                    yield row, item
    except (pyarrow.ArrowException, OSError) as exc:
        # Arrow's messages can quote the data, so only the kind of failure is named.
        raise UnreadableRest(row + 1, f"the file cannot be read as Parquet ({type(exc).__name__})") from None


@dataclass(frozen=True)
class Container:
    read: Callable[[Path], Iterator[tuple[int, Any]]]  # yields (line, a JSON value, a Rejected or BLANK)
    unit: str  # what one input record is called in messages
    # Parquet has no lines: its quarantine entries carry the 1-based row number as "line" and say so.
    line_is_row_number: bool = False


CONTAINERS = {
    "jsonl": Container(_read_jsonl, "line"),
    "json": Container(_read_json_array, "element"),
    "csv": Container(_read_csv, "row"),
    "parquet": Container(_read_parquet, "row", line_is_row_number=True),
}


def read_container(container: Container, path: Path) -> Iterator[tuple[int, Any]]:
    try:
        yield from container.read(path)
    except UnreadableRest as rest:
        yield rest.line, rest
