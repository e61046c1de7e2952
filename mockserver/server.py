"""Serving the app over HTTP on waitress: in the foreground (the CLI) or in a background thread."""

from __future__ import annotations

import io
import json
import logging
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from flask import Flask
from target_profile_mock.contracts.ids import client_code_from_host
from target_profile_mock.contracts.rules import LIMITS, Violation, rule
from target_profile_mock.contracts.xmlbodies import batch_refused, status_failure, update_failure
from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask
from waitress.utilities import RequestEntityTooLarge, RequestHeaderFieldsTooLarge
from werkzeug.wsgi import ClosingIterator

from .app import HotRoutes
from .errors import StaleState
from .models.journal import JournalEntry, query_args
from .surfaces import by_operation

if TYPE_CHECKING:
    from .store import Store

__all__ = ["CHANNEL_TIMEOUT", "CONNECTION_LIMIT", "LiveServer", "make_server", "tune_allocator"]

#: Open connections the server keeps (waitress' default, 100, lets a hundred idle or slow clients
#: shut everyone else out).
CONNECTION_LIMIT = 1000
#: Seconds a connection may stay silent (no request in progress) before it is closed (waitress: 120).
CHANNEL_TIMEOUT = 60.0

# glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_allocator() -> bool:
    """Make glibc's malloc hand freed memory back: a fixed 128 KiB mmap threshold and two arenas.

    By default glibc raises its mmap threshold each time a large block is freed, so later large blocks
    (a batch file is read 1 MB at a time) come from heaps it keeps, one per worker thread: each large
    batch then left about 30 MB behind (bench/memory.py). Only the standalone server calls this (it owns
    its process); elsewhere, or off glibc, it does nothing. True when applied.
    """
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 128 * 1024)) and bool(mallopt(_M_ARENA_MAX, 2))


#: Worker threads kept free of fault latency: sleeping faults may take the others.
RESERVED_THREADS = 2


def sleeping_fault_bound(threads: int) -> int:
    """How many requests may sleep a fault's latency at once on a server with ``threads`` workers."""
    return max(1, threads - RESERVED_THREADS)


def make_server(app: Flask, host: str = "127.0.0.1", port: int = 8080, threads: int = 8, *,
                connection_limit: int = CONNECTION_LIMIT, channel_timeout: float = CHANNEL_TIMEOUT,
                max_body_bytes: int | None = None, **options: Any) -> BaseWSGIServer:
    """A waitress server bound to ``host:port`` (port 0 picks a free one), or serving the listening
    ``sockets=[...]`` given in ``options``.

    Fault latency never takes more than ``threads - 2`` of the worker threads (at least one), so the
    control API, health and unfaulted calls go on answering while faults sleep.

    ``max_body_bytes`` (default: the backend's ``batch_max_bytes``, else 50,000,000) is the largest
    body the server receives at all; a larger one is refused with 413 in the fake's own words as soon
    as its ``Content-Length`` shows it (before reading it), or a chunked body passes it.
    """
    inner: Any = app
    while not isinstance(inner, Flask) and hasattr(inner, "app"):  # through middleware such as LiveServer's
        inner = inner.app
    backend = inner.config.get("BACKEND") if isinstance(inner, Flask) else None
    if backend is not None:
        backend.faults.max_sleeping = sleeping_fault_bound(threads)
    if backend is not None and backend.store.shared:
        app = SharedState(app, backend)  # type: ignore[assignment]
    if max_body_bytes is None:
        max_body_bytes = backend.config.batch_max_bytes if backend is not None else LIMITS.batch_max_bytes
    options.setdefault("cleanup_interval", max(1, min(10, int(channel_timeout))))
    # poll(), not select(): select() fails on descriptors above 1023, which a thousand connections reach
    options.setdefault("asyncore_use_poll", hasattr(select, "poll"))  # (not on Windows)
    if "sockets" not in options:  # waitress takes listening sockets or an address, not both
        options.update(host=host, port=port)
    server = create_server(app, threads=threads, ident="target-profile-mock",
                           connection_limit=connection_limit, channel_timeout=channel_timeout,
                           # waitress refuses a Content-Length >= its limit: one more admits exactly the limit
                           max_request_body_size=max_body_bytes + 1, **options)
    for listener in [server, *getattr(server, "map", {}).values()]:
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = _Channel  # type: ignore[misc]
            listener.fake_backend = backend  # type: ignore[attr-defined]  # the journal of its refusals
    return server  # type: ignore[return-value]


