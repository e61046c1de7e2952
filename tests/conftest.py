from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis_server import RedisServer, redis_server_path
from target_profile_mock.contracts.xmlbodies import BatchStatusBody, parse_batch_status, parse_response
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.store import open_store
from werkzeug.test import TestResponse


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # a module or test marked both_stores runs its backend on the in-memory store and on Redis
    if metafunc.definition.get_closest_marker("both_stores") and "store_kind" in metafunc.fixturenames:
        metafunc.parametrize("store_kind", ["memory", "redis"], indirect=True)


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    """Where the ``backend`` fixture keeps its state: "memory", or "redis" under the both_stores marker."""
    return getattr(request, "param", "memory")


@pytest.fixture
def backend(store_kind: str, request: pytest.FixtureRequest) -> MockBackend:
    store = None
    if store_kind == "redis":
        store = open_store(request.getfixturevalue("redis_url"))
        request.addfinalizer(store.close)
    be = MockBackend(MockConfig(lifecycle=Lifecycle.parse("polls=1")), store=store)
    be.clock.freeze()
    return be


@pytest.fixture
def app(backend: MockBackend) -> Flask:
    return create_app(backend)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# --- a real Redis (the Redis store's tests) -----------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this session (each xdist worker starts its own), stopped at the end."""
    executable = redis_server_path()
    if executable is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server); "
                    "the Redis store's tests need a real one")
    server = RedisServer(executable)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of an emptied Redis for this test."""
    redis_server.flush()
    return redis_server.url


# --- bulk API helpers ------------------------------------------------------------------------------
FORM = "application/x-www-form-urlencoded"


@dataclass
class Submitted:
    """A batch the fake accepted: its id and the batchStatus URL exactly as the response gave it."""

    batch_id: str
    status_url: str
    body: bytes


class BulkClient:
    """Drives the bulk API over HTTP the way a real client does: post the file, follow the status URL."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def post(self, body: bytes, *, version: int = 2, tenant: str = "demo", content_type: str | None = FORM,
             query: str = "", headers: dict[str, str] | None = None) -> TestResponse:
        path = f"/m2/{tenant}/v2/profile/batchUpdate" if version == 2 else f"/m2/{tenant}/profile/batchUpdate"
        hdrs = {"Content-Type": content_type} if content_type else {}
        hdrs.update(headers or {})
        return self.client.post(path + (f"?{query}" if query else ""), data=body, headers=hdrs)

    def submit(self, body: bytes, **kwargs: Any) -> Submitted:
        """Post and insist on the documented success answer."""
        r = self.post(body, **kwargs)
        assert r.status_code == 200, r.data
        fields = parse_response(r.data)
        assert fields["success"] == "true", r.data
        url = fields["batchStatus"]
        return Submitted(parse_qs(urlsplit(url).query)["batchId"][0], url, r.data)

    def apply(self, body: bytes, **kwargs: Any) -> Submitted:
        """Submit, then poll until the batch completes (under the ``polls=1`` lifecycle of the ``backend``
        fixture: one ``incomplete`` answer, then ``complete``), so its rows are applied."""
        sub = self.submit(body, **kwargs)
        answers = [self.status(sub.status_url).status for _ in range(2)]
        assert answers == ["incomplete", "complete"], answers
        return sub

    def status_response(self, url: str, *, details: bool = False) -> TestResponse:
        return self.client.get(url + ("&showDetails=true" if details else ""))

    def status(self, url: str, *, details: bool = False) -> BatchStatusBody:
        r = self.status_response(url, details=details)
        assert r.status_code == 200, r.data
        return parse_batch_status(r.data)

    def profile(self, kind: str, profile_id: str, *, tenant: str = "demo") -> dict[str, str] | None:
        """A profile's attributes read through the control API (no side effects), or None."""
        r = self.client.get(f"/_mock/tenants/{tenant}/profiles/{kind}/{quote(profile_id, safe='')}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.data
        return r.get_json()["attributes"]


@pytest.fixture
def bulk(client: FlaskClient) -> BulkClient:
    return BulkClient(client)


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def other_host_port() -> Iterator[int]:
    """The port of a plain HTTP server on loopback, not Adobe's: every GET answers ``hello``."""
    server = HTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()
    server.server_close()
