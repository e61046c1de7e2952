"""Routing ``aiohttp.ClientSession`` calls to Adobe's hosts into the fake, in process, with no socket.

aiohttp's connector is asked for a connection to a ``*.tt.omtrdc.net`` (or ``mc.adobe.io``) host; it
gets aiohttp's own protocol object wired to an in-memory transport instead of a socket. aiohttp
writes the request as it would on the wire; the transport reads it, has the fake's app answer, and
feeds the answer back as bytes. So aiohttp's own writer, parser, timeouts and errors run unchanged,
and a connection fault is met exactly as on a socket: a reset is ``connection_lost`` with the
``ConnectionResetError`` the kernel reports (``aiohttp.ClientOSError``), a close without an answer is
``aiohttp.ServerDisconnectedError``, a truncated body fails with ``aiohttp.ClientPayloadError`` when
read. Requests to other hosts go to the network, or fail with :class:`BlockedRequest`.
"""

from __future__ import annotations

import asyncio
import errno
import os
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import aiohttp
from target_profile_mock.mockserver.faults import ConnectionFault

from .intercept import blocked_message, is_adobe_url
from .wsgi import WsgiBridge

if TYPE_CHECKING:
    from .fake import SessionFake

__all__ = ["AiohttpPatch", "BlockedRequest", "aiohttp_patch"]


class BlockedRequest(aiohttp.ClientConnectionError):
    """An aiohttp request to a host other than Adobe's while other hosts are blocked."""


def aiohttp_patch(fake: SessionFake, *, block: bool) -> AiohttpPatch:
    """The patch for this fake (one per fake and blocking mode, kept on the fake)."""
    cache: dict[bool, AiohttpPatch] = fake.__dict__.setdefault("_aiohttp_patches", {})
    found = cache.get(block)
    if found is None:
        found = cache[block] = AiohttpPatch(fake.bridge, block=block)
    return found


class AiohttpPatch:
    """Routes every ``aiohttp.TCPConnector`` (so every ``ClientSession``) while installed."""

    def __init__(self, bridge: WsgiBridge, *, block: bool) -> None:
        self._bridge = bridge
        self._block = block
        self._original: Any = None
        self._patched: Any = None
        self._installed = False
        self._open: set[_FakeTransport] = set()

    def _build(self) -> Any:
        # built once; other hosts go to what the class had when this patch was installed
        patch = self

        async def _create_connection(connector: aiohttp.TCPConnector, req: Any, traces: Any, timeout: Any) -> Any:
            url = str(req.url)
            if is_adobe_url(url):
                loop = asyncio.get_running_loop()
                proto = connector._factory()  # aiohttp's own ResponseHandler
                transport = _FakeTransport(loop, proto, patch._bridge, "https" if req.is_ssl() else "http",
                                           patch._open)
                proto.connection_made(transport)
                return proto
            if patch._block:
                raise BlockedRequest(blocked_message(req.method, url).replace(
                    "target-profiles blocked", "target-profiles blocked aiohttp"))
            return await patch._original(connector, req, traces, timeout)

        return _create_connection

    def install(self) -> None:
        if self._installed:
            return
        if self._patched is None:
            self._patched = self._build()
        self._original = aiohttp.TCPConnector._create_connection
        aiohttp.TCPConnector._create_connection = self._patched  # type: ignore[method-assign]
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        # the original stays kept, for a call still running in another thread
        aiohttp.TCPConnector._create_connection = self._original  # type: ignore[method-assign]
        self._installed = False
        # a session that outlives the test or block must not reach the fake over a pooled connection
        if self._open:
            for transport in list(self._open):
                transport.close()


_CRLF = b"\r\n"


