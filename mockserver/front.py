"""HTTPS and an HTTPS proxy for Adobe's host names in front of the waitress server (``serve --tls``).

waitress speaks plain HTTP only. A small front in the same process listens on the server's port and
looks at each new connection's first bytes:

* a TLS handshake: TLS is ended here with the local CA's certificate (``certs``) and the plain bytes
  go to a waitress server that tells the app the scheme was ``https``;
* ``CONNECT <host>:<port>``: for Adobe's hosts (``*.tt.omtrdc.net``, ``mc.adobe.io``) and this
  machine, the tunnel is answered here (TLS ended with the same certificate, or plain HTTP inside), so
  ``HTTPS_PROXY=http://127.0.0.1:<port>`` sends a client that hard-codes Adobe's URLs to the fake;
  other hosts are refused with a 403 saying why, or tunnelled to the network if asked;
* anything else: plain HTTP, to a waitress server with the scheme ``http``.

The front only moves bytes, so everything waitress and the app do (keep-alive, faults that reset or
cut a connection, limits) reaches the client as it would on a plain socket: a reset from waitress is
passed on as a reset.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .server import LiveServer

if TYPE_CHECKING:
    from .certs import LocalCA

__all__ = ["ADOBE_HOST", "TlsFront", "add_tls_arguments", "proxy_refusal", "run_tls", "start_tls"]

#: The hosts a CONNECT is answered for by the fake itself.
ADOBE_HOST = re.compile(r"^(?:(?:[a-z0-9_-]+\.)+tt\.omtrdc\.net|mc\.adobe\.io)$", re.IGNORECASE)
_HEAD_LIMIT = 16 * 1024
_IDLE = 300.0  # seconds a connection may sit idle before the front closes it


def proxy_refusal(target: str, verb: str = "CONNECT") -> bytes:
    """The 403 a proxy request for a host other than Adobe's gets."""
    body = (f"target-profile-mock refused {verb} {target}: this proxy answers only Adobe Target's hosts "
            "(*.tt.omtrdc.net and mc.adobe.io) itself. Exclude other hosts from the proxy (NO_PROXY), or start "
            "the server with --proxy-passthrough to tunnel them to the network.\n").encode()
    return (b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


class TlsFront:
    """The front: one listening socket, two waitress servers behind it (http and https)."""

    def __init__(self, app: Any, context: ssl.SSLContext, host: str = "127.0.0.1", port: int = 0, *,
                 threads: int = 8, passthrough: bool = False, **options: Any) -> None:
        """``options`` go to both waitress servers (``make_server``'s ``connection_limit``, ...)."""
        self.context = context
        self.passthrough = passthrough
        # the two back ends share the app (and so the fake's state); each tells it the scheme it serves
        self.plain = LiveServer(app, "127.0.0.1", 0, threads, **options)
        self.secure = LiveServer(app, "127.0.0.1", 0, threads, url_scheme="https", **options)
        self._listen_on = (host, port)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    # --- running ----------------------------------------------------------------------------------
    def start(self) -> TlsFront:
        if self._sock is not None:
            return self
        self.plain.start()
        self.secure.start()
        host, port = self._listen_on
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(128)
        except OSError:
            sock.close()
            self.plain.stop()
            self.secure.stop()
            raise
        self._sock = sock
        self._thread = threading.Thread(target=self._accept, args=(sock,), name="target-profile-mock-tls",
                                        daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the server is not running; call start() first")
        return int(self._sock.getsockname()[1])

    @property
    def host(self) -> str:
        host = self._listen_on[0]
        return f"[{host}]" if ":" in host else host

    @property
    def url(self) -> str:
        """The HTTPS URL (the same port also takes plain HTTP and CONNECT)."""
        return f"https://{'localhost' if self.host in ('127.0.0.1', '0.0.0.0') else self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host if self.host != '0.0.0.0' else '127.0.0.1'}:{self.port}"

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self.plain.wait_idle(timeout) and self.secure.wait_idle(timeout)

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._lock:
            for conn in list(self._open):
                with contextlib.suppress(OSError):
                    conn.close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.plain.stop()
        self.secure.stop()

    def run(self) -> None:
        """Serve in the foreground until stopped (the CLI)."""
        self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.5)

    def __enter__(self) -> TlsFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- connections ------------------------------------------------------------------------------
    def _accept(self, sock: socket.socket) -> None:
        while self._sock is sock:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="target-profile-mock-conn", daemon=True).start()

    def _track(self, conn: socket.socket) -> Callable[[], None]:
        with self._lock:
            self._open.add(conn)

        def untrack() -> None:
            with self._lock:
                self._open.discard(conn)

        return untrack

    def _serve(self, conn: socket.socket) -> None:
        untrack = self._track(conn)
        try:
            # the front forwards what it reads at once: Nagle's delay would hold a response's second
            # segment (waitress writes head and body apart) until the client's delayed ACK
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(30)
            self._route(conn, proxied=False)
        except (OSError, ValueError):
            pass  # a client that went away or spoke nonsense: nothing to answer
        finally:
            untrack()
            with contextlib.suppress(OSError):
                conn.close()

    def _route(self, conn: socket.socket, *, proxied: bool) -> None:
        first = conn.recv(1, socket.MSG_PEEK)
        if not first:
            return
        if first == b"\x16":  # a TLS handshake record
            tls = self.context.wrap_socket(conn, server_side=True)
            _pipe(tls, _connect(self.secure))
            return
        head = _peek_head(conn)
        if not proxied and head.startswith(b"CONNECT "):
            self._connect_method(conn, head)
            return
        target = _absolute_target(head)
        if target is not None and not ADOBE_HOST.match(target[0]):
            # a plain-HTTP proxy request (HTTP_PROXY) for another host
            if not self.passthrough:
                conn.sendall(proxy_refusal(f"{target[0]}:{target[1]}", "forward"))
                return
            try:
                upstream = socket.create_connection(target, timeout=30)
            except OSError as exc:
                conn.sendall(_bad_gateway(f"{target[0]}:{target[1]}", exc))
                return
            _pipe(conn, upstream)  # origin servers take the absolute form too (RFC 9112, 3.2.2)
            return
        _pipe(conn, _connect(self.plain))

    def _connect_method(self, conn: socket.socket, head: bytes) -> None:
        _recv_exactly(conn, len(head))  # consume the CONNECT request; it is answered here
        target = head.split(b" ", 2)[1].decode("latin-1")
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            body = f"target-profile-mock: CONNECT takes host:port, e.g. CONNECT acme.tt.omtrdc.net:443, not {target}\n"
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
                         + str(len(body.encode())).encode() + b"\r\nConnection: close\r\n\r\n" + body.encode())
            return
        if ADOBE_HOST.match(host):
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._route(conn, proxied=True)
            return
        if not self.passthrough:
            conn.sendall(proxy_refusal(target))
            return
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=30)
        except OSError as exc:
            conn.sendall(_bad_gateway(target, exc))
            return
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        _pipe(conn, upstream)