# --- what waitress answers by itself, in the fake's words ------------------------------------------
_HEAD_KEEP = LIMITS.single_get_bytes + 64
_NON_ASCII = re.compile(rb"[\x80-\xff]")


class _Parser(HTTPRequestParser):
    """waitress' parser, reading two things as the fake's app (and its test client) does:

    * header names with underscores (``access_token``) are kept, read as with hyphens; waitress drops
      them, since behind a proxy ``a_b`` and ``a-b`` could be confused, which does not matter here;
    * raw non-ASCII bytes in the request target reach the app as they came (waitress refuses them
      with a plain-text ``400 Bad URI``).
    It also keeps the start of the request, so a refusal can be worded for the route it aimed at.
    """

    head = b""

    def received(self, data: bytes) -> int:
        if self.body_rcv is None and len(self.head) < _HEAD_KEEP:
            self.head += data[:_HEAD_KEEP - len(self.head)]
        return super().received(data)  # type: ignore[no-any-return]

    def parse_header(self, header_plus: bytes) -> None:
        first, sep, rest = header_plus.partition(b"\r\n")
        raw_target = None
        parts = first.split(b" ")
        if not first.isascii() and len(parts) == 3:
            raw_target = parts[1]
            # escaped for waitress' URL splitting, which unescapes the path again; the query it keeps
            # as sent, so it is put back below
            parts[1] = _NON_ASCII.sub(lambda m: b"%%%02X" % m.group()[0], raw_target)
            first = b" ".join(parts)
        if b"_" in rest:
            lines = rest.split(b"\r\n")
            for i, line in enumerate(lines):
                name, colon, value = line.partition(b":")
                if colon and b"_" in name and not line.startswith((b" ", b"\t")):
                    lines[i] = name.replace(b"_", b"-") + colon + value
            rest = b"\r\n".join(lines)
        super().parse_header(first + sep + rest)
        if raw_target is not None:
            self.query = raw_target.partition(b"#")[0].partition(b"?")[2].decode("latin-1")
            self.request_uri = raw_target.decode("latin-1")


class _ErrorTask(ErrorTask):
    """A request waitress refuses before the app sees it (too large, malformed): answered in the
    shape of the API it aimed at, naming the fake's rule where one applies, and journaled when it
    aimed at one of Adobe's routes (with what the server read of it: no body)."""

    def execute(self) -> None:
        error = self.request.error
        head = getattr(self.request, "head", b"")
        line = head.partition(b"\r\n")[0]
        method, _, target = line.decode("latin-1").partition(" ")
        target = target.rpartition(" HTTP/")[0] if " HTTP/" in target else target
        path, _, query = target.partition("?")
        status = error.code
        message = f"{error.reason}: {error.body}"
        violation: Violation | None = None
        if isinstance(error, RequestHeaderFieldsTooLarge):
            message = (f"{error.reason}: the request line and headers are over "
                       f"{self.channel.server.adj.max_request_header_size:,} bytes")
        edge = _EDGE_PATH.fullmatch(path)
        operation = _operation(edge)
        if operation == "batch-submit":
            if isinstance(error, RequestEntityTooLarge):
                limit = self.channel.server.adj.max_request_body_size - 1
                mb = " (50 MB)" if limit == LIMITS.batch_max_bytes else ""
                violation = Violation(rule("batch.too-large"), f"the body is over the limit of {limit:,} bytes{mb}",
                                      "body")
            body = batch_refused(violation.message if violation else message)
        elif operation == "single-update":
            if isinstance(error, RequestEntityTooLarge):
                violation = Violation(rule("single.post-too-large"), "the body is over "
                                      f"{LIMITS.single_post_bytes:,} bytes", "body")
            elif isinstance(error, RequestHeaderFieldsTooLarge) and method == "GET" and b"\r\n" not in head:
                status = 414
                violation = Violation(rule("single.get-too-large"), "the request target is over "
                                      f"{LIMITS.single_get_bytes:,} bytes", "url")
            body = update_failure(violation.message if violation else message)
        elif path.startswith("/m2/"):
            body = status_failure(message)
        elif path.startswith("/rest/"):
            body = json.dumps({"status": status, "message": message}).encode()
        else:
            body = json.dumps({"error": message}).encode()
        self.status = f"{status} {_REASONS.get(status, error.reason)}"
        self.response_headers.append(("Content-Type", "application/xml;charset=UTF-8" if path.startswith("/m2/")
                                      else "application/json;charset=UTF-8"))
        self.set_close_on_finish()
        self.channel.linger = True
        self.content_length = len(body)
        if operation is not None and edge is not None:
            self._journal(operation, edge, method, path, query, status, body, violation)
        self.write(body)

    def _journal(self, operation: str, edge: re.Match[str], method: str, path: str, query: str, status: int,
                 body: bytes, violation: Violation | None) -> None:
        backend = getattr(self.channel.server, "fake_backend", None)
        if backend is None:
            return
        headers = self.request.headers  # empty when the headers themselves were refused
        host = headers.get("HOST") or self.channel.server.effective_host
        client = edge.group("m2") or edge.group("admin")
        if operation in ("fetch", "delivery"):
            client = query_args(query.encode("latin-1")).get("client") or None
        if client in (None, "client"):
            client = client_code_from_host(host) or backend.config.client_code
        environ = {"REQUEST_METHOD": method, "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
                   "QUERY_STRING": query, "SERVER_NAME": str(self.channel.server.effective_host),
                   "SERVER_PORT": str(self.channel.server.effective_port), "SCRIPT_NAME": "",
                   "wsgi.url_scheme": self.channel.server.adj.url_scheme, **{f"HTTP_{k}": v for k, v in headers.items()
                                                 if k not in ("CONTENT_LENGTH", "CONTENT_TYPE")}}
        for key in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            if key in headers:
                environ[key] = headers[key]
        declared = headers.get("CONTENT_LENGTH", "")
        entry = JournalEntry(backend.journal.next_seq(), backend.now_ms(), operation, client, method, None, None,
                             None, None, b"", int(declared) if declared.isdigit() else 0, status, body,
                             [violation] if violation else [], {}, environ=environ)
        backend.journal.add(entry)


