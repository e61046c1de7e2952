"""The HTTP control API under /_mock/ (docs/control-api.md): every route, its errors, and the token lock."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app

pytestmark = pytest.mark.both_stores

BODY = b"batch=thirdPartyId,a\nc1,x\nc2,y\n"
DOC = Path(__file__).resolve().parent.parent / "docs" / "control-api.md"


def test_health(client):
    r = client.get("/_mock/health")
    assert r.status_code == 200 and r.get_json()["status"] == "ok"


# --- reset ---------------------------------------------------------------------------------------------
def test_reset_everything(bulk, client, backend):
    bulk.submit(BODY)
    bulk.submit(BODY, tenant="acme")
    r = client.post("/_mock/reset")
    assert r.status_code == 200 and r.get_json() == {"reset": "all"}
    assert client.get("/_mock/tenants").get_json() == []
    assert client.get("/_mock/batches").get_json() == []
    assert client.get("/_mock/journal").get_json() == []


@pytest.mark.parametrize("how", ["body", "query", "curl-d"])
def test_reset_one_tenant(bulk, client, backend, how):
    backend.seed_profile("acme", third_party_id="a1")
    backend.seed_profile("demo", third_party_id="d1")
    backend.configure("acme", bulk_calls_per_minute=1)
    sub = bulk.submit(BODY, tenant="acme")
    if how == "body":
        r = client.post("/_mock/reset", json={"tenant": "acme"})
    elif how == "query":
        r = client.post("/_mock/reset?tenant=acme")
    else:  # curl -d '{"tenant":"acme"}' sends the JSON as a form body
        r = client.post("/_mock/reset", data=b'{"tenant":"acme"}', content_type="application/x-www-form-urlencoded")
    assert r.get_json() == {"reset": "acme"}
    assert client.get("/_mock/tenants/acme/profiles").get_json() == []
    assert bulk.status_response(sub.status_url).status_code == 404
    assert client.get("/_mock/tenants/demo/profiles/thirdPartyId/d1").status_code == 200
    bulk.submit(BODY, tenant="acme")
    bulk.submit(BODY, tenant="acme")  # its per-tenant limit went with it


# --- profiles ----------------------------------------------------------------------------------------------
def test_seed_json_object_and_list_then_read(client):
    r = client.post("/_mock/tenants/demo/profiles",
                    json={"thirdPartyId": "c1", "tntId": "1700000000000-1.01_00", "attributes": {"a": "1", "n": 2}})
    assert r.status_code == 201 and r.get_json() == {"seeded": 1}
    r = client.post("/_mock/tenants/demo/profiles", json=[{"thirdPartyId": "c2"}, {"tntId": "1-2"}])
    assert r.get_json() == {"seeded": 2}
    one = client.get("/_mock/tenants/demo/profiles/tntId/1700000000000-1.01_00").get_json()
    assert one["thirdPartyId"] == "c1" and one["attributes"] == {"a": "1", "n": "2"}
    assert set(one["modifiedAt"]) == {"a", "n"}
    listed = client.get("/_mock/tenants/demo/profiles").get_json()
    assert sorted(p["thirdPartyId"] or p["tntId"] for p in listed) == ["1-2", "c1", "c2"]


def test_seed_csv(client):
    csv_text = "\ufeffthirdPartyId,tntId,tier,city\r\nc1,,gold,\r\n,1-1,,Basel\r\n"
    r = client.post("/_mock/tenants/demo/profiles", data=csv_text.encode(), content_type="text/csv")
    assert r.status_code == 201 and r.get_json() == {"seeded": 2}
    assert client.get("/_mock/tenants/demo/profiles/thirdPartyId/c1").get_json()["attributes"] == {"tier": "gold"}
    assert client.get("/_mock/tenants/demo/profiles/tntId/1-1").get_json()["attributes"] == {"city": "Basel"}


def test_seeded_profiles_are_what_v1_batches_update(bulk, client):
    client.post("/_mock/tenants/demo/profiles", json={"thirdPartyId": "c1", "attributes": {"keep": "me"}})
    sub = bulk.submit(BODY, version=1)
    bulk.status(sub.status_url)
    counters = bulk.status(sub.status_url, details=True).counters
    assert counters["successfulUpdates"] == 1 and counters["profilesNotFound"] == 1
    assert bulk.profile("thirdPartyId", "c1") == {"keep": "me", "a": "x"}


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"json": [{"thirdPartyId": "ok"}, {"attributes": {"a": "1"}}]}, "no tntId"),
    ({"json": [{"thirdPartyId": "ok"}, {"thirdPartyId": "c1", "colour": "red"}]},
     "profile 1 has unknown keys ['colour']; use tntId, thirdPartyId, marketingCloudVisitorId, attributes"),
    ({"json": [{"thirdPartyId": "ok"}, {"thirdPartyId": "c1", "attributes": ["a"]}]}, "attributes must be an object"),
    ({"json": "c1"}, "JSON profile object"),
    ({"data": b"{not json", "content_type": "application/json"}, "not valid JSON"),
    ({"data": b"email,tier\nx,gold\n", "content_type": "text/csv"}, "tntId, thirdPartyId"),
])
def test_seed_errors_are_400_and_seed_nothing(client, kwargs, needle):
    r = client.post("/_mock/tenants/demo/profiles", **kwargs)
    assert r.status_code == 400
    assert needle in r.get_json()["error"]
    assert client.get("/_mock/tenants/demo/profiles").get_json() == []


def test_seeding_is_all_or_nothing_when_ids_name_two_profiles(client, backend):
    backend.seed_profile("demo", third_party_id="c1", tnt_id="111-1")
    backend.seed_profile("demo", third_party_id="c2", tnt_id="222-2")
    r = client.post("/_mock/tenants/demo/profiles", json=[
        {"thirdPartyId": "new-1", "attributes": {"a": "1"}},
        {"thirdPartyId": "c1", "tntId": "222-2"},  # names two different existing profiles
    ])
    assert r.status_code == 400 and "nothing was seeded" in r.get_json()["error"]
    assert backend.get_profile("demo", "thirdPartyId", "new-1") is None


def test_seeding_conflict_with_a_profile_created_earlier_in_the_same_call(client, backend):
    backend.seed_profile("demo", tnt_id="222-2")
    r = client.post("/_mock/tenants/demo/profiles", json=[
        {"thirdPartyId": "x1", "marketingCloudVisitorId": "ecid-1"},
        {"marketingCloudVisitorId": "ecid-1", "tntId": "222-2"},
    ])
    assert r.status_code == 400
    assert backend.get_profile("demo", "thirdPartyId", "x1") is None


def test_seeding_with_a_non_string_id_is_400(client):
    r = client.post("/_mock/tenants/demo/profiles", json=[{"thirdPartyId": ["a", "b"]}])
    assert r.status_code == 400 and "thirdPartyId must be a string" in r.get_json()["error"]


def test_reads_never_create_a_tenant(client):
    assert client.get("/_mock/tenants/ghost/profiles").get_json() == []
    assert client.get("/_mock/tenants/ghost/profiles/thirdPartyId/x").status_code == 404
    assert client.get("/_mock/tenants/ghost/batches").get_json() == []
    assert client.get("/_mock/settings?tenant=ghost").status_code == 200
    assert client.get("/_mock/tenants").get_json() == []


def test_profile_read_errors(client):
    r = client.get("/_mock/tenants/demo/profiles/email/x")
    assert r.status_code == 404 and "unknown id kind" in r.get_json()["error"]
    r = client.get("/_mock/tenants/demo/profiles/thirdPartyId/nobody")
    assert r.status_code == 404 and "no profile" in r.get_json()["error"]


# --- batches -------------------------------------------------------------------------------------------------
def test_read_batches(bulk, client):
    sub = bulk.submit(BODY)
    other = bulk.submit(BODY, tenant="acme")
    one = client.get(f"/_mock/batches/{sub.batch_id}").get_json()
    assert one["batchId"] == sub.batch_id and one["tenant"] == "demo" and one["version"] == 2
    assert one["status"] == "incomplete" and one["statusUrl"] == sub.status_url
    assert one["rows"] == [{"thirdPartyId": "c1", "a": "x"}, {"thirdPartyId": "c2", "a": "y"}]
    assert one["batchSize"] == 2 and one["key"] == "thirdPartyId" and one["attributes"] == ["a"]
    assert [b["batchId"] for b in client.get("/_mock/tenants/demo/batches").get_json()] == [sub.batch_id]
    assert {b["batchId"] for b in client.get("/_mock/batches").get_json()} == {sub.batch_id, other.batch_id}
    r = client.get("/_mock/batches/demo-1-12345678")
    assert r.status_code == 404 and "no batch" in r.get_json()["error"]


def test_large_batches_keep_no_rows_for_inspection(bulk, client, backend):
    small = bulk.submit(b"batch=thirdPartyId,a\nc1,x\n")
    backend.configure(keep_rows_max=1)
    big = bulk.submit(BODY)
    for sub in (small, big):
        bulk.status(sub.status_url)
        assert bulk.status(sub.status_url).status == "complete"
    assert client.get(f"/_mock/batches/{small.batch_id}").get_json()["rows"] == [{"thirdPartyId": "c1", "a": "x"}]
    assert client.get(f"/_mock/batches/{big.batch_id}").get_json()["rows"] is None  # applied, then dropped
    assert bulk.profile("thirdPartyId", "c2") == {"a": "y"}


def test_force_and_lifecycle_routes(bulk, client):
    sub = bulk.submit(BODY)
    r = client.put(f"/_mock/batches/{sub.batch_id}/lifecycle", json={"lifecycle": "manual"})
    assert r.status_code == 200 and r.get_json()["lifecycle"] == "manual"
    r = client.put(f"/_mock/batches/{sub.batch_id}/lifecycle", json={"spec": "manual"})
    assert r.status_code == 400
    r = client.post(f"/_mock/batches/{sub.batch_id}/force", json={"status": "complete"})
    assert r.status_code == 200 and r.get_json()["counters"]["successfulUpdates"] == 2
    r = client.put("/_mock/batches/demo-1-12345678/lifecycle", json={"lifecycle": "manual"})
    assert r.status_code == 404


def test_server_and_tenant_lifecycle_route(client):
    r = client.put("/_mock/lifecycle", json={"lifecycle": "polls=3"})
    assert r.status_code == 200 and r.get_json()["lifecycle"] == "polls=3"
    r = client.put("/_mock/lifecycle", json={"lifecycle": "seconds=5,stuck", "tenant": "acme"})
    assert r.get_json()["lifecycle"] == "seconds=5,stuck"
    assert client.get("/_mock/settings").get_json()["lifecycle"] == "polls=3"
    assert client.get("/_mock/settings?tenant=acme").get_json()["lifecycle"] == "seconds=5,stuck"
    assert client.put("/_mock/lifecycle", json={"lifecycle": 3}).status_code == 400


# --- settings, clock, rate limits -------------------------------------------------------------------------------
def test_settings_round_trip(client):
    s = client.get("/_mock/settings").get_json()
    assert s["bulk_calls_per_minute"] == 50 and s["lifecycle"] == "polls=1" and "control_token" not in s
    r = client.put("/_mock/settings", json={"v2_profile_rows": "all", "status_host": "mboxedge19.tt.omtrdc.net"})
    assert r.status_code == 200 and r.get_json()["v2_profile_rows"] == "all"
    r = client.patch("/_mock/settings", json={"tenant": "acme", "auth": True})
    assert r.status_code == 200 and r.get_json()["auth"] is True
    assert client.get("/_mock/settings").get_json()["auth"] is False


@pytest.mark.parametrize(("body", "needle"), [
    ({"colour": "red"}, "unknown setting"),
    ({"tenant": "acme", "seed": 3}, "cannot be set per tenant"),
    ({"v2_profile_rows": "some"}, "v2_profile_rows"),
    ({"update_delay": "soon"}, "update_delay"),
    ({"lifecycle": "later"}, "lifecycle"),
])
def test_settings_errors_are_400(client, body, needle):
    r = client.put("/_mock/settings", json=body)
    assert r.status_code == 400 and needle in r.get_json()["error"]


def test_clock_freeze_advance_unfreeze(client, backend):
    r = client.post("/_mock/clock", json={"freeze": True, "at": 1_701_473_848.678})
    assert r.get_json() == {"now": 1_701_473_848.678, "nowMs": 1_701_473_848_678, "frozen": True}
    r = client.post("/_mock/clock", json={"advance": 60})
    assert r.get_json()["nowMs"] == 1_701_473_908_678
    assert client.get("/_mock/clock").get_json()["nowMs"] == 1_701_473_908_678
    r = client.post("/_mock/clock", json={"freeze": False})
    assert r.get_json()["frozen"] is False and r.get_json()["now"] >= 1_701_473_908.678


@pytest.mark.parametrize("body", [{"advance": -1}, {"advance": "soon"}, {"freeze": True, "at": "noon"}])
def test_clock_errors_are_400(client, body):
    r = client.post("/_mock/clock", json=body)
    assert r.status_code == 400 and r.get_json()["error"]


CENTURY = 100 * 365 * 86_400


def test_repeated_advances_stop_before_the_clock_leaves_the_renderable_range(client, backend):
    """Many allowed advances must not add up past year 9999, where every rendered timestamp would fail."""
    from target_profile_mock.mockserver.clock import MAX_EPOCH

    client.post("/_mock/clock", json={"freeze": True, "at": MAX_EPOCH - 1.5 * CENTURY})
    assert client.post("/_mock/clock", json={"advance": CENTURY}).status_code == 200
    before = client.get("/_mock/clock").get_json()
    r = client.post("/_mock/clock", json={"advance": CENTURY})
    assert r.status_code == 400 and "9000-01-01" in r.get_json()["error"]
    assert client.get("/_mock/clock").get_json() == before  # refused, not half-applied
    with pytest.raises(ValueError, match="9000-01-01"):
        backend.advance(CENTURY)
    # what used to fail with a 500: a profile written at the latest instant still renders
    assert client.post("/_mock/clock", json={"advance": MAX_EPOCH - before["now"]}).status_code == 200
    backend.seed_profile("demo", tnt_id="1000000000000-000001", attributes={"a": "1"})
    r = client.get("/_mock/tenants/demo/profiles")
    assert r.status_code == 200 and r.get_json()[0]["modifiedAt"]["a"].startswith("9000-01-01T")


def test_a_running_clock_is_bounded_too(client):
    for _ in range(80):  # 80 centuries from now: past year 9000
        r = client.post("/_mock/clock", json={"advance": CENTURY})
        if r.status_code != 200:
            break
    assert r.status_code == 400 and "9000-01-01" in r.get_json()["error"]
    assert client.get("/_mock/clock").get_json()["now"] < 221_845_392_000
    assert client.get("/_mock/tenants/demo/profiles").status_code == 200


@pytest.mark.parametrize("at", [221_845_392_001, -1])
def test_freeze_outside_the_range_is_400(client, backend, at):
    before = backend.clock.now()
    r = client.post("/_mock/clock", json={"freeze": True, "at": at})
    assert r.status_code == 400 and r.get_json()["error"]
    with pytest.raises(ValueError, match="9000-01-01"):
        backend.clock.freeze(at)
    assert backend.clock.now() == before


def test_advance_drives_time_based_batches(bulk, client):
    client.put("/_mock/lifecycle", json={"lifecycle": "seconds=90"})
    sub = bulk.submit(BODY)
    client.post("/_mock/clock", json={"advance": 90})
    assert client.get(f"/_mock/batches/{sub.batch_id}").get_json()["status"] == "complete"


def test_rate_limits_route_shows_the_effective_settings(client):
    r = client.put("/_mock/rate-limits", json={"bulkCallsPerMinute": 10, "singleUpdatesPerDay": 20})
    assert r.status_code == 200
    assert (r.get_json()["bulk_calls_per_minute"], r.get_json()["single_updates_per_day"]) == (10, 20)


# --- auth and tokens ---------------------------------------------------------------------------------------------
def test_auth_switch_and_token(bulk, client):
    r = client.put("/_mock/tenants/demo/auth", json={"enabled": True})
    token = r.get_json()["token"]
    assert r.status_code == 200 and r.get_json()["enabled"] is True and token
    assert bulk.post(BODY).status_code == 401
    assert bulk.post(BODY, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    r = client.post("/_mock/tenants/demo/token")
    assert r.status_code == 201 and r.get_json()["token"] != token
    assert bulk.post(BODY, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert client.put("/_mock/tenants/demo/auth", json={"enabled": "yes"}).status_code == 400
    assert client.put("/_mock/tenants/demo/auth", json={"enabled": False}).get_json() == {
        "tenant": "demo", "enabled": False}
    assert bulk.post(BODY).status_code == 200


# --- journal -------------------------------------------------------------------------------------------------------
def test_journal_filters_and_clear(bulk, client):
    sub = bulk.submit(BODY)
    bulk.status(sub.status_url)
    bulk.post(b"batch=email,a\n", tenant="acme")
    entries = client.get("/_mock/journal").get_json()
    assert [e["operation"] for e in entries] == ["batch-submit", "batch-status", "batch-submit"]
    submits = client.get("/_mock/journal?operation=batch-submit&tenant=demo").get_json()
    assert len(submits) == 1 and submits[0]["parsed"]["batchId"] == sub.batch_id
    assert submits[0]["body"] == BODY.decode() and submits[0]["curl"].startswith("curl -X POST")
    refused = client.get("/_mock/journal?tenant=acme").get_json()[0]
    assert refused["status"] == 400 and refused["violations"][0]["rule"] == "batch.bad-key-header"
    assert client.get("/_mock/journal").status_code == 200  # control calls are not journalled
    assert client.delete("/_mock/journal").get_json() == {"cleared": True}
    assert client.get("/_mock/journal").get_json() == []


def test_unknown_control_route_and_bad_json(client):
    r = client.get("/_mock/nothing")
    assert r.status_code == 404 and "error" in r.get_json()
    r = client.post("/_mock/reset", data=b"[1, 2]", content_type="application/json")
    assert r.status_code == 400 and "JSON object" in r.get_json()["error"]
    r = client.delete("/_mock/reset")
    assert r.status_code == 405


# --- the token lock --------------------------------------------------------------------------------------------------
@pytest.fixture
def locked():
    be = MockBackend(MockConfig(control_token="s3cret", lifecycle=Lifecycle.parse("immediate")))
    be.clock.freeze()
    return create_app(be).test_client()


@pytest.mark.parametrize(("method", "path"), [("GET", "/_mock/health"), ("POST", "/_mock/reset"),
                                              ("GET", "/_mock/tenants/demo/profiles"), ("GET", "/_mock/settings"),
                                              ("POST", "/_mock/clock"), ("GET", "/_mock/journal"),
                                              ("PUT", "/_mock/rate-limits")])
def test_locked_control_api_needs_the_token(locked, method, path):
    for headers in ({}, {"X-Mock-Token": "wrong"}, {"Authorization": "Bearer s3cret"}):
        r = locked.open(path, method=method, headers=headers, json={})
        assert r.status_code == 401
        assert "X-Mock-Token" in r.get_json()["error"]


def test_locked_control_api_works_with_the_token(locked):
    r = locked.post("/_mock/reset", headers={"X-Mock-Token": "s3cret"})
    assert r.status_code == 200
    r = locked.get("/_mock/settings", headers={"X-Mock-Token": "s3cret"})
    assert r.status_code == 200 and "control_token" not in r.get_json()


def test_lock_leaves_the_edge_alone(locked):
    r = locked.post("/m2/demo/profile/batchUpdate", data=BODY, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200


# --- the document stays in sync with the routes --------------------------------------------------------------------
def test_every_route_is_documented(app):
    doc = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^#+ `([A-Z]+(?:/[A-Z]+)*) (/_mock/[^`]*)`", doc, re.M))
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/_mock"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule.rule)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                routes.add((method, path))
    flat = {(m, p) for ms, p in documented for m in ms.split("/")}
    assert routes == flat


def test_cli_options_for_the_lock_and_the_status_host():
    from target_profile_mock.mockserver.cli import _parser, config_from_args

    cfg = config_from_args(_parser().parse_args(["serve", "--control-token", "s3cret",
                                                 "--status-host", "mboxedge45.tt.omtrdc.net"]))
    assert cfg.control_token == "s3cret" and cfg.status_host == "mboxedge45.tt.omtrdc.net"
    assert config_from_args(_parser().parse_args(["serve"])).control_token is None


def test_a_refused_advance_leaves_the_freeze_undone_too(client, backend):
    backend.clock.unfreeze()
    r = client.post("/_mock/clock", json={"freeze": True, "advance": -5})
    assert r.status_code == 400
    assert client.get("/_mock/clock").get_json()["frozen"] is False