class _FakeTransport(asyncio.Transport):
    """The server end of an in-memory connection: HTTP/1.1 requests in, the fake's answers out."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol, bridge: WsgiBridge,
                 scheme: str, registry: set[_FakeTransport]) -> None:
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self._bridge = bridge
        self._scheme = scheme
        self._buffer = bytearray()
        self._closing = False
        self._continued = False
        self._registry = registry
        registry.add(self)

    # --- asyncio.Transport ------------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        self._buffer += data
        while not self._closing:
            request = _take_request(self._buffer)
            if request is None:
                self._continue_if_expected()
                return
            self._continued = False
            self._answer(*request)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._lose(None)

    def abort(self) -> None:
        self._lose(None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 443 if self._scheme == "https" else 80)}.get(name, default)

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return not self._closing

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    # --- the server side --------------------------------------------------------------------------
    def _continue_if_expected(self) -> None:
        # a client sending "Expect: 100-continue" waits for this before it sends the body
        if self._continued:
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end >= 0 and b"\r\nexpect: 100-continue" in bytes(self._buffer[:end]).lower():
            self._continued = True
            self._loop.call_soon(self._protocol.data_received, b"HTTP/1.1 100 Continue\r\n\r\n")

    def _lose(self, exc: BaseException | None) -> None:
        if self._closing:
            return
        self._closing = True
        self._registry.discard(self)
        self._loop.call_soon(self._protocol.connection_lost, exc)

    def _answer(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> None:
        host = next((v for k, v in headers if k.lower() == "host"), "")
        url = f"{self._scheme}://{host}{target}"
        if not is_adobe_url(url):
            # a pooled connection to mc.adobe.io asked for something besides the token route
            self._deliver(404, [("Content-Type", "text/plain")], b"not answered by the in-process fake", method,
                          close=True)
            return
        bridge = self._bridge
        if not bridge.may_stall():
            self._loop.call_soon(self._run, lambda: bridge.call(method, url, headers, body), method)
            return
        # a latency fault: answer from another thread, so aiohttp's own read timeout can fire meanwhile
        pending = bridge.start(method, url, headers, body)
        bridge.abandon(pending)  # settled at the end of the block even if the client stops waiting
        waited = self._loop.run_in_executor(None, pending.wait, None)
        waited.add_done_callback(lambda _: self._run(pending.result, method))

    def _run(self, answer: Any, method: str) -> None:
        if self._closing:
            return  # the client gave up (a timeout) or closed the connection meanwhile
        try:
            status, headers, body = answer()
        except ConnectionFault as fault:
            self._break(fault, method)
            return
        self._deliver(status, headers, body, method, close=False)

    def _deliver(self, status: int, headers: list[tuple[str, str]], body: bytes, method: str, *,
                 close: bool) -> None:
        if not any(k.lower() == "content-length" for k, _ in headers):
            headers = [*headers, ("Content-Length", str(len(body)))]
        if close:
            headers = [*headers, ("Connection", "close")]
        self._protocol.data_received(_head(status, headers) + (b"" if method == "HEAD" else body))
        if close:
            self._lose(None)

    def _break(self, fault: ConnectionFault, method: str) -> None:
        proto = self._protocol
        if fault.kind == "truncated":
            headers = [*fault.headers, ("Content-Length", str(fault.expected))]
            proto.data_received(_head(fault.status or 200, headers) + fault.body)
            self._lose(None)
        elif fault.kind == "reset":
            self._lose(ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET)))
        else:
            self._lose(None)


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {status} {reason}".encode("latin-1")]
    lines += [f"{k}: {v}".encode("latin-1") for k, v in headers]
    return _CRLF.join(lines) + _CRLF + _CRLF


def _take_request(buffer: bytearray) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    """The first complete request in ``buffer`` (removed from it), or None if more bytes are due."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    method, target, _ = head[0].split(" ", 2)
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in head[1:])]
    lowered = {k.lower(): v for k, v in headers}
    start = end + 4
    if "chunked" in lowered.get("transfer-encoding", "").lower():
        body = bytearray()
        pos = start
        while True:
            eol = buffer.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buffer[pos:eol]).split(b";")[0], 16)
            if size == 0:
                trailer_end = buffer.find(b"\r\n\r\n", eol)
                if trailer_end < 0:
                    return None
                del buffer[:trailer_end + 4]
                # the app sees the body as a whole, as a server that de-chunks it would pass it on
                headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
                return method, target, headers, bytes(body)
            if len(buffer) < eol + 2 + size + 2:
                return None
            body += buffer[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2
    length = int(lowered.get("content-length", "0") or 0)
    if len(buffer) < start + length:
        return None
    body_bytes = bytes(buffer[start:start + length])
    del buffer[:start + length]
    return method, target, headers, body_bytes

