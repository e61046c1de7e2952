"""target_profile_mock.contracts.xmlbodies: the /m2/ XML bodies, byte-exact where Adobe documents the bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from target_profile_mock.contracts.xmlbodies import parse_response, update_failure, update_success

DOCUMENTED_SUCCESS = (b"<response><success>true</success><pcId></pcId>"
                      b"<message>Request successfully submitted</message></response>")


def test_update_success_is_byte_exact_as_documented() -> None:
    assert update_success() == DOCUMENTED_SUCCESS


def test_update_success_parses() -> None:
    assert parse_response(update_success()) == {"success": "true", "pcId": "",
                                                 "message": "Request successfully submitted"}


def test_update_failure_has_the_success_shape_with_false() -> None:
    body = update_failure("[single.identifier-missing] no id")
    assert body == (b"<response><success>false</success><pcId></pcId>"
                    b"<message>[single.identifier-missing] no id</message></response>")


def test_update_failure_escapes_markup() -> None:
    body = update_failure("bad <id> & 'quotes' \"x\" ]]>")
    assert b"<id>" not in body and b"&lt;id&gt;" in body and b"&amp;" in body
    assert parse_response(body)["message"] == "bad <id> & 'quotes' \"x\" ]]>"


@settings(max_examples=50, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",))))
def test_any_failure_message_survives_the_round_trip(message: str) -> None:
    parsed = parse_response(update_failure(message))
    assert parsed["success"] == "false"
    # XML cannot carry most control characters and normalises line ends; what it can carry comes back
    assert parsed["message"] == _xml_visible(message).strip()


def _xml_visible(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c if c in "\t\n" or (c >= " " and c not in "\ufffe\uffff") else "\ufffd" for c in text)


def test_parse_response_accepts_str_and_pretty_printed_bodies() -> None:
    pretty = ("<response>\n    <success>true</success>\n    <pcId></pcId>\n"
              "    <message>Request successfully submitted</message>\n</response>")
    assert parse_response(pretty) == parse_response(DOCUMENTED_SUCCESS)


@pytest.mark.parametrize("body", [b"", b"not xml", b"<response><success>", b"{\"status\": 404}"])
def test_parse_response_refuses_what_is_not_xml(body: bytes) -> None:
    with pytest.raises(ValueError, match="not an XML response body"):
        parse_response(body)


def test_parse_response_refuses_another_root() -> None:
    with pytest.raises(ValueError, match="expected a <response> element, got <html>"):
        parse_response(b"<html><body>503</body></html>")
