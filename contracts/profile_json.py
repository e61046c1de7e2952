"""The profile fetch API's JSON: the documented profile shape and the verbatim 404 bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from .ids import IdKind

__all__ = ["format_timestamp", "not_found_body", "not_found_json", "profile_body"]


@lru_cache(maxsize=8192)  # a profile's attributes mostly share a few write times: format each once
def format_timestamp(epoch_ms: int) -> str:
    """ISO-8601 with milliseconds and a UTC offset, as in ``2017-08-18T17:53:39.003+00:00``."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def profile_body(
    client: str,
    visitor_id: str,
    attributes: Mapping[str, tuple[str, int]],
    modified_ms: int | None = None,
) -> dict[str, Any]:
    """The fetch response (EL-PROFILES): ``attributes`` maps a name to ``(value, modified epoch ms)``.

    The top-level ``modifiedAt`` is ``modified_ms`` when given, else the latest attribute's.
    """
    modified = max((ts for _, ts in attributes.values()), default=0) if modified_ms is None else modified_ms
    return {
        "client": client,
        "visitorId": visitor_id,
        "modifiedAt": format_timestamp(modified),
        "profileAttributes": {
            name: {"value": value, "modifiedAt": format_timestamp(ts)} for name, (value, ts) in attributes.items()
        },
    }


def not_found_body(client: str, kind: IdKind, profile_id: str) -> dict[str, Any]:
    """The verbatim 404 bodies (EL-FETCH); the ECID wording is the fake's choice (undocumented)."""
    if kind == "thirdPartyId":
        what = f"third party id={profile_id}"
    elif kind == "tntId":
        what = f"mboxPC={profile_id}"
    else:
        what = f"marketingCloudVisitorId={profile_id}"
    return {"status": 404, "message": f"No profile found for client {client} with {what}"}


def not_found_json(client: str, kind: IdKind, profile_id: str) -> bytes:
    """The 404 body laid out byte for byte as Adobe prints it (``"status" : 404``, spaces included)."""
    body = not_found_body(client, kind, profile_id)
    return f'{{"status" : 404, "message" : {json.dumps(body["message"], ensure_ascii=False)}}}'.encode()
