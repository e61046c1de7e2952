"""Identifiers: tntId (mboxPC, pcId), thirdPartyId (mbox3rdPartyId), ECID; and host names."""

from __future__ import annotations

import re
from typing import Literal

from .rules import LIMITS, Violation, rule

__all__ = [
    "ID_KINDS",
    "TNT_ID_RE",
    "IdKind",
    "check_third_party_id",
    "check_tnt_id",
    "client_code_from_host",
    "location_hint",
    "tnt_id_key",
]

#: The kinds of id a profile is found by (the profile fetch API's path names them the same way).
IdKind = Literal["tntId", "thirdPartyId", "marketingCloudVisitorId"]
ID_KINDS: tuple[IdKind, ...] = ("tntId", "thirdPartyId", "marketingCloudVisitorId")

#: The ids Target issues: ``<digits>-<digits>`` (``1368007744041-575948``), 32 hex digits (Adobe's
#: Delivery API example ``10abf6304b2714215b1fd39a870f01afc`` has 33) or plain digits (``123``, the
#: bulk sample), each with an optional location hint after a single dot (``.01_00``, ``.17_05``,
#: ``.28_0``, ``.35_0``, ``.01``).
TNT_ID_RE = re.compile(r"^(?:[0-9]+-[0-9]+|[0-9a-fA-F]{32,33}|[0-9]+)(?:\.[0-9]{1,3}_[0-9]{1,3}|\.[0-9]{1,3})?$")
_TARGET_HOST_RE = re.compile(r"^(?P<code>[A-Za-z0-9][A-Za-z0-9_-]*)\.tt\.omtrdc\.net$", re.IGNORECASE)
_EDGE_RE = re.compile(r"^mboxedge[0-9]*$", re.IGNORECASE)


def check_third_party_id(value: str, where: str, *, rule_id: str | None = None) -> list[Violation]:
    """Violations of the documented mbox3rdPartyId rules (no ``+``, no ``/``, at most 256 characters)."""
    out: list[Violation] = []
    if value == "":
        return [Violation(rule("id.empty"), f"{where} is empty", where)]
    bad = sorted({c for c in value if c in "+/"})
    if bad:
        out.append(Violation(rule(rule_id or "id.third-party-chars"),
                             f"{where} {value!r} contains {' and '.join(repr(c) for c in bad)}, "
                             "which mbox3rdPartyId does not allow", where))
    if len(value) > LIMITS.third_party_id_max_chars:
        out.append(Violation(rule(rule_id or "id.third-party-length"),
                             f"{where} is {len(value)} characters long; the limit is "
                             f"{LIMITS.third_party_id_max_chars}", where))
    return out


def check_tnt_id(value: str, where: str) -> list[Violation]:
    """Violations of the tntId format; an unusual format is only a deviation."""
    if value == "":
        return [Violation(rule("id.empty"), f"{where} is empty", where)]
    if not TNT_ID_RE.match(value):
        return [Violation(rule("id.tnt-format"),
                          f"{where} {value!r} does not look like a Target id such as 1368007744041-575948.01_00 "
                          "or 10abf6304b2714215b1fd39a870f01afc.28_20",
                          where)]
    return []


def tnt_id_key(value: str) -> str:
    """The part of a tntId that names the visitor: everything before the location hint's dot.

    ``1368007744041-575948.28_0``, ``1368007744041-575948.17_05`` and ``1368007744041-575948`` name
    one visitor; the hint only tells the edge which cluster holds the profile.
    """
    return value.partition(".")[0]


def location_hint(value: str) -> str | None:
    """The location hint of a tntId (``28_0`` in ``...575948.28_0``), or None."""
    _, dot, hint = value.partition(".")
    return hint if dot and hint else None


def client_code_from_host(host: str | None) -> str | None:
    """The client code in a ``<code>.tt.omtrdc.net`` host, or None (also for ``mboxedgeNN`` hosts)."""
    if not host:
        return None
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    m = _TARGET_HOST_RE.match(name)
    if not m or _EDGE_RE.match(m.group("code")):
        return None
    return m.group("code")
