"""Adobe's Python SDK (target-python-sdk, the ``sdk`` extra) against the standalone server, over a real socket:
a visit creates a profile the Profile APIs then fetch, update and, after 14 idle days, no longer find."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from target_profile_mock.mockserver import MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.server import LiveServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the SDK imports pkg_resources, which warns that it is deprecated
    sdk = pytest.importorskip("target_python_sdk")
    api = pytest.importorskip("delivery_api_client")


@pytest.fixture(autouse=True)
def _fresh_sdk_host() -> None:
    # target-python-sdk 1.1.0 keeps the first Configuration (and so the first host) it makes for the whole
    # process; without this, a client made earlier in the session decides where this one's calls go
    api.Configuration.set_default(None)


@pytest.fixture
def server() -> Iterator[tuple[LiveServer, MockBackend]]:
    backend = MockBackend(MockConfig(client_code="acme"))  # the SDK names the organisation, not the client
    backend.clock.freeze()
    live = LiveServer(create_app(backend), "127.0.0.1", 0).start()
    try:
        yield live, backend
    finally:
        live.stop()


def _visit(client: Any, ids: Any = None, params: dict[str, str] | None = None) -> dict[str, Any]:
    mbox = api.MboxRequest(index=1, name="home", profile_parameters=params)
    request = api.DeliveryRequest(context=api.Context(channel=api.ChannelType.WEB), id=ids,
                                  execute=api.ExecuteRequest(mboxes=[mbox]))
    return client.get_offers({"request": request})["response"].to_dict()


def test_a_visit_through_the_sdk_lives_as_a_profile(server: tuple[LiveServer, MockBackend]) -> None:
    live, backend = server
    host = live.url.split("://", 1)[1]
    client = sdk.TargetClient.create({"client": "acme", "organization_id": "0123456789@AdobeOrg",
                                      "server_domain": host, "secure": False, "timeout": 10000})
    first = _visit(client, params={"tier": "gold"})
    tnt = first["id"]["tnt_id"]
    assert tnt.endswith(".28_0") and first["client"] == "acme" and first["status"] == 200
    assert first["execute"]["mboxes"][0]["name"] == "home" and first["execute"]["mboxes"][0]["options"] is None
    entry = backend.journal.entries()[-1]
    assert entry.operation == "delivery" and entry.violations == []
    for asked in (tnt, tnt.partition(".")[0]):
        r = requests.get(f"{live.url}/rest/v1/profiles/{asked}?client=acme", timeout=5)
        assert r.status_code == 200 and r.json()["profileAttributes"]["tier"]["value"] == "gold"
    second = _visit(client, api.VisitorId(tnt_id=tnt, third_party_id="c-1"))  # login
    assert second["id"]["tnt_id"] == tnt and second["id"]["third_party_id"] == "c-1"
    r = requests.post(f"{live.url}/m2/acme/profile/update?mbox3rdPartyId=c-1&profile.plan=pro", timeout=5)
    assert r.status_code == 200
    body = requests.get(f"{live.url}/rest/v1/profiles/thirdPartyId/c-1?client=acme", timeout=5).json()
    assert {k: v["value"] for k, v in body["profileAttributes"].items()} == {"tier": "gold", "plan": "pro"}
    requests.post(f"{live.url}/_mock/clock", json={"advance": 14 * 86_400}, timeout=5).raise_for_status()
    r = requests.get(f"{live.url}/rest/v1/profiles/thirdPartyId/c-1?client=acme", timeout=5)
    assert r.status_code == 404 and "third party id=c-1" in r.json()["message"]
