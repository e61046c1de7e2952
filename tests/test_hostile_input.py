"""Hostile or malformed input is refused with a 400 that names the problem, never a 500, and changes nothing."""

from __future__ import annotations

from dataclasses import fields

import pytest
from target_profile_mock.contracts.xmlbodies import parse_response
from target_profile_mock.mockserver import MockBackend, MockConfig, create_app

DEEP = 5_000  # far past the interpreter's recursion limit


def _deep_array(levels: int = DEEP) -> bytes:
    return b"[" * levels + b"]" * levels


# --- JSON nested deeper than the parser's stack ------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/_mock/settings"), ("PATCH", "/_mock/settings"), ("POST", "/_mock/reset"), ("POST", "/_mock/clock"),
    ("POST", "/_mock/faults"), ("PUT", "/_mock/rate-limits"), ("PUT", "/_mock/lifecycle"),
    ("POST", "/_mock/tenants/demo/profiles"), ("PUT", "/_mock/tenants/demo/auth"),
])
@pytest.mark.parametrize("levels", [DEEP, 33])
def test_deeply_nested_control_json_is_a_400(client, backend, method, path, levels):
    before = backend.settings()
    r = client.open(path, method=method, data=_deep_array(levels), content_type="application/json")
    assert r.status_code == 400, r.data
    assert "more than 32 levels deep" in r.get_json()["error"]
    assert backend.settings() == before and backend.faults.list() == []


def test_nesting_within_the_bound_is_read_as_usual(client):
    inner = b'{"faults": [{"sequence": [{"kind": "status", "status": 503}]}]}'
    assert client.post("/_mock/faults", data=inner).status_code == 201


def test_a_deeply_nested_value_in_a_control_body_is_a_400(client):
    body = b'{"tenant": "acme", "lifecycle": ' + _deep_array() + b"}"
    r = client.put("/_mock/lifecycle", data=body)
    assert r.status_code == 400 and "levels deep" in r.get_json()["error"]


@pytest.mark.parametrize("body", [_deep_array(), b'{"profile.a": ' + _deep_array() + b"}"])
def test_deeply_nested_json_single_update_is_refused_as_an_unknown_body(client, backend, body):
    backend.seed_profile("demo", third_party_id="c1", attributes={"a": "1"})
    r = client.post("/m2/demo/profile/update?mbox3rdPartyId=c1", data=body, content_type="application/json")
    assert r.status_code == 415, r.data
    assert "[single.unknown-body] the JSON body is not a flat JSON object" in parse_response(r.data)["message"]
    assert backend.get_profile("demo", "thirdPartyId", "c1")["attributes"] == {"a": "1"}


@pytest.mark.parametrize("levels", [900, DEEP])
def test_deeply_nested_json_visit_is_refused_and_creates_no_profile(client, backend, levels):
    body = b'{"context": {"channel": "web"}, "execute": ' + b"[" * levels + b"]" * levels + b"}"
    r = client.post("/rest/v1/delivery?client=demo&sessionId=s1", data=body, content_type="application/json")
    assert r.status_code == 400, r.data
    assert r.get_json()["message"].startswith("[delivery.")
    assert backend.profiles("demo") == []


# --- CSV seeds -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "line"), [
    ("thirdPartyId,a\r\nc1,x\ry\r\n", 2),
    ("thirdPartyId,a\rc1,x\r", 1),  # CR-only line ends
    ("thirdPartyId,a\nc1,x\nc2,y\rz\n", 3),
])
def test_csv_seed_with_a_bare_carriage_return_is_a_400_naming_the_line(client, text, line):
    r = client.post("/_mock/tenants/demo/profiles", data=text, content_type="text/csv")
    assert r.status_code == 400, r.data
    error = r.get_json()["error"]
    assert f"line {line}: a carriage return (CR) that does not end the line" in error
    assert "nothing was seeded" in error
    assert client.get("/_mock/tenants/demo/profiles").get_json() == []


def test_csv_seed_keeps_a_carriage_return_inside_quotes_and_crlf_line_ends(client):
    r = client.post("/_mock/tenants/demo/profiles", data='thirdPartyId,a\r\nc1,"x\ry"\r\n', content_type="text/csv")
    assert r.status_code == 201, r.data
    assert client.get("/_mock/tenants/demo/profiles/thirdPartyId/c1").get_json()["attributes"] == {"a": "x\ry"}


# --- settings --------------------------------------------------------------------------------------------
SETTABLE = [f.name for f in fields(MockConfig) if f.name != "control_token"]