def _connect(server: LiveServer) -> socket.socket:
    backend = server._server
    assert backend is not None
    sock = socket.create_connection(("127.0.0.1", backend.effective_port))  # type: ignore[attr-defined]
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _peek_head(conn: socket.socket) -> bytes:
    """The first request's head (CONNECT) or line (anything else), left in the socket (MSG_PEEK)."""
    data = b""
    deadline = time.monotonic() + 10
    while len(data) < _HEAD_LIMIT and time.monotonic() < deadline:
        more = conn.recv(_HEAD_LIMIT, socket.MSG_PEEK)
        if not more:
            break
        connect = more.startswith(b"CONNECT "[: len(more)])
        if (b"\r\n\r\n" if connect else b"\r\n") in more:
            data = more
            break
        if len(more) == len(data):
            time.sleep(0.005)  # the head split across packets: wait for the rest
        data = more
    end = data.find(b"\r\n\r\n")
    return data[:end + 4] if end >= 0 and data.startswith(b"CONNECT ") else data


def _bad_gateway(target: str, exc: OSError) -> bytes:
    body = f"target-profile-mock could not reach {target}: {exc}\n".encode()
    return (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n" + body)


def _absolute_target(head: bytes) -> tuple[str, int] | None:
    """The host and port of an absolute-form request line (``GET http://host/...``), else None."""
    line = head.split(b"\r\n", 1)[0].split(b" ")
    if len(line) < 2 or line[1][:7].lower() != b"http://":
        return None
    netloc = line[1][7:].split(b"/", 1)[0].split(b"?", 1)[0].decode("latin-1").rpartition("@")[2]
    host, sep, port = netloc.rpartition(":") if netloc.rfind(":") > netloc.rfind("]") else (netloc, "", "")
    return host.strip("[]").lower(), int(port) if sep and port.isdigit() else 80


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _reset(sock: socket.socket) -> None:
    """Close with an RST, as waitress did to us: the client meets the reset the fault asked for."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _pipe(client: socket.socket, backend: socket.socket) -> None:
    """Move bytes both ways until either side closes; a reset from the back end is passed on."""
    client.settimeout(None)
    try:
        while True:
            pending = isinstance(client, ssl.SSLSocket) and client.pending() > 0
            readable = [client] if pending else select.select([client, backend], [], [], _IDLE)[0]
            if not readable:
                return
            for side in readable:
                other = backend if side is client else client
                try:
                    data = side.recv(65536)
                except ConnectionResetError:
                    if side is backend:
                        _reset(client)
                    return
                except ssl.SSLError:
                    return
                if not data:
                    return
                other.sendall(data)
    finally:
        for sock in (backend, client):
            with contextlib.suppress(OSError):
                sock.close()


# --- the command line ---------------------------------------------------------------------------------
def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """``serve``'s options for HTTPS and the proxy."""
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with a certificate for *.tt.omtrdc.net, mc.adobe.io, localhost and "
                             "127.0.0.1 from a local CA made on first use; the same port also takes plain HTTP and "
                             "acts as an HTTPS proxy (CONNECT) for Adobe's hosts (needs the tls extra)")
    parser.add_argument("--ca-dir", metavar="DIR",
                        help="where the local CA is kept (default: $TARGET_PROFILE_MOCK_HOME, else "
                             "~/.local/share/target-profile-mock or the platform's equivalent)")
    parser.add_argument("--proxy-passthrough", action="store_true",
                        help="with --tls: tunnel CONNECT to hosts other than Adobe's to the network instead of "
                             "refusing it")


