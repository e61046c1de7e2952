"""``serve --workers N``: N processes answering on one port, forked from a parent that holds no state.

The parent binds and listens, then forks the workers; each builds its own app (and so opens its own
store connection) after the fork and runs waitress on the inherited listening socket, so the kernel
hands each new connection to a worker that accepts it. A worker holding more connections than another
stops accepting until the other catches up (:class:`Balance`). The parent forwards SIGINT and SIGTERM,
restarts nothing, and returns when the workers have exited. POSIX only (``fork``).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from .errors import ControlError
from .server import make_server

__all__ = ["WORKER_HEADER", "Balance", "WorkerHeader", "can_fork", "listen", "run_workers"]

#: The control API's answers from a pre-forked worker carry this header: the pid of the worker that answered.
WORKER_HEADER = "X-Mock-Worker"
#: Seconds the workers get to open their store and start serving.
START_TIMEOUT = 60.0
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: A worker whose count is older than this (its loop turns at least once a second, waitress' poll
#: timeout) is stuck: the others accept without waiting for it.
STALE_S = 1.5


class Balance:
    """The workers' open-connection counts in memory they share (made before the fork). Each worker's
    listener publishes its count on every turn of its loop and takes new connections only while no
    other live worker holds fewer, so keep-alive clients spread evenly: the kernel alone hands a burst
    of connections to whichever worker wakes first, and one worker may then serve most of the load
    while the other idles."""

    SLOT = struct.Struct("qd")  # connections, when published (monotonic seconds, the same in every process)

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.shared = mmap.mmap(-1, self.SLOT.size * workers)  # anonymous and shared across fork

    def publish(self, index: int, connections: int) -> None:
        self.SLOT.pack_into(self.shared, index * self.SLOT.size, connections, time.monotonic())

    def may_accept(self, index: int, connections: int) -> bool:
        """Whether worker ``index``, holding ``connections``, takes the next connection."""
        now = time.monotonic()
        for other in range(self.workers):
            if other != index:
                count, at = self.SLOT.unpack_from(self.shared, other * self.SLOT.size)
                if count < connections and now - at < STALE_S:
                    return False
        return True

    def attach(self, server: Any, index: int) -> None:
        """Make ``server`` (a waitress server in worker ``index``) publish its count and accept in turn."""
        readable = server.readable

        def balanced() -> bool:
            connections = len(server._map)  # its channels, plus the listener and the trigger in every worker
            self.publish(index, connections)
            return bool(readable()) and self.may_accept(index, connections)

        server.readable = balanced



def can_fork() -> bool:
    return hasattr(os, "fork")


def listen(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one), as waitress would bind it."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


class WorkerHeader:
    """WSGI middleware naming the answering worker's pid on the control API (``/_mock/``) only: Adobe's
    routes answer exactly as with one process."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app  # make_server finds the Flask app (and its backend) through ``.app``
        self.header = (WORKER_HEADER, str(os.getpid()))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("PATH_INFO", "").startswith("/_mock/"):
            return self.app(environ, start_response)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, self.header], exc_info)

        return self.app(environ, start)


def run_workers(sock: socket.socket, workers: int, build: Callable[[], tuple[Any, Callable[[], None]]],
                on_ready: Callable[[], None], **server_options: Any) -> int:
    """Fork ``workers`` processes serving ``sock``; the exit status once they have all exited.

    ``build`` runs in each worker after the fork and returns its WSGI app and a function that releases
    what the app holds (its store connection); a :class:`ControlError` from it stops the start with
    its message. ``on_ready`` runs in the parent once every worker serves. A worker that exits on its
    own stops the others: a server silently down to fewer workers would be harder to notice.
    """
    read_end, write_end = os.pipe()
    # the workers watch this pipe: its end here closes with the parent, however it ends (even kill -9)
    watched, held = os.pipe()
    children: list[int] = []
    stopping = False

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    # no signal may reach a worker before it has its own handlers
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    balance = Balance(workers)
    try:
        for index in range(workers):
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                os.close(held)
                _worker(sock, write_end, watched, build, old_mask, server_options, balance, index)
            children.append(pid)
        for sig in _SIGNALS:
            signal.signal(sig, forward)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    os.close(write_end)
    os.close(watched)
    sock.close()  # the workers hold it; the parent answers nothing

    status = _await_start(read_end, children, workers)
    os.close(read_end)
    if status is None:
        on_ready()
        status = 0
    else:
        status = 0 if stopping else status  # stopped by a signal while starting: a clean stop
        forward(signal.SIGTERM, None)
    running = set(children)
    while running:
        try:
            pid, code = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        running.discard(pid)
        code = os.waitstatus_to_exitcode(code)
        if not stopping:
            print(f"target-profile-mock: error: worker {pid} exited with status {code}; stopping the others "
                  f"({len(running)})", file=sys.stderr, flush=True)
            forward(signal.SIGTERM, None)
            status = status or 1
        elif code not in (0, -signal.SIGTERM, -signal.SIGINT):
            status = status or (code if code > 0 else 1)
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    os.close(held)
    return status


def _await_start(read_end: int, children: list[int], workers: int) -> int | None:
    """Wait until every worker serves: None, or the exit status to stop with if one failed to start."""
    ready = 0
    deadline = time.monotonic() + START_TIMEOUT
    while ready < workers:
        left = deadline - time.monotonic()
        if left <= 0:
            print(f"target-profile-mock: error: {workers - ready} worker(s) did not start within "
                  f"{START_TIMEOUT:g} s", file=sys.stderr, flush=True)
            return 1
        if select.select([read_end], [], [], min(left, 0.2))[0]:
            ready += len(os.read(read_end, workers))
        for pid in children:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                children.remove(pid)
                code = os.waitstatus_to_exitcode(code)
                return code if code > 0 else 1  # the worker printed why
    return None


def _worker(sock: socket.socket, ready: int, parent: int, build: Callable[[], tuple[Any, Callable[[], None]]],
            mask: Iterable[signal.Signals], server_options: dict[str, Any], balance: Balance, index: int) -> NoReturn:
    """A forked worker: build the app, serve ``sock`` until SIGTERM/SIGINT or until the parent is gone
    (``parent`` reads end of file), exit without returning."""
    status = 0

    def orphaned() -> None:
        with contextlib.suppress(OSError):
            os.read(parent, 1)
        os.kill(os.getpid(), signal.SIGTERM)

    def stop(signum: int, frame: object) -> None:
        for sig in _SIGNALS:  # the first signal stops the worker; a second must not break its shutdown
            signal.signal(sig, signal.SIG_IGN)
        raise SystemExit(0)

    try:
        for sig in _SIGNALS:
            signal.signal(sig, stop)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        threading.Thread(target=orphaned, name="parent-watch", daemon=True).start()
        release: Callable[[], None] = lambda: None  # noqa: E731
        try:
            app, release = build()
            server = make_server(WorkerHeader(app), sockets=[sock], **server_options)
            balance.attach(server, index)
        except ControlError as exc:
            print(f"target-profile-mock: error: {exc}", file=sys.stderr, flush=True)
            os._exit(2)
        os.write(ready, b"1")
        os.close(ready)
        try:
            server.run()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            server.close()
            release()
    except SystemExit:  # stopped while it started
        pass
    except BaseException:  # a worker must never fall back into the parent's code
        import traceback

        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
