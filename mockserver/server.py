"""Serving the app over HTTP on waitress: in the foreground (the CLI) or in a background thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from waitress import create_server
from waitress.server import BaseWSGIServer
from werkzeug.wsgi import ClosingIterator

__all__ = ["LiveServer", "make_server"]


def make_server(app: Flask, host: str = "127.0.0.1", port: int = 8080, threads: int = 8,
                **options: Any) -> BaseWSGIServer:
    """A waitress server bound to ``host:port`` (port 0 picks a free one)."""
    return create_server(app, host=host, port=port, threads=threads, ident="target-profile-mock",
                         **options)  # type: ignore[return-value]


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
    """The app on a real socket, served from a daemon thread; ``url`` once started."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0, threads: int = 8) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.threads = threads
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
        self._server = make_server(self._in_flight, self.host, self.port, self.threads)  # type: ignore[arg-type]
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
            channel.handle_close()
        server.task_dispatcher.shutdown()  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
