"""Routing urllib3 (and so any client built on it, such as Adobe's Python SDK) to the fake in process.

``requests`` is routed before it reaches urllib3 (``intercept``); this patch answers what calls
urllib3 itself: a ``PoolManager``, a connection pool, or a generated API client over them.
"""

from __future__ import annotations

import errno
import io
import os
from typing import Any

from target_profile_mock.mockserver.faults import ConnectionFault

from .intercept import is_adobe_url
from .wsgi import WsgiBridge, body_bytes

__all__ = ["Urllib3Patch"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _fault_exception(fault: ConnectionFault) -> Exception:
    """What urllib3 raises for a broken connection on a real socket."""
    from http.client import RemoteDisconnected

    from urllib3.exceptions import ProtocolError

    reason: Exception = (ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))
                         if fault.kind == "reset" else
                         RemoteDisconnected("Remote end closed connection without response"))
    return ProtocolError("Connection aborted.", reason)


class Urllib3Patch:
    """Answers urllib3 requests to Adobe's hosts from the fake while installed; other hosts go on as before."""

    def __init__(self, bridge: WsgiBridge) -> None:
        self._bridge = bridge
        self._installed = False
        self._original: Any = None

    def install(self) -> None:
        if self._installed:
            return
        from urllib3.connectionpool import HTTPConnectionPool

        original = self._original = HTTPConnectionPool.urlopen
        bridge = self._bridge

        def urlopen(pool: HTTPConnectionPool, method: str, url: str, body: Any = None,
                    headers: Any = None, *args: Any, **kwargs: Any) -> Any:
            scheme = getattr(pool, "scheme", "http")
            if url.startswith("/"):
                port = pool.port
                netloc = pool.host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{pool.host}:{port}"
                full = f"{scheme}://{netloc}{url}"
            else:
                full = url
            if not is_adobe_url(full):
                return original(pool, method, url, body, headers, *args, **kwargs)
            return _answer(bridge, pool, method, full, body, headers, kwargs)

        HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        from urllib3.connectionpool import HTTPConnectionPool

        HTTPConnectionPool.urlopen = self._original  # type: ignore[method-assign]
        self._installed = False


def _answer(bridge: WsgiBridge, pool: Any, method: str, url: str, body: Any, headers: Any,
            kwargs: dict[str, Any]) -> Any:
    from urllib3.response import HTTPResponse

    pairs = [(str(k), str(v)) for k, v in (headers or {}).items()]
    try:
        status, response_headers, data = bridge.call(method, url, pairs, body_bytes(body))
    except ConnectionFault as fault:
        if fault.kind != "truncated":
            raise _fault_exception(fault) from fault
        status = fault.status or 200
        # the announced length is more than is sent: reading the body raises as on a closed socket
        response_headers = [*fault.headers, ("Content-Length", str(fault.expected or len(fault.body) + 1))]
        data = fault.body
    return HTTPResponse(body=io.BytesIO(data), headers=response_headers, status=status,
                        preload_content=kwargs.get("preload_content", True),
                        decode_content=kwargs.get("decode_content", True), enforce_content_length=True,
                        request_method=method, request_url=url, pool=pool)
