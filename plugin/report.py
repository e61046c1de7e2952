"""Readable contract reports: which request, which rule, what Adobe documents, the fix, a curl line."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from target_profile_mock.contracts.rules import Severity, Violation
from target_profile_mock.mockserver.models.journal import JournalEntry

__all__ = ["contract_report", "deviation_summary"]


def contract_report(found: Iterable[tuple[JournalEntry, list[Violation]]]) -> str:
    """One numbered block per request: its violations explained, then a curl reproducer."""
    blocks = []
    for n, (entry, violations) in enumerate(found, 1):
        lines = [f"{n}. {entry.method} {entry.url} -> {entry.status}"]
        for v in sorted(violations, key=lambda v: v.severity is not Severity.ERROR):
            lines.append(textwrap.indent(v.explain(), "   "))
        lines.append(f"   Reproduce: {_clip(entry.curl())}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def deviation_summary(found: Iterable[tuple[JournalEntry, list[Violation]]]) -> str:
    """Rule ids with counts, for the end-of-run summary: ``batch.profile-prefix x2, ...``."""
    counts: dict[str, int] = {}
    for _, violations in found:
        for v in violations:
            counts[v.rule_id] = counts.get(v.rule_id, 0) + 1
    return ", ".join(f"{rule_id} x{n}" if n > 1 else rule_id for rule_id, n in sorted(counts.items()))


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"
