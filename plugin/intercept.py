"""Routing Adobe's host names to the fake in process: ``requests`` through ``responses``, and httpx.

Which URLs are Adobe's: any ``*.tt.omtrdc.net`` host (client-code hosts such as
``acme.tt.omtrdc.net`` and edge hosts such as ``mboxedge45.tt.omtrdc.net``), over http or https,
and the Admin API's profile-token route on ``mc.adobe.io``. Every other host passes through to the
network, or is blocked with an error that says how to allow it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import requests
import responses
from requests.adapters import HTTPAdapter
from responses.registries import FirstMatchRegistry

from .wsgi import WsgiBridge, body_bytes

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
        self._call = bridge.call

    def matches(self, request: requests.PreparedRequest) -> tuple[bool, str]:
        if ADOBE_URL.match(request.url or ""):
            return True, ""
        return False, "not an Adobe Target host"

    def _answer(self, request: requests.PreparedRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [(_text(k), _text(v)) for k, v in request.headers.items()]
        return self._call(request.method or "GET", request.url or "", headers, body_bytes(request.body))


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
    """Patches ``requests`` (via a ``responses.RequestsMock``) while started."""

    def __init__(self, bridge: WsgiBridge, *, block: bool) -> None:
        self.mock = responses.RequestsMock(assert_all_requests_are_fired=False, registry=_Registry)
        self._saved: Any = None
        registry = self.mock.get_registry()
        assert isinstance(registry, _Registry)
        registry.route = _AdobeRoute(bridge)
        registry.mock = self.mock
        if block:
            registry.blocker = _Blocker()
        else:
            self.mock.add_passthru(re.compile(""))

    def start(self) -> None:
        # What RequestsMock.start() does, without unittest.mock.patch: that costs ~0.1 ms per test,
        # a tenth of the fixture's budget.
        if self._saved is None:
            self._saved = HTTPAdapter.send
            HTTPAdapter.send = self.mock.unbound_on_send()  # type: ignore[method-assign]

    def stop(self) -> None:
        if self._saved is not None:
            HTTPAdapter.send = self._saved  # type: ignore[method-assign]
            self._saved = None


# --- httpx ----------------------------------------------------------------------------------------
def _httpx_answer(bridge: WsgiBridge, request: httpx.Request) -> httpx.Response:
    import httpx

    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    status, out_headers, data = bridge.call(request.method, str(request.url), headers, request.content)
    return httpx.Response(status, headers=out_headers, content=data, request=request)


def httpx_transports(bridge: WsgiBridge, *, block: bool) -> tuple[type, type]:
    """Transport classes that answer Adobe's URLs from the fake and send the rest on (or refuse them)."""
    import httpx

    class TargetProfilesTransport(httpx.BaseTransport):
        """An httpx transport: Adobe's hosts answered in process, others sent over the network."""

        def __init__(self, **kwargs: Any) -> None:
            self._kwargs = kwargs
            self._network: httpx.HTTPTransport | None = None

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if is_adobe_url(str(request.url)):
                request.read()
                return _httpx_answer(bridge, request)
            if block:
                raise httpx.ConnectError(blocked_message(request.method, str(request.url)), request=request)
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
            if is_adobe_url(str(request.url)):
                await request.aread()
                return _httpx_answer(bridge, request)
            if block:
                raise httpx.ConnectError(blocked_message(request.method, str(request.url)), request=request)
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
        self._saved: tuple[Any, Any] | None = None

    def install(self) -> None:
        import httpx

        if self._saved is not None:
            return
        sync_send = httpx.HTTPTransport.handle_request
        async_send = httpx.AsyncHTTPTransport.handle_async_request
        bridge, block = self._bridge, self._block

        def handle_request(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
            if is_adobe_url(str(request.url)):
                request.read()
                return _httpx_answer(bridge, request)
            if block:
                raise httpx.ConnectError(blocked_message(request.method, str(request.url)), request=request)
            return sync_send(transport, request)

        async def handle_async_request(transport: httpx.AsyncHTTPTransport,
                                       request: httpx.Request) -> httpx.Response:
            if is_adobe_url(str(request.url)):
                await request.aread()
                return _httpx_answer(bridge, request)
            if block:
                raise httpx.ConnectError(blocked_message(request.method, str(request.url)), request=request)
            return await async_send(transport, request)

        self._saved = (sync_send, async_send)
        httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]
        httpx.AsyncHTTPTransport.handle_async_request = handle_async_request  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._saved is None:
            return
        import httpx

        httpx.HTTPTransport.handle_request, httpx.AsyncHTTPTransport.handle_async_request = (  # type: ignore
            self._saved)
        self._saved = None
