"""Profile API authentication and the Admin API's token routes."""

from __future__ import annotations

import json
import re

import pytest
from flask.testing import FlaskClient
from target_profile_mock.contracts.xmlbodies import parse_response
from target_profile_mock.mockserver import MockBackend, MockConfig, create_app
from werkzeug.test import TestResponse

pytestmark = pytest.mark.both_stores

MEDIA = "application/vnd.adobe.target.v1+json"
FORM = "application/x-www-form-urlencoded"
OK = b"<response><success>true</success><pcId></pcId><message>Request successfully submitted</message></response>"


def token(client: FlaskClient, tenant: str = "acme", method: str = "GET", param: str = "authorizationScope") -> str:
    r = client.open(f"/{tenant}/target/authentication/token?{param}=profile_api", method=method)
    assert r.status_code == (201 if method == "POST" else 200), r.data
    return r.get_json()["accessToken"]


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def submit_batch(client: FlaskClient, tenant: str = "acme", headers: dict[str, str] | None = None) -> TestResponse:
    return client.post(f"/m2/{tenant}/v2/profile/batchUpdate", data=b"batch=thirdPartyId,tier\nu1,gold\n",
                       content_type=FORM, headers=headers or {})


def status_url(r: TestResponse) -> str:
    url = parse_response(r.data)["batchStatus"]
    return url[url.index("/m2/"):]


class Endpoints:
    """One call to each profile endpoint of a tenant, with the given headers."""

    def __init__(self, client: FlaskClient, backend: MockBackend, tenant: str = "acme") -> None:
        self.client, self.backend, self.tenant = client, backend, tenant
        backend.seed_profile(tenant, third_party_id="u1", attributes={"tier": "silver"})
        # a batch to ask about, submitted while authentication is still off
        # (restoring the tenant's own setting, None = inherit, keeps a server-wide switch in force)
        own = backend.tenant(tenant).settings.auth
        backend.configure(tenant, auth=False)
        self.status = status_url(submit_batch(client, tenant))
        backend.configure(tenant, auth=own)

    def calls(self, headers: dict[str, str]) -> dict[str, TestResponse]:
        c, t = self.client, self.tenant
        return {
            "update": c.get(f"/m2/{t}/profile/update?mbox3rdPartyId=u1&profile.tier=gold", headers=headers),
            "batch": submit_batch(c, t, headers),
            "status": c.get(self.status, headers=headers),
            "fetch": c.get(f"/rest/v1/profiles/thirdPartyId/u1?client={t}", headers=headers),
        }


def assert_unauthorized(responses: dict[str, TestResponse], rule_id: str, status: int = 401) -> None:
    for name, r in responses.items():
        assert r.status_code == status, (name, r.data)
        if name == "fetch":
            assert r.mimetype == "application/json"
            body = r.get_json()
            assert body["status"] == status and f"[{rule_id}]" in body["message"], name
        else:
            assert r.mimetype == "application/xml"
            fields = parse_response(r.data)
            assert fields["success"] == "false" and f"[{rule_id}]" in fields["message"], (name, r.data)


def assert_allowed(responses: dict[str, TestResponse]) -> None:
    for name, r in responses.items():
        assert r.status_code == 200, (name, r.data)


# --- off by default -----------------------------------------------------------------------------
def test_auth_is_off_by_default(client: FlaskClient, backend: MockBackend) -> None:
    assert MockConfig().auth is False
    assert backend.auth_enabled("acme") is False
    assert_allowed(Endpoints(client, backend).calls({}))


def test_tokens_are_ignored_while_auth_is_off(client: FlaskClient, backend: MockBackend) -> None:
    assert_allowed(Endpoints(client, backend).calls(bearer("not-a-token")))


# --- on, server-wide ------------------------------------------------------------------------------
@pytest.fixture
def auth_on(backend: MockBackend) -> MockBackend:
    backend.configure(auth=True)
    return backend


