"""What every edge view shares: tenant resolution, auth, journaling and response shapes."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any, BinaryIO

from flask import Request, Response, current_app, g, request
from flask.globals import _cv_request
from target_profile_mock.contracts.ids import client_code_from_host
from target_profile_mock.contracts.profile_json import format_timestamp
from target_profile_mock.contracts.rules import Violation, rule
from target_profile_mock.contracts.xmlbodies import update_failure
from werkzeug.wsgi import get_content_length

from ..backend import CapacityError, MockBackend
from ..models.journal import BODY_KEEP, JournalEntry, environ_snapshot

XML = "application/xml;charset=UTF-8"
JSON = "application/json;charset=UTF-8"


def backend() -> MockBackend:
    return current_app.config["BACKEND"]


def xml_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status=status, content_type=XML, headers=headers)


def json_response(obj: Any, status: int = 200, content_type: str = JSON,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(obj), status=status, content_type=content_type, headers=headers)


#: The Admin API's media type.
ADMIN_MEDIA = "application/vnd.adobe.target.v1+json"


def admin_error(status: int, code: str, message: str) -> Response:
    """The Admin API's documented ErrorResponse shape (ADMIN-OAS)."""
    body = {
        "httpStatus": status,
        "requestId": str(uuid.uuid4()),
        "requestTime": format_timestamp(backend().now_ms()),  # the fake's clock, so frozen tests see frozen time
        "errors": [{"errorCode": code, "message": message, "meta": {}}],
    }
    return json_response(body, status, ADMIN_MEDIA)


# --- journal ------------------------------------------------------------------------------------
class TeeStream:
    """Reads a body stream while keeping its first bytes and its SHA-256 for the journal."""

    def __init__(self, stream: BinaryIO, keep: int = BODY_KEEP) -> None:
        self._stream = stream
        self._keep = keep
        self.head = bytearray()
        self.total = 0
        self._hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.total += len(data)
        self._hash.update(data)
        room = self._keep - len(self.head)
        if room > 0:
            self.head += data[:room]
        return data

    def sha256(self) -> str:
        """The SHA-256 (hex) of what has been read so far."""
        return self._hash.hexdigest()


def start_entry(operation: str, be: MockBackend | None = None, req: Request | None = None) -> JournalEntry:
    """Open the journal entry for this request; the view fills it in and ``finish`` closes it.

    ``be`` and ``req`` default to the current Flask app's backend and request; the lean dispatch
    (``target_profile_mock.mockserver.app``) passes them, as it runs the view outside Flask's request context.
    The entry keeps the environ's text and works out its URL, query and headers only when read.
    """
    if be is None:
        be = backend()
    if req is None:
        req = request._get_current_object()  # type: ignore[attr-defined]
    environ = req.environ
    length = environ.get("CONTENT_LENGTH")
    # what request.content_length gives (or 0), without its header lookups for the usual empty body
    size = 0 if not length or length == "0" else get_content_length(environ) or 0
    # numbered when journaled (Journal.add), so the journal's order and its numbers agree
    entry = JournalEntry(0, be.now_ms(), operation, None, req.method, None, None, None, None,
                         b"", size, environ=environ_snapshot(environ))
    if flask_dispatched(req):  # the fault injector finds the entry in g
        g.entry = entry
    return entry


def flask_dispatched(req: Request) -> bool:
    """Whether ``req`` is Flask's current request (not one the lean dispatch serves, perhaps while an
    app of the caller's own has a request context of its own)."""
    ctx = _cv_request.get(None)
    return ctx is not None and ctx.request is req


def finish(response: Response, be: MockBackend | None = None, entry: JournalEntry | None = None) -> Response:
    """Close the request's journal entry (``entry``, or the one in ``g``) with ``response`` and journal it."""
    if entry is None:
        entry = g.pop("entry", None)
    if entry is not None:
        entry.status = response.status_code
        if not response.is_streamed:
            chunks = response.response
            # the body a view built in one piece, without get_data()'s generator round trip
            if chunks.__class__ is list and len(chunks) == 1 and chunks[0].__class__ is bytes:  # type: ignore[union-attr]
                entry.record_response(chunks[0])  # type: ignore[index]
            else:
                entry.record_response(response.get_data())
        (be or backend()).journal.add(entry)
    return response


# --- tenant and auth ----------------------------------------------------------------------------
def m2_tenant(path_client: str, entry: JournalEntry, be: MockBackend | None = None,
              req: Request | None = None) -> str:
    """The tenant of an ``/m2/<client>/`` call: the path's client code, or for the literal
    ``client`` (Adobe's examples) the Host's ``<code>.tt.omtrdc.net``, else the configured default."""
    if path_client != "client":
        return path_client
    code = client_code_from_host((request if req is None else req).host) or (be or backend()).config.client_code
    entry.violations.append(Violation(rule("tenant.literal-client"),
                                      f"the path uses the literal /m2/client/; the fake took client code {code!r} "
                                      "from the Host header or its default", "path"))
    return code


def presented_token(entry: JournalEntry, req: Request | None = None) -> str | None:
    # the headers straight from the environ: EnvironHeaders' lookups cost more
    environ = (request if req is None else req).environ
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    alt = environ.get("HTTP_ACCESS_TOKEN")
    if alt:
        entry.violations.append(Violation(rule("auth.access-token-header"),
                                          "the token was sent in an access_token header", "access_token"))
        return alt.strip()
    return None


def check_auth(tenant: str, entry: JournalEntry, refuse: Callable[[Violation], Response],
               be: MockBackend | None = None, req: Request | None = None) -> Response | None:
    token = presented_token(entry, req)
    violation = (be or backend()).check_token(tenant, token)
    if violation is None:
        return None
    entry.violations.append(violation)
    return refuse(violation)


def auth_status(be: MockBackend | None = None) -> int:
    return (be or backend()).config.auth_failure_status


def refuse_update(violation: Violation, status: int | None = None) -> Response:
    return xml_response(update_failure(violation.message), status or violation.rule.status)


# --- the fake's own bounds ----------------------------------------------------------------------
def over_capacity(exc: CapacityError, entry: JournalEntry, shape: Callable[[str], Response]) -> Response:
    """The 503 for a call refused by one of the fake's own memory bounds (not a contract matter, so no
    violation): ``shape`` builds the body of the API called; ``Retry-After`` when waiting would help."""
    entry.parsed["refused"] = str(exc)
    response = shape(str(exc))
    response.status_code = 503
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def admit_tenant(tenant: str, entry: JournalEntry, shape: Callable[[str], Response],
                 be: MockBackend | None = None) -> Response | None:
    """None when a write may create ``tenant`` (or it exists); else the 503 refusal (``max_tenants``)."""
    why = (be or backend()).tenant_refusal(tenant)
    return None if why is None else over_capacity(CapacityError(why), entry, shape)
