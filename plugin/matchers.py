"""Small matchers over journal entries, each explaining a mismatch, and the "nearest match" search.

A matcher is a callable ``(entry) -> (matched, reason)``; ``reason`` says what differed. When no
request matches, the assertion shows the request that failed the fewest matchers, with its reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from target_profile_mock.mockserver.models.journal import JournalEntry
from target_profile_mock.mockserver.surfaces import OPERATIONS

__all__ = ["Matcher", "Search", "search"]

Matcher = Callable[[JournalEntry], tuple[bool, str]]


def operation(name: str) -> Matcher:
    if name not in OPERATIONS:
        raise ValueError(f"operation={name!r}: use one of {', '.join(OPERATIONS)}")

    def match(e: JournalEntry) -> tuple[bool, str]:
        return (e.operation == name, f"it is a {e.operation} request, not {name}")
    return match


def tenant(code: str) -> Matcher:
    def match(e: JournalEntry) -> tuple[bool, str]:
        return (e.tenant == code, f"client code: sent {e.tenant!r}, expected {code!r}")
    return match


def method(name: str) -> Matcher:
    name = name.upper()

    def match(e: JournalEntry) -> tuple[bool, str]:
        return (e.method == name, f"method: sent {e.method}, expected {name}")
    return match


def parsed(key: str, expected: Any, label: str | None = None) -> Matcher:
    def match(e: JournalEntry) -> tuple[bool, str]:
        got = e.parsed.get(key)
        return (got == expected, f"{label or key}: sent {got!r}, expected {expected!r}")
    return match


def identifier(kind: str, value: str, label: str) -> Matcher:
    """A single update's identifier (``mbox3rdPartyId`` or ``mboxPC``)."""
    def match(e: JournalEntry) -> tuple[bool, str]:
        got_kind, got = e.parsed.get("idKind"), e.parsed.get("id")
        if got_kind == kind and got == value:
            return True, ""
        sent = f"{got_kind}={got!r}" if got_kind else "no identifier"
        return False, f"identifier: sent {sent}, expected {kind}={value!r} ({label})"
    return match


def attributes(expected: Mapping[str, Any], *, exact: bool) -> Matcher:
    want = {str(k): str(v) for k, v in expected.items()}

    def match(e: JournalEntry) -> tuple[bool, str]:
        got: dict[str, str] = e.parsed.get("attributes") or {}
        missing = {k: v for k, v in want.items() if k not in got}
        wrong = {k: (got[k], v) for k, v in want.items() if k in got and got[k] != v}
        extra = sorted(set(got) - set(want)) if exact else []
        if not (missing or wrong or extra):
            return True, ""
        parts = []
        if wrong:
            parts.append("; ".join(f"{k}: sent {g!r}, expected {w!r}" for k, (g, w) in wrong.items()))
        if missing:
            parts.append(f"not sent: {', '.join(sorted(missing))}")
        if extra:
            parts.append(f"sent but not expected: {', '.join(extra)}")
        return False, "attributes: " + "; ".join(parts)
    return match


def rows(expected: Sequence[Mapping[str, Any]], lookup: Callable[[JournalEntry], list[dict[str, str]] | None]
         ) -> Matcher:
    """A batch's rows, as ``{key column: id, attribute: value}`` dicts in file order."""
    want = [{str(k): str(v) for k, v in r.items()} for r in expected]

    def match(e: JournalEntry) -> tuple[bool, str]:
        got = lookup(e)
        if got is None:
            return False, f"rows: not available (the batch was refused with {e.status} or is too large to keep)"
        if got == want:
            return True, ""
        if len(got) != len(want):
            return False, f"rows: sent {len(got)} row(s), expected {len(want)}: sent {_short(got)}"
        i = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
        return False, f"rows: row {i + 1} differs: sent {got[i]!r}, expected {want[i]!r}"
    return match


def _short(items: list[Any], n: int = 3) -> str:
    text = ", ".join(repr(i) for i in items[:n])
    return f"[{text}{', ...' if len(items) > n else ''}]"


@dataclass
class Search:
    """The outcome of matching the journal: what matched, and the nearest miss with its reasons."""

    matched: list[JournalEntry]
    candidates: list[JournalEntry]
    nearest: JournalEntry | None
    reasons: list[str]

    def describe_nearest(self) -> str:
        if self.nearest is None:
            return "  No request of this kind was sent."
        e = self.nearest
        lines = [f"  Nearest match: {e.method} {e.url} -> {e.status}"]
        lines += [f"    - {r}" for r in self.reasons]
        others = len(self.candidates) - 1
        if others > 0:
            lines.append(f"  ({others} other request(s) of this kind; see target_profiles.requests())")
        return "\n".join(lines)


def search(entries: list[JournalEntry], kind: Matcher | None, matchers: list[Matcher]) -> Search:
    """Entries passing ``kind`` and all ``matchers``; among those passing ``kind``, the nearest miss."""
    candidates = [e for e in entries if kind is None or kind(e)[0]]
    matched: list[JournalEntry] = []
    nearest: JournalEntry | None = None
    nearest_reasons: list[str] = []
    for e in candidates:
        reasons = [reason for ok, reason in (m(e) for m in matchers) if not ok]
        if not reasons:
            matched.append(e)
        elif nearest is None or len(reasons) <= len(nearest_reasons):
            # ties go to the later request: usually the one the test just made
            nearest, nearest_reasons = e, reasons
    return Search(matched, candidates, nearest, nearest_reasons)
