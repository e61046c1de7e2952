"""The request journal: every edge request the fake answered, parsed, with its contract verdicts."""

from __future__ import annotations

import hashlib
import itertools
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from target_profile_mock.contracts.rules import Judged, Violation
from target_profile_mock.contracts.single import query_pairs
from werkzeug.datastructures import EnvironHeaders, MultiDict
from werkzeug.wrappers import Request

#: Request and response bodies are kept up to this many bytes; a longer one keeps its size and its SHA-256
#: (a 50 MB batch file, or a status answer listing 100,000 rows, is summarised, not copied).
BODY_KEEP = 64 * 1024
#: What an entry costs beyond the text it keeps (the entry, the environ dict and its keys, parsed values,
#: verdicts): about 1.4 KB for a single update, measured with tracemalloc; the byte bound counts it.
ENTRY_OVERHEAD = 1536
#: The journal's default byte bound (``MockConfig.journal_bytes``).
JOURNAL_BYTES = 64 * 1024 * 1024

_PLAIN_HOST = re.compile(r"[a-z0-9.-]+(?::[1-9][0-9]{0,3})?")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.~!$&'()*+,/:;=@-]*")
_PLAIN_QUERY = re.compile(rb"[A-Za-z0-9_.~!$&'()*+,/:;=@?-]*")


def query_args(query_string: bytes) -> MultiDict[str, str]:
    """The query's parameters as the fake reads them (``request.args``).

    Werkzeug decodes the raw query as strict UTF-8 and raises on other bytes (a 500); clients that send
    unencoded Latin-1 must get the contract's answer instead, so bad bytes are replaced or kept quoted.
    """
    text = query_string.decode("utf-8", "replace")
    pairs = query_pairs(text, errors="werkzeug.url_quote")
    return MultiDict(pairs)


def request_url(req: Request) -> str:
    """``req.url``, built directly when no part needs quoting or IRI decoding (the usual request);
    Werkzeug's quote-and-decode round trip is slow."""
    host, path, qs = req.host, req.root_path.rstrip("/") + "/" + req.path.lstrip("/"), req.query_string
    if "xn--" in host or not (_PLAIN_HOST.fullmatch(host) and _PLAIN_PATH.fullmatch(path)
                              and _PLAIN_QUERY.fullmatch(qs)):
        return req.url
    return f"{req.scheme}://{host}{path}?{qs.decode('ascii')}" if qs else f"{req.scheme}://{host}{path}"


def environ_snapshot(environ: Mapping[str, Any]) -> dict[str, str]:
    """The text parts of a WSGI environ (CGI variables and headers), without its streams and objects,
    so a journal entry keeps no upload, socket or request alive."""
    return {k: v for k, v in environ.items() if v.__class__ is str}


