"""Plain HTTP request and response values, shared by the strategies, the stateful machine and drivers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..single import SingleUpdateRequest

__all__ = ["HttpRequest", "HttpResponse"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request ready to send to a base URL: ``requests.request(r.method, base + r.target, ...)``."""

    method: str
    path: str
    query: str = ""  #: the encoded query string, without ``?``
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    @property
    def target(self) -> str:
        """Path and query, as sent on the request line."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def url(self, base_url: str) -> str:
        return base_url.rstrip("/") + self.target

    @classmethod
    def from_url(cls, method: str, url: str, **kwargs: object) -> HttpRequest:
        """A request for the path and query of an absolute URL (such as a returned batchStatus link)."""
        parts = urlsplit(url)
        return cls(method, parts.path or "/", parts.query, **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 200 else self.body[:200] + b"..." + f"({len(self.body)} bytes)".encode()
        target = self.target if len(self.target) <= 300 else self.target[:300] + "..."
        return f"HttpRequest({self.method} {target}, body={body!r}, headers={dict(self.headers)!r})"


def as_http(request: SingleUpdateRequest) -> HttpRequest:
    """A built single update as the strategies' request value."""
    return HttpRequest(request.method, request.path, request.query, request.body or b"", request.headers)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What a driver got back."""

    status: int
    headers: Mapping[str, str]
    body: bytes
