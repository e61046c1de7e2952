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
from typing import BinaryIO, Literal, overload
from urllib.parse import quote, unquote, unquote_plus

from .ids import TNT_ID_RE
from .rules import LIMITS, Judged, Severity, Violation, rule

__all__ = ["BatchFile", "BatchKey", "BatchRows", "Transport", "batch_update_path", "decode_row", "encode_batch",
           "encode_cell", "parse_batch"]

BatchKey = Literal["pcId", "thirdPartyId"]
#: How the file reached the server: the documented raw form body, a text/csv body, or a multipart part.
Transport = Literal["form", "csv", "multipart"]

_BOM = b"\xef\xbb\xbf"
_PREFIX = b"batch="
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CHUNK = 1 << 20
# The fast path: whole blocks of lines that can break no rule are checked with C-speed scans and kept as
# their encoded text (decoded when read), instead of being split and decoded cell by cell.
# A lone % (matched as "%"), or a maximal run of escaped bytes from 0x80 up (which must decode as UTF-8).
_PERCENTS = re.compile(rb"%(?:[89A-Fa-f][0-9A-Fa-f](?:%[89A-Fa-f][0-9A-Fa-f])*|(?![0-9A-Fa-f]{2}))")
_UNSAFE = (b"&", b'"', b"+", b" ", b"\t")
_ALL_BUT_COMMA_NL = bytes(b for b in range(256) if b not in b",\n")
_DIGITS_TO_9 = bytes.maketrans(b"0123456789", b"9999999999")


def decode_row(line: str) -> tuple[str, ...]:
    """The cells of a row kept in its encoded form (one the fast path accepted: no +, no lone %)."""
    return tuple([unquote(c) if "%" in c else c for c in line.split(",")])


class BatchRows(Sequence[tuple[str, ...]]):
    """A batch's rows, compact: a row that breaks no rule is held as its encoded line, decoded when read.

    It reads like a list of tuples (the id first, then the cells in header order); ``ids`` lists
    the row ids without decoding anything, and ``raw`` gives the stored items (a tuple, or the
    encoded line for :func:`decode_row`) for code that applies many rows at once.
    """

    __slots__ = ("_items", "ids")

    def __init__(self, rows: Iterable[tuple[str, ...]] = ()) -> None:
        self._items: list[str | tuple[str, ...]] = list(rows)
        self.ids: list[str] = [r[0] for r in self._items]

    def raw(self) -> list[str | tuple[str, ...]]:
        return self._items

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, i: int) -> tuple[str, ...]: ...
    @overload
    def __getitem__(self, i: slice) -> list[tuple[str, ...]]: ...
    def __getitem__(self, i: int | slice) -> tuple[str, ...] | list[tuple[str, ...]]:
        if isinstance(i, slice):
            return [decode_row(r) if isinstance(r, str) else r for r in self._items[i]]
        r = self._items[i]
        return decode_row(r) if isinstance(r, str) else r

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        for r in self._items:
            yield decode_row(r) if isinstance(r, str) else r

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (BatchRows, list, tuple)):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BatchRows({list(self)!r})" if len(self) <= 20 else f"<BatchRows: {len(self):,} rows>"

    def has_values(self) -> bool:
        """Whether any row sets a value (any non-empty cell after the id)."""
        for r, pid in zip(self._items, self.ids, strict=True):
            if isinstance(r, str):
                # an encoded cell is empty exactly when it is empty before decoding
                if r[len(pid) + 1:].strip(","):
                    return True
            elif any(r[1:]):
                return True
        return False


@dataclass(slots=True)
class BatchFile(Judged):
    """A parsed batch file.

    ``rows`` hold one tuple a row: the id first, then the decoded cells in header order (a short row
    has a short tuple; an empty cell is ``""`` and never sets a value).
    """

    key: BatchKey | None
    attributes: tuple[str, ...]
    rows: Sequence[tuple[str, ...]] = field(default_factory=BatchRows)
    violations: list[Violation] = field(default_factory=list)
    size: int = 0  #: bytes read

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
        if isinstance(self.rows, BatchRows):
            return self.rows.has_values()
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


