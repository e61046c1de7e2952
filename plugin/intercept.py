"""Routing Adobe's host names to the fake in process: ``requests`` through ``responses``, and httpx.

Connection faults (``target_profile_mock.mockserver.faults``) come out of the app as :class:`ConnectionFault`; they
are turned into what each library meets on a broken socket: ``requests`` and httpx raise the same
exception classes with the same messages, at the same point (a truncated body fails when it is read,
so also only on reading a streamed response).

Which URLs are Adobe's: any ``*.tt.omtrdc.net`` host (client-code hosts such as
``acme.tt.omtrdc.net`` and edge hosts such as ``mboxedge45.tt.omtrdc.net``), over http or https,
and the Admin API's profile-token route on ``mc.adobe.io``. Every other host passes through to the
network, or is blocked with an error that says how to allow it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import cache, partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import responses
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from responses.registries import FirstMatchRegistry
from target_profile_mock.mockserver.faults import ConnectionFault

from .wsgi import WsgiBridge, WsgiResponse, body_bytes

if TYPE_CHECKING:
    import httpx

__all__ = ["ADOBE_URL", "BlockedRequest", "RequestsInterceptor", "is_adobe_url"]

ADOBE_URL = re.compile(
    r"^https?://(?:[^/?#@]*@)?(?:"
    r"(?:[a-z0-9_-]+\.)+tt\.omtrdc\.net(?::\d+)?(?:[/?#]|$)"
    r"|mc\.adobe\.io(?::\d+)?/[^/?#]+/target/authentication/token/?(?:[?#]|$))",
    re.IGNORECASE,
)


def is_adobe_url(url: str) -> bool:
    """Whether the in-process fixture answers this URL."""
    return ADOBE_URL.match(url) is not None


def blocked_message(method: str, url: str) -> str:
    return (f"target-profiles blocked {method} {url}: only *.tt.omtrdc.net and the mc.adobe.io token route "
            "are answered in process, and other hosts are blocked (other_hosts='block'). Let them through "
            "with @pytest.mark.target_profiles(other_hosts='passthrough') or --target-profiles-other-hosts="
            "passthrough, or stub this URL with target_profiles.responses.add(...).")


class BlockedRequest(requests.exceptions.ConnectionError):
    """A request to a host other than Adobe's while other hosts are blocked."""


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


# --- requests, through responses -------------------------------------------------------------------
class _AdobeRoute(responses.CallbackResponse):
    """One registration for every method and every Adobe URL."""

    def __init__(self, bridge: WsgiBridge) -> None:
        super().__init__("ANY", ADOBE_URL, self._answer, content_type=None)
        self._bridge = bridge
        self._call = bridge.call

    def matches(self, request: requests.PreparedRequest) -> tuple[bool, str]:
        if ADOBE_URL.match(request.url or ""):
            return True, ""
        return False, "not an Adobe Target host"

    def _answer(self, request: requests.PreparedRequest) -> WsgiResponse | Exception:
        # lower_items() skips the case-insensitive lookup per header that items() makes; the environ
        # keys the bridge builds ignore case anyway
        raw = request.headers
        pairs = raw.lower_items() if isinstance(raw, CaseInsensitiveDict) else raw.items()
        headers = [(_text(k), _text(v)) for k, v in pairs]
        method, url, body = request.method or "GET", request.url or "", body_bytes(request.body)
        read_timeout = _read_timeout(getattr(_sending, "timeout", None))
        try:
            if read_timeout is None or not self._bridge.may_stall():
                return self._call(method, url, headers, body)
            pending = self._bridge.start(method, url, headers, body)
            if not pending.wait(read_timeout):
                self._bridge.abandon(pending)
                return _requests_read_timeout(url, read_timeout, request)
            return pending.result()
        except ConnectionFault as fault:
            if fault.kind == "truncated":
                # urllib3 reads fewer bytes than Content-Length promises and raises (and requests wraps)
                # exactly what it does on a socket closed early, when the body is read
                return _truncated(fault)
            exc = fault.requests_exception(request)
            exc.__cause__ = fault
            return exc  # responses raises it out of the adapter's send(), where a real one comes from


_EVERY_URL = re.compile("")