WRONG_TYPES = [(name, value) for name in SETTABLE for value in ([1], {"a": 1}, "x")
               if not (value == "x" and name in ("client_code", "status_host"))]  # text is right for those


@pytest.mark.parametrize(("name", "value"), WRONG_TYPES)
def test_every_setting_refuses_a_value_of_the_wrong_type_naming_it(client, backend, name, value):
    before = backend.settings()
    r = client.put("/_mock/settings", json={name: value})
    assert r.status_code == 400, (name, r.data)
    assert name in r.get_json()["error"]
    assert backend.settings() == before
    # and the fake goes on answering
    assert client.get("/m2/demo/profile/update?mbox3rdPartyId=c1&profile.a=1").status_code == 200


@pytest.mark.parametrize(("name", "value"), [
    ("auth_failure_status", 999), ("auth_failure_status", 200), ("auth_failure_status", 399),
    ("single_rate_status", 600), ("single_rate_status", True), ("batch_max_bytes", 0), ("batch_max_rows", -1),
    ("batch_max_rows", 2.5), ("keep_rows_max", -1), ("journal_size", -1), ("seed", 1.5), ("seed", None),
    ("update_delay", 1e308), ("token_ttl", -1), ("batch_retention", 4e9), ("rate_limit_status_polls", 1),
    ("status_host", "evil.example/x?"), ("status_host", "a b"), ("client_code", ""), ("client_code", "a/b"),
    ("v2_profile_rows", "some"), ("status_path", None),
])
def test_settings_out_of_range_are_refused_naming_the_setting(client, backend, name, value):
    before = backend.settings()
    r = client.put("/_mock/settings", json={name: value})
    assert r.status_code == 400, (name, value, r.data)
    assert r.get_json()["error"].startswith(f"{name} takes ")
    assert backend.settings() == before


@pytest.mark.parametrize("text", ["Infinity", "NaN", "-Infinity"])
def test_non_finite_seconds_are_refused(client, text):
    r = client.put("/_mock/settings", data=f'{{"update_delay": {text}}}')
    assert r.status_code == 400 and r.get_json()["error"].startswith("update_delay takes ")


def test_a_refused_setting_leaves_the_others_of_the_same_call_unset(client, backend):
    r = client.put("/_mock/settings", json={"update_delay": 5, "auth_failure_status": "x"})
    assert r.status_code == 400
    assert backend.config.update_delay == 0


@pytest.mark.parametrize(("name", "value"), [
    ("auth_failure_status", 403), ("auth_failure_status", 503), ("batch_max_rows", 10), ("seed", -3),
    ("status_host", "mboxedge45.tt.omtrdc.net"), ("status_host", "[::1]:8080"), ("token_ttl", None),
    ("rate_limit_status_polls", True), ("client_code", "acme"),
])
def test_settings_in_range_are_taken(client, name, value):
    r = client.put("/_mock/settings", json={name: value})
    assert r.status_code == 200, r.data
    assert r.get_json()[name] == value


def test_auth_failure_status_is_the_status_line_sent(client, backend):
    client.put("/_mock/settings", json={"auth_failure_status": 403})
    backend.set_auth("demo", True)
    assert client.get("/m2/demo/profile/update?mbox3rdPartyId=c1&profile.a=1").status_code == 403


def test_control_token_cannot_be_set_or_cleared_over_http():
    be = MockBackend(MockConfig(control_token="s3cret"))
    client = create_app(be).test_client()
    for value in ("other", None):
        r = client.put("/_mock/settings", json={"control_token": value}, headers={"X-Mock-Token": "s3cret"})
        assert r.status_code == 400
        assert "control_token cannot be changed over HTTP" in r.get_json()["error"]
    assert be.config.control_token == "s3cret"
    unlocked = create_app(MockBackend()).test_client()
    assert unlocked.put("/_mock/settings", json={"control_token": "mine"}).status_code == 400
    assert unlocked.get("/_mock/health").status_code == 200  # nobody was locked out


def test_control_token_can_still_be_set_from_python():
    be = MockBackend()
    be.configure(control_token="s3cret")
    client = create_app(be).test_client()
    assert client.get("/_mock/health").status_code == 401
    assert client.get("/_mock/health", headers={"X-Mock-Token": "s3cret"}).status_code == 200


# --- reset ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tenant", [0, False, "", [], None, {}, 1])
def test_reset_with_a_tenant_that_is_no_client_code_is_refused(client, backend, tenant):
    backend.seed_profile("acme", third_party_id="a1")
    r = client.post("/_mock/reset", json={"tenant": tenant})
    assert r.status_code == 400, r.data
    assert "tenant must be a client code" in r.get_json()["error"]
    assert backend.tenants() == ["acme"]


