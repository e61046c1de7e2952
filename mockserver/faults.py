"""Fault injection over HTTP: slow answers, error statuses, throttling, damaged bodies and broken connections.

The queue that decides which call meets which fault is the model's
(:class:`~target_profile_mock.mockserver.models.faults.FaultInjector`, ``backend.faults``, re-exported
here); this module renders the decision. The edge and token views call :func:`intercept` after their
contract checks; it asks the queue, sleeps any latency, and answers in the shape of the API the call
belongs to.

Faults are decided before the operation runs. Status-like faults (``status``, ``throttle``,
``rate-limit``) and connection faults (``reset``, ``disconnect``) answer instead of the operation, so
nothing is applied, unless ``applied=True`` says the fake did the work and only the answer was lost.
Body faults (``empty``, ``truncated``, ``malformed``) always damage the answer of an operation that
was applied. Latency is wall-clock time slept by the thread handling the request (the fake's
controllable clock does not apply), before anything else happens.

Connection faults break the real socket when the app runs under waitress (the standalone server and
:class:`~target_profile_mock.mockserver.server.LiveServer`): a reset closes it with an RST, a disconnect closes it
without a response, a truncated body announces more bytes than it sends. Anywhere else (the Flask
test client, an in-process transport) they raise :class:`ConnectionFault` out of the WSGI call; its
``requests_exception()`` and ``httpx_exception()`` build the exceptions those libraries raise for
the same failure on a real socket.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from flask import Response, after_this_request, g, has_request_context
from target_profile_mock.contracts.rules import LIMITS

from .models.faults import (
    _BODY_KINDS,
    _CONNECTION_KINDS,
    DEFAULT_RETRY_AFTER,
    KINDS,
    MAX_LATENCY,
    OPERATIONS,
    Fault,
    FaultInjector,
    FaultRule,
    Injection,
    _phrase,
    _retry_after,
    make_fault,
)
from .surfaces import by_operation
from .views.common import bulk_limit_reached, error_response

if TYPE_CHECKING:
    import httpx
    import requests

    from .backend import MockBackend
    from .models.journal import JournalEntry

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "KINDS",
    "MAX_LATENCY",
    "OPERATIONS",
    "ConnectionFault",
    "ConnectionFaultResponse",
    "Fault",
    "FaultInjector",
    "FaultRule",
    "Injection",
    "intercept",
    "make_fault",
]


# --- the view hook -------------------------------------------------------------------------------
def intercept(injector: FaultInjector, operation: str, tenant: str | None) -> Response | None:
    """The view hook: the answer to send instead of the operation's, or None to go on.

    Called inside a request, after the contract checks. Records the fault in the journal entry,
    sleeps any latency, and for faults that damage the operation's own answer registers an
    ``after_this_request`` hook that rewrites it (and the journal entry) once the view is done.
    """
    hit = injector.take(operation, tenant)
    if hit is None:
        return None
    entry: JournalEntry | None = g.get("entry") if has_request_context() else None
    described = hit.describe() if hit.fault.kind != "pass" or hit.latency else None
    if hit.latency and not injector.sleep(hit.latency):
        described = f"{described} (latency skipped: {injector.max_sleeping} faulted requests already sleeping)"
    if entry is not None and described is not None:
        entry.fault = described
    f = hit.fault
    if f.kind in ("latency", "pass"):
        return None
    if hit.applied:
        after_this_request(lambda response: _journaled(entry, _damage(f, operation, tenant, response)))
        return None
    answer = _answer(f, operation, tenant)
    if isinstance(answer, ConnectionFaultResponse):
        after_this_request(lambda response: _journaled(entry, response))
    return answer


# --- answers -------------------------------------------------------------------------------------
def _backend() -> MockBackend:
    from flask import current_app

    return current_app.config["BACKEND"]


def _answer(f: Fault, operation: str, tenant: str | None) -> Response:
    """The answer of a status-like or connection fault."""
    if f.kind in _CONNECTION_KINDS:
        return ConnectionFaultResponse(ConnectionFault(f.kind))  # type: ignore[arg-type]
    status = {"throttle": 429, "rate-limit": 503}.get(f.kind, f.status or 500)
    message = f.message
    if message is None and f.kind == "rate-limit":
        # word for word what the fake's own bulk rate limit says
        limit = (_backend().rate_limit(tenant, "bulk") if tenant else None) or LIMITS.bulk_calls_per_minute
        message = bulk_limit_reached(str(tenant), limit).message
    response = error_response(by_operation(operation), status, message or _phrase(status))
    if f.body is not None:
        response.set_data(f.body.encode())
    if f.kind in ("throttle", "rate-limit") or f.retry_after is not None:
        response.headers["Retry-After"] = str(_retry_after(f))
    return response


def _malformed(body: bytes, content_type: str) -> bytes:
    """The answer with its end cut off: the root element (or JSON object) is never closed."""
    text = body.rstrip()
    if "json" in content_type:
        return text[:-1] if text.endswith((b"}", b"]")) else text + b"{"
    close = text.rfind(b"</")
    return text[:close] if close > 0 else b"<response><success>"


def _damage(f: Fault, operation: str, tenant: str | None, response: Response) -> Response:
    """Rewrite the answer of an operation that was applied."""
    if f.kind not in _BODY_KINDS:
        return _answer(f, operation, tenant)
    full = response.get_data()
    ctype = response.headers.get("Content-Type", by_operation(operation).media)
    status = f.status or response.status_code
    if f.kind == "empty":
        return Response(b"", status=status, content_type=ctype)
    if f.kind == "malformed":
        data = f.body.encode() if f.body is not None else _malformed(full, ctype)
        return Response(data, status=status, content_type=ctype)
    keep = len(full) // 2 if f.keep is None else min(f.keep, len(full))
    announced = max(len(full), keep + 1)  # always promise more than is sent
    return ConnectionFaultResponse(ConnectionFault(
        "truncated", status=response.status_code, headers=[("Content-Type", ctype)], body=full[:keep],
        expected=announced))


def _journaled(entry: JournalEntry | None, response: Response) -> Response:
    """Make the journal entry show what the client was really sent."""
    if entry is not None:
        if isinstance(response, ConnectionFaultResponse):
            entry.status = response.fault.status or 0
            entry.record_response(response.fault.body)
            if response.fault.kind == "truncated" and entry.fault:
                entry.fault += f" ({len(response.fault.body)} of {response.fault.expected} bytes sent)"
        else:
            entry.status = response.status_code
            entry.record_response(response.get_data())
    return response


# --- connection faults ---------------------------------------------------------------------------
class ConnectionFault(Exception):
    """A connection-level fault, raised out of the WSGI call where there is no socket to break.

    ``kind`` is ``reset`` (the peer resets the connection before answering), ``disconnect`` (it
    closes the connection without a response) or ``truncated`` (it sends ``status``, ``headers``
    with ``Content-Length: expected`` and the first ``len(body)`` bytes, then closes). An
    in-process transport turns it into what its HTTP library raises on a real socket, with
    :meth:`requests_exception` or :meth:`httpx_exception`.
    """

    def __init__(self, kind: Literal["reset", "disconnect", "truncated"], *, status: int | None = None,
                 headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                 expected: int | None = None) -> None:
        self.kind = kind
        self.status = status
        self.headers = list(headers or [])
        self.body = body
        self.expected = expected
        super().__init__(self.describe())

    def describe(self) -> str:
        if self.kind == "truncated":
            return f"truncated body: {len(self.body)} of {self.expected} bytes sent, then the connection closed"
        return "connection reset by peer" if self.kind == "reset" else "connection closed without a response"

    def requests_exception(self, request: Any = None) -> requests.RequestException:
        """What ``requests`` raises for this fault on a real socket (same class, same message)."""
        from http.client import RemoteDisconnected

        import requests
        from urllib3.exceptions import IncompleteRead, ProtocolError

        if self.kind == "truncated":
            expected = self.expected or 0
            cause = IncompleteRead(len(self.body), expected - len(self.body))
            return requests.exceptions.ChunkedEncodingError(
                ProtocolError(f"Connection broken: {cause!r}", cause), request=request)
        reason: Exception = (ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))
                             if self.kind == "reset" else
                             RemoteDisconnected("Remote end closed connection without response"))
        return requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", reason), request=request)

    def httpx_exception(self, request: httpx.Request) -> httpx.TransportError:
        """What ``httpx`` raises for this fault on a real socket (same class, same message)."""
        import httpx

        if self.kind == "reset":
            return httpx.ReadError(f"[Errno {errno.ECONNRESET}] {os.strerror(errno.ECONNRESET)}", request=request)
        if self.kind == "disconnect":
            return httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.RemoteProtocolError("peer closed connection without sending complete message body "
                                         f"(received {len(self.body)} bytes, expected {self.expected})",
                                         request=request)


StartResponse = Callable[..., Callable[[bytes], object]]


def _waitress_channel(write: object) -> Any:
    """The waitress channel serving this request, or None under any other WSGI server.

    waitress hands out its task's bound ``write`` from ``start_response``; the task knows its channel
    (and so the socket). The check on the class keeps this from touching anything else.
    """
    try:
        from waitress.channel import HTTPChannel
    except ImportError:  # pragma: no cover - waitress is a dependency
        return None
    channel = getattr(getattr(write, "__self__", None), "channel", None)
    return channel if isinstance(channel, HTTPChannel) else None


class ConnectionFaultResponse(Response):
    """A response that breaks the connection instead of answering (see :class:`ConnectionFault`)."""

    def __init__(self, fault: ConnectionFault) -> None:
        super().__init__(fault.body, status=fault.status or 200)
        self.fault = fault

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:  # type: ignore[override]
        fault = self.fault
        if fault.kind == "truncated":
            status = fault.status or 200
            headers = [*fault.headers, ("Content-Length", str(fault.expected))]
            write = start_response(f"{status} {_phrase(status)}", headers)
            if _waitress_channel(write) is None:
                raise fault
            # waitress sends what it has, sees the short count and closes the connection
            return [fault.body]
        write = start_response("500 Internal Server Error", [])  # never sent: nothing is written
        channel = _waitress_channel(write)
        if channel is None:
            raise fault
        from waitress.channel import ClientDisconnected

        sock = getattr(channel, "socket", None)
        if fault.kind == "reset" and sock is not None:
            # linger on with a zero timeout turns the close into an RST
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # waitress closes the connection quietly, having written nothing, when a task ends this way
        raise ClientDisconnected(fault.describe())
