"""target_profile_mock.contracts.ids: identifier checks and client codes from host names."""

from __future__ import annotations

import pytest
from target_profile_mock.contracts.ids import check_third_party_id, check_tnt_id, client_code_from_host


@pytest.mark.parametrize(("host", "code"), [
    ("acme.tt.omtrdc.net", "acme"),
    ("acme.tt.omtrdc.net:443", "acme"),
    ("acme.tt.omtrdc.net:8080", "acme"),
    ("ACME.TT.OMTRDC.NET", "ACME"),
    ("my-client_2.tt.omtrdc.net", "my-client_2"),
    ("demo4.tt.omtrdc.net", "demo4"),
])
def test_client_code_from_a_client_code_host(host: str, code: str) -> None:
    assert client_code_from_host(host) == code


@pytest.mark.parametrize("host", [
    "mboxedge17.tt.omtrdc.net", "mboxedge45.tt.omtrdc.net:80", "mboxedge.tt.omtrdc.net", "MBOXEDGE19.tt.omtrdc.net",
    "localhost", "localhost:8080", "127.0.0.1:5000", "[::1]:8080", "[::1]", "tt.omtrdc.net", "acme.omtrdc.net",
    "acme.tt.omtrdc.net.evil.example", "a.b.tt.omtrdc.net", "", None,
])
def test_hosts_that_name_no_client(host: str | None) -> None:
    assert client_code_from_host(host) is None


def test_third_party_id_rules() -> None:
    assert check_third_party_id("customer-42", "thirdPartyId") == []
    assert check_third_party_id("a" * 256, "x") == []
    assert [v.rule_id for v in check_third_party_id("a" * 257, "x")] == ["id.third-party-length"]
    assert [v.rule_id for v in check_third_party_id("a+b", "x")] == ["id.third-party-chars"]
    assert [v.rule_id for v in check_third_party_id("a/b", "x")] == ["id.third-party-chars"]
    assert [v.rule_id for v in check_third_party_id("/" * 300, "x")] == ["id.third-party-chars",
                                                                        "id.third-party-length"]
    assert [v.rule_id for v in check_third_party_id("", "x")] == ["id.empty"]


def test_third_party_id_check_can_report_under_another_rule() -> None:
    out = check_third_party_id("a+b", "row 2", rule_id="batch.third-party-id")
    assert [v.rule_id for v in out] == ["batch.third-party-id"]
    assert out[0].where == "row 2"


@pytest.mark.parametrize("tnt", ["1368007744041-575948.01_00", "111492025094307-353046", "1436187396849-250353.03_03",
                                 "1-2", "1-2.17"])
def test_documented_tnt_id_formats(tnt: str) -> None:
    assert check_tnt_id(tnt, "mboxPC") == []


@pytest.mark.parametrize("tnt", ["abc", "1-2.3.4", "1-2.", "-1", "1368007744041-575948.01_00 "])
def test_unusual_tnt_ids_are_deviations(tnt: str) -> None:
    out = check_tnt_id(tnt, "mboxPC")
    assert [v.rule_id for v in out] == ["id.tnt-format"]
    assert not out[0].rule.is_error


def test_empty_tnt_id_is_an_error() -> None:
    assert [v.rule_id for v in check_tnt_id("", "pcId")] == ["id.empty"]
