"""Bulk profile update batch files: a streaming parser and a serialiser.

The documented request is the file itself as a form body: ``batch=`` then a CSV in which every
cell is percent-encoded. The whole body is never form-decoded (an encoded ``%2C`` would turn into a
comma and break its row): the raw text is split into lines and cells first, and each cell is
decoded exactly once with form rules (``+`` is a space, as in Java's URL decoder).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Literal
from urllib.parse import quote, unquote_plus

from .ids import TNT_ID_RE
from .rules import LIMITS, Severity, Violation, rule

__all__ = ["BatchFile", "BatchKey", "Transport", "encode_batch", "encode_cell", "parse_batch"]

BatchKey = Literal["pcId", "thirdPartyId"]
#: How the file reached the server: the documented raw form body, a text/csv body, or a multipart part.
Transport = Literal["form", "csv", "multipart"]

_BOM = b"\xef\xbb\xbf"
_PREFIX = b"batch="
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CHUNK = 1 << 20


@dataclass(slots=True)
class BatchFile:
    """A parsed batch file.

    ``rows`` hold one tuple a row: the id first, then the decoded cells in header order (a short row
    has a short tuple; an empty cell is ``""`` and never sets a value).
    """

    key: BatchKey | None
    attributes: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    size: int = 0  #: bytes read

    @property
    def errors(self) -> list[Violation]:
        return [v for v in self.violations if v.severity is Severity.ERROR]

    @property
    def accepted(self) -> bool:
        return not self.errors

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def records(self) -> Iterator[tuple[str, dict[str, str]]]:
        """Each row as ``(id, {attribute: value})`` with empty cells left out."""
        names = self.attributes
        for row in self.rows:
            yield row[0], {names[i]: v for i, v in enumerate(row[1:]) if v and names[i]}

    @property
    def has_values(self) -> bool:
        """False when every cell is empty: such a batch is skipped (EL-BULK 2025-10-28)."""
        return any(any(row[1:]) for row in self.rows)


class _Tally:
    """Collects violations per rule: the first place it happened and how often, not one per row."""

    def __init__(self) -> None:
        self.first: dict[str, Violation] = {}
        self.count: dict[str, int] = {}

    def add(self, rule_id: str, detail: str, where: str) -> None:
        if rule_id in self.first:
            self.count[rule_id] += 1
        else:
            self.first[rule_id] = Violation(rule(rule_id), detail, where)
            self.count[rule_id] = 1

    def has_error(self) -> bool:
        return any(v.severity is Severity.ERROR for v in self.first.values())

    def violations(self) -> list[Violation]:
        out = []
        for rid, v in self.first.items():
            n = self.count[rid]
            if n > 1:
                v = Violation(v.rule, f"{v.detail} (and {n - 1} more like it)", v.where)
            out.append(v)
        return out


class _TooLarge(Exception):
    pass


def _lines(source: BinaryIO | bytes, max_bytes: int, counter: list[int]) -> Iterator[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        counter[0] = len(data)
        if len(data) > max_bytes:
            raise _TooLarge
        yield from data.split(b"\n")
        return
    rest = b""
    while True:
        chunk = source.read(_CHUNK)
        if not chunk:
            break
        counter[0] += len(chunk)
        if counter[0] > max_bytes:
            raise _TooLarge
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        yield from parts
    yield rest


def _decode_cell(cell: str, tally: _Tally, where: str) -> str | None:
    """Form-decode one cell exactly once; None when it does not decode to UTF-8."""
    if "+" in cell:
        tally.add("batch.raw-plus", f"{where} has a raw + (read as a space); encode it as %2B", where)
    if "%" in cell:
        if _LONE_PERCENT.search(cell):
            tally.add("batch.raw-percent", f"{where} has a % that starts no escape; encode it as %25", where)
        try:
            return unquote_plus(cell, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            tally.add("batch.bad-encoding", f"{where} decodes to bytes that are not UTF-8", where)
            return None
    return cell.replace("+", " ") if "+" in cell else cell


def _split(line: bytes, lineno: int, tally: _Tally) -> list[str] | None:
    """The raw line's cells, decoded; None when the line breaks an error rule."""
    where = f"line {lineno}"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        tally.add("batch.bad-encoding", f"{where} is not UTF-8 text", where)
        return None
    if "&" in text:
        tally.add("batch.raw-ampersand",
                  f"{where} has a raw &, which ends the batch form field on Adobe's side; "
                  "encode it as %26", where)
        return None
    if not text.isascii():
        tally.add("batch.raw-non-ascii", f"{where} has characters that are not percent-encoded", where)
    if '"' in text:
        tally.add("batch.quoted-cell", f"{where} uses CSV quotes", where)
        try:
            parsed = next(csv.reader([text], strict=True))
        except csv.Error:
            tally.add("batch.unterminated-quote", f"{where} has a quote that does not close on the line", where)
            return None
        raw = parsed
    else:
        raw = text.split(",")
    cells: list[str] = []
    stripped = False
    for cell in raw:
        s = cell.strip(" \t")
        if len(s) != len(cell):
            stripped = True
        if "%" in s or "+" in s:
            d = _decode_cell(s, tally, where)
            if d is None:
                return None
            s = d
        cells.append(s)
    if stripped:
        tally.add("batch.whitespace", f"{where} has spaces around its cells; they are ignored", where)
    return cells