def test_every_profile_endpoint_needs_a_token(client: FlaskClient, auth_on: MockBackend) -> None:
    ep = Endpoints(client, auth_on)
    assert auth_on.tenant("acme").settings.auth is None  # on through the server-wide switch alone
    assert_unauthorized(ep.calls({}), "auth.missing-token")
    assert auth_on.get_profile("acme", "thirdPartyId", "u1")["attributes"] == {"tier": "silver"}  # type: ignore[index]


def test_every_profile_endpoint_accepts_the_current_token(client: FlaskClient, auth_on: MockBackend) -> None:
    ep = Endpoints(client, auth_on)
    responses = ep.calls(bearer(token(client)))
    assert_allowed(responses)
    assert responses["update"].data == OK


def test_config_switch_at_construction() -> None:
    be = MockBackend(MockConfig(auth=True))
    c = create_app(be).test_client()
    r = c.get("/rest/v1/profiles/thirdPartyId/u1?client=acme")
    assert r.status_code == 401


@pytest.mark.parametrize("header", ["Bearer wrong", "bearer wrong", "Bearer", "Basic dXNlcjpwYXNz", "wrong"])
def test_wrong_or_malformed_authorization_is_refused(client: FlaskClient, auth_on: MockBackend,
                                                     header: str) -> None:
    token(client)
    responses = Endpoints(client, auth_on).calls({"Authorization": header})
    rule_id = "auth.invalid-token" if header.lower() == "bearer wrong" else "auth.missing-token"
    assert_unauthorized(responses, rule_id)


def test_scheme_is_case_insensitive(client: FlaskClient, auth_on: MockBackend) -> None:
    assert_allowed(Endpoints(client, auth_on).calls({"Authorization": f"bearer {token(client)}"}))


def test_token_before_any_was_issued_is_refused(client: FlaskClient, auth_on: MockBackend) -> None:
    r = client.get("/rest/v1/profiles/thirdPartyId/u1?client=acme", headers=bearer("guess"))
    assert r.status_code == 401
    assert "no profile API token has been issued" in r.get_json()["message"]


def test_superseded_token_is_refused(client: FlaskClient, auth_on: MockBackend) -> None:
    ep = Endpoints(client, auth_on)
    old = token(client)
    new = token(client, method="POST")
    assert new != old
    assert_unauthorized(ep.calls(bearer(old)), "auth.invalid-token")
    assert_allowed(ep.calls(bearer(new)))


def test_expired_token_is_refused(client: FlaskClient, auth_on: MockBackend) -> None:
    auth_on.configure(token_ttl=60.0)
    ep = Endpoints(client, auth_on)
    tok = token(client)
    auth_on.advance(59.999)
    assert_allowed(ep.calls(bearer(tok)))
    auth_on.advance(0.001)
    responses = ep.calls(bearer(tok))
    assert_unauthorized(responses, "auth.invalid-token")
    assert "expired" in responses["fetch"].get_json()["message"]
    # the Admin API then hands out a fresh one
    fresh = token(client)
    assert fresh != tok
    assert_allowed(ep.calls(bearer(fresh)))


def test_token_of_another_tenant_is_refused(client: FlaskClient, auth_on: MockBackend) -> None:
    token(client, "acme")
    other = token(client, "other")
    r = client.get("/rest/v1/profiles/thirdPartyId/u1?client=acme", headers=bearer(other))
    assert r.status_code == 401 and "[auth.invalid-token]" in r.get_json()["message"]


def test_access_token_header_is_accepted_as_a_deviation(client: FlaskClient, auth_on: MockBackend) -> None:
    ep = Endpoints(client, auth_on)
    auth_on.journal.clear()
    assert_allowed(ep.calls({"access_token": token(client)}))
    edge = [e for e in auth_on.journal.entries() if e.operation != "token"]
    assert len(edge) == 4
    for e in edge:
        assert "auth.access-token-header" in [v.rule_id for v in e.deviations], e.operation


