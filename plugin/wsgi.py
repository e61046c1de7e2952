"""Calling the fake's Flask app in process: a request in, a response out, no socket.

The WSGI environ is built by hand rather than through Flask's test client: the test client
builds an ``EnvironBuilder`` and a response wrapper per call, which costs more than the view.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

__all__ = ["PendingCall", "WsgiBridge", "WsgiResponse"]

WsgiResponse = tuple[int, list[tuple[str, str]], bytes]

_DEFAULT_PORT = {"http": "80", "https": "443"}
#: Header name -> environ key; header names repeat across calls, so they are translated once.
_ENV_KEYS: dict[str, str] = {"content-type": "CONTENT_TYPE", "content-length": ""}


def _env_key(name: str) -> str:
    key = _ENV_KEYS.get(name.lower())
    if key is None:
        key = _ENV_KEYS[name.lower()] = "HTTP_" + name.upper().replace("-", "_")
    return key


def body_bytes(body: Any) -> bytes:
    """A request body as bytes, whatever the client handed over (str, bytes, file, iterable)."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if hasattr(body, "read"):
        return body_bytes(body.read())
    return b"".join(c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in body)


class PendingCall:
    """A request being answered in a thread of its own, for a client that may stop waiting."""

    def __init__(self, answer: Callable[[], WsgiResponse]) -> None:
        self._answer = answer
        self._result: WsgiResponse | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="target-profiles-call", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._answer()
        except BaseException as exc:  # handed to the waiting client, as the call would have raised it
            self._error = exc

    def wait(self, timeout: float | None) -> bool:
        """Whether the answer is ready within ``timeout`` seconds (None: wait for it)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def result(self) -> WsgiResponse:
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class WsgiBridge:
    """Sends requests straight into a WSGI app.

    ``may_stall`` says whether the app may take wall-clock time over a call now (the fake does only
    under a latency fault); only then do clients with a read timeout pay for a thread (``start``).
    """

    def __init__(self, app: Any, *, may_stall: Callable[[], bool] | None = None) -> None:
        # Flask's wsgi_app skips the __call__ indirection (which only exists for middleware)
        self._wsgi: Callable[..., Iterable[bytes]] = getattr(app, "wsgi_app", app)
        self._may_stall = may_stall
        self._abandoned: list[PendingCall] = []
        self._abandoned_lock = threading.Lock()
        self._base = {
            "SCRIPT_NAME": "",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            # the body is complete, so the app may read to its end even without a Content-Length
            "wsgi.input_terminated": True,
        }

    def call(self, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes) -> WsgiResponse:
        """Answer one request: ``(status, headers, body)``.

        A connection fault escapes as :class:`target_profile_mock.mockserver.faults.ConnectionFault` (there is no socket
        to break); the callers in ``intercept`` turn it into their HTTP library's exception.
        """
        scheme, netloc, path, query, _ = urlsplit(url)
        host = netloc.rpartition("@")[2]
        name, _, port = host.rpartition(":") if host.rfind(":") > host.rfind("]") else (host, "", "")
        env = self._base.copy()
        env["REQUEST_METHOD"] = method
        # WSGI carries the decoded path as latin-1 text, as a server would
        env["PATH_INFO"] = unquote_to_bytes(path or "/").decode("latin-1")
        env["QUERY_STRING"] = query
        env["SERVER_NAME"] = name
        env["SERVER_PORT"] = port or _DEFAULT_PORT.get(scheme, "80")
        env["wsgi.url_scheme"] = scheme
        env["wsgi.input"] = io.BytesIO(body)
        env["CONTENT_LENGTH"] = str(len(body))
        env["HTTP_HOST"] = host
        for k, v in headers:
            key = _env_key(k)
            if key:
                env[key] = v
        captured: list[Any] = []

        def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = [status, response_headers]
            return lambda data: None

        result = self._wsgi(env, start_response)
        try:
            data = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return int(captured[0][:3]), captured[1], data

    def may_stall(self) -> bool:
        return self._may_stall is not None and self._may_stall()

    def start(self, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes) -> PendingCall:
        """Answer in another thread; a caller that stops waiting hands the call to ``abandon``."""
        headers = list(headers)
        return PendingCall(lambda: self.call(method, url, headers, body))

    def abandon(self, call: PendingCall) -> None:
        """A call whose client gave up: it runs on, as on a server, until ``wait_abandoned``."""
        with self._abandoned_lock:
            self._abandoned.append(call)

    def wait_abandoned(self) -> None:
        """Wait for abandoned calls to finish, so none changes the fake after the test that made it."""
        with self._abandoned_lock:
            calls, self._abandoned = self._abandoned, []
        for call in calls:
            call.wait(None)
