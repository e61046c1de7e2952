"""The request journal: every edge request the fake answered, parsed, with its contract verdicts."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from contracts.rules import Severity, Violation

#: Bodies are kept up to this many bytes; a 50 MB batch file is summarised, not copied.
BODY_KEEP = 64 * 1024


@dataclass(slots=True)
class JournalEntry:
    """One request as the fake saw and answered it."""

    seq: int
    time_ms: int
    operation: str  #: single-update, batch-submit, batch-status, fetch, token, unknown
    tenant: str | None
    method: str
    url: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    body_size: int
    status: int = 0
    response_body: bytes = b""
    violations: list[Violation] = field(default_factory=list)
    parsed: dict[str, Any] = field(default_factory=dict)  #: identifier, attributes, batch id, rows...
    fault: str | None = None

    @property
    def errors(self) -> list[Violation]:
        return [v for v in self.violations if v.severity is Severity.ERROR]

    @property
    def deviations(self) -> list[Violation]:
        return [v for v in self.violations if v.severity is Severity.DEVIATION]

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
            "status": self.status,
            "responseBody": self.response_body.decode("utf-8", "replace"),
            "violations": [v.to_dict() for v in self.violations],
            "parsed": self.parsed,
            "fault": self.fault,
            "curl": self.curl(),
        }


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


class Journal:
    """A bounded, thread-safe log of requests (oldest dropped first when full)."""

    def __init__(self, maxlen: int | None = 10_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[JournalEntry] = deque(maxlen=maxlen)
        self._seq = 0
        self._cond = threading.Condition(self._lock)

    @property
    def maxlen(self) -> int | None:
        return self._entries.maxlen

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def add(self, entry: JournalEntry) -> None:
        with self._cond:
            self._entries.append(entry)
            self._cond.notify_all()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[JournalEntry]:
        with self._lock:
            return iter(list(self._entries))

    def entries(self, predicate: Callable[[JournalEntry], bool] | None = None) -> list[JournalEntry]:
        with self._lock:
            items = list(self._entries)
        return [e for e in items if predicate is None or predicate(e)]

    def wait_for(self, predicate: Callable[[list[JournalEntry]], bool], timeout: float) -> bool:
        """Block until ``predicate(entries)`` holds or ``timeout`` seconds pass."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(list(self._entries)), timeout=timeout)