def test_wrong_access_token_header_is_refused(client: FlaskClient, auth_on: MockBackend) -> None:
    token(client)
    assert_unauthorized(Endpoints(client, auth_on).calls({"access_token": "nope"}), "auth.invalid-token")


def test_refusals_are_journaled(client: FlaskClient, auth_on: MockBackend) -> None:
    client.get("/m2/acme/profile/update?mbox3rdPartyId=u1&profile.tier=gold")
    entry = auth_on.journal.entries()[-1]
    assert entry.status == 401 and [v.rule_id for v in entry.errors] == ["auth.missing-token"]


def test_failure_status_can_be_403(client: FlaskClient, auth_on: MockBackend) -> None:
    auth_on.configure(auth_failure_status=403)
    assert_unauthorized(Endpoints(client, auth_on).calls({}), "auth.missing-token", 403)


# --- on, per tenant -------------------------------------------------------------------------------
def test_auth_per_tenant_with_set_auth(client: FlaskClient, backend: MockBackend) -> None:
    locked, open_ = Endpoints(client, backend, "locked"), Endpoints(client, backend, "open")
    backend.set_auth("locked", True)
    assert backend.auth_enabled("locked") and not backend.auth_enabled("open")
    assert_unauthorized(locked.calls({}), "auth.missing-token")
    assert_allowed(open_.calls({}))
    assert_allowed(locked.calls(bearer(token(client, "locked"))))


def test_auth_per_tenant_with_configure(client: FlaskClient, backend: MockBackend) -> None:
    ep = Endpoints(client, backend, "acme")
    backend.configure("acme", auth=True)
    assert_unauthorized(ep.calls({}), "auth.missing-token")
    backend.configure("acme", auth=False)
    assert_allowed(ep.calls({}))


def test_tenant_can_switch_auth_off_when_the_server_has_it_on(client: FlaskClient, auth_on: MockBackend) -> None:
    ep = Endpoints(client, auth_on, "acme")
    auth_on.set_auth("acme", False)
    assert_allowed(ep.calls({}))
    assert client.get("/rest/v1/profiles/thirdPartyId/u1?client=other").status_code == 401


def test_auth_on_the_literal_client_path_uses_the_host_tenant(client: FlaskClient, backend: MockBackend) -> None:
    backend.set_auth("acme", True)
    tok = token(client, "acme")
    url = "/m2/client/profile/update?mbox3rdPartyId=u1&profile.a=1"
    assert client.get(url, headers={"Host": "acme.tt.omtrdc.net"}).status_code == 401
    assert client.get(url, headers={"Host": "acme.tt.omtrdc.net", **bearer(tok)}).data == OK


# --- Admin API token routes ----------------------------------------------------------------------
def test_get_token_returns_the_documented_shape(client: FlaskClient, backend: MockBackend) -> None:
    r = client.get("/acme/target/authentication/token?authorizationScope=profile_api")
    assert r.status_code == 200
    assert r.mimetype == MEDIA
    body = r.get_json(force=True)
    assert set(body) == {"accessToken", "tokenType", "scope", "expiresIn"}
    assert isinstance(body["accessToken"], str) and len(body["accessToken"]) >= 16
    assert body["tokenType"] == "bearer" and body["scope"] == "profile_api"
    assert isinstance(body["expiresIn"], int) and 0 < body["expiresIn"] <= 86_400
    assert backend.journal.entries()[-1].violations == []


def test_get_returns_the_same_token_until_a_post(client: FlaskClient) -> None:
    first = token(client)
    assert token(client) == first
    r = client.post("/acme/target/authentication/token?authorizationScope=profile_api")
    assert r.status_code == 201 and r.mimetype == MEDIA
    new = json.loads(r.data)["accessToken"]
    assert new != first
    assert token(client) == new


def test_expires_in_counts_down_with_the_clock(client: FlaskClient, backend: MockBackend) -> None:
    backend.configure(token_ttl=3600.0)
    assert client.get("/acme/target/authentication/token?authorizationScope=profile_api").get_json(
        force=True)["expiresIn"] == 3600
    backend.advance(600)
    assert client.get("/acme/target/authentication/token?authorizationScope=profile_api").get_json(
        force=True)["expiresIn"] == 3000