def _header(cells: list[str], tally: _Tally) -> tuple[BatchKey | None, tuple[str, ...]]:
    first = cells[0] if cells else ""
    if first in ("pcId", "thirdPartyId"):
        key: BatchKey | None = first  # type: ignore[assignment]
    elif first.lower() in ("marketingcloudvisitorid", "ecid", "mcid"):
        tally.add("batch.ecid-key", f"the key column is {first!r}; use pcId or thirdPartyId", "line 1")
        key = None
    else:
        hint = ""
        if first.lower() in ("pcid", "thirdpartyid", "mboxpc", "mbox3rdpartyid", "tntid"):
            hint = " (headers are case-sensitive: write pcId or thirdPartyId)"
        tally.add("batch.bad-key-header",
                  f"the first header is {first!r}; it must be pcId or thirdPartyId{hint}", "line 1")
        key = None
    names: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(cells[1:], start=2):
        if name.startswith("profile.") and len(name) > len("profile."):
            tally.add("batch.profile-prefix",
                      f"header {name!r} has the profile. prefix; Target adds it itself", "line 1")
            name = name[len("profile."):]
        if not name:
            tally.add("batch.empty-header", f"column {i} has no header; its cells are ignored", "line 1")
        elif name in seen:
            tally.add("batch.duplicate-header", f"header {name!r} appears twice; the later column wins", "line 1")
        seen.add(name)
        names.append(name)
    if key is not None and not any(names):
        tally.add("batch.no-attribute-headers", "the header names no attribute after the id column", "line 1")
    return key, tuple(names)


