"""The XML bodies of the ``/m2/`` endpoints: serialisers (byte-exact where Adobe documents the bytes)
and a tolerant parser for clients and tests."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from xml.sax.saxutils import escape as _escape

__all__ = [
    "COUNTERS",
    "BatchStatusBody",
    "BatchStatusToken",
    "batch_refused",
    "batch_status",
    "batch_submitted",
    "parse_batch_status",
    "parse_response",
    "status_failure",
    "update_failure",
    "update_success",
]

BatchStatusToken = Literal["incomplete", "complete", "stuck"]
#: The counters ``showDetails=true`` adds, in the documented order (EL-BULK 2023-12-05).
COUNTERS = ("batchSize", "consumedCount", "successfulUpdates", "profilesNotFound", "failedUpdates")

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(text: str) -> str:
    """Escape for XML text; characters XML 1.0 cannot carry at all (e.g. NUL) become U+FFFD."""
    return _escape(_NOT_XML.sub("\ufffd", text))


#: Byte-exact success body of a single update (IO-1.4).
UPDATE_SUCCESS = (b"<response><success>true</success><pcId></pcId>"
                  b"<message>Request successfully submitted</message></response>")


def update_success() -> bytes:
    """The documented single-update success body."""
    return UPDATE_SUCCESS


def update_failure(message: str) -> bytes:
    """A single-update refusal: the success body's shape with ``false`` and the message."""
    return (f"<response><success>false</success><pcId></pcId>"
            f"<message>{escape(message)}</message></response>").encode()


def batch_submitted(status_url: str) -> bytes:
    """The documented submit response (EL-BULK 2023-12-05 layout)."""
    return (f"<response>\n    <success>true</success>\n    <batchStatus>{escape(status_url)}</batchStatus>\n"
            f"    <message>Batch submitted for processing</message>\n</response>").encode()


def batch_refused(message: str) -> bytes:
    """A refused submit: ``success`` false, an empty ``batchStatus`` (IO-1.4), and the reason."""
    return (f"<response>\n    <success>false</success>\n    <batchStatus></batchStatus>\n"
            f"    <message>{escape(message)}</message>\n</response>").encode()


def status_failure(message: str) -> bytes:
    """A refused batch status request (undocumented shape: ``success`` false and the reason)."""
    return f"<response><success>false</success><message>{escape(message)}</message></response>".encode()


def batch_status(
    batch_id: str,
    status: BatchStatusToken,
    batch_size: int,
    counters: Mapping[str, int] | None = None,
    profiles: Iterable[tuple[str, str]] = (),
) -> bytes:
    """A batch status body: one line without counters (as documented), indented with them.

    ``profiles`` are ``(id, status)`` rows of the v2 per-profile list.
    """
    rows = list(profiles)
    if counters is None and not rows:
        return (f"<response><batchId>{escape(batch_id)}</batchId><status>{status}</status>"
                f"<batchSize>{batch_size}</batchSize></response>").encode()
    parts = [f"    <batchId>{escape(batch_id)}</batchId>", f"    <status>{status}</status>",
             f"    <batchSize>{batch_size}</batchSize>"]
    if counters is not None:
        parts += [f"    <{name}>{counters[name]}</{name}>" for name in COUNTERS[1:]]
    for pid, row_status in rows:
        parts.append(f"    <profile>\n        <id>{escape(pid)}</id>\n        <status>{row_status}</status>\n"
                     f"    </profile>")
    return ("<response>\n" + "\n".join(parts) + "\n</response>").encode()


def parse_response(body: bytes | str) -> dict[str, str]:
    """The child elements of a ``<response>`` as a dict of stripped text (``<profile>`` rows left out).

    Raises ``ValueError`` when the body is not a ``<response>`` document.
    """
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"not an XML response body: {exc}") from None
    if root.tag != "response":
        raise ValueError(f"expected a <response> element, got <{root.tag}>")
    return {child.tag: (child.text or "").strip() for child in root if child.tag != "profile"}


@dataclass(frozen=True, slots=True)
class BatchStatusBody:
    """A parsed batch status response."""

    batch_id: str
    status: str
    batch_size: int
    counters: dict[str, int]
    profiles: list[tuple[str, str]]


def parse_batch_status(body: bytes | str) -> BatchStatusBody:
    """Parse a batch status body (any documented shape)."""
    fields = parse_response(body)
    root = ET.fromstring(body)
    profiles = [((p.findtext("id") or "").strip(), (p.findtext("status") or "").strip())
                for p in root.iter("profile")]
    counters = {k: int(fields[k]) for k in COUNTERS if k in fields and fields[k].isdigit()}
    return BatchStatusBody(fields.get("batchId", ""), fields.get("status", ""),
                           int(fields.get("batchSize", "0") or 0), counters, profiles)