class _Blocker(responses.CallbackResponse):
    def __init__(self) -> None:
        super().__init__("ANY", re.compile(".*"), self._refuse, content_type=None)

    def matches(self, request: requests.PreparedRequest) -> tuple[bool, str]:
        return True, ""

    @staticmethod
    def _refuse(request: requests.PreparedRequest) -> Exception:
        exc = BlockedRequest(blocked_message(request.method or "GET", request.url or ""))
        exc.request = request
        return exc


class _Registry(FirstMatchRegistry):
    """The user's own stubs first, then the fake for Adobe's hosts, then (when blocking) the blocker.

    Kept out of the registered list so a user's stub for the same URL never displaces the fake's
    route (``FirstMatchRegistry`` pops one of two matches).
    """

    route: _AdobeRoute | None = None
    blocker: _Blocker | None = None
    mock: responses.RequestsMock | None = None

    def find(self, request: Any) -> tuple[Any, list[str]]:
        reasons: list[str] = []
        if self.registered:
            found, reasons = super().find(request)
            if found is not None:
                return found, reasons
        if self.route is not None and ADOBE_URL.match(request.url or ""):
            return self.route, reasons
        if self.blocker is not None and not self._passthru(request.url or ""):
            return self.blocker, reasons
        return None, reasons

    def _passthru(self, url: str) -> bool:
        prefixes = self.mock.passthru_prefixes if self.mock is not None else ()
        return any(p.match(url) if isinstance(p, re.Pattern) else url.startswith(p) for p in prefixes)


