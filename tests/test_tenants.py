"""Tenants: client codes from the path, the Host header or the default; tenants never share data."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from target_profile_mock.mockserver import MockBackend, MockConfig, create_app

pytestmark = pytest.mark.both_stores

OK = b"<response><success>true</success><pcId></pcId><message>Request successfully submitted</message></response>"


def values(backend: MockBackend, tenant: str, pid: str) -> dict[str, str] | None:
    p = backend.get_profile(tenant, "thirdPartyId", pid)
    return None if p is None else p["attributes"]


def test_same_id_in_two_tenants_is_two_profiles(client: FlaskClient, backend: MockBackend) -> None:
    backend.seed_profile("alpha", third_party_id="u1", attributes={"t": "a"})
    backend.seed_profile("beta", third_party_id="u1", attributes={"t": "b"})
    assert client.get("/m2/alpha/profile/update?mbox3rdPartyId=u1&profile.t=A").data == OK
    assert values(backend, "alpha", "u1") == {"t": "A"}
    assert values(backend, "beta", "u1") == {"t": "b"}
    a = client.get("/rest/v1/profiles/thirdPartyId/u1?client=alpha").get_json()
    b = client.get("/rest/v1/profiles/thirdPartyId/u1?client=beta").get_json()
    assert (a["client"], a["profileAttributes"]["t"]["value"]) == ("alpha", "A")
    assert (b["client"], b["profileAttributes"]["t"]["value"]) == ("beta", "b")


def test_a_profile_of_one_tenant_is_not_found_in_another(client: FlaskClient, backend: MockBackend) -> None:
    backend.seed_profile("alpha", third_party_id="only-alpha", attributes={"x": "1"})
    r = client.get("/rest/v1/profiles/thirdPartyId/only-alpha?client=beta")
    assert r.status_code == 404
    assert r.get_json()["message"] == "No profile found for client beta with third party id=only-alpha"
    assert client.get("/m2/beta/profile/update?mbox3rdPartyId=only-alpha&profile.x=2").data == OK
    assert values(backend, "alpha", "only-alpha") == {"x": "1"}


def test_literal_client_path_takes_the_tenant_from_the_host(client: FlaskClient, backend: MockBackend) -> None:
    backend.seed_profile("acme", third_party_id="u1", attributes={"x": "0"})
    r = client.get("/m2/client/profile/update?mbox3rdPartyId=u1&profile.x=1",
                   headers={"Host": "acme.tt.omtrdc.net"})
    assert r.data == OK
    assert values(backend, "acme", "u1") == {"x": "1"}
    entry = backend.journal.entries()[-1]
    assert entry.tenant == "acme"
    assert [v.rule_id for v in entry.deviations] == ["tenant.literal-client"]


def test_literal_client_path_with_a_port_in_the_host(client: FlaskClient, backend: MockBackend) -> None:
    backend.seed_profile("acme", third_party_id="u1", attributes={"x": "0"})
    client.get("/m2/client/profile/update?mbox3rdPartyId=u1&profile.x=1", headers={"Host": "acme.tt.omtrdc.net:443"})
    assert values(backend, "acme", "u1") == {"x": "1"}


def test_literal_client_path_without_a_tenant_host_uses_the_configured_code(backend: MockBackend) -> None:
    backend.configure(client_code="fallback")
    c = create_app(backend).test_client()
    backend.seed_profile("fallback", third_party_id="u1", attributes={"x": "0"})
    for host in ("localhost", "127.0.0.1:8080", "mboxedge17.tt.omtrdc.net"):
        backend.seed_profile("fallback", third_party_id="u1", attributes={"x": "0"})
        assert c.get("/m2/client/profile/update?mbox3rdPartyId=u1&profile.x=1", headers={"Host": host}).data == OK
        assert values(backend, "fallback", "u1") == {"x": "1"}, host
    assert backend.journal.entries()[-1].tenant == "fallback"


def test_default_client_code_is_demo() -> None:
    assert MockConfig().client_code == "demo"


def test_real_client_code_in_the_path_wins_over_the_host(client: FlaskClient, backend: MockBackend) -> None:
    backend.seed_profile("pathcode", third_party_id="u1", attributes={"x": "0"})
    client.get("/m2/pathcode/profile/update?mbox3rdPartyId=u1&profile.x=1", headers={"Host": "other.tt.omtrdc.net"})
    assert values(backend, "pathcode", "u1") == {"x": "1"}
    assert backend.journal.entries()[-1].violations == []


def test_fetch_takes_the_tenant_from_the_client_parameter(client: FlaskClient, backend: MockBackend) -> None:
    backend.seed_profile("acme", third_party_id="u1", attributes={"x": "1"})
    r = client.get("/rest/v1/profiles/thirdPartyId/u1?client=acme", headers={"Host": "other.tt.omtrdc.net"})
    assert r.status_code == 200 and r.get_json()["client"] == "acme"


def test_fetch_without_client_parameter_uses_the_host_as_a_deviation(client: FlaskClient,
                                                                     backend: MockBackend) -> None:
    backend.seed_profile("acme", third_party_id="u1", attributes={"x": "1"})
    r = client.get("/rest/v1/profiles/thirdPartyId/u1", headers={"Host": "acme.tt.omtrdc.net"})
    assert r.status_code == 200 and r.get_json()["client"] == "acme"
    assert [v.rule_id for v in backend.journal.entries()[-1].deviations] == ["fetch.missing-client"]


def test_fetch_without_client_parameter_or_tenant_host_uses_the_default(client: FlaskClient,
                                                                       backend: MockBackend) -> None:
    backend.seed_profile("demo", third_party_id="u1", attributes={"x": "1"})
    r = client.get("/rest/v1/profiles/thirdPartyId/u1")
    assert r.status_code == 200 and r.get_json()["client"] == "demo"


def test_reset_of_one_tenant_leaves_the_other(client: FlaskClient, backend: MockBackend) -> None:
    backend.seed_profile("alpha", third_party_id="u1", attributes={"x": "1"})
    backend.seed_profile("beta", third_party_id="u1", attributes={"x": "2"})
    backend.reset("alpha")
    assert values(backend, "alpha", "u1") is None
    assert values(backend, "beta", "u1") == {"x": "2"}


def test_two_backends_share_nothing() -> None:
    one, two = MockBackend(), MockBackend()
    one.seed_profile("acme", third_party_id="u1", attributes={"x": "1"})
    assert two.get_profile("acme", "thirdPartyId", "u1") is None
    r = create_app(two).test_client().get("/rest/v1/profiles/thirdPartyId/u1?client=acme")
    assert r.status_code == 404


def test_reads_on_adobe_routes_create_no_tenant(client: FlaskClient, backend: MockBackend) -> None:
    # a fetch of an unknown tenant answers as for an unknown profile, and stores nothing
    for path in ("/rest/v1/profiles/thirdPartyId/u1?client=ghost1", "/rest/v1/profiles/1-1?client=ghost2",
                 "/rest/v1/profiles/marketingCloudVisitorId/e1?client=ghost3"):
        assert client.get(path).status_code == 404
    r = client.get("/rest/v1/profiles/thirdPartyId/u1?client=ghost1")
    assert r.get_json()["message"] == "No profile found for client ghost1 with third party id=u1"
    r = client.get("/m2/ghost4/profile/batchStatus?batchId=ghost4-1-12345678")
    assert r.status_code == 404 and b"[status.unknown-batch]" in r.data
    assert client.get("/m2/ghost5/v2/profile/batchStatus?batchId=x").status_code == 404
    assert backend.tenants() == []


def test_reads_create_no_tenant_with_auth_on_or_polls_counted(client: FlaskClient, backend: MockBackend) -> None:
    backend.configure(auth=True, rate_limit_status_polls=True, bulk_calls_per_minute=1)
    r = client.get("/rest/v1/profiles/thirdPartyId/u1?client=ghost", headers={"Authorization": "Bearer t"})
    assert r.status_code == 401 and "no profile API token has been issued for client ghost" in r.get_json()["message"]
    backend.configure(auth=False)
    for _ in range(3):  # a poll of an unknown tenant is not counted: there is nothing to count it against
        assert client.get("/m2/ghost/profile/batchStatus?batchId=x").status_code == 404
    assert backend.tenants() == []


def test_many_fetches_with_distinct_client_codes_keep_nothing(client: FlaskClient, backend: MockBackend) -> None:
    for i in range(300):
        assert client.get(f"/rest/v1/profiles/thirdPartyId/u?client=c{i}").status_code == 404
    assert backend.tenants() == []
    # a write still creates its tenant
    assert client.get("/m2/c1/profile/update?mbox3rdPartyId=u&profile.x=1").status_code == 200
    assert backend.tenants() == ["c1"]