def test_reset_with_an_empty_tenant_query_is_refused(client, backend):
    backend.seed_profile("acme", third_party_id="a1")
    assert client.post("/_mock/reset?tenant=").status_code == 400
    assert backend.tenants() == ["acme"]


@pytest.mark.parametrize("path", ["/_mock/settings", "/_mock/rate-limits"])
def test_an_empty_tenant_is_not_taken_for_the_whole_server(client, backend, path):
    body = {"tenant": "", "bulk_calls_per_minute": 1} if path.endswith("settings") else \
        {"tenant": "", "bulkCallsPerMinute": 1}
    assert client.put(path, json=body).status_code == 400
    assert backend.config.bulk_calls_per_minute == 50


# --- Flask's static route ----------------------------------------------------------------------------------
def test_there_is_no_static_route(client, tmp_path, monkeypatch):
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / ".env").write_text("SECRET=1")
    monkeypatch.chdir(tmp_path)
    app = create_app(MockBackend(MockConfig(control_token="t")))
    assert all(r.endpoint != "static" for r in app.url_map.iter_rules())
    r = app.test_client().get("/static/.env")
    assert r.status_code == 404 and b"SECRET" not in r.data


# --- the client code in the returned batchStatus URL -----------------------------------------------------
@pytest.mark.parametrize(("path_code", "tenant"), [
    ("a%3FbatchId=EVIL%23", "a?batchId=EVIL#"), ("x%26y%3D1", "x&y=1"), ("caf%C3%A9", "café"), ("a%20b", "a b"),
])
def test_the_client_code_is_percent_encoded_in_the_status_url_and_the_url_polls_that_batch(
        client, backend, path_code, tenant):
    from urllib.parse import parse_qs, unquote, urlsplit

    r = client.post(f"/m2/{path_code}/v2/profile/batchUpdate", data=b"batch=thirdPartyId,a\nc1,x\n",
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200, r.data
    url = parse_response(r.data)["batchStatus"]
    parts = urlsplit(url)
    assert parts.fragment == "" and list(parse_qs(parts.query)) == ["batchId"]
    assert unquote(parts.path.split("/")[2]) == tenant
    [batch] = backend.batches(tenant)
    assert parse_qs(parts.query)["batchId"] == [batch["batchId"]]
    polled = client.get(url)
    assert polled.status_code == 200, polled.data
    assert backend.batch(batch["batchId"])["polls"] == 1


@pytest.mark.parametrize("host", ["evil.example/x?y#", "a b", 'x"<y'])
def test_a_host_header_that_is_no_host_gives_a_status_url_on_the_servers_own_name(client, host):
    r = client.post("/m2/demo/v2/profile/batchUpdate", data=b"batch=thirdPartyId,a\nc1,x\n",
                    content_type="application/x-www-form-urlencoded", headers={"Host": host})
    url = parse_response(r.data)["batchStatus"]
    assert url.startswith("http://localhost/m2/demo/profile/batchStatus?batchId=demo-"), url


# --- bodies and values the description refuses, the fake refuses too ----------------------------------------
@pytest.mark.parametrize("path", ["/_mock/settings", "/_mock/rate-limits", "/_mock/lifecycle"])
def test_a_json_null_body_is_no_object(client, backend, path):
    before = backend.settings()
    r = client.put(path, data=b"null", content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"] == "the body must be a JSON object"
    assert backend.settings() == before


def test_at_without_freeze_true_is_refused(client):
    before = client.get("/_mock/clock").get_json()["frozen"]
    r = client.post("/_mock/clock", json={"freeze": False, "at": 0, "advance": 0})
    assert r.status_code == 400 and r.get_json()["error"].startswith("at goes with freeze")
    assert client.get("/_mock/clock").get_json()["frozen"] == before


def test_an_empty_tenant_query_is_refused_even_beside_a_body_tenant(client, backend):
    backend.seed_profile("acme", third_party_id="a1")
    assert client.post("/_mock/reset?tenant=", json={"tenant": "acme"}).status_code == 400
    assert backend.tenants() == ["acme"]


@pytest.mark.parametrize("name", ["journal_size", "batch_max_bytes", "bulk_calls_per_minute"])
def test_counts_stop_at_2_to_the_53(client, name):
    assert client.put("/_mock/settings", json={name: 2**53 + 1}).status_code == 400
    assert client.put("/_mock/settings", json={name: 2**53}).status_code == 200
    assert client.get("/_mock/health").status_code == 200
