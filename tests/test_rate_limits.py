"""Rate limits over HTTP: 50 bulk calls a minute (503 beyond), 1,000,000 single updates a rolling day."""

from __future__ import annotations

import pytest
from target_profile_mock.contracts.xmlbodies import parse_response
from target_profile_mock.mockserver.cli import _parser, config_from_args

pytestmark = pytest.mark.both_stores

BODY = b"batch=thirdPartyId,a\nc1,x\n"


def burn(bulk, n: int, tenant: str = "demo") -> None:
    for i in range(n):
        r = bulk.post(BODY, tenant=tenant)
        assert r.status_code == 200, f"call {i + 1}: {r.data!r}"


def assert_503(r) -> None:
    assert r.status_code == 503
    fields = parse_response(r.data)
    assert fields["success"] == "false" and fields["batchStatus"] == ""
    assert "rate.bulk" in fields["message"]
    assert int(r.headers["Retry-After"]) > 0


# --- bulk: 50 a minute -------------------------------------------------------------------------------
def test_51st_bulk_call_in_a_minute_is_503_and_passes_after_60_seconds(bulk, backend):
    burn(bulk, 50)
    r = bulk.post(BODY)
    assert_503(r)
    assert r.headers["Retry-After"] == "60"
    assert len(backend.batches("demo")) == 50  # the refused call stored nothing
    backend.advance(59.999)
    assert_503(bulk.post(BODY))
    backend.advance(0.001)
    assert bulk.post(BODY).status_code == 200


def test_the_window_slides(bulk, backend):
    burn(bulk, 25)
    backend.advance(30)
    burn(bulk, 25)
    assert_503(bulk.post(BODY))
    backend.advance(30)  # the first 25 leave the window
    burn(bulk, 25)
    assert_503(bulk.post(BODY))


def test_v1_and_v2_share_the_limit_and_refused_calls_count(bulk):
    for i in range(50):
        body = BODY if i % 2 else b"batch=email,a\nx,y\n"  # every other call is refused by the contract
        bulk.post(body, version=1 + i % 2)
    assert_503(bulk.post(BODY, version=1))


def test_limit_is_per_tenant(bulk):
    burn(bulk, 50, tenant="acme")
    assert_503(bulk.post(BODY, tenant="acme"))
    assert bulk.post(BODY, tenant="demo").status_code == 200


def test_status_polls_do_not_count_by_default(bulk, backend):
    sub = bulk.submit(BODY)
    for _ in range(100):
        assert bulk.status_response(sub.status_url).status_code == 200
    burn(bulk, 49)


def test_status_polls_can_be_counted(bulk, client):
    assert client.put("/_mock/settings", json={"rate_limit_status_polls": True}).status_code == 200
    sub = bulk.submit(BODY)
    for _ in range(49):
        assert bulk.status_response(sub.status_url).status_code == 200
    r = bulk.status_response(sub.status_url)
    assert r.status_code == 503 and "rate.bulk" in parse_response(r.data)["message"]


def test_limit_adjustable_over_http(bulk, client):
    r = client.put("/_mock/rate-limits", json={"bulkCallsPerMinute": 3})
    assert r.status_code == 200 and r.get_json()["bulk_calls_per_minute"] == 3
    burn(bulk, 3)
    assert_503(bulk.post(BODY))


def test_limit_off_over_http(bulk, client):
    assert client.put("/_mock/rate-limits", json={"bulkCallsPerMinute": None}).status_code == 200
    burn(bulk, 120)


def test_limit_per_tenant_over_http(bulk, client):
    r = client.put("/_mock/rate-limits", json={"tenant": "acme", "bulkCallsPerMinute": None})
    assert r.status_code == 200 and r.get_json()["bulk_calls_per_minute"] is None
    assert client.put("/_mock/rate-limits", json={"tenant": "slow", "bulkCallsPerMinute": 1}).status_code == 200
    burn(bulk, 80, tenant="acme")
    burn(bulk, 1, tenant="slow")
    assert_503(bulk.post(BODY, tenant="slow"))
    burn(bulk, 50)
    assert_503(bulk.post(BODY))


def test_limit_adjustable_from_python(bulk, backend):
    backend.configure(bulk_calls_per_minute=2)
    burn(bulk, 2)
    assert_503(bulk.post(BODY))
    backend.configure(bulk_calls_per_minute=None)
    burn(bulk, 60)


@pytest.mark.parametrize(("argv", "limit"), [([], 50), (["--bulk-rate-limit", "10"], 10),
                                             (["--bulk-rate-limit", "0"], 0), (["--bulk-rate-limit", "off"], None),
                                             (["--bulk-rate-limit", "OFF"], None)])
def test_cli_option(argv, limit):
    assert config_from_args(_parser().parse_args(["serve", *argv])).bulk_calls_per_minute == limit


def _assert_refused_by_a_zero_limit(r) -> None:
    assert_503(r)
    message = parse_response(r.data)["message"]
    assert "set to 0 calls a minute" in message and "--bulk-rate-limit off" in message, message