def test_scope_alias_is_accepted_as_a_deviation(client: FlaskClient, backend: MockBackend) -> None:
    r = client.get("/acme/target/authentication/token?scope=profile_api")
    assert r.status_code == 200 and r.get_json(force=True)["scope"] == "profile_api"
    assert [v.rule_id for v in backend.journal.entries()[-1].deviations] == ["token.scope-alias"]
    assert token(client, method="POST", param="scope")


def test_debug_tools_scope_is_accepted(client: FlaskClient) -> None:
    r = client.get("/acme/target/authentication/token?authorizationScope=debug_tools")
    assert r.status_code == 200 and r.get_json(force=True)["scope"] == "debug_tools"


@pytest.mark.parametrize("query", ["authorizationScope=admin", "scope=nope", "", "authorizationScope="])
def test_bad_scope_is_400_in_the_admin_error_shape(client: FlaskClient, backend: MockBackend, query: str) -> None:
    for method in ("GET", "POST"):
        r = client.open(f"/acme/target/authentication/token?{query}", method=method)
        assert r.status_code == 400
        assert r.mimetype == MEDIA
        body = r.get_json(force=True)
        assert set(body) >= {"httpStatus", "requestId", "requestTime", "errors"}
        assert body["httpStatus"] == 400
        assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$", body["requestTime"])
        assert isinstance(body["errors"], list) and len(body["errors"]) == 1
        assert body["errors"][0]["errorCode"] and "[token.scope]" in body["errors"][0]["message"]
        assert set(body) == {"httpStatus", "requestId", "requestTime", "errors"}  # ADMIN-OAS ErrorResponse
        assert set(body["errors"][0]) == {"errorCode", "message", "meta"}
    assert backend.tenant("acme").token is None  # nothing issued by a refused call


def test_token_routes_check_no_ims_credentials(client: FlaskClient, auth_on: MockBackend) -> None:
    for headers in ({}, {"Authorization": "Bearer some-ims-token", "x-api-key": "k"}):
        assert client.get("/acme/target/authentication/token?authorizationScope=profile_api",
                          headers=headers).status_code == 200


def test_tokens_differ_between_tenants(client: FlaskClient) -> None:
    assert token(client, "alpha") != token(client, "beta")


def test_error_request_time_follows_the_fake_clock(client: FlaskClient, backend: MockBackend) -> None:
    backend.clock.freeze(1503078819.003)
    body = client.get("/acme/target/authentication/token?authorizationScope=x").get_json(force=True)
    assert body["requestTime"] == "2017-08-18T17:53:39.003+00:00"


def test_a_fresh_token_shows_its_full_lifetime_even_if_the_clock_ticks_meanwhile() -> None:
    """The token is issued and its expiresIn read at two clock readings; a millisecond between them
    must not turn 86400 into 86399 (it made the in-process and live fixtures disagree now and then)."""
    from target_profile_mock.mockserver.clock import Clock
    from target_profile_mock.mockserver.models.tenant import Token

    class Ticking(Clock):
        def now(self) -> float:  # every reading is a millisecond later than the one before
            with self._lock:
                assert self._frozen is not None
                self._frozen += 0.001
                return self._frozen

    be = MockBackend(clock=Ticking(frozen_at=1_700_000_000.0))
    body = create_app(be).test_client().get("/acme/target/authentication/token?authorizationScope=profile_api")
    assert body.get_json(force=True)["expiresIn"] == be.config.token_ttl
    tok = Token("t", 1_000, 3600.0)
    assert tok.expires_in(1_999) == 3600 and tok.expires_in(2_000) == 3599
    assert tok.expires_in(1_000 + 3_600_000 - 1) == 1 and tok.valid(1_000 + 3_600_000 - 1)
    assert tok.expires_in(1_000 + 3_600_000) == 0 and not tok.valid(1_000 + 3_600_000)