def _operation(edge: re.Match[str] | None) -> str | None:
    if edge is None:
        return None
    if edge.group("admin"):
        return "token"
    if edge.group("delivery"):
        return "delivery"
    return {"update": "single-update", "batchUpdate": "batch-submit", "batchStatus": "batch-status"}.get(
        edge.group("op") or "", "fetch")


_EDGE_PATH = re.compile(r"/m2/(?P<m2>[^/]+)(?:/v2)?/profile/(?P<op>update|batchUpdate|batchStatus)/?"
                        r"|/rest/v1/profiles/.+"
                        r"|/rest/v1/(?P<delivery>delivery)/?"
                        r"|/(?P<admin>[^/]+)/target/authentication/token/?")
_REASONS = {414: "URI Too Long"}


class _Channel(HTTPChannel):
    """waitress' channel with the parser and refusals above, closing a refused request's connection
    gracefully: a client still sending the body it was refused for (as most do before they read an
    answer) would otherwise get a reset instead of the 413. The answer sent, the channel stops
    writing and reads on, discarding, until the client closes or the channel timeout passes."""

    parser_class = _Parser
    error_task_class = _ErrorTask
    linger = False  #: set by a refusal: the client may still be sending
    _drain_until = 0.0

    def handle_close(self) -> None:
        if self.linger and not self._drain_until and self.connected:
            self.linger = False
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            else:
                self._drain_until = time.monotonic() + self.adj.channel_timeout
                self.will_close = self.close_when_flushed = False
                return
        super().handle_close()

    def received(self, data: bytes) -> bool:
        if self._drain_until:
            if time.monotonic() > self._drain_until:
                self.will_close = True
            return True
        return super().received(data)  # type: ignore[no-any-return]


_SINGLE = by_operation("single-update").operation


