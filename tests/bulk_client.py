"""A bulk API client for the tests: post a batch file and follow its status URL, as a real client does.

A module of its own, not part of ``conftest.py``, so test modules can import it by name wherever they
sit (``tests/plugin/`` has a ``conftest`` of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from flask.testing import FlaskClient
from target_profile_mock.contracts.xmlbodies import BatchStatusBody, parse_batch_status, parse_response
from werkzeug.test import TestResponse

FORM = "application/x-www-form-urlencoded"


@dataclass
class Submitted:
    """A batch the fake accepted: its id and the batchStatus URL exactly as the response gave it."""

    batch_id: str
    status_url: str
    body: bytes


class BulkClient:
    """Drives the bulk API over HTTP the way a real client does: post the file, follow the status URL."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def post(self, body: bytes, *, version: int = 2, tenant: str = "demo", content_type: str | None = FORM,
             query: str = "", headers: dict[str, str] | None = None) -> TestResponse:
        path = f"/m2/{tenant}/v2/profile/batchUpdate" if version == 2 else f"/m2/{tenant}/profile/batchUpdate"
        hdrs = {"Content-Type": content_type} if content_type else {}
        hdrs.update(headers or {})
        return self.client.post(path + (f"?{query}" if query else ""), data=body, headers=hdrs)

    def submit(self, body: bytes, **kwargs: Any) -> Submitted:
        """Post and insist on the documented success answer."""
        r = self.post(body, **kwargs)
        assert r.status_code == 200, r.data
        fields = parse_response(r.data)
        assert fields["success"] == "true", r.data
        url = fields["batchStatus"]
        return Submitted(parse_qs(urlsplit(url).query)["batchId"][0], url, r.data)

    def apply(self, body: bytes, **kwargs: Any) -> Submitted:
        """Submit, then poll until the batch completes (under the ``polls=1`` lifecycle of the ``backend``
        fixture: one ``incomplete`` answer, then ``complete``), so its rows are applied."""
        sub = self.submit(body, **kwargs)
        answers = [self.status(sub.status_url).status for _ in range(2)]
        assert answers == ["incomplete", "complete"], answers
        return sub

    def status_response(self, url: str, *, details: bool = False) -> TestResponse:
        return self.client.get(url + ("&showDetails=true" if details else ""))

    def status(self, url: str, *, details: bool = False) -> BatchStatusBody:
        r = self.status_response(url, details=details)
        assert r.status_code == 200, r.data
        return parse_batch_status(r.data)

    def profile(self, kind: str, profile_id: str, *, tenant: str = "demo") -> dict[str, str] | None:
        """A profile's attributes read through the control API (no side effects), or None."""
        r = self.client.get(f"/_mock/tenants/{tenant}/profiles/{kind}/{quote(profile_id, safe='')}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.data
        return r.get_json()["attributes"]
