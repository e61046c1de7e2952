"""In-process drivers and helpers for the strategy, model and stateful tests."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from target_profile_mock.contracts.model import ProfileModel
from target_profile_mock.contracts.stateful import ControlOverHttp
from target_profile_mock.contracts.strategies import HttpRequest, HttpResponse
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app


def fresh_backend(**config: object) -> MockBackend:
    """A new fake with a frozen clock and batches that end at their first status poll."""
    config.setdefault("lifecycle", Lifecycle.parse("polls=0"))
    be = MockBackend(MockConfig(**config))  # type: ignore[arg-type]
    be.clock.freeze()
    return be


def send(client: FlaskClient, request: HttpRequest) -> HttpResponse:
    """Send a strategy's request through the Flask test client."""
    resp = client.open(request.target, method=request.method, data=request.body, headers=dict(request.headers))
    return HttpResponse(resp.status_code, dict(resp.headers), resp.get_data())


class FlaskDriver(ControlOverHttp):
    """The stateful machine's driver over the Flask test client, with the /_mock/ control API."""

    def __init__(self, backend: MockBackend | None = None, client: str = "demo") -> None:
        self.backend = backend or fresh_backend()
        self.http = create_app(self.backend).test_client()
        self.client = client

    def send(self, request: HttpRequest) -> HttpResponse:
        return send(self.http, request)


def model_state(model: ProfileModel) -> list[tuple[dict[str, str], dict[str, str]]]:
    """The model's profiles as sortable (ids, attributes) pairs."""
    return sorted(((dict(p.ids), dict(p.attributes)) for p in model.profiles()), key=repr)


def fake_state(backend: MockBackend, tenant: str) -> list[tuple[dict[str, str], dict[str, str]]]:
    out = []
    for p in backend.profiles(tenant):
        ids = {k: p[k] for k in ("tntId", "thirdPartyId", "marketingCloudVisitorId") if p[k] is not None}
        out.append((ids, p["attributes"]))
    return sorted(out, key=repr)


Sender = Callable[[HttpRequest], HttpResponse]
