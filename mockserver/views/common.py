"""What every edge view shares: tenant resolution, auth, journaling and response shapes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, BinaryIO

from flask import Request, Response, current_app, g, request

from contracts.ids import client_code_from_host
from contracts.rules import Violation, rule
from contracts.xmlbodies import update_failure

from ..backend import MockBackend
from ..models.journal import BODY_KEEP, JournalEntry

XML = "application/xml;charset=UTF-8"
JSON = "application/json;charset=UTF-8"


def backend() -> MockBackend:
    return current_app.config["BACKEND"]


def xml_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status=status, content_type=XML, headers=headers)


def json_response(obj: Any, status: int = 200, content_type: str = JSON,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(obj), status=status, content_type=content_type, headers=headers)


# --- journal ------------------------------------------------------------------------------------
class TeeStream:
    """Reads a body stream while keeping its first bytes for the journal."""

    def __init__(self, stream: BinaryIO, keep: int = BODY_KEEP) -> None:
        self._stream = stream
        self._keep = keep
        self.head = bytearray()
        self.total = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.total += len(data)
        room = self._keep - len(self.head)
        if room > 0:
            self.head += data[:room]
        return data


_PLAIN_HOST = re.compile(r"[a-z0-9.-]+(?::[1-9][0-9]{0,3})?")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.~!$&'()*+,/:;=@-]*")
_PLAIN_QUERY = re.compile(rb"[A-Za-z0-9_.~!$&'()*+,/:;=@?-]*")


def request_url(req: Request) -> str:
    """``req.url``, built directly when no part needs quoting or IRI decoding (the usual request);
    Werkzeug's quote-and-decode round trip was the largest cost of a journal entry."""
    host, path, qs = req.host, req.root_path.rstrip("/") + "/" + req.path.lstrip("/"), req.query_string
    if "xn--" in host or not (_PLAIN_HOST.fullmatch(host) and _PLAIN_PATH.fullmatch(path)
                              and _PLAIN_QUERY.fullmatch(qs)):
        return req.url
    return f"{req.scheme}://{host}{path}?{qs.decode('ascii')}" if qs else f"{req.scheme}://{host}{path}"


def start_entry(operation: str) -> JournalEntry:
    """Open the journal entry for this request; the view fills it in and ``finish`` closes it."""
    be = backend()
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    entry = JournalEntry(
        seq=be.journal.next_seq(),
        time_ms=be.now_ms(),
        operation=operation,
        tenant=None,
        method=req.method,
        url=request_url(req),
        path=req.path,
        query=list(req.args.items(multi=True)),
        headers=dict(req.headers.items()),
        body=b"",
        body_size=req.content_length or 0,
    )
    g.entry = entry
    return entry


def finish(response: Response) -> Response:
    entry: JournalEntry | None = g.pop("entry", None)
    if entry is not None:
        entry.status = response.status_code
        if not response.is_streamed:
            entry.response_body = response.get_data()
        backend().journal.add(entry)
    return response


# --- tenant and auth ----------------------------------------------------------------------------
def m2_tenant(path_client: str, entry: JournalEntry) -> str:
    """The tenant of an ``/m2/<client>/`` call: the path's client code, or for the literal
    ``client`` (Adobe's examples) the Host's ``<code>.tt.omtrdc.net``, else the configured default."""
    if path_client != "client":
        return path_client
    code = client_code_from_host(request.host) or backend().config.client_code
    entry.violations.append(Violation(rule("tenant.literal-client"),
                                      f"the path uses the literal /m2/client/; the fake took client code {code!r} "
                                      "from the Host header or its default", "path"))
    return code


def presented_token(entry: JournalEntry) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    alt = request.headers.get("access_token")
    if alt:
        entry.violations.append(Violation(rule("auth.access-token-header"),
                                          "the token was sent in an access_token header", "access_token"))
        return alt.strip()
    return None


def check_auth(tenant: str, entry: JournalEntry, refuse: Callable[[Violation], Response]) -> Response | None:
    token = presented_token(entry)
    violation = backend().check_token(tenant, token)
    if violation is None:
        return None
    entry.violations.append(violation)
    return refuse(violation)


def auth_status() -> int:
    return backend().config.auth_failure_status


def refuse_update(violation: Violation, status: int | None = None) -> Response:
    return xml_response(update_failure(violation.message), status or violation.rule.status)
