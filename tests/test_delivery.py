"""The Delivery API's profile-relevant part: visits create and update profiles, contract errors as rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from target_profile_mock.contracts.delivery import parse_delivery
from target_profile_mock.contracts.ids import TNT_ID_RE
from target_profile_mock.mockserver import MockBackend
from werkzeug.test import TestResponse

pytestmark = pytest.mark.both_stores

URL = "/rest/v1/delivery?client=acme&sessionId=s-1"
DAY = 86_400.0


def visit(client: FlaskClient, body: dict[str, Any] | None = None, *, url: str = URL, **ids: str) -> TestResponse:
    doc = {"context": {"channel": "web"}, **(body or {})}
    if ids:
        doc["id"] = ids
    return client.post(url, json=doc)


def test_a_visit_without_id_creates_a_profile_and_issues_a_hinted_tnt_id(client: FlaskClient,
                                                                          backend: MockBackend) -> None:
    r = visit(client, {"execute": {"mboxes": [{"index": 1, "name": "home",
                                                "profileParameters": {"tier": "gold"}}]}})
    assert r.status_code == 200 and r.mimetype == "application/json"
    body = r.json
    assert list(body) == ["status", "requestId", "client", "id", "edgeHost", "execute"]
    assert body["status"] == 200 and body["client"] == "acme"
    tnt = body["id"]["tntId"]
    assert TNT_ID_RE.match(tnt) and tnt.endswith(".28_0") and len(tnt.partition(".")[0]) == 32
    assert body["edgeHost"] == "mboxedge28.tt.omtrdc.net"
    assert body["execute"] == {"mboxes": [{"index": 1, "name": "home"}]}  # no activities: no options
    for asked in (tnt, tnt.partition(".")[0]):
        f = client.get(f"/rest/v1/profiles/{asked}?client=acme")
        assert f.status_code == 200 and f.json["profileAttributes"]["tier"]["value"] == "gold"


def test_a_visit_with_a_known_id_updates_it_and_answers_with_its_hint(client: FlaskClient,
                                                                      backend: MockBackend) -> None:
    backend.seed_profile("acme", tnt_id="1368007744041-575948.17_05", attributes={"a": "1"})
    r = visit(client, {"execute": {"pageLoad": {"profileParameters": {"b": "2"}}}}, tntId="1368007744041-575948")
    assert r.json["id"]["tntId"] == "1368007744041-575948.17_05"
    assert r.json["edgeHost"] == "mboxedge17.tt.omtrdc.net"
    assert r.json["execute"] == {"pageLoad": {}}
    assert backend.get_profile("acme", "tntId", "1368007744041-575948")["attributes"] == {"a": "1", "b": "2"}
    assert len(backend.profiles("acme")) == 1


def test_a_visit_to_a_profile_seeded_without_a_hint_answers_with_one(client: FlaskClient,
                                                                      backend: MockBackend) -> None:
    backend.seed_profile("acme", tnt_id="1600000000000-100000", attributes={"a": "1"})
    r = visit(client, tntId="1600000000000-100000")
    assert r.json["id"]["tntId"] == "1600000000000-100000.28_0"
    assert backend.get_profile("acme", "tntId", "1600000000000-100000")["tntId"] == "1600000000000-100000.28_0"
    assert len(backend.profiles("acme")) == 1


def test_an_unknown_tnt_id_starts_a_profile_under_that_id(client: FlaskClient, backend: MockBackend) -> None:
    r = visit(client, tntId="1368007744041-575948")
    assert r.json["id"]["tntId"] == "1368007744041-575948.28_0"
    assert backend.get_profile("acme", "tntId", "1368007744041-575948") is not None


def test_prefetch_views_and_request_id_are_answered(client: FlaskClient) -> None:
    r = visit(client, {"requestId": "r-1", "prefetch": {"views": [{"name": "cart"}], "pageLoad": {},
                                                         "mboxes": [{"index": 2, "name": "x"}]}})
    assert r.json["requestId"] == "r-1"
    assert r.json["prefetch"] == {"views": [{"name": "cart"}], "pageLoad": {}, "mboxes": [{"index": 2, "name": "x"}]}


def test_configured_offers_come_back_as_options(client: FlaskClient, backend: MockBackend) -> None:
    r = client.put("/_mock/tenants/acme/offers/home", json={"content": {"hero": "summer"}})
    assert r.status_code == 200 and r.json == {"home": {"type": "json", "content": {"hero": "summer"}}}
    r = visit(client, {"execute": {"mboxes": [{"index": 1, "name": "home"}, {"index": 2, "name": "other"}]}})
    assert r.json["execute"]["mboxes"] == [
        {"index": 1, "name": "home", "options": [{"type": "json", "content": {"hero": "summer"}}]},
        {"index": 2, "name": "other"}]
    assert client.delete("/_mock/tenants/acme/offers/home").json == {}
    assert client.put("/_mock/tenants/acme/offers/home", json={"content": 1, "type": "xml"}).status_code == 400


def test_expired_visitor_starts_a_new_profile(client: FlaskClient, backend: MockBackend) -> None:
    tnt = visit(client, {"execute": {"pageLoad": {"profileParameters": {"tier": "gold"}}}}).json["id"]["tntId"]
    backend.advance(14 * DAY)
    assert client.get(f"/rest/v1/profiles/{tnt}?client=acme").status_code == 404
    again = visit(client, tntId=tnt).json
    assert again["id"]["tntId"] == tnt
    assert backend.get_profile("acme", "tntId", tnt)["attributes"] == {}


def test_a_visit_is_activity(client: FlaskClient, backend: MockBackend) -> None:
    tnt = visit(client).json["id"]["tntId"]
    backend.advance(13 * DAY)
    visit(client, tntId=tnt)
    backend.advance(13 * DAY)
    assert client.get(f"/rest/v1/profiles/{tnt}?client=acme").status_code == 200


@pytest.mark.parametrize(("url", "body", "status", "rule_id"), [
    ("/rest/v1/delivery?client=acme", {"context": {"channel": "web"}}, 400, "delivery.session-id"),
    ("/rest/v1/delivery?client=acme&sessionId=a/b", {"context": {"channel": "web"}}, 400, "delivery.session-id"),
    (URL, {}, 400, "delivery.context"),
    (URL, {"context": {}}, 400, "delivery.context"),
    (URL, {"context": {"channel": "tv"}}, 400, "delivery.channel"),
    (URL, [1], 400, "delivery.json-body"),
    (URL, {"context": {"channel": "web"}, "id": {"thirdPartyId": "a+b"}}, 400, "id.third-party-chars"),
    (URL, {"context": {"channel": "web"}, "id": {"tntId": "1" * 129}}, 400, "delivery.id-length"),
    (URL, {"context": {"channel": "web"}, "id": {"customerIds": [{"id": "1", "integrationCode": "crm",
                                                                   "authenticatedState": "authenticated"}]}},
     400, "delivery.customer-ids-without-ecid"),
    (URL, {"context": {"channel": "web"}, "id": {"marketingCloudVisitorId": "1", "customerIds": [{"id": "1"}]}},
     400, "delivery.customer-id"),
    (URL, {"context": {"channel": "web"}, "execute": {"mboxes": [{"index": 1}]}}, 400, "delivery.mbox-name"),
    (URL, {"context": {"channel": "web"}, "execute": {"mboxes": [
        {"name": "a", "profileParameters": {f"p{i}": "v" for i in range(51)}}]}}, 400, "delivery.parameter-count"),
    (URL, {"context": {"channel": "web"}, "execute": {"mboxes": [
        {"name": "a", "profileParameters": {"profile.tier": "v"}}]}}, 400, "delivery.profile-prefix"),
    (URL, {"context": {"channel": "web"}, "execute": {"mboxes": [
        {"name": "a", "profileParameters": {" ": "v"}}]}}, 400, "delivery.parameter-name"),
    (URL, {"context": {"channel": "web"}, "execute": {"mboxes": [
        {"name": "a", "profileParameters": {"x" * 129: "v"}}]}}, 400, "delivery.parameter-name"),
    (URL, {"context": {"channel": "web"}, "execute": {"mboxes": [
        {"name": "a", "profileParameters": {"tier": None}}]}}, 400, "delivery.parameter-value"),
    (URL, {"context": {"channel": "web"}, "execute": {"mboxes": [
        {"name": "a", "profileParameters": {"tier": "v" * 257}}]}}, 400, "delivery.profile-value-length"),
    (URL, {"context": {"channel": "web"}, "execute": {"mboxes": [
        {"name": "a", "parameters": {"orderId": "1"}}]}}, 400, "delivery.reserved-parameter"),
    (URL, {"context": {"channel": "web"}, "execute": {"mboxes": [
        {"name": "a", "parameters": {"x": "v" * 5001}}]}}, 400, "delivery.parameter-value"),
])
def test_contract_errors_answer_with_their_rule(client: FlaskClient, backend: MockBackend, url: str, body: Any,
                                                 status: int, rule_id: str) -> None:
    r = client.post(url, json=body)
    assert r.status_code == status, r.data
    assert r.json["status"] == status and r.json["message"].startswith(f"[{rule_id}]"), r.json
    assert backend.profiles("acme") == []  # nothing refused is half-applied


def test_a_broken_json_body_and_other_methods(client: FlaskClient) -> None:
    r = client.post(URL, data=b"{not json", content_type="application/json")
    assert r.status_code == 400 and r.json["message"].startswith("[delivery.json-body]")
    r = client.get(URL)
    assert r.status_code == 405 and r.json["message"].startswith("[delivery.method]")


def test_deviations_are_recorded_not_refused(client: FlaskClient, backend: MockBackend) -> None:
    r = client.post("/rest/v1/delivery?sessionId=s", data=b'{"context": {"channel": "web"}, "execute": {"mboxes": '
                    b'[{"index": 1, "name": "a", "profileParameters": {"visits": 3}}, {"index": 1, "name": "b"}]}}',
                    content_type="text/plain")
    assert r.status_code == 200
    entry = backend.journal.entries()[-1]
    assert entry.operation == "delivery" and entry.tenant == "demo"
    assert sorted(v.rule_id for v in entry.violations) == [
        "delivery.content-type", "delivery.mbox-index", "delivery.missing-client", "delivery.parameter-type"]
    assert backend.get_profile("demo", "tntId", r.json["id"]["tntId"])["attributes"] == {"visits": "3"}


def test_the_client_comes_from_the_host_and_sdks_imsorgid_is_no_deviation(client: FlaskClient,
                                                                          backend: MockBackend) -> None:
    r = client.post("/rest/v1/delivery?sessionId=s", json={"context": {"channel": "web"}},
                    headers={"Host": "acme.tt.omtrdc.net"})
    assert r.json["client"] == "acme"
    r = client.post("/rest/v1/delivery?imsOrgId=ORG%40AdobeOrg&sessionId=s&version=2.4.0",
                    json={"context": {"channel": "web"}})
    assert r.status_code == 200 and r.json["client"] == "demo"
    assert backend.journal.entries()[-1].violations == []


def test_faults_apply_to_the_delivery_operation(client: FlaskClient, backend: MockBackend) -> None:
    backend.faults.add(503, operation="delivery")
    r = visit(client)
    assert r.status_code == 503 and r.json["status"] == 503
    assert backend.profiles("acme") == []


def test_the_issued_hint_and_the_login_delay_are_settings(client: FlaskClient, backend: MockBackend) -> None:
    r = client.put("/_mock/settings", json={"location_hint": "35_0", "login_sync_delay": 600})
    assert r.status_code == 200 and r.json["location_hint"] == "35_0" and r.json["login_sync_delay"] == 600
    answer = visit(client).json
    assert answer["id"]["tntId"].endswith(".35_0") and answer["edgeHost"] == "mboxedge35.tt.omtrdc.net"
    r = client.put("/_mock/settings", json={"location_hint": "mboxedge35"})
    assert r.status_code == 400 and "location_hint takes a location hint such as '28_0'" in r.json["error"]
    r = client.put("/_mock/settings", json={"tenant": "acme", "profile_lifetime": 90 * DAY})
    assert r.status_code == 200 and r.json["profile_lifetime"] == 90 * DAY


def test_a_visit_past_the_64_kb_profile_data_limit_is_recorded(client: FlaskClient, backend: MockBackend) -> None:
    backend.seed_profile("acme", tnt_id="1-1.28_0", attributes={f"a{i}": "x" * 1000 for i in range(66)})
    r = visit(client, {"execute": {"pageLoad": {"profileParameters": {"tier": "gold"}}}}, tntId="1-1")
    assert r.status_code == 200
    assert [v.rule_id for v in backend.journal.entries()[-1].violations] == ["profile.size"]


@pytest.mark.parametrize(("part", "where", "rule_id"), [
    ({"id": {"marketingCloudVisitorId": "1", "customerIds": {"id": "1"}}}, "id.customerIds", "delivery.customer-id"),
    ({"id": {"marketingCloudVisitorId": "1", "customerIds": ["1"]}}, "id.customerIds[0]", "delivery.customer-id"),
    ({"execute": {"mboxes": {"name": "a"}}}, "execute.mboxes", "delivery.field"),
    ({"execute": {"mboxes": [{"name": "a"}, "b"]}}, "execute.mboxes[1]", "delivery.field"),
    ({"prefetch": {"views": "home"}}, "prefetch.views", "delivery.field"),
    ({"prefetch": {"views": [{}, {}, 3]}}, "prefetch.views[2]", "delivery.field"),
])
def test_a_list_of_objects_that_is_not_one_names_where(part: dict[str, Any], where: str, rule_id: str) -> None:
    body = json.dumps({"context": {"channel": "web"}, **part}).encode()
    parsed = parse_delivery("client=acme&sessionId=s1", body)
    kind = "a list" if where[-1] != "]" else "an object"
    assert [(v.rule_id, v.where, v.detail) for v in parsed.errors] == [(rule_id, where, f"{where} must be {kind}")]
