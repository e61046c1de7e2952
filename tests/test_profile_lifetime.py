"""Profiles expire after 14 days without activity on the fake's clock (configurable), lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from flask.testing import FlaskClient
from target_profile_mock.mockserver import MockBackend
from werkzeug.test import TestResponse

pytestmark = pytest.mark.both_stores

if TYPE_CHECKING:
    from bulk_client import BulkClient

DAY = 86_400.0
NOT_FOUND = b'{"status" : 404, "message" : "No profile found for client acme with third party id=c-1"}'


@pytest.fixture
def seeded(backend: MockBackend) -> MockBackend:
    backend.seed_profile("acme", tnt_id="1-1.28_0", third_party_id="c-1", attributes={"tier": "gold"})
    return backend


def fetch(client: FlaskClient, pid: str = "c-1") -> TestResponse:
    return client.get(f"/rest/v1/profiles/thirdPartyId/{pid}?client=acme")


def test_alive_until_fourteen_idle_days_then_the_documented_404(client: FlaskClient, seeded: MockBackend) -> None:
    seeded.advance(14 * DAY - 1)
    assert fetch(client).status_code == 200
    seeded.advance(1)
    r = fetch(client)
    assert r.status_code == 404 and r.data == NOT_FOUND
    assert client.get("/rest/v1/profiles/1-1?client=acme").status_code == 404  # gone under every id
    assert seeded.profiles("acme") == []


def test_a_fetch_is_not_activity(client: FlaskClient, seeded: MockBackend) -> None:
    seeded.advance(10 * DAY)
    assert fetch(client).status_code == 200
    seeded.advance(4 * DAY)
    assert fetch(client).status_code == 404


def test_an_update_is_activity(client: FlaskClient, seeded: MockBackend) -> None:
    seeded.advance(10 * DAY)
    assert client.get("/m2/acme/profile/update?mbox3rdPartyId=c-1&profile.tier=silver").status_code == 200
    seeded.advance(10 * DAY)
    assert fetch(client).json["profileAttributes"]["tier"]["value"] == "silver"


def test_single_update_to_an_expired_profile_changes_nothing(client: FlaskClient, seeded: MockBackend) -> None:
    seeded.advance(15 * DAY)
    r = client.get("/m2/acme/profile/update?mbox3rdPartyId=c-1&profile.tier=silver")
    assert r.status_code == 200 and b"<success>true</success>" in r.data  # as for any unknown visitor
    assert seeded.profiles("acme") == []


def test_v1_batch_counts_an_expired_profile_as_not_found(seeded: MockBackend, bulk: BulkClient) -> None:
    seeded.advance(15 * DAY)
    sub = bulk.submit(b"batch=thirdPartyId,tier\nc-1,silver\n", version=1, tenant="acme")
    bulk.status(sub.status_url)
    body = bulk.status(sub.status_url, details=True)
    assert body.counters["profilesNotFound"] == 1 and body.counters["successfulUpdates"] == 0


def test_v2_batch_after_expiry_starts_a_new_profile(seeded: MockBackend, bulk: BulkClient) -> None:
    seeded.advance(15 * DAY)
    bulk.apply(b"batch=thirdPartyId,plan\nc-1,pro\n", version=2, tenant="acme")
    p = seeded.get_profile("acme", "thirdPartyId", "c-1")
    assert p is not None and p["attributes"] == {"plan": "pro"} and p["tntId"] is None  # nothing of the old one


def test_lifetime_is_configurable_server_wide_and_per_tenant(client: FlaskClient, seeded: MockBackend) -> None:
    seeded.configure("acme", profile_lifetime=90 * DAY)
    seeded.advance(89 * DAY)
    assert fetch(client).status_code == 200
    seeded.advance(1 * DAY)
    assert fetch(client).status_code == 404
    seeded.configure(profile_lifetime=None)  # server-wide: never expire
    seeded.seed_profile("other", third_party_id="x")
    seeded.advance(3650 * DAY)
    assert seeded.get_profile("other", "thirdPartyId", "x") is not None


def test_lifetime_setting_is_checked(backend: MockBackend) -> None:
    from target_profile_mock.mockserver.backend import ControlError

    with pytest.raises(ControlError, match="profile_lifetime takes a number of seconds"):
        backend.configure(profile_lifetime="14d")


def test_control_api_expires_and_deletes_one_profile(client: FlaskClient, seeded: MockBackend) -> None:
    seeded.seed_profile("acme", third_party_id="c-2")
    r = client.post("/_mock/tenants/acme/expire/tntId/1-1")
    assert r.status_code == 200 and r.json["thirdPartyId"] == "c-1"
    assert fetch(client).status_code == 404
    r = client.delete("/_mock/tenants/acme/profiles/thirdPartyId/c-2")
    assert r.status_code == 200
    assert fetch(client, "c-2").status_code == 404
    r = client.delete("/_mock/tenants/acme/profiles/thirdPartyId/c-2")
    assert r.status_code == 404 and "no profile with thirdPartyId 'c-2'" in r.json["error"]


def test_batch_created_profiles_age_from_the_batch(backend: MockBackend, bulk: BulkClient) -> None:
    bulk.apply(b"batch=thirdPartyId,tier\nn-1,a\nn-2,b\n", version=2, tenant="acme")
    backend.advance(14 * DAY)
    assert backend.get_profile("acme", "thirdPartyId", "n-1") is None
    assert backend.profiles("acme") == []
