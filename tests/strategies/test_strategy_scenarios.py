"""Scenarios drive the fake the way they say, so a polling client can be property-tested against them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis.errors import InvalidArgument
from strategy_support import fresh_backend, send
from target_profile_mock.contracts.strategies import HttpRequest, Scenario, scenarios
from target_profile_mock.contracts.strategies.scenarios import SCENARIO_KINDS
from target_profile_mock.contracts.xmlbodies import parse_batch_status, parse_response
from target_profile_mock.mockserver import MockBackend, create_app

BODY = b"batch=pcId,a\n1000000000000-000001,x\n1000000000000-000002,y\n1000000000000-000003,z\n"


def submit_and_wait(send_request, advance, *, max_polls: int = 20) -> tuple[int, str, dict[str, int], int]:
    """A small sample client: submit, retrying 503 once a minute, then poll until the batch ends."""
    rate_limited = 0
    while True:
        resp = send_request(HttpRequest("POST", "/m2/demo/profile/batchUpdate", "", BODY,
                                        {"Content-Type": "application/x-www-form-urlencoded"}))
        if resp.status != 503:
            break
        rate_limited += 1
        advance(60)
    assert resp.status == 200, resp.body
    url = parse_response(resp.body)["batchStatus"]
    for polls in range(max_polls):
        status = parse_batch_status(send_request(HttpRequest.from_url("GET", url + "&showDetails=true")).body)
        if status.status != "incomplete":
            return polls, status.status, status.counters, rate_limited
        advance(1)
    raise AssertionError("the batch never ended")


@settings(max_examples=30, deadline=None)
@given(scenario=scenarios())
def test_a_polling_client_sees_what_the_scenario_says(scenario: Scenario) -> None:
    be = fresh_backend()
    scenario.apply(be)
    client = create_app(be).test_client()
    calls = scenario.bulk_calls_per_minute or 0
    for _ in range(calls):  # use up the limit, so the sample client's first submit is refused
        be.acquire_rate("demo", "bulk")
    polls, outcome, counters, limited = submit_and_wait(lambda r: send(client, r), be.advance)
    assert outcome == scenario.outcome
    if scenario.polls_until_end is not None:
        assert polls == scenario.polls_until_end
    else:
        assert polls == int(scenario.seconds)
    assert counters["failedUpdates"] == scenario.failed_updates(3)
    assert limited == (1 if calls else 0)


@settings(max_examples=10, deadline=None)
@given(scenario=scenarios())
def test_control_requests_set_the_same_as_apply(scenario: Scenario) -> None:
    direct, over_http = fresh_backend(), fresh_backend()
    scenario.apply(direct)
    client = create_app(over_http).test_client()
    for req in scenario.control_requests():
        assert send(client, req).status == 200
    assert over_http.settings("demo") == direct.settings("demo")


def test_new_kinds_can_be_registered() -> None:
    from hypothesis import strategies as st
    from target_profile_mock.contracts.strategies import register_scenario_kind

    register_scenario_kind("always-stuck", lambda _: st.just(Scenario("always-stuck", "immediate,stuck", "stuck")))
    try:
        @given(scenarios(kinds=("always-stuck",)))
        def check(s: Scenario) -> None:
            assert s.outcome == "stuck"

        check()
    finally:
        del SCENARIO_KINDS["always-stuck"]
    with pytest.raises(InvalidArgument):
        scenarios(kinds=("always-stuck",))


def test_settings_payload_is_json() -> None:
    req = Scenario("rate-limited", "polls=1", bulk_calls_per_minute=2).control_requests(tenant="t1")[1]
    assert json.loads(req.body) == {"tenant": "t1", "bulk_calls_per_minute": 2}
    assert isinstance(MockBackend, type)
