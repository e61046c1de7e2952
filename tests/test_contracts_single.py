"""target_profile_mock.contracts.single: parsing and building ``/m2/<client>/profile/update`` requests."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from target_profile_mock.contracts.rules import LIMITS, Severity
from target_profile_mock.contracts.single import (
    SingleUpdate,
    build_single_update,
    parse_single_update,
    single_update_request,
)

FORM = "application/x-www-form-urlencoded"


def ids(update: SingleUpdate) -> list[str]:
    return [v.rule_id for v in update.violations]


def error_ids(update: SingleUpdate) -> list[str]:
    return [v.rule_id for v in update.errors]


# --- methods and where the parameters come from -----------------------------------------------------
def test_get_with_query_string() -> None:
    u = parse_single_update("GET", "mboxPC=1368007744041-575948.01_00&profile.attr=0&profile.attr2=1")
    assert u.accepted and u.violations == []
    assert (u.id_kind, u.profile_id) == ("mboxPC", "1368007744041-575948.01_00")
    assert u.attributes == {"attr": "0", "attr2": "1"}


def test_method_is_case_insensitive_and_only_get_or_post() -> None:
    assert parse_single_update("get", "mbox3rdPartyId=a&profile.x=1").accepted
    for method in ("PUT", "DELETE", "PATCH"):
        u = parse_single_update(method, "mbox3rdPartyId=a&profile.x=1")
        assert error_ids(u) == ["single.method"]
        assert u.errors[0].rule.status == 405


def test_post_with_query_string_and_no_body() -> None:
    # what a widely used connector sends
    u = parse_single_update("POST", "mbox3rdPartyId=123456&profile.attr=0")
    assert u.accepted and u.violations == []
    assert (u.id_kind, u.profile_id, u.attributes) == ("mbox3rdPartyId", "123456", {"attr": "0"})


@pytest.mark.parametrize("ctype", [FORM, FORM + "; charset=UTF-8", "APPLICATION/X-WWW-FORM-URLENCODED", ""])
def test_post_form_body(ctype: str) -> None:
    u = parse_single_update("POST", "", content_type=ctype, body=b"mbox3rdPartyId=u1&profile.city=Z%C3%BCrich")
    assert u.accepted and u.violations == []
    assert u.attributes == {"city": "Zürich"}


def test_post_query_and_form_body_combine() -> None:
    u = parse_single_update("POST", "mbox3rdPartyId=u1", content_type=FORM, body=b"profile.a=1")
    assert u.accepted and (u.profile_id, u.attributes) == ("u1", {"a": "1"})


def test_json_body_is_accepted_as_a_deviation() -> None:
    body = json.dumps({"mbox3rdPartyId": "u1", "profile.n": 5, "profile.b": True, "profile.s": "x y"}).encode()
    u = parse_single_update("POST", "", content_type="application/json", body=body)
    assert u.accepted
    assert ids(u) == ["single.json-body"]
    assert u.violations[0].severity is Severity.DEVIATION
    assert u.attributes == {"n": "5", "b": "true", "s": "x y"}  # values always become strings


@pytest.mark.parametrize("body", [b"[1, 2]", b"{not json", b"\xff\xfe"])
def test_json_body_that_is_not_an_object_is_refused(body: bytes) -> None:
    u = parse_single_update("POST", "", content_type="application/json", body=body)
    assert "single.unknown-body" in error_ids(u)
    assert u.errors[0].rule.status == 415


@pytest.mark.parametrize("ctype", ["text/plain", "multipart/form-data; boundary=x", "text/csv", "application/xml"])
def test_other_body_types_are_refused(ctype: str) -> None:
    u = parse_single_update("POST", "mbox3rdPartyId=u1&profile.a=1", content_type=ctype, body=b"profile.b=2")
    assert error_ids(u) == ["single.unknown-body"]
    assert ctype.split(";")[0] in u.errors[0].detail


def test_form_body_that_is_not_utf8_is_refused() -> None:
    u = parse_single_update("POST", "mbox3rdPartyId=u1&profile.a=1", content_type=FORM, body=b"profile.b=\xff")
    assert error_ids(u) == ["single.unknown-body"]


def test_get_ignores_a_body() -> None:
    u = parse_single_update("GET", "mbox3rdPartyId=u1&profile.a=1", content_type="text/plain", body=b"junk")
    assert u.accepted and u.attributes == {"a": "1"}


# --- size limits ---------------------------------------------------------------------------------------
def _query_of_size(n: int) -> str:
    head = "mbox3rdPartyId=u1&profile.a="
    return head + "x" * (n - len(head))


def test_get_limit_is_8_kb_at_the_exact_boundary() -> None:
    assert LIMITS.single_get_bytes == 8192
    ok = parse_single_update("GET", _query_of_size(8192))
    assert ok.accepted and len(ok.attributes["a"]) > 8000
    over = parse_single_update("GET", _query_of_size(8193))
    assert error_ids(over) == ["single.get-too-large"]
    assert over.errors[0].rule.status == 414
    assert "8193" in over.errors[0].detail and "8192" in over.errors[0].detail
    assert over.attributes == {} and over.profile_id is None  # nothing half-read


def test_get_limit_counts_the_request_target_when_given() -> None:
    q = _query_of_size(100)
    assert parse_single_update("GET", q, target_length=8192).accepted
    assert error_ids(parse_single_update("GET", q, target_length=8193)) == ["single.get-too-large"]


def test_get_limit_counts_bytes_not_characters() -> None:
    # 4,097 two-byte characters: 4,097 characters but 8,194 bytes once encoded
    q = _query_of_size(100)
    assert error_ids(parse_single_update("GET", "é" * 4097)) == ["single.get-too-large"]
    assert parse_single_update("GET", q + "&x=" + "é" * 100).accepted


def test_post_limit_is_60_kb_at_the_exact_boundary() -> None:
    assert LIMITS.single_post_bytes == 61440
    head = b"mbox3rdPartyId=u1&profile.a="
    ok = parse_single_update("POST", "", content_type=FORM, body=head + b"x" * (61440 - len(head)))
    assert ok.accepted
    over = parse_single_update("POST", "", content_type=FORM, body=head + b"x" * (61441 - len(head)))
    assert error_ids(over) == ["single.post-too-large"]
    assert over.errors[0].rule.status == 413


def test_post_limit_counts_query_and_body_together() -> None:
    q = "mbox3rdPartyId=u1"
    body_ok = b"profile.a=" + b"x" * (61440 - len(q) - len("profile.a="))
    assert parse_single_update("POST", q, content_type=FORM, body=body_ok).accepted
    assert error_ids(parse_single_update("POST", q, content_type=FORM, body=body_ok + b"x")) == [
        "single.post-too-large"]


def test_a_post_may_be_larger_than_a_get() -> None:
    q = _query_of_size(20_000)
    assert parse_single_update("POST", q).accepted
    assert not parse_single_update("GET", q).accepted


# --- identifiers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["a+b", "a/b", "+", "/lead", "trail/"])
def test_plus_and_slash_are_refused_in_mbox3rdpartyid(bad: str) -> None:
    u = parse_single_update("GET", f"mbox3rdPartyId={quote(bad, safe='')}&profile.a=1")
    assert error_ids(u) == ["id.third-party-chars"]
    assert "mbox3rdPartyId" in u.errors[0].detail


def test_plus_and_slash_together_are_both_named() -> None:
    u = parse_single_update("GET", "mbox3rdPartyId=a%2Bb%2Fc&profile.a=1")
    assert error_ids(u) == ["id.third-party-chars"]
    assert "'+'" in u.errors[0].detail and "'/'" in u.errors[0].detail


def test_a_raw_plus_in_the_query_is_a_space() -> None:
    # form decoding: a client that does not encode "+" sends a space; the id itself is fine
    u = parse_single_update("GET", "mbox3rdPartyId=a+b&profile.a=1")
    assert u.accepted and u.profile_id == "a b"


def test_plus_and_slash_are_fine_in_mboxpc_values_and_attribute_values() -> None:
    u = parse_single_update("GET", "mbox3rdPartyId=u1&profile.a=x%2By%2Fz")
    assert u.accepted and u.attributes == {"a": "x+y/z"}


def test_mbox3rdpartyid_length_limit_is_256_characters() -> None:
    assert parse_single_update("GET", f"mbox3rdPartyId={'a' * 256}&profile.a=1").accepted
    u = parse_single_update("GET", f"mbox3rdPartyId={'a' * 257}&profile.a=1")
    assert error_ids(u) == ["id.third-party-length"]
    assert "257" in u.errors[0].detail and "256" in u.errors[0].detail
    # characters, not bytes
    assert parse_single_update("GET", f"mbox3rdPartyId={quote('é' * 256)}&profile.a=1").accepted


@pytest.mark.parametrize("query", ["profile.a=1", "mboxpc=1-2&profile.a=1", "MBOX3RDPARTYID=u&profile.a=1"])
def test_missing_identifier_is_refused(query: str) -> None:
    # parameter names are case-sensitive (EL-SINGLE)
    u = parse_single_update("GET", query)
    assert error_ids(u) == ["single.identifier-missing"]
    assert u.errors[0].rule.status == 400


@pytest.mark.parametrize("name", ["mboxMCGVID", "marketingCloudVisitorId", "customerIds", "tntId", "thirdPartyId"])
def test_other_identifiers_are_not_identifiers_of_the_single_update(name: str) -> None:
    u = parse_single_update("GET", f"{name}=abc&profile.a=1")
    assert error_ids(u) == ["single.identifier-missing"]
    assert "single.unsupported-identifier" in ids(u)


@pytest.mark.parametrize("query", ["mbox3rdPartyId=&profile.a=1", "mboxPC=&profile.a=1"])
def test_empty_identifier_is_refused(query: str) -> None:
    assert error_ids(parse_single_update("GET", query)) == ["id.empty"]


def test_unusual_tnt_id_is_only_a_deviation() -> None:
    u = parse_single_update("GET", "mboxPC=not-a-tnt-id&profile.a=1")
    assert u.accepted and ids(u) == ["id.tnt-format"]
    for good in ("1368007744041-575948.01_00", "111492025094307-353046", "1436187396849-250353.03"):
        assert parse_single_update("GET", f"mboxPC={good}&profile.a=1").violations == []


def test_both_identifiers_third_party_wins_and_mboxpc_is_kept_as_fallback() -> None:
    u = parse_single_update("GET", "mboxPC=1-2&mbox3rdPartyId=u1&profile.a=1")
    assert u.accepted
    assert (u.id_kind, u.profile_id, u.other_id) == ("mbox3rdPartyId", "u1", ("mboxPC", "1-2"))
    assert ids(u) == ["single.both-identifiers"]


def test_both_identifiers_still_checks_the_third_party_id() -> None:
    u = parse_single_update("GET", "mboxPC=1-2&mbox3rdPartyId=a%2Fb&profile.a=1")
    assert "id.third-party-chars" in error_ids(u)


# --- attributes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("query", ["mbox3rdPartyId=u1", "mbox3rdPartyId=u1&attr=1", "mbox3rdPartyId=u1&profile.=1",
                                   "mbox3rdPartyId=u1&Profile.a=1"])
def test_no_profile_parameter_is_refused(query: str) -> None:
    u = parse_single_update("GET", query)
    assert error_ids(u) == ["single.no-attributes"]


def test_empty_values_are_a_deviation_and_never_clear() -> None:
    u = parse_single_update("GET", "mbox3rdPartyId=u1&profile.a=&profile.b=2")
    assert u.accepted
    assert u.attributes == {"b": "2"}
    assert ids(u) == ["single.empty-value"]
    assert u.violations[0].where == "profile.a"


def test_only_empty_values_is_accepted_and_sets_nothing() -> None:
    u = parse_single_update("GET", "mbox3rdPartyId=u1&profile.a=")
    assert u.accepted and u.attributes == {}


def test_later_empty_value_drops_an_earlier_value_of_the_same_name() -> None:
    u = parse_single_update("GET", "mbox3rdPartyId=u1&profile.a=1&profile.a=")
    assert u.attributes == {}


def test_last_value_of_a_repeated_attribute_wins() -> None:
    assert parse_single_update("GET", "mbox3rdPartyId=u1&profile.a=1&profile.a=2").attributes == {"a": "2"}


def test_attribute_names_keep_dots_and_case() -> None:
    u = parse_single_update("GET", "mbox3rdPartyId=u1&profile.address.city=X&profile.Tier=gold")
    assert u.attributes == {"address.city": "X", "Tier": "gold"}


# --- build_single_update -------------------------------------------------------------------------------
def test_build_get_puts_everything_in_the_query() -> None:
    r = build_single_update("u1", {"a": "1 2"}, client="acme")
    assert r.method == "GET" and r.body is None
    assert r.path == "/m2/acme/profile/update"
    assert r.query == "mbox3rdPartyId=u1&profile.a=1%202"
    assert r.target == "/m2/acme/profile/update?mbox3rdPartyId=u1&profile.a=1%202"


def test_build_post_sends_a_form_body() -> None:
    r = build_single_update("1-2", {"a": "x"}, id_kind="mboxPC", method="POST")
    assert r.method == "POST" and r.query == "" and r.target == "/m2/client/profile/update"
    assert r.headers["Content-Type"] == FORM
    assert r.body == b"mboxPC=1-2&profile.a=x"


def test_single_update_request_sends_any_parameters_in_order_unchecked() -> None:
    pairs = [("profile.a", "1"), ("color", "r&d"), ("mboxPC", "")]
    get = single_update_request(pairs, client="acme")
    assert get.target == "/m2/acme/profile/update?profile.a=1&color=r%26d&mboxPC="
    post = single_update_request(pairs, method="POST")
    assert (post.query, post.body) == ("", b"profile.a=1&color=r%26d&mboxPC=")
    assert dict(post.headers) == {"Content-Type": FORM}
    assert ids(parse_single_update("GET", get.query)) == ["single.prefixless-parameter", "id.empty"]


RESERVED = st.sampled_from(list("+&=%,\" ;#?/\\'<>\n\t"))
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
NAME_OR_VALUE = st.one_of(TEXT, st.lists(st.one_of(RESERVED, TEXT), min_size=1, max_size=6).map("".join))


@settings(max_examples=50, deadline=None)
@given(profile_id=NAME_OR_VALUE, attributes=st.dictionaries(NAME_OR_VALUE, NAME_OR_VALUE, min_size=1, max_size=5),
       method=st.sampled_from(["GET", "POST"]), id_kind=st.sampled_from(["mboxPC", "mbox3rdPartyId"]))
def test_build_then_parse_round_trips(profile_id: str, attributes: dict[str, str], method: str, id_kind: str) -> None:
    r = build_single_update(profile_id, attributes, id_kind=id_kind, method=method)  # type: ignore[arg-type]
    assert r.target.isascii() and (r.body is None or r.body.isascii())
    u = parse_single_update(r.method, r.query, content_type=r.headers.get("Content-Type", ""),
                            body=r.body or b"")
    assert (u.id_kind, u.profile_id) == (id_kind, profile_id)
    assert u.attributes == attributes
    assert "single.json-body" not in ids(u) and "single.unknown-body" not in ids(u)


def test_round_trip_of_every_reserved_character() -> None:
    value = '+&=%,"  é€😀'
    for method in ("GET", "POST"):
        r = build_single_update("id_1", {"k&=": value}, method=method)  # type: ignore[arg-type]
        u = parse_single_update(r.method, r.query, content_type=r.headers.get("Content-Type", ""),
                                body=r.body or b"")
        assert u.accepted and u.attributes == {"k&=": value}


def test_a_parameter_without_the_profile_prefix_is_a_deviation_and_ignored() -> None:
    u = parse_single_update("GET", "mbox3rdPartyId=c1&color=red&profile.size=L")
    assert u.accepted and u.attributes == {"size": "L"}
    assert [v.rule_id for v in u.violations] == ["single.prefixless-parameter"]
    assert "'color'" in u.violations[0].detail