class JournalEntry(Judged):
    """One request as the fake saw and answered it.

    ``url``, ``path``, ``query`` and ``headers`` of an entry recorded by the fake are worked out from the
    request's environ when first read: most entries are never read, and building them was most of what
    journaling a request cost.
    """

    __slots__ = ("_environ", "_headers", "_path", "_query", "_url", "body", "body_sha256", "body_size", "cost",
                 "fault", "method", "operation", "parsed", "response_body", "response_sha256", "response_size",
                 "seq", "status", "tenant", "time_ms", "violations")

    _FIELDS = ("seq", "time_ms", "operation", "tenant", "method", "url", "path", "query", "headers", "body",
               "body_size", "body_sha256", "status", "response_body", "response_size", "response_sha256",
               "violations", "parsed", "fault")

    seq: int  #: the entry's number, in the order the journal received entries
    time_ms: int
    operation: str  #: single-update, batch-submit, batch-status, fetch, token, unknown
    tenant: str | None
    method: str
    body: bytes  #: the first BODY_KEEP bytes of the request body
    body_size: int  #: the request body's full size
    body_sha256: str | None  #: the full request body's SHA-256 (hex) when ``body`` is cut short, else None
    status: int
    response_body: bytes  #: the first BODY_KEEP bytes of the answer (see :meth:`record_response`)
    response_size: int  #: the answer's full size
    response_sha256: str | None  #: the full answer's SHA-256 (hex) when ``response_body`` is cut short
    cost: int  #: bytes the journal counts for this entry (set when it is added)
    violations: list[Violation]
    parsed: dict[str, Any]  #: identifier, attributes, batch id, rows...
    fault: str | None

    def __init__(self, seq: int, time_ms: int, operation: str, tenant: str | None, method: str, url: str | None,
                 path: str | None, query: list[tuple[str, str]] | None, headers: dict[str, str] | None,
                 body: bytes, body_size: int, status: int = 0, response_body: bytes = b"",
                 violations: list[Violation] | None = None, parsed: dict[str, Any] | None = None,
                 fault: str | None = None, *, environ: dict[str, str] | None = None) -> None:
        """``url``, ``path``, ``query`` and ``headers`` given as None are read from ``environ`` (an
        :func:`environ_snapshot`) when first asked for."""
        if environ is None and None in (url, path, query, headers):
            raise TypeError("a JournalEntry needs url, path, query and headers, or the environ to read them from")
        self.seq = seq
        self.time_ms = time_ms
        self.operation = operation
        self.tenant = tenant
        self.method = method
        self._url = url
        self._path = path
        self._query = query
        self._headers = headers
        self.body = body
        self.body_size = body_size
        self.body_sha256 = None
        self.status = status
        self.response_body = b""
        self.response_size = 0
        self.response_sha256 = None
        self.cost = 0
        if response_body:
            self.record_response(response_body)
        self.violations = [] if violations is None else violations
        self.parsed = {} if parsed is None else parsed
        self.fault = fault
        self._environ = environ

    def _request(self) -> Request:
        assert self._environ is not None
        return Request(self._environ, populate_request=False)

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = request_url(self._request())
        return self._url

    @property
    def path(self) -> str:
        if self._path is None:
            self._path = self._request().path
        return self._path

    @property
    def query(self) -> list[tuple[str, str]]:
        if self._query is None:
            assert self._environ is not None
            raw = self._environ.get("QUERY_STRING", "").encode("latin-1")
            self._query = list(query_args(raw).items(multi=True))
        return self._query

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            assert self._environ is not None
            self._headers = dict(EnvironHeaders(self._environ).items())
        return self._headers

    def __repr__(self) -> str:
        return f"JournalEntry({', '.join(f'{f}={getattr(self, f)!r}' for f in self._FIELDS)})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def record_response(self, body: bytes) -> None:
        """Keep the answer sent: its first BODY_KEEP bytes, its size and, when cut, its SHA-256."""
        size = len(body)
        self.response_size = size
        if size > BODY_KEEP:
            self.response_sha256 = hashlib.sha256(body).hexdigest()
            self.response_body = body[:BODY_KEEP]
        else:
            self.response_sha256 = None
            self.response_body = body

    def weigh(self) -> int:
        """The bytes this entry holds, for the journal's byte bound: the request's text and bodies as
        kept, plus a fixed overhead (an estimate of its memory, not an exact count)."""
        env = self._environ
        if env is not None:
            text = sum(map(len, env.values()))
        else:
            text = len(self.url) + sum(len(k) + len(v) for k, v in self.headers.items())
        return ENTRY_OVERHEAD + text + len(self.body) + len(self.response_body)

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == low), None)

    def curl(self) -> str:
        """The request as a curl command line, to reproduce it by hand."""
        parts = ["curl", "-X", self.method]
        for k, v in self.headers.items():
            if k.lower() in ("host", "content-length", "accept-encoding", "connection", "user-agent", "accept"):
                continue
            parts += ["-H", _sh(f"{k}: {v}")]
        if self.body:
            if self.body_size > len(self.body):
                parts += ["--data-binary", "@<file>"]
            else:
                parts += ["--data-binary", _sh(self.body.decode("utf-8", "replace"))]
        parts.append(_sh(self.url))
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time_ms,
            "operation": self.operation,
            "tenant": self.tenant,
            "method": self.method,
            "url": self.url,
            "path": self.path,
            "query": [list(p) for p in self.query],
            "headers": self.headers,
            "body": self.body.decode("utf-8", "replace"),
            "bodySize": self.body_size,
            "bodySha256": self.body_sha256,
            "status": self.status,
            "responseBody": self.response_body.decode("utf-8", "replace"),
            "responseBodySize": self.response_size,
            "responseBodySha256": self.response_sha256,
            "violations": [v.to_dict() for v in self.violations],
            "parsed": self.parsed,
            "fault": self.fault,
            "curl": self.curl(),
        }


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