def start_tls(app: Any, args: argparse.Namespace) -> tuple[TlsFront, LocalCA, bool]:
    """The CA (made if absent) and the front for ``serve --tls``, listening; raises ``CertError`` or ``OSError``."""
    from .certs import LocalCA

    ca, made = LocalCA.ensure(args.ca_dir)
    front = TlsFront(app, ca.server_context(), args.host, args.port, threads=args.threads,
                     passthrough=args.proxy_passthrough, connection_limit=args.connection_limit,
                     channel_timeout=args.channel_timeout)
    return front.start(), ca, made


def run_tls(front: TlsFront, ca: LocalCA, made: bool, args: argparse.Namespace, describe: str,
            stop: Callable[[int, object], None]) -> int:
    """Serve ``serve --tls`` in the foreground; ``describe`` is the settings part of the start-up line."""
    from .certs import trust_instructions

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if made:
            print(f"target-profile-mock: made a new local CA in {ca.directory}", flush=True)
        print(trust_instructions(ca, front.port), flush=True)
        print(f"target-profile-mock serving on {front.url} ({describe}); plain HTTP on {front.http_url}, "
              f"and an HTTPS proxy for Adobe's hosts at {front.http_url}", flush=True)
        if args.host not in ("127.0.0.1", "localhost", "::1") and not args.control_token:
            print("target-profile-mock: warning: listening beyond loopback with an unlocked control API; "
                  "anyone who reaches it can reset it (use --control-token)", file=sys.stderr, flush=True)
        front.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        front.stop()
    print("target-profile-mock stopped", flush=True)
    return 0
