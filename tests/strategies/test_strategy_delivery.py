"""Delivery API strategies: valid visits are accepted cleanly and land in the profile; each invalid one is
refused with exactly the rule it is tagged with and changes nothing."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from strategy_support import fresh_backend, send
from target_profile_mock.contracts.delivery import parse_delivery
from target_profile_mock.contracts.rules import RULES
from target_profile_mock.contracts.strategies import (
    DELIVERY_RULES,
    DeliveryCall,
    delivery_requests,
    invalid_delivery_requests,
)
from target_profile_mock.mockserver import create_app


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(delivery_requests())
def test_valid_visits_are_accepted_and_written(call: DeliveryCall) -> None:
    be = fresh_backend()
    resp = send(create_app(be).test_client(), call.request)
    assert resp.status == 200, resp.body
    assert [v.rule_id for e in be.journal.entries() for v in e.violations] == []
    answer = json.loads(resp.body)
    tnt = answer["id"]["tntId"]
    if call.tnt_id is not None:
        assert tnt.partition(".")[0] == call.tnt_id.partition(".")[0]
    profile = be.get_profile("demo", "tntId", tnt)
    assert profile is not None
    assert profile["attributes"] == {k: v for k, v in call.profile_parameters.items() if v != ""}
    if call.third_party_id is not None:
        assert be.get_profile("demo", "thirdPartyId", call.third_party_id) == profile
    section = next(s for s in ("execute", "prefetch") if s in call.body)
    assert [m["name"] for m in answer[section].get("mboxes", [])] == list(call.mboxes)


@pytest.mark.parametrize("rule_id", DELIVERY_RULES)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_invalid_visit_is_refused_with_its_rule(rule_id: str, data: st.DataObject) -> None:
    call = data.draw(invalid_delivery_requests(rule_id))
    assert call.rule_id == rule_id and call.surface == "delivery"
    be = fresh_backend()
    resp = send(create_app(be).test_client(), call.request)
    assert resp.status == call.expected.status, (resp.status, resp.body)
    body = json.loads(resp.body)
    assert body["status"] == resp.status and call.expected.message in body["message"], body
    errors = {v.rule_id for e in be.journal.entries() for v in e.errors}
    assert errors == {rule_id}, errors
    assert be.profiles("demo") == []


def test_every_delivery_error_rule_has_a_strategy() -> None:
    errors = {r.id for r in RULES.values() if r.is_error and r.id.startswith("delivery.")}
    assert errors == set(DELIVERY_RULES)


def test_new_visitors_send_no_ids() -> None:
    from hypothesis import find

    call = find(delivery_requests(new_visitors=True), lambda c: True)
    assert call.tnt_id is None and call.third_party_id is None
    assert parse_delivery(call.request.query, call.request.body).violations == []


def test_rule_argument_is_checked() -> None:
    with pytest.raises(InvalidArgument, match=r"batch\.empty"):
        invalid_delivery_requests("batch.empty")


@settings(max_examples=5, deadline=None)
@given(st.from_type(DeliveryCall))
def test_delivery_calls_have_a_type_strategy(call: DeliveryCall) -> None:
    assert call.request.path == "/rest/v1/delivery" and parse_delivery(call.request.query, call.request.body).accepted