def _blocks(source: BinaryIO | bytes, max_bytes: int, counter: list[int]) -> Iterator[bytes]:
    """The body as blocks of whole lines (joined by \\n, the last without its own): the first line
    alone, then about a chunk at a time. Reading stops as soon as the body is over ``max_bytes``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        counter[0] = len(data)
        if len(data) > max_bytes:
            raise _TooLarge
        read = io.BytesIO(data).read
        counted = True
    else:
        read = source.read
        counted = False
    rest = b""
    first = True
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            break
        if not counted:
            counter[0] += len(chunk)
            if counter[0] > max_bytes:
                raise _TooLarge
        buf = rest + chunk if rest else chunk
        end = buf.rfind(b"\n")
        if end < 0:
            rest = buf
            continue
        block, rest = buf[:end], buf[end + 1:]
        if first:
            first = False
            nl = block.find(b"\n")
            if nl < 0:
                yield block
                continue
            yield block[:nl]
            block = block[nl + 1:]
        yield block
    yield rest


class _FastPath:
    """Takes whole blocks of rows that provably break no rule, without looking at each cell."""

    def __init__(self, key: BatchKey | None, width: int) -> None:
        self.third_party = key == "thirdPartyId"
        self.too_many_commas = b"," * (width + 1)

    def take(self, block: bytes, items: list[str | tuple[str, ...]], ids: list[str], seen: set[str],
             max_rows: int) -> int:
        """Append the block's rows and return how many; 0 when it needs the line-by-line path."""
        if not block or block[:1] == b"\n" or block[-1:] == b"\n" or b"\n\n" in block or not block.isascii():
            return 0
        if b"\r" in block:
            block = block.replace(b"\r\n", b"\n")
            if b"\r" in block:
                return 0
        for ch in _UNSAFE:
            if ch in block:
                return 0
        if b"%" in block:
            # escaped bytes from 0x80 up decode to UTF-8 only in runs that ASCII never interrupts, so
            # checking each distinct run checks every cell
            for run in set(_PERCENTS.findall(block)):
                if run == b"%":
                    return 0
                try:
                    bytes.fromhex(run.replace(b"%", b"").decode("ascii")).decode("utf-8")
                except UnicodeDecodeError:
                    return 0
        # a row with more than width cells has width + 1 commas in a row once all else is deleted
        if self.too_many_commas in block.translate(None, _ALL_BUT_COMMA_NL):
            return 0
        lines = block.decode("ascii").split("\n")
        if len(items) + len(lines) > max_rows:
            return 0
        row_ids = [line.partition(",")[0] for line in lines]
        joined = "\n".join(row_ids)
        if "%" in joined:
            return 0
        if self.third_party:
            if "/" in joined or "" in row_ids or max(map(len, row_ids)) > LIMITS.third_party_id_max_chars:
                return 0
        else:
            # the id format depends only on where the digits are: check each distinct shape once
            shapes = set(joined.encode("ascii").translate(_DIGITS_TO_9).split(b"\n"))
            if not all(TNT_ID_RE.match(shape.decode("ascii")) for shape in shapes):
                return 0
        unique = set(row_ids)
        if len(unique) != len(row_ids) or not seen.isdisjoint(unique):
            return 0
        seen |= unique
        items += lines
        ids += row_ids
        return len(lines)


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


_ENCODED_SEPARATOR = re.compile(rb"%(?:2C|0A|0D)", re.IGNORECASE)