class Journal:
    """A bounded, thread-safe log of requests: oldest dropped first while it holds more than ``maxlen``
    entries or more than ``max_bytes`` bytes (as :meth:`JournalEntry.weigh` counts them)."""

    def __init__(self, maxlen: int | None = 10_000, max_bytes: int | None = JOURNAL_BYTES) -> None:
        self._lock = threading.Lock()
        self._entries: deque[JournalEntry] = deque()
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        # the bounds as numbers, so add() compares without asking for None first
        self._len_cap = sys.maxsize if maxlen is None else maxlen
        self._byte_cap = sys.maxsize if max_bytes is None else max_bytes
        self._bytes = 0
        # next() on a C counter is atomic under the GIL: no lock round trip per request
        self._seq = itertools.count(1)
        self._cond = threading.Condition(self._lock)
        self._waiting = 0  # threads in wait_for; add() only notifies when there are some

    @property
    def bytes(self) -> int:
        """The bytes the journal holds now, as its byte bound counts them."""
        return self._bytes

    def next_seq(self) -> int:
        return next(self._seq)

    def add(self, entry: JournalEntry) -> None:
        """Journal ``entry``, numbering it (``seq``) in the order entries are added, so a reader that pages
        with ``after=<seq>`` never misses one that was answered later but arrived earlier."""
        env = entry._environ
        # JournalEntry.weigh(), inline: this runs for every request
        entry.cost = cost = (ENTRY_OVERHEAD + len(entry.body) + len(entry.response_body)
                             + (sum(map(len, env.values())) if env is not None else entry.weigh() - ENTRY_OVERHEAD))
        entries = self._entries
        with self._lock:
            entry.seq = next(self._seq)
            entries.append(entry)
            self._bytes += cost
            if len(entries) > self._len_cap or self._bytes > self._byte_cap:
                self._trim()
            if self._waiting:
                self._cond.notify_all()

    def _trim(self) -> None:
        entries, len_cap, byte_cap = self._entries, self._len_cap, self._byte_cap
        while entries and (len(entries) > len_cap or self._bytes > byte_cap):
            self._bytes -= entries.popleft().cost

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def restore(self, entries: list[JournalEntry]) -> None:
        """Replace the entries (oldest first); new requests number on from the last of them."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            for entry in entries:
                entry.cost = entry.weigh()
                self._entries.append(entry)
                self._bytes += entry.cost
            self._trim()
            self._seq = itertools.count(max((e.seq for e in entries), default=0) + 1)

    def __len__(self) -> int:
        return len(self._entries)

    def _snapshot(self) -> list[JournalEntry]:
        """The entries now, oldest first (a journal kept elsewhere reads them from there)."""
        with self._lock:
            return list(self._entries)

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(self._snapshot())

    def entries(self, predicate: Callable[[JournalEntry], bool] | None = None) -> list[JournalEntry]:
        return [e for e in self._snapshot() if predicate is None or predicate(e)]

    def page(self, predicate: Callable[[JournalEntry], bool] | None = None, *, after: int = 0,
             limit: int | None = None) -> tuple[list[JournalEntry], bool]:
        """Entries with ``seq`` above ``after`` that match, oldest first, at most ``limit`` of them; and
        whether more match beyond the page."""
        out: list[JournalEntry] = []
        for e in self._snapshot():
            if e.seq > after and (predicate is None or predicate(e)):
                if limit is not None and len(out) >= limit:
                    return out, True
                out.append(e)
        return out, False

    def wait_for(self, predicate: Callable[[list[JournalEntry]], bool], timeout: float) -> bool:
        """Block until ``predicate(entries)`` holds or ``timeout`` seconds pass."""
        with self._cond:
            self._waiting += 1
            try:
                return self._cond.wait_for(lambda: predicate(list(self._entries)), timeout=timeout)
            finally:
                self._waiting -= 1
