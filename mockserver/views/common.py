"""What every edge view shares: tenant resolution, auth, journaling and response shapes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, BinaryIO

from flask import Blueprint, Request, Response, current_app, g, request
from flask.globals import _cv_request
from target_profile_mock.contracts.ids import client_code_from_host
from target_profile_mock.contracts.rules import Violation, rule
from werkzeug.wsgi import get_content_length

from ..backend import CapacityError, MockBackend
from ..errors import StoreUnavailable
from ..models.journal import BODY_KEEP, JournalEntry, environ_snapshot
from ..surfaces import JSON, ROUTE_METHODS, XML, ErrorShape, Surface, by_operation


def backend() -> MockBackend:
    return current_app.config["BACKEND"]


def xml_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status=status, content_type=XML, headers=headers)


def json_response(obj: Any, status: int = 200, content_type: str = JSON,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(obj), status=status, content_type=content_type, headers=headers)


def error_response(shape: Surface | ErrorShape, status: int, message: str, headers: dict[str, str] | None = None,
                   *, code: str | None = None, be: MockBackend | None = None) -> Response:
    """A refusal in the error shape of a surface (or of a path's API): ``code`` is the Admin API's
    ``errorCode``. Times in a body are the fake's clock, so frozen tests see frozen time."""
    if isinstance(shape, Surface):
        shape = shape.error
    now_ms = (be or backend()).now_ms() if shape.timed else 0
    return Response(shape.render(status, message, code, now_ms), status=status, content_type=shape.media,
                    headers=headers)


def refuse(surface: Surface, violation: Violation, status: int | None = None,
           headers: dict[str, str] | None = None, be: MockBackend | None = None) -> Response:
    """The surface's refusal of a call that broke a rule: the rule's status unless told otherwise."""
    return error_response(surface, status or violation.rule.status, violation.message, headers, be=be)


def allow(surface: Surface) -> dict[str, str]:
    """The ``Allow`` header for a surface's 405: what it serves, and OPTIONS (answered for every route)."""
    return {"Allow": ", ".join((*surface.served, "OPTIONS"))}


def retry_after(wait: float) -> str:
    """``Retry-After`` for a wait of ``wait`` seconds: whole seconds, rounded up, at least 1."""
    return str(max(1, int(wait + 0.999)))


def bulk_limit_reached(tenant: str, limit: int | None) -> Violation:
    """The refusal of a bulk call (or status poll) past the tenant's bulk rate limit."""
    if limit == 0:  # the fake's own setting, not Adobe's: say how to lift it
        return Violation(rule("rate.bulk"), f"the bulk limit of client {tenant} is set to 0 calls a minute, so every "
                         "bulk call is refused (bulkCallsPerMinute: null or --bulk-rate-limit off switches the limit "
                         "off)", "rate")
    return Violation(rule("rate.bulk"), f"client {tenant} has made {limit} bulk calls in the last minute", "rate")


# --- routes -------------------------------------------------------------------------------------
#: The views that take the backend and the request explicitly, by operation: the lean front
#: (``app.py``) calls them without Flask's request context.
DIRECT_VIEWS: dict[str, Callable[..., Response]] = {}


def serve(bp: Blueprint, operation: str, view: Callable[..., Response], *, direct: bool = False) -> None:
    """Register ``view`` on ``bp`` for every route of the surface of ``operation``, as declared in
    ``surfaces.py``; a route's own arguments (``version=2``) are passed to the view with the path's.

    A ``direct`` view takes the backend and the request first, so the lean front can call it too."""
    surface = by_operation(operation)

    def dispatch(**kwargs: Any) -> Response:
        # looked up per call, as the lean front does: both dispatches run the view registered now
        return DIRECT_VIEWS[operation](backend(), request._get_current_object(), **kwargs)  # type: ignore[attr-defined]

    flask_view = view
    if direct:
        DIRECT_VIEWS[operation] = view
        flask_view = dispatch
    for route in surface.routes:
        blueprint, _, endpoint = route.endpoint.partition(".")
        if blueprint != bp.name:
            raise ValueError(f"{route.endpoint} is declared for blueprint {blueprint!r}, registered on {bp.name!r}")
        bp.add_url_rule(route.rule, endpoint, flask_view, methods=list(ROUTE_METHODS),
                        defaults=dict(route.args))


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


def check_auth(tenant: str, entry: JournalEntry, surface: Surface, be: MockBackend | None = None,
               req: Request | None = None) -> Response | None:
    """None when the call may go on; else the surface's refusal, with the configured auth status."""
    token = presented_token(entry, req)
    violation = (be or backend()).check_token(tenant, token)
    if violation is None:
        return None
    entry.violations.append(violation)
    return refuse(surface, violation, auth_status(be), be=be)


def auth_status(be: MockBackend | None = None) -> int:
    return (be or backend()).config.auth_failure_status


# --- the fake's own bounds ----------------------------------------------------------------------
def over_capacity(exc: CapacityError, entry: JournalEntry, surface: Surface, be: MockBackend | None = None) -> Response:
    """The 503 for a call refused by one of the fake's own memory bounds (not a contract matter, so no
    violation), in the surface's error shape; ``Retry-After`` when waiting would help."""
    entry.parsed["refused"] = str(exc)
    return capacity_refusal(exc, surface, be)


def capacity_refusal(exc: CapacityError | StoreUnavailable, shape: Surface | ErrorShape | None,
                     be: MockBackend | None = None) -> Response:
    """The 503 of a call over one of the fake's own bounds or made while its store failed, in ``shape``
    (None: the fake's own ``{"error": ...}``), with ``Retry-After`` when waiting would help."""
    message = str(exc)
    response = json_response({"error": message}, 503) if shape is None else error_response(shape, 503, message, be=be)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def admit_tenant(tenant: str, entry: JournalEntry, surface: Surface, be: MockBackend | None = None) -> Response | None:
    """None when a write may create ``tenant`` (or it exists); else the 503 refusal (``max_tenants``)."""
    why = (be or backend()).tenant_refusal(tenant)
    return None if why is None else over_capacity(CapacityError(why), entry, surface, be)