def _form_encoded(line: bytes, tally: _Tally) -> bool:
    """Whether the header line is a form-encoded file (``data={"batch": text}``: the commas and line
    breaks between cells arrive as %2C and %0A); records the refusal when it is."""
    if b"," in line or not _ENCODED_SEPARATOR.search(line):
        return False
    text = unquote_plus(line.decode("utf-8", "replace"), errors="replace")
    if "," not in text and "\n" not in text:
        return False  # an encoded separator inside a single name: the header rules judge it
    first, _, rest = text.partition("\n")
    first = first.removesuffix("\r")
    if rest.strip():
        detail = (f"the whole file arrived form-encoded as one field (its commas and line breaks sent as %2C and "
                  f"%0A, as requests' data={{'batch': text}} sends it), so the header reads {_clip(first)!r} and "
                  f"no row follows")
    else:
        detail = (f"the header's commas arrived percent-encoded (%2C), so it reads as one column named "
                  f"{_clip(first)!r}; encode the cells, not the commas between them")
    tally.add("batch.form-encoded-file", detail, "line 1")
    return True


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


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
        tally.add("batch.content-type", "the batch was sent as a text/csv or text/plain body", "Content-Type")
    elif transport == "multipart":
        tally.add("batch.multipart", "the batch was sent as a multipart upload", "Content-Type")
    rows = BatchRows()
    result.rows = rows
    items, row_ids = rows.raw(), rows.ids
    seen: set[str] = set()
    lineno = 0
    header_done = False
    key: BatchKey | None = None
    width = 0
    fast: _FastPath | None = None

    def header(line: bytes) -> bool:
        """The header line; True when reading stops here."""
        nonlocal header_done, key, width, fast
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
            return True
        if _form_encoded(line, tally):
            return True
        cells = _split(line, lineno, tally)
        if cells is None:
            return True
        if not line.strip():
            tally.add("batch.empty", "the header line is empty", "line 1")
            return True
        key, result.attributes = _header(cells, tally)
        result.key = key
        width = len(result.attributes)
        header_done = True
        if tally.has_error():
            return True
        fast = _FastPath(key, width)
        return False

    def row(line: bytes) -> bool:
        """One row, cell by cell; True when reading stops here."""
        if not line.strip():
            return False
        if len(items) >= max_rows:
            tally.add("batch.too-many-rows",
                      f"the file has more than {max_rows:,} rows; the limit is {max_rows:,} per batch",
                      f"line {lineno}")
            return True
        cells = _split(line, lineno, tally)
        if cells is None:
            return False
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
        items.append(tuple(cells))
        row_ids.append(row_id)
        return False

    try:
        stop = False
        for block in _blocks(source, max_bytes, counter):
            if fast is not None:
                taken = fast.take(block, items, row_ids, seen, max_rows)
                if taken:
                    lineno += taken
                    continue
            for line in block.split(b"\n"):
                lineno += 1
                if line.endswith(b"\r"):
                    line = line[:-1]
                stop = row(line) if header_done else header(line)
                if stop:
                    break
            if stop:
                break
        else:
            if not header_done:
                tally.add("batch.empty", "the body is empty", "body")
    except _TooLarge:
        tally.add("batch.too-large",
                  f"the file is over {max_bytes:,} bytes; the limit is {max_bytes:,} bytes (50 MB)", "body")
    result.size = counter[0]
    if header_done and not rows and not tally.has_error():
        detail = "the file has a header but no rows; it is accepted and skipped"
        if lineno == 1 and transport == "form":
            # one line with no line break at all: what curl -d @file makes of a whole file
            detail = (f"the body is a single line with no line break, read as a header of {width + 1} columns and "
                      "no rows; it is accepted and skipped. If it was sent with curl -d/--data @file, curl removed "
                      "the file's line breaks: send files with curl --data-binary @file")
        tally.add("batch.header-only", detail, "body")
    result.violations = tally.violations()
    if tally.has_error():
        result.rows = []  # a refused file is never applied; free it now
    return result


def batch_update_path(client: str, version: int) -> str:
    """The path a batch file is submitted to: ``/m2/<client>/v2/profile/batchUpdate`` for version 2, else
    the version 1 route."""
    return f"/m2/{client}/v2/profile/batchUpdate" if version == 2 else f"/m2/{client}/profile/batchUpdate"


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
    lines = ["batch=" + ",".join([key, *(encode_cell(a) for a in attributes)])]
    append = lines.append
    for row_id, values in rows:
        if isinstance(values, Mapping):
            cells = [values.get(a, "") for a in attributes]
        else:
            cells = list(values)
        while cells and cells[-1] == "":
            cells.pop()
        # an empty cell needs no quote() call: most cells of a sparse file are empty
        append(",".join([encode_cell(row_id), *(encode_cell(c) if c else "" for c in cells)]))
    lines.append("")
    return line_ending.join(lines).encode("ascii")
