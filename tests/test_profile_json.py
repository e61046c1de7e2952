"""target_profile_mock.contracts.profile_json: the fetch response shape, timestamps and the verbatim 404 bodies."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from target_profile_mock.contracts.profile_json import format_timestamp, not_found_body, not_found_json, profile_body

#: ISO-8601 with milliseconds and a numeric UTC offset, as in 2017-08-18T17:53:39.003-04:00 (EL-PROFILES)
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$")


def test_format_timestamp_has_milliseconds_and_an_offset() -> None:
    assert format_timestamp(1503078819003) == "2017-08-18T17:53:39.003+00:00"
    assert format_timestamp(0) == "1970-01-01T00:00:00.000+00:00"
    assert format_timestamp(1503078819000) == "2017-08-18T17:53:39.000+00:00"  # zeros are kept


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_format_timestamp_round_trips_to_the_millisecond(epoch_ms: int) -> None:
    text = format_timestamp(epoch_ms)
    assert ISO_MS.match(text), text
    assert round(datetime.fromisoformat(text).timestamp() * 1000) == epoch_ms


def test_profile_body_shape() -> None:
    body = profile_body("acme", "a1-mbox3rdPartyId", {"param1": ("value1", 1503078819003),
                                                      "insurance": ("false", 1501548895625)})
    assert list(body) == ["client", "visitorId", "modifiedAt", "profileAttributes"]
    assert body["client"] == "acme"
    assert body["visitorId"] == "a1-mbox3rdPartyId"
    assert body["modifiedAt"] == "2017-08-18T17:53:39.003+00:00"  # the latest attribute change
    assert body["profileAttributes"] == {
        "param1": {"value": "value1", "modifiedAt": "2017-08-18T17:53:39.003+00:00"},
        "insurance": {"value": "false", "modifiedAt": "2017-08-01T00:54:55.625+00:00"},
    }
    assert json.loads(json.dumps(body)) == body


def test_profile_body_without_attributes() -> None:
    body = profile_body("acme", "1-2", {})
    assert body["profileAttributes"] == {}
    assert ISO_MS.match(body["modifiedAt"])


def test_not_found_bodies_are_verbatim() -> None:
    # EL-FETCH: {"status" : 404, "message" : "No profile found for client <c> with third party id=<id>"}
    assert not_found_body("acme", "thirdPartyId", "a1") == {
        "status": 404, "message": "No profile found for client acme with third party id=a1"}
    # EL-FETCH: {"status" : 404, "message" : "No profile found for client <c> with mboxPC=<id>"}
    assert not_found_body("acme", "tntId", "1-2.01_00") == {
        "status": 404, "message": "No profile found for client acme with mboxPC=1-2.01_00"}


def test_not_found_body_for_an_ecid_follows_the_same_pattern() -> None:
    # undocumented; the fake's choice
    body = not_found_body("acme", "marketingCloudVisitorId", "123")
    assert body == {"status": 404, "message": "No profile found for client acme with marketingCloudVisitorId=123"}


@pytest.mark.parametrize("pid", ["id with spaces", "é", "a&b=c"])
def test_not_found_keeps_the_id_as_given(pid: str) -> None:
    assert not_found_body("c", "thirdPartyId", pid)["message"].endswith(f"third party id={pid}")


def test_not_found_json_is_byte_exact_as_documented() -> None:
    assert not_found_json("acme", "thirdPartyId", "a1") == (
        b'{"status" : 404, "message" : "No profile found for client acme with third party id=a1"}')
    assert not_found_json("acme", "tntId", "1-2.01_00") == (
        b'{"status" : 404, "message" : "No profile found for client acme with mboxPC=1-2.01_00"}')