def parse_batch(
    source: BinaryIO | bytes,
    *,
    transport: Transport = "form",
    max_bytes: int = LIMITS.batch_max_bytes,
    max_rows: int = LIMITS.batch_max_rows,
) -> BatchFile:
    """Parse a batch file from bytes or a binary stream, reading it once, line by line.

    Reading stops as soon as the file is over ``max_bytes`` or ``max_rows``: a refused file is
    never held in memory whole. Violations are reported once per rule, with the first line that
    broke it and how many more did.
    """
    tally = _Tally()
    counter = [0]
    result = BatchFile(None, ())
    if transport == "csv":
        tally.add("batch.content-type", "the batch was sent as text/csv", "Content-Type")
    elif transport == "multipart":
        tally.add("batch.multipart", "the batch was sent as a multipart upload", "Content-Type")
    rows = result.rows
    seen: set[str] = set()
    lineno = 0
    header_done = False
    key: BatchKey | None = None
    width = 0
    try:
        for line in _lines(source, max_bytes, counter):
            lineno += 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not header_done:
                if line.startswith(_BOM):
                    line = line[3:]
                if line.startswith(_PREFIX):
                    line = line[len(_PREFIX):]
                    if line.startswith(_BOM):
                        line = line[3:]
                elif transport == "form":
                    if not line.strip():
                        tally.add("batch.empty", "the body is empty", "body")
                    else:
                        tally.add("batch.missing-prefix",
                                  "the body does not start with batch=; send the file as "
                                  "batch=<header line> followed by the rows", "line 1")
                    break
                cells = _split(line, lineno, tally)
                if cells is None:
                    break
                if not line.strip():
                    tally.add("batch.empty", "the header line is empty", "line 1")
                    break
                key, result.attributes = _header(cells, tally)
                result.key = key
                width = len(result.attributes)
                header_done = True
                if tally.has_error():
                    break
                continue
            if not line.strip():
                continue
            if len(rows) >= max_rows:
                tally.add("batch.too-many-rows",
                          f"the file has more than {max_rows:,} rows; the limit is {max_rows:,} per batch",
                          f"line {lineno}")
                break
            cells = _split(line, lineno, tally)
            if cells is None:
                continue
            row_id = cells[0]
            where = f"line {lineno}"
            if not row_id:
                tally.add("batch.row-without-id", f"{where} has no id; it counts as a failed update", where)
            elif key == "thirdPartyId":
                if "+" in row_id or "/" in row_id:
                    tally.add("batch.third-party-id",
                              f"{where}: thirdPartyId {row_id!r} contains + or /, which are not allowed", where)
                elif len(row_id) > LIMITS.third_party_id_max_chars:
                    tally.add("batch.third-party-id",
                              f"{where}: thirdPartyId is {len(row_id)} characters; the limit is "
                              f"{LIMITS.third_party_id_max_chars}", where)
            elif not TNT_ID_RE.match(row_id):
                tally.add("id.tnt-format", f"{where}: pcId {row_id!r} does not look like a Target id", where)
            if len(cells) - 1 > width:
                tally.add("batch.long-row", f"{where} has {len(cells) - 1} values for {width} headers; "
                          "the extra cells are ignored", where)
                cells = cells[: width + 1]
            if row_id in seen:
                tally.add("batch.duplicate-id", f"{where} repeats id {row_id!r}; later rows win", where)
            else:
                seen.add(row_id)
            rows.append(tuple(cells))
        else:
            if not header_done:
                tally.add("batch.empty", "the body is empty", "body")
    except _TooLarge:
        tally.add("batch.too-large",
                  f"the file is over {max_bytes:,} bytes; the limit is {max_bytes:,} bytes (50 MB)", "body")
    result.size = counter[0]
    if header_done and not rows and not tally.has_error():
        tally.add("batch.header-only", "the file has a header but no rows; it is accepted and skipped", "body")
    result.violations = tally.violations()
    if tally.has_error():
        result.rows = []  # a refused file is never applied; free it now
    return result


def encode_cell(value: str) -> str:
    """Percent-encode one cell as Adobe documents: UTF-8, every reserved character escaped."""
    return quote(value, safe="")


def encode_batch(
    key: BatchKey,
    attributes: Sequence[str],
    rows: Iterable[tuple[str, Sequence[str]] | tuple[str, Mapping[str, str]]],
    *,
    line_ending: str = "\n",
) -> bytes:
    """Serialise a batch file the documented way: ``batch=`` then the percent-encoded CSV.

    Each row is ``(id, values)`` where values is a sequence in header order or a mapping by name.
    """
    out = io.StringIO()
    out.write("batch=" + ",".join([key, *(encode_cell(a) for a in attributes)]))
    for row_id, values in rows:
        if isinstance(values, Mapping):
            cells = [values.get(a, "") for a in attributes]
        else:
            cells = list(values)
        while cells and cells[-1] == "":
            cells.pop()
        out.write(line_ending)
        out.write(",".join([encode_cell(row_id), *(encode_cell(c) for c in cells)]))
    out.write(line_ending)
    return out.getvalue().encode("ascii")
