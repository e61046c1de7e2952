"""Login: a visit bringing a thirdPartyId with a tntId connects them; the customer's values win."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from flask.testing import FlaskClient
from target_profile_mock.mockserver import MockBackend

pytestmark = pytest.mark.both_stores

if TYPE_CHECKING:
    from bulk_client import BulkClient

URL = "/rest/v1/delivery?client=acme&sessionId=s-1"


def visit(client: FlaskClient, params: dict[str, str] | None = None, **ids: str) -> dict:
    body: dict = {"context": {"channel": "web"}, "id": ids}
    if params:
        body["execute"] = {"mboxes": [{"index": 1, "name": "home", "profileParameters": params}]}
    r = client.post(URL, json=body)
    assert r.status_code == 200, r.data
    return r.json


def fetch(client: FlaskClient, path: str) -> dict | None:
    r = client.get(f"/rest/v1/profiles/{path}?client=acme")
    return r.json["profileAttributes"] if r.status_code == 200 else None


def test_login_merges_the_device_into_the_customer_profile(client: FlaskClient, backend: MockBackend) -> None:
    backend.seed_profile("acme", third_party_id="c-1", attributes={"tier": "gold", "crm": "yes"})
    tnt = visit(client, {"tier": "anon", "seen": "home"})["id"]["tntId"]
    answer = visit(client, tntId=tnt, thirdPartyId="c-1")
    assert answer["id"] == {"tntId": tnt, "thirdPartyId": "c-1"}
    by_customer, by_device = fetch(client, "thirdPartyId/c-1"), fetch(client, tnt)
    assert by_customer == by_device
    assert {k: v["value"] for k, v in by_customer.items()} == {"tier": "gold", "crm": "yes", "seen": "home"}
    assert len(backend.profiles("acme")) == 1


def test_first_login_of_a_new_customer_names_the_device_profile(client: FlaskClient, backend: MockBackend) -> None:
    tnt = visit(client, {"seen": "home"})["id"]["tntId"]
    visit(client, tntId=tnt.partition(".")[0], thirdPartyId="c-9")
    assert fetch(client, "thirdPartyId/c-9") == fetch(client, tnt)
    assert backend.get_profile("acme", "thirdPartyId", "c-9")["tntId"] == tnt  # the hint is kept


def test_after_login_single_and_bulk_updates_by_third_party_id_reach_the_visitor(
        client: FlaskClient, backend: MockBackend, bulk: BulkClient) -> None:
    tnt = visit(client)["id"]["tntId"]
    visit(client, tntId=tnt, thirdPartyId="c-1")
    assert client.get("/m2/acme/profile/update?mbox3rdPartyId=c-1&profile.tier=silver").status_code == 200
    sub = bulk.submit(b"batch=thirdPartyId,plan\nc-1,pro\n", version=1, tenant="acme")
    bulk.status(sub.status_url)
    assert bulk.status(sub.status_url, details=True).counters["successfulUpdates"] == 1
    assert {k: v["value"] for k, v in fetch(client, tnt).items()} == {"tier": "silver", "plan": "pro"}


def test_a_visit_with_only_a_third_party_id_gets_the_customers_tnt_id(client: FlaskClient,
                                                                       backend: MockBackend) -> None:
    first = visit(client, thirdPartyId="c-1")["id"]
    assert first["thirdPartyId"] == "c-1" and first["tntId"].endswith(".28_0")
    assert visit(client, thirdPartyId="c-1")["id"]["tntId"] == first["tntId"]
    backend.seed_profile("acme", third_party_id="c-2")  # e.g. created by a v2 batch: no tntId yet
    issued = visit(client, thirdPartyId="c-2")["id"]["tntId"]
    assert backend.get_profile("acme", "tntId", issued)["thirdPartyId"] == "c-2"


def test_the_sync_delay_switch_keeps_the_profiles_apart_until_it_passes(client: FlaskClient,
                                                                        backend: MockBackend) -> None:
    backend.configure(login_sync_delay=300)
    backend.seed_profile("acme", third_party_id="c-1", attributes={"tier": "gold"})
    tnt = visit(client, {"seen": "home"})["id"]["tntId"]
    visit(client, tntId=tnt, thirdPartyId="c-1")
    assert set(fetch(client, "thirdPartyId/c-1")) == {"tier"}
    assert set(fetch(client, tnt)) == {"seen"}
    backend.advance(299)
    assert set(fetch(client, "thirdPartyId/c-1")) == {"tier"}
    backend.advance(1)
    assert set(fetch(client, "thirdPartyId/c-1")) == {"tier", "seen"} and fetch(client, tnt) is not None
    assert len(backend.profiles("acme")) == 1


def test_an_ecid_names_the_same_profile(client: FlaskClient, backend: MockBackend) -> None:
    tnt = visit(client, marketingCloudVisitorId="1052783738")["id"]["tntId"]
    assert visit(client, marketingCloudVisitorId="1052783738")["id"]["tntId"] == tnt
    assert fetch(client, "marketingCloudVisitorId/1052783738") == fetch(client, tnt)
