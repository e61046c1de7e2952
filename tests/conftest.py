from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mockserver import Lifecycle, MockBackend, MockConfig, create_app


@pytest.fixture
def backend() -> MockBackend:
    be = MockBackend(MockConfig(lifecycle=Lifecycle.parse("polls=1")))
    be.clock.freeze()
    return be


@pytest.fixture
def app(backend: MockBackend) -> Flask:
    return create_app(backend)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