@pytest.mark.parametrize("tenant", [None, "demo"])
def test_a_limit_of_0_over_http_refuses_every_bulk_call(bulk, client, backend, tenant):
    body = {"bulkCallsPerMinute": 0} | ({"tenant": tenant} if tenant else {})
    assert client.put("/_mock/rate-limits", json=body).get_json()["bulk_calls_per_minute"] == 0
    _assert_refused_by_a_zero_limit(bulk.post(BODY))
    backend.advance(3600)
    _assert_refused_by_a_zero_limit(bulk.post(BODY))
    assert backend.batches("demo") == []


def test_a_limit_of_0_from_the_command_line_refuses_every_bulk_call(bulk, backend):
    # the same setting as bulkCallsPerMinute: 0; `off` is what switches the limit off
    backend.configure(bulk_calls_per_minute=config_from_args(
        _parser().parse_args(["serve", "--bulk-rate-limit", "0"])).bulk_calls_per_minute)
    _assert_refused_by_a_zero_limit(bulk.post(BODY))
    backend.configure(bulk_calls_per_minute=config_from_args(
        _parser().parse_args(["serve", "--bulk-rate-limit", "off"])).bulk_calls_per_minute)
    burn(bulk, 60)


@pytest.mark.parametrize("body", [{"bulkCallsPerMinute": "50"}, {"bulkCallsPerMinute": -1},
                                  {"singleUpdatesPerDay": 1.5}, {"bulkCallsPerMinute": True}, {"perMinute": 5}])
def test_bad_limits_are_400_and_change_nothing(bulk, client, body):
    r = client.put("/_mock/rate-limits", json=body)
    assert r.status_code == 400 and r.get_json()["error"]
    burn(bulk, 50)
    assert_503(bulk.post(BODY))


# --- single updates: 1,000,000 a rolling day ---------------------------------------------------------
def _update(client, tenant: str = "demo"):
    return client.get(f"/m2/{tenant}/profile/update?mbox3rdPartyId=c1&profile.a=x")


def test_single_update_over_the_daily_limit_is_429_with_retry_after(client, backend):
    assert backend.config.single_updates_per_day == 1_000_000
    assert client.put("/_mock/rate-limits", json={"singleUpdatesPerDay": 3}).status_code == 200
    for _ in range(3):
        assert _update(client).status_code == 200
    r = _update(client)
    assert r.status_code == 429
    fields = parse_response(r.data)
    assert fields["success"] == "false" and "rate.single" in fields["message"]
    assert 0 < int(r.headers["Retry-After"]) <= 86_400
    backend.advance(86_400)
    assert _update(client).status_code == 200


def test_single_limit_is_rolling(client, backend):
    backend.configure(single_updates_per_day=2)
    assert _update(client).status_code == 200
    backend.advance(12 * 3600)
    assert _update(client).status_code == 200
    assert _update(client).status_code == 429
    backend.advance(12 * 3600)  # the first update leaves the 24 h window
    assert _update(client).status_code == 200
    assert _update(client).status_code == 429


def test_single_limit_status_is_configurable_and_per_tenant(client, backend):
    backend.configure(single_updates_per_day=1, single_rate_status=503)
    backend.configure("acme", single_updates_per_day=None)
    assert _update(client).status_code == 200
    assert _update(client).status_code == 503
    for _ in range(5):
        assert _update(client, "acme").status_code == 200


def test_single_and_bulk_limits_are_separate(bulk, client, backend):
    burn(bulk, 50)
    for _ in range(60):  # the 50/minute limit does not apply to single updates (LIMITS)
        assert _update(client).status_code == 200
    assert_503(bulk.post(BODY))
    backend.advance(60)
    backend.configure(single_updates_per_day=61)
    burn(bulk, 50)  # bulk calls use none of the single-update quota
    assert _update(client).status_code == 200
    assert _update(client).status_code == 429


@pytest.mark.parametrize(("elapsed", "retry_after"), [(0.4, "60"), (30.5, "30"), (59.0, "1"), (59.9, "1")])
def test_bulk_retry_after_rounds_the_wait_up(bulk, backend, elapsed: float, retry_after: str):
    # a client that waits Retry-After seconds must find a free call, never one second short of it
    backend.configure(bulk_calls_per_minute=1)
    burn(bulk, 1)
    backend.advance(elapsed)
    r = bulk.post(BODY)
    assert_503(r)
    assert r.headers["Retry-After"] == retry_after
    backend.advance(int(retry_after))
    assert bulk.post(BODY).status_code == 200


def test_single_retry_after_rounds_the_wait_up(client, backend):
    backend.clock.freeze(1_700_000_040.0)  # a minute boundary: the day is counted in minute buckets
    backend.configure(single_updates_per_day=1)
    backend.seed_profile("demo", third_party_id="c1")
    url = "/m2/demo/profile/update?mbox3rdPartyId=c1&profile.a=1"
    assert client.get(url).status_code == 200
    backend.advance(0.4)
    r = client.get(url)
    assert r.status_code == 429 and r.headers["Retry-After"] == "86400"
    backend.advance(86_400)
    assert client.get(url).status_code == 200
