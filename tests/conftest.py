from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from bulk_client import BulkClient
from flask import Flask
from flask.testing import FlaskClient
from redis_server import RedisServer, redis_server_path
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.store import open_store


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