class SharedState:
    """WSGI middleware for a backend on a shared store: each request works on the store's latest state.

    The model reads and writes inside store transactions, which bring in what other processes changed;
    but a few reads come before any transaction (whether faults are queued, which sends a call down the
    fast path or not; ``GET /_mock/clock``), and in a process that has not had a transaction since
    another changed the state they would see the old one. ``store.refresh()`` first (one round trip
    when nothing changed, no lock) brings it in.

    A single update (GET, or POST with a body of a known length no larger than the contract allows) is
    served optimistically instead (``store.optimistic()``): on the state the process holds, with the
    store's first step checking that it is still current. When it is not, nothing was written, and the
    request runs again after the refresh. The usual single update then costs one round trip, not two.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], backend: Any) -> None:
        self.app = app  # make_server finds the Flask app (and its backend) through ``.app``
        self.refresh = backend.store.refresh
        self.optimistic = backend.store.optimistic
        self._routes = HotRoutes()  # the lean front's route table

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = self._replayable(environ)
        if body is not None:
            try:
                with self.optimistic():
                    return self.app(environ, start_response)
            except StaleState:
                body.seek(0)  # nothing was written or answered: run it again on the fresh state
        self.refresh()
        return self.app(environ, start_response)

    def _replayable(self, environ: dict[str, Any]) -> io.BytesIO | None:
        """For a single update that may be served optimistically: its body, read into memory (so the
        request can run twice); else None."""
        if environ.get("REQUEST_METHOD") not in ("GET", "POST"):
            return None
        route = self._routes.match(environ.get("PATH_INFO", ""))
        if route is None or route[0] != _SINGLE:
            return None
        if "HTTP_TRANSFER_ENCODING" in environ:
            return None
        length = environ.get("CONTENT_LENGTH") or "0"
        if not length.isdigit() or int(length) > LIMITS.single_post_bytes + 1:
            return None  # refused by the view whichever way it runs: no need to hold it
        body = io.BytesIO(environ["wsgi.input"].read(int(length)) if length != "0" else b"")
        environ["wsgi.input"] = body
        return body


class _InFlight:
    """WSGI middleware counting the calls between their start and the end of their answer (the server
    closes the answer's iterable once it is written, or the call raised)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.count = 0
        self._idle = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self._idle:
            self.count += 1
        try:
            answer = self.app(environ, start_response)
        except BaseException:
            self._done()
            raise
        return ClosingIterator(answer, self._done)

    def _done(self) -> None:
        with self._idle:
            self.count -= 1
            if not self.count:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True


class LiveServer:
    """The app on a real socket, served from a daemon thread; ``url`` once started.

    Without an app, it builds one on ``store``: a store, or a URL for ``open_store`` (``redis://...``),
    which the server then owns and closes when it stops.
    """

    def __init__(self, app: Flask | None = None, host: str = "127.0.0.1", port: int = 0, threads: int = 8, *,
                 store: Store | str | None = None, **options: Any) -> None:
        self._own_store: Store | None = None
        if app is None:
            from .app import create_app
            from .store import open_store

            if store is None or isinstance(store, str):
                store = self._own_store = open_store(store)
            app = create_app(store=store)
        elif store is not None:
            raise ValueError("give LiveServer an app, or a store to build one on, not both")
        self.app = app
        self.host = host
        self.port = port
        self.threads = threads
        #: further ``make_server`` options (``connection_limit``, ``channel_timeout``, ``max_body_bytes``)
        self.options = options
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._in_flight = _InFlight(app)

    @property
    def in_flight(self) -> int:
        """Requests the app is working on or still answering."""
        return self._in_flight.count

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is in flight (at most ``timeout`` seconds); False if some still are.

        A call whose client stopped waiting (a latency fault longer than its timeout) runs on, as on a
        real server; waiting for it keeps it from changing state that a reset has already cleared.
        """
        return self._in_flight.wait_idle(timeout)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running; call start() first")
        host = self._server.effective_host  # type: ignore[attr-defined]
        if ":" in str(host):
            host = f"[{host}]"
        return f"http://{host}:{self._server.effective_port}"  # type: ignore[attr-defined]

    def start(self) -> LiveServer:
        if self._server is not None:
            return self
        self._server = make_server(self._in_flight, self.host, self.port, self.threads,  # type: ignore[arg-type]
                                   **self.options)
        self._thread = threading.Thread(target=self._serve, args=(self._server,), name="target-profile-mock",
                                        daemon=True)
        self._thread.start()
        return self

    def _serve(self, server: BaseWSGIServer) -> None:
        try:
            server.run()
        except OSError:
            # stop() closes the sockets under the loop's select(); only an error while still serving is real
            if self._server is server:
                raise

    def stop(self, timeout: float = 5.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        # waitress has no stop(): close every channel and the listener, which ends its loop
        logging.getLogger("waitress").setLevel(logging.CRITICAL)
        for channel in list(server._map.values()):  # type: ignore[attr-defined]
            channel.linger = False  # close now, even a channel still reading what it refused
            channel.handle_close()
        server.task_dispatcher.shutdown()  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._own_store is not None:
            self._own_store.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
