"""Profile fetch over HTTP: ``/rest/v1/profiles/...?client=<code>`` in the documented JSON shape."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from flask.testing import FlaskClient
from target_profile_mock.mockserver import MockBackend

pytestmark = pytest.mark.both_stores

if TYPE_CHECKING:
    from bulk_client import BulkClient

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$")
TNT = "1368007744041-575948.01_00"


@pytest.fixture
def seeded(backend: MockBackend) -> MockBackend:
    backend.seed_profile("acme", tnt_id=TNT, third_party_id="a1-mbox3rdPartyId", ecid="12345678901234567890",
                         attributes={"insurance": False, "visits": 3, "param1": "value1"})
    return backend


def check_shape(body: dict, client: str, visitor_id: str) -> None:
    assert list(body) == ["client", "visitorId", "modifiedAt", "profileAttributes"]
    assert body["client"] == client and body["visitorId"] == visitor_id
    assert ISO_MS.match(body["modifiedAt"])
    for name, attr in body["profileAttributes"].items():
        assert set(attr) == {"value", "modifiedAt"}, name
        assert isinstance(attr["value"], str), name  # values are always strings
        assert ISO_MS.match(attr["modifiedAt"]), name


@pytest.mark.parametrize(("path", "visitor_id"), [
    (f"/rest/v1/profiles/{TNT}", TNT),
    ("/rest/v1/profiles/thirdPartyId/a1-mbox3rdPartyId", "a1-mbox3rdPartyId"),
    ("/rest/v1/profiles/marketingCloudVisitorId/12345678901234567890", "12345678901234567890"),
])
def test_fetch_by_each_id_in_the_documented_shape(client: FlaskClient, seeded: MockBackend, path: str,
                                                  visitor_id: str) -> None:
    r = client.get(f"{path}?client=acme")
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    body = r.get_json()
    check_shape(body, "acme", visitor_id)
    assert {k: v["value"] for k, v in body["profileAttributes"].items()} == {
        "insurance": "false", "visits": "3", "param1": "value1"}
    entry = seeded.journal.entries()[-1]
    assert entry.operation == "fetch" and entry.tenant == "acme" and entry.violations == []


def test_profile_with_tnt_and_third_party_id_is_found_by_either(client: FlaskClient, seeded: MockBackend) -> None:
    by_tnt = client.get(f"/rest/v1/profiles/{TNT}?client=acme").get_json()
    by_3p = client.get("/rest/v1/profiles/thirdPartyId/a1-mbox3rdPartyId?client=acme").get_json()
    assert by_tnt["profileAttributes"] == by_3p["profileAttributes"]
    assert (by_tnt["visitorId"], by_3p["visitorId"]) == (TNT, "a1-mbox3rdPartyId")


def test_an_update_by_one_id_is_visible_by_the_other(client: FlaskClient, seeded: MockBackend) -> None:
    seeded.advance(5)
    assert client.get("/m2/acme/profile/update?mbox3rdPartyId=a1-mbox3rdPartyId&profile.tier=2").status_code == 200
    body = client.get(f"/rest/v1/profiles/{TNT}?client=acme").get_json()
    assert body["profileAttributes"]["tier"]["value"] == "2"
    assert body["modifiedAt"] == body["profileAttributes"]["tier"]["modifiedAt"]
    assert body["profileAttributes"]["tier"]["modifiedAt"] > body["profileAttributes"]["param1"]["modifiedAt"]


def test_timestamps_follow_the_fake_clock(client: FlaskClient, backend: MockBackend) -> None:
    backend.clock.freeze(1503078819.003)
    backend.seed_profile("acme", third_party_id="t", attributes={"a": "1"})
    body = client.get("/rest/v1/profiles/thirdPartyId/t?client=acme").get_json()
    assert body["modifiedAt"] == "2017-08-18T17:53:39.003+00:00"
    assert body["profileAttributes"]["a"] == {"value": "1", "modifiedAt": "2017-08-18T17:53:39.003+00:00"}


def test_fetch_does_not_apply_the_profile_prefix(client: FlaskClient, seeded: MockBackend) -> None:
    client.get("/m2/acme/profile/update?mbox3rdPartyId=a1-mbox3rdPartyId&profile.address.city=Oslo")
    attrs = client.get("/rest/v1/profiles/thirdPartyId/a1-mbox3rdPartyId?client=acme").get_json()[
        "profileAttributes"]
    assert "address.city" in attrs and not any(k.startswith("profile.") for k in attrs)


def test_not_found_by_third_party_id_is_verbatim(client: FlaskClient, seeded: MockBackend) -> None:
    r = client.get("/rest/v1/profiles/thirdPartyId/nobody?client=acme")
    assert r.status_code == 404
    assert r.mimetype == "application/json"
    assert r.data == b'{"status" : 404, "message" : "No profile found for client acme with third party id=nobody"}'


def test_not_found_by_tnt_id_is_verbatim(client: FlaskClient, seeded: MockBackend) -> None:
    r = client.get("/rest/v1/profiles/1-2?client=acme")
    assert r.status_code == 404
    assert r.data == b'{"status" : 404, "message" : "No profile found for client acme with mboxPC=1-2"}'


def test_not_found_by_ecid(client: FlaskClient, seeded: MockBackend) -> None:
    r = client.get("/rest/v1/profiles/marketingCloudVisitorId/999?client=acme")
    assert r.status_code == 404
    assert r.get_json()["message"] == "No profile found for client acme with marketingCloudVisitorId=999"


def test_fetch_ids_are_url_decoded(client: FlaskClient, backend: MockBackend) -> None:
    backend.seed_profile("acme", third_party_id="a b@é", attributes={"x": "1"})
    r = client.get("/rest/v1/profiles/thirdPartyId/a%20b%40%C3%A9?client=acme")
    assert r.status_code == 200 and r.get_json()["visitorId"] == "a b@é"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_fetch_is_get_only(client: FlaskClient, seeded: MockBackend, method: str) -> None:
    r = client.open(f"/rest/v1/profiles/{TNT}?client=acme", method=method)
    assert r.status_code == 405
    assert "[fetch.method]" in r.get_json()["message"]


def test_fetch_counts_nothing_and_changes_nothing(client: FlaskClient, seeded: MockBackend) -> None:
    before = seeded.profiles("acme")
    for _ in range(3):
        client.get("/rest/v1/profiles/thirdPartyId/nobody?client=acme")
        client.get(f"/rest/v1/profiles/{TNT}?client=acme")
    assert seeded.profiles("acme") == before


@pytest.mark.parametrize("path", ["/rest/v1/profiles/thirdPartyId/u1", "/acme/target/authentication/token",
                                  "/m2/acme/profile/batchStatus", "/m2/acme/profile/update"])
def test_raw_bytes_that_are_not_utf8_in_the_query_never_get_a_500(client: FlaskClient, path: str) -> None:
    # a client that does not percent-encode Latin-1 text sends such bytes
    r = client.get(path, environ_overrides={"QUERY_STRING": "client=acme&x=\xe9t\xe9&scope=\xff"})
    assert 400 <= r.status_code < 500, r.data


def test_a_profile_without_attributes_was_modified_when_it_was_created(client: FlaskClient, backend: MockBackend,
                                                                        bulk: BulkClient) -> None:
    # undocumented: the fake reports its creation, not the epoch (docs/fidelity.md, Profile fetch)
    backend.clock.freeze(1503078819.003)
    backend.seed_profile("demo", third_party_id="seeded")
    sub = bulk.submit(b"batch=thirdPartyId,a\nfrom-batch,\nother,1\n")  # (a batch of only empty cells is skipped)
    backend.clock.advance(60)
    assert [bulk.status(sub.status_url).status for _ in range(2)][-1] == "complete"  # polls=1: the 2nd completes
    seeded = client.get("/rest/v1/profiles/thirdPartyId/seeded?client=demo").get_json()
    assert (seeded["modifiedAt"], seeded["profileAttributes"]) == ("2017-08-18T17:53:39.003+00:00", {})
    # the batch applied its rows, and so created the profile, when it completed a minute later
    created = client.get("/rest/v1/profiles/thirdPartyId/from-batch?client=demo").get_json()
    assert (created["modifiedAt"], created["profileAttributes"]) == ("2017-08-18T17:54:39.003+00:00", {})
    # an attribute written later moves it on
    backend.clock.advance(60)
    backend.seed_profile("demo", third_party_id="seeded", attributes={"a": "1"})
    assert client.get("/rest/v1/profiles/thirdPartyId/seeded?client=demo").get_json()["modifiedAt"] == \
        "2017-08-18T17:55:39.003+00:00"
