"""Every generated invalid request gets exactly the outcome it is tagged with, and changes nothing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from strategy_support import fresh_backend, send
from target_profile_mock.contracts.rules import RULES, Severity
from target_profile_mock.contracts.strategies import BREAKABLE_RULES, InvalidCall, invalid_calls
from target_profile_mock.contracts.xmlbodies import parse_response
from target_profile_mock.mockserver import MockBackend, create_app

HUGE = ("batch.too-large", "batch.too-many-rows")


def _snapshot(be: MockBackend) -> tuple[object, ...]:
    return (be.profiles("demo"), be.batches("demo"), list(be.tenant("demo").pending))


def check_refused(call: InvalidCall) -> None:
    be = fresh_backend()
    be.seed_profile("demo", tnt_id="1000000000000-000001", third_party_id="known", attributes={"a": "1"})
    before = _snapshot(be)
    resp = send(create_app(be).test_client(), call.request)
    assert resp.status == call.expected.status, (resp.status, resp.body)
    fields = parse_response(resp.body)
    assert fields["success"] == ("true" if call.expected.success else "false")
    assert call.expected.message in fields["message"], fields["message"]
    # exactly the tagged error rule broke, no other
    errors = [v for e in be.journal.entries() for v in e.errors]
    assert {v.rule.id for v in errors} == {call.rule_id}, [v.message for v in errors]
    assert _snapshot(be) == before


@pytest.mark.parametrize("rule_id", [r for r in BREAKABLE_RULES if r not in HUGE])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_rule_strategy_is_refused_with_its_tagged_outcome(rule_id: str, data: st.DataObject) -> None:
    call = data.draw(invalid_calls(rule_id))
    assert call.rule_id == rule_id and call.rule.severity is Severity.ERROR
    check_refused(call)


@pytest.mark.parametrize("rule_id", HUGE)
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
def test_files_over_the_size_and_row_limits_are_refused(rule_id: str, data: st.DataObject) -> None:
    check_refused(data.draw(invalid_calls(rule_id)))


def test_every_payload_error_rule_has_a_strategy() -> None:
    payload_errors = {r.id for r in RULES.values() if r.is_error and r.id.split(".")[0] in ("single", "batch", "id")}
    assert payload_errors == set(BREAKABLE_RULES)


@pytest.mark.parametrize("bad", ["no.such-rule", "batch.whitespace", "rate.bulk"])
def test_rule_argument_is_checked_eagerly(bad: str) -> None:
    with pytest.raises(InvalidArgument, match=bad):
        invalid_calls(bad)