class RequestsInterceptor:
    """Patches ``requests`` (via a ``responses.RequestsMock``) while started.

    Built once per session fake; ``renew`` readies it for the next test: a fresh mock if the last test
    was handed this one (its stubs and settings are that test's), else the same mock with its calls
    forgotten.
    """

    def __init__(self, bridge: WsgiBridge, *, block: bool) -> None:
        self._route = _AdobeRoute(bridge)
        self._blocker = _Blocker() if block else None
        self._saved: Any = None
        self._handed_out = False
        self._mock, self._send = self._new_mock()

    @property
    def mock(self) -> responses.RequestsMock:
        """The ``responses`` mock requests go through: the user's stubs go here."""
        self._handed_out = True
        return self._mock

    def _new_mock(self) -> tuple[responses.RequestsMock, Callable[..., Any]]:
        mock = responses.RequestsMock(assert_all_requests_are_fired=False, registry=_Registry)
        registry = mock.get_registry()
        assert isinstance(registry, _Registry)
        registry.route = self._route
        registry.blocker = self._blocker
        registry.mock = mock
        if self._blocker is None:
            mock.add_passthru(_EVERY_URL)
        on_send = mock.unbound_on_send()

        def send(adapter: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
            # HTTPAdapter.send(request, stream, timeout, ...): the route needs the timeout
            _sending.timeout = kwargs["timeout"] if "timeout" in kwargs else args[1] if len(args) > 1 else None
            try:
                return on_send(adapter, request, *args, **kwargs)
            finally:
                _sending.timeout = None

        return mock, send

    def renew(self) -> None:
        """Ready for the next test: no stubs or settings of an earlier test, no calls recorded."""
        if self._saved is not None:
            raise RuntimeError("renew() while started: stop() first")
        self._route.calls.reset()
        if self._handed_out:
            self._mock, self._send = self._new_mock()
            self._handed_out = False
        else:
            self._mock.calls.reset()

    def start(self) -> None:
        # What RequestsMock.start() does, without unittest.mock.patch: that costs ~0.1 ms per test,
        # a tenth of the fixture's budget.
        if self._saved is None:
            self._saved = HTTPAdapter.send
            HTTPAdapter.send = self._send  # type: ignore[method-assign]

    def stop(self) -> None:
        if self._saved is not None:
            HTTPAdapter.send = self._saved  # type: ignore[method-assign]
            self._saved = None


#: The timeout of the ``send`` in progress on this thread (responses hands callbacks only the request).
_sending = threading.local()


def _read_timeout(timeout: Any) -> float | None:
    """The read timeout out of what ``requests`` passes to ``send``: seconds, (connect, read), or urllib3's."""
    if isinstance(timeout, tuple):
        timeout = timeout[1] if len(timeout) == 2 else None
    read = getattr(timeout, "read_timeout", timeout)
    return float(read) if isinstance(read, (int, float)) and not isinstance(read, bool) else None


def _requests_read_timeout(url: str, seconds: float, request: requests.PreparedRequest) -> Exception:
    """What ``requests`` raises when the answer is not there within the read timeout."""
    from urllib3 import connection_from_url
    from urllib3.exceptions import ReadTimeoutError

    pool = connection_from_url(url)  # only named in the message, as urllib3 names its pool; never connects
    timeout = seconds if seconds != int(seconds) else int(seconds)
    _, _, path, query, _ = urlsplit(url)
    error = ReadTimeoutError(pool, path + (f"?{query}" if query else ""), f"Read timed out. (read timeout={timeout})")
    pool.close()
    return requests.exceptions.ReadTimeout(error, request=request)


def _truncated(fault: ConnectionFault) -> WsgiResponse:
    """What a truncated answer puts on the wire: its headers, announcing more bytes than follow."""
    return fault.status or 200, [*fault.headers, ("Content-Length", str(fault.expected))], fault.body


# --- httpx ----------------------------------------------------------------------------------------
@cache
def _broken_stream() -> type:
    import httpx

    class BrokenStream(httpx.SyncByteStream, httpx.AsyncByteStream):
        """A body that ends early: what was sent, then the error httpx raises reading past it."""

        def __init__(self, data: bytes, error: Exception) -> None:
            self._data = data
            self._error = error

        def __iter__(self) -> Iterator[bytes]:
            if self._data:
                yield self._data
            raise self._error

        async def __aiter__(self) -> AsyncIterator[bytes]:
            if self._data:
                yield self._data
            raise self._error

    return BrokenStream


def _httpx_result(request: httpx.Request, answer: Callable[[], WsgiResponse], *,
                  asynchronous: bool) -> httpx.Response:
    import httpx

    try:
        status, out_headers, data = answer()
    except ConnectionFault as fault:
        exc = fault.httpx_exception(request)
        if asynchronous and fault.kind == "reset":
            # httpx's async transport reads through anyio, whose BrokenResourceError carries no text
            exc = httpx.ReadError("", request=request)
        if fault.kind != "truncated":
            raise exc from fault
        # the headers arrive; reading the body fails, as h11 does when the peer closes early
        exc.__cause__ = fault
        status, out_headers, _ = _truncated(fault)
        return httpx.Response(status, headers=out_headers, stream=_broken_stream()(fault.body, exc), request=request)
    return httpx.Response(status, headers=out_headers, content=data, request=request)


def _httpx_call(request: httpx.Request) -> tuple[str, str, list[tuple[str, str]], bytes]:
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    return request.method, str(request.url), headers, request.content


def _httpx_read_timeout(request: httpx.Request) -> float | None:
    read = request.extensions.get("timeout", {}).get("read")
    return float(read) if isinstance(read, (int, float)) else None


def _httpx_answer(bridge: WsgiBridge, request: httpx.Request) -> httpx.Response:
    import httpx

    call = _httpx_call(request)
    read_timeout = _httpx_read_timeout(request)
    if read_timeout is None or not bridge.may_stall():
        return _httpx_result(request, lambda: bridge.call(*call), asynchronous=False)
    pending = bridge.start(*call)
    if not pending.wait(read_timeout):
        bridge.abandon(pending)
        raise httpx.ReadTimeout("timed out", request=request)  # the socket's own message
    return _httpx_result(request, pending.result, asynchronous=False)


async def _async_httpx_answer(bridge: WsgiBridge, request: httpx.Request) -> httpx.Response:
    import httpx

    call = _httpx_call(request)
    if not bridge.may_stall():
        return _httpx_result(request, lambda: bridge.call(*call), asynchronous=True)
    import anyio

    # a slow answer must not block the event loop: other tasks go on, as they would on a socket
    pending = bridge.start(*call)
    if not await anyio.to_thread.run_sync(pending.wait, _httpx_read_timeout(request)):
        bridge.abandon(pending)
        raise httpx.ReadTimeout("", request=request)  # anyio's timeout carries no text
    return _httpx_result(request, pending.result, asynchronous=True)


def _httpx_route(bridge: WsgiBridge, block: bool, request: httpx.Request,
                 onward: Callable[[httpx.Request], httpx.Response]) -> httpx.Response:
    """Adobe's URLs answered by the fake; another host refused when blocking, else sent ``onward``."""
    if is_adobe_url(str(request.url)):
        request.read()
        return _httpx_answer(bridge, request)
    if block:
        raise _httpx_blocked(request)
    return onward(request)


async def _async_httpx_route(bridge: WsgiBridge, block: bool, request: httpx.Request,
                             onward: Callable[[httpx.Request], Awaitable[httpx.Response]]) -> httpx.Response:
    """The async twin of :func:`_httpx_route`."""
    if is_adobe_url(str(request.url)):
        await request.aread()
        return await _async_httpx_answer(bridge, request)
    if block:
        raise _httpx_blocked(request)
    return await onward(request)


def _httpx_blocked(request: httpx.Request) -> Exception:
    import httpx

    return httpx.ConnectError(blocked_message(request.method, str(request.url)), request=request)


def httpx_transports(bridge: WsgiBridge, *, block: bool) -> tuple[type, type]:
    """Transport classes that answer Adobe's URLs from the fake and send the rest on (or refuse them)."""
    import httpx

    class TargetProfilesTransport(httpx.BaseTransport):
        """An httpx transport: Adobe's hosts answered in process, others sent over the network."""

        def __init__(self, **kwargs: Any) -> None:
            self._kwargs = kwargs
            self._network: httpx.HTTPTransport | None = None

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return _httpx_route(bridge, block, request, self._send_on)

        def _send_on(self, request: httpx.Request) -> httpx.Response:
            if self._network is None:
                self._network = httpx.HTTPTransport(**self._kwargs)
            return self._network.handle_request(request)

        def close(self) -> None:
            if self._network is not None:
                self._network.close()

    class AsyncTargetProfilesTransport(httpx.AsyncBaseTransport):
        """The async twin of ``TargetProfilesTransport``."""

        def __init__(self, **kwargs: Any) -> None:
            self._kwargs = kwargs
            self._network: httpx.AsyncHTTPTransport | None = None

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return await _async_httpx_route(bridge, block, request, self._send_on)

        async def _send_on(self, request: httpx.Request) -> httpx.Response:
            if self._network is None:
                self._network = httpx.AsyncHTTPTransport(**self._kwargs)
            return await self._network.handle_async_request(request)

        async def aclose(self) -> None:
            if self._network is not None:
                await self._network.aclose()

    return TargetProfilesTransport, AsyncTargetProfilesTransport


class HttpxPatch:
    """Routes httpx's default transports (every ``httpx.Client`` / ``AsyncClient``) while installed."""

    def __init__(self, bridge: WsgiBridge, *, block: bool) -> None:
        self._bridge = bridge
        self._block = block
        self._installed = False
        # what other hosts go to, and what uninstall puts back: the classes' methods when last installed
        # (kept after uninstall, for a call still running in another thread)
        self._originals: tuple[Any, Any] = (None, None)
        self._patched: tuple[Any, Any] | None = None
        self._classes: tuple[Any, Any] = (None, None)

    def _build(self) -> tuple[Any, Any]:
        # built once; other hosts go to what the classes had when this patch was installed
        import httpx

        self._classes = (httpx.HTTPTransport, httpx.AsyncHTTPTransport)
        bridge, block = self._bridge, self._block

        def handle_request(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
            return _httpx_route(bridge, block, request, partial(self._originals[0], transport))

        async def handle_async_request(transport: httpx.AsyncHTTPTransport,
                                       request: httpx.Request) -> httpx.Response:
            return await _async_httpx_route(bridge, block, request, partial(self._originals[1], transport))

        return handle_request, handle_async_request

    def install(self) -> None:
        if self._installed:
            return
        if self._patched is None:
            self._patched = self._build()
        classes = self._classes
        self._originals = (classes[0].handle_request, classes[1].handle_async_request)
        classes[0].handle_request, classes[1].handle_async_request = self._patched  # type: ignore[method-assign]
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        classes = self._classes
        classes[0].handle_request, classes[1].handle_async_request = self._originals  # type: ignore[method-assign]
        self._installed = False
