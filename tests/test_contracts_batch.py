"""The batch-file parser and serialiser, and the bulk XML bodies, without HTTP."""

from __future__ import annotations

import io
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from target_profile_mock.contracts.batch import batch_update_path, encode_batch, encode_cell, parse_batch
from target_profile_mock.contracts.rules import Severity
from target_profile_mock.contracts.xmlbodies import (
    batch_refused,
    batch_status,
    batch_submitted,
    parse_batch_status,
    parse_response,
)


def ids(file) -> set[str]:
    return {v.rule_id for v in file.violations}


# --- the documented bytes ---------------------------------------------------------------------------
def test_submit_body_is_the_documented_bytes():
    url = "http://mboxedge45.tt.omtrdc.net/m2/demo/profile/batchStatus?batchId=demo-1701473848678-13029383"
    assert batch_submitted(url) == (
        b"<response>\n"
        b"    <success>true</success>\n"
        b"    <batchStatus>http://mboxedge45.tt.omtrdc.net/m2/demo/profile/batchStatus?batchId="
        b"demo-1701473848678-13029383</batchStatus>\n"
        b"    <message>Batch submitted for processing</message>\n"
        b"</response>")


def test_submit_body_escapes_the_ampersand_of_extra_parameters():
    body = batch_submitted("http://h/m2/demo/profile/batchStatus?batchId=demo-1-12345678&m2Node=00")
    assert b"batchId=demo-1-12345678&amp;m2Node=00" in body
    assert parse_response(body)["batchStatus"].endswith("&m2Node=00")


def test_refused_body_has_false_an_empty_batch_status_and_the_message():
    body = batch_refused("the file has more than 500,000 rows")
    fields = parse_response(body)
    assert fields == {"success": "false", "batchStatus": "", "message": "the file has more than 500,000 rows"}


def test_default_status_body_is_the_documented_one_line():
    expected = (b"<response><batchId>demo4-1701473848678-13029383</batchId><status>complete</status>"
                b"<batchSize>1</batchSize></response>")
    assert batch_status("demo4-1701473848678-13029383", "complete", 1) == expected


def test_detailed_status_body_is_the_documented_layout():
    counters = {"batchSize": 1, "consumedCount": 1, "successfulUpdates": 1, "profilesNotFound": 0,
                "failedUpdates": 0}
    expected = (b"<response>\n"
                b"    <batchId>demo4-1701473848678-13029383</batchId>\n"
                b"    <status>complete</status>\n"
                b"    <batchSize>1</batchSize>\n"
                b"    <consumedCount>1</consumedCount>\n"
                b"    <successfulUpdates>1</successfulUpdates>\n"
                b"    <profilesNotFound>0</profilesNotFound>\n"
                b"    <failedUpdates>0</failedUpdates>\n"
                b"</response>")
    assert batch_status("demo4-1701473848678-13029383", "complete", 1, counters) == expected


def test_v2_failed_rows_body_is_the_2020_layout():
    expected = (b"<response>\n"
                b"    <batchId>samplebatch-1585929692655-59449976</batchId>\n"
                b"    <status>complete</status>\n"
                b"    <batchSize>164</batchSize>\n"
                b"    <profile>\n"
                b"        <id>some profile id</id>\n"
                b"        <status>failed</status>\n"
                b"    </profile>\n"
                b"</response>")
    body = batch_status("samplebatch-1585929692655-59449976", "complete", 164, None,
                        [("some profile id", "failed")])
    assert body == expected
    parsed = parse_batch_status(body)
    assert parsed.profiles == [("some profile id", "failed")]
    assert parsed.batch_size == 164


# --- parser: header and transport ------------------------------------------------------------------
def test_documented_sample_parses():
    f = parse_batch(b"batch=pcId,param1,param2,param3,param4\n123,value1\n124,value1,,,value4\n125,,value2\n"
                    b"126,value1,value2,value3,value4\n")
    assert f.accepted
    assert f.key == "pcId"
    assert f.attributes == ("param1", "param2", "param3", "param4")
    assert list(f.records()) == [
        ("123", {"param1": "value1"}),
        ("124", {"param1": "value1", "param4": "value4"}),
        ("125", {"param2": "value2"}),
        ("126", {"param1": "value1", "param2": "value2", "param3": "value3", "param4": "value4"}),
    ]


@pytest.mark.parametrize("header", [b"tntId,a", b"pcid,a", b"marketingCloudVisitorId,a", b"id,a", b",a"])
def test_first_header_other_than_pcid_or_third_party_id_is_an_error(header):
    f = parse_batch(b"batch=" + header + b"\n1-1,x\n")
    assert not f.accepted
    assert ids(f) & {"batch.bad-key-header", "batch.ecid-key"}
    assert f.rows == []


def test_case_mistake_in_key_header_gets_a_hint():
    f = parse_batch(b"batch=PCID,a\n1-1,x\n")
    assert "case-sensitive" in f.errors[0].detail


def test_body_without_batch_prefix_is_an_error_for_a_form_body_only():
    assert ids(parse_batch(b"pcId,a\n1-1,x\n")) == {"batch.missing-prefix"}
    csv_file = parse_batch(b"pcId,a\n1-1,x\n", transport="csv")
    assert csv_file.accepted
    assert ids(csv_file) == {"batch.content-type"}
    assert ids(parse_batch(b"pcId,a\n1-1,x\n", transport="multipart")) == {"batch.multipart"}


def test_whole_file_form_encoded_as_one_field_is_refused_saying_so():
    # requests.post(url, data={"batch": text}) urlencodes the whole file into one field
    text = "thirdPartyId,tier,city\nc-1,gold,New York\nc-2,silver,Paris\n"
    f = parse_batch(urlencode({"batch": text}).encode())
    assert ids(f) == {"batch.form-encoded-file"}  # not a bad key header, and no raw-plus noise
    assert f.rows == []
    detail = f.errors[0].detail
    assert "the whole file arrived form-encoded as one field" in detail
    assert "data={'batch': text}" in detail
    assert "'thirdPartyId,tier,city'" in detail
    assert "--data-binary" in f.errors[0].rule.fix and "data=file_bytes" in f.errors[0].rule.fix


def test_form_encoding_is_recognised_with_quote_and_with_the_prefix_inside():
    text = "batch=pcId,a\r\n1-1,x\r\n"
    f = parse_batch(b"batch=" + quote(text, safe="").encode())
    assert ids(f) == {"batch.form-encoded-file"}
    assert "'batch=pcId,a'" in f.errors[0].detail


def test_header_with_percent_encoded_commas_is_refused_saying_so():
    f = parse_batch(b"batch=thirdPartyId%2Ctier\nc-1,gold\n")
    assert ids(f) == {"batch.form-encoded-file"}
    assert "the header's commas arrived percent-encoded" in f.errors[0].detail


def test_an_encoded_comma_inside_one_header_name_is_not_a_form_encoded_file():
    # raw commas separate the cells: %2C is part of a name, and the header rules judge it
    assert ids(parse_batch(b"batch=thirdPartyId,a%2Cb\nc-1,x\n")) == set()
    assert "batch.form-encoded-file" not in ids(parse_batch(b"batch=thirdPartyId%2D\nc-1,x\n"))


def test_a_body_without_line_breaks_hints_at_curl_data_binary():
    # curl -d @file strips the file's line breaks: the rows run into the header
    f = parse_batch(b"batch=thirdPartyId,tierc-1,goldc-2,silver")
    assert ids(f) == {"batch.header-only"}
    detail = f.deviations[0].detail
    assert "single line with no line break" in detail and "header of 4 columns" in detail
    assert "curl -d/--data @file" in detail and "--data-binary @file" in detail
    # a header-only file that does end its line gets no curl hint
    plain = parse_batch(b"batch=thirdPartyId,tier\n").deviations[0].detail
    assert plain == "the file has a header but no rows; it is accepted and skipped"


def test_empty_body_is_an_error():
    assert ids(parse_batch(b"")) == {"batch.empty"}
    assert ids(parse_batch(b"batch=\n")) == {"batch.empty"}


def test_profile_prefix_is_dropped_and_reported():
    f = parse_batch(b"batch=thirdPartyId,profile.tier\nc1,gold\n")
    assert f.attributes == ("tier",)
    assert ids(f) == {"batch.profile-prefix"}
    assert f.violations[0].severity is Severity.DEVIATION


def test_bom_crlf_and_bom_after_prefix_are_tolerated():
    for body in (b"\xef\xbb\xbfbatch=thirdPartyId,a\r\nc1,x\r\n", b"batch=\xef\xbb\xbfthirdPartyId,a\r\nc1,x\r\n"):
        f = parse_batch(body)
        assert f.accepted and f.key == "thirdPartyId"
        assert list(f.records()) == [("c1", {"a": "x"})]


# --- parser: cells ---------------------------------------------------------------------------------
def test_each_cell_is_decoded_exactly_once():
    f = parse_batch(b"batch=thirdPartyId,a,b,c\nc1,%2C%26%3D%25%2B%22,caf%C3%A9,%2541\n")
    assert f.accepted and not f.violations
    assert f.rows == [("c1", ',&=%+"', "café", "%41")]


def test_raw_plus_is_a_space_and_a_deviation():
    f = parse_batch(b"batch=thirdPartyId,a\nc1,a+b\n")
    assert f.accepted
    assert f.rows == [("c1", "a b")]
    assert ids(f) == {"batch.raw-plus"}


def test_raw_lone_percent_is_kept_and_a_deviation():
    f = parse_batch(b"batch=thirdPartyId,a\nc1,100%\n")
    assert f.accepted
    assert f.rows == [("c1", "100%")]
    assert ids(f) == {"batch.raw-percent"}


def test_raw_ampersand_is_an_error_naming_the_line():
    f = parse_batch(b"batch=thirdPartyId,a\nc1,ok\nc2,salt&pepper\n")
    assert not f.accepted
    assert [v.rule_id for v in f.errors] == ["batch.raw-ampersand"]
    assert "line 3" in f.errors[0].message


def test_raw_non_ascii_is_kept_and_a_deviation():
    f = parse_batch("batch=thirdPartyId,a\nc1,café\n".encode())
    assert f.rows == [("c1", "café")]
    assert ids(f) == {"batch.raw-non-ascii"}


def test_percent_escape_that_is_not_utf8_is_an_error():
    f = parse_batch(b"batch=thirdPartyId,a\nc1,%FF\n")
    assert ids(f) == {"batch.bad-encoding"}


def test_rfc4180_quotes_are_read_and_reported():
    f = parse_batch(b'batch=thirdPartyId,a,b\nc1,"x,y","say ""hi"""\n')
    assert f.accepted
    assert f.rows == [("c1", "x,y", 'say "hi"')]
    assert ids(f) == {"batch.quoted-cell"}
    assert ids(parse_batch(b'batch=thirdPartyId,a\nc1,"open\n')) >= {"batch.unterminated-quote"}


def test_short_long_and_empty_rows():
    f = parse_batch(b"batch=thirdPartyId,a,b,c\nc1,x\n\nc2,,,z,extra\n")
    assert f.rows == [("c1", "x"), ("c2", "", "", "z")]
    assert ids(f) == {"batch.long-row"}


def test_duplicate_id_is_kept_in_order_and_reported():
    f = parse_batch(b"batch=thirdPartyId,a,b\nc1,1,x\nc1,2\n")
    assert f.rows == [("c1", "1", "x"), ("c1", "2")]
    assert ids(f) == {"batch.duplicate-id"}


def test_all_empty_batch_has_no_values():
    f = parse_batch(b"batch=thirdPartyId,a,b\nc1,,\nc2\n")
    assert f.accepted and not f.has_values


def test_violations_are_tallied_once_per_rule():
    f = parse_batch(b"batch=thirdPartyId,a\n" + b"".join(b"c%d,a+b\n" % i for i in range(5)))
    (v,) = f.violations
    assert v.rule_id == "batch.raw-plus" and v.where == "line 2"
    assert "and 4 more like it" in v.detail


# --- parser: limits ---------------------------------------------------------------------------------
def test_row_limit_names_the_limit_and_drops_the_rows():
    f = parse_batch(b"batch=thirdPartyId,a\n" + b"c,x\n" * 11, max_rows=10)
    assert [v.rule_id for v in f.errors] == ["batch.too-many-rows"]
    assert "10" in f.errors[0].detail
    assert f.rows == []
    assert parse_batch(b"batch=thirdPartyId,a\n" + b"c,x\n" * 10, max_rows=10).accepted


def test_size_limit_stops_reading_a_stream():
    class Counting(io.BytesIO):
        consumed = 0

        def read(self, n: int = -1) -> bytes:
            data = super().read(n)
            self.consumed += len(data)
            return data

    body = b"batch=thirdPartyId,a\n" + b"c," + b"x" * 5_000_000 + b"\n"
    stream = Counting(body)
    f = parse_batch(stream, max_bytes=1_500_000)
    assert [v.rule_id for v in f.errors] == ["batch.too-large"]
    assert stream.consumed < 3 * 1024 * 1024  # stopped soon after the limit, not at the end
    assert "1,500,000" in f.errors[0].detail


# --- serialiser ---------------------------------------------------------------------------------------
def test_encode_batch_writes_the_documented_form():
    body = encode_batch("thirdPartyId", ["a", "b c"], [("c1", ["x,y", ""]), ("c2", {"b c": "é"})])
    assert body == b"batch=thirdPartyId,a,b%20c\nc1,x%2Cy\nc2,,%C3%A9\n"


def test_batch_update_path_names_the_version():
    assert batch_update_path("acme", 1) == "/m2/acme/profile/batchUpdate"
    assert batch_update_path("acme", 2) == "/m2/acme/v2/profile/batchUpdate"


def test_encode_cell_escapes_every_reserved_character():
    assert encode_cell('+ & = % , "/') == "%2B%20%26%20%3D%20%25%20%2C%20%22%2F"


_values = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True),
                               st.lists(_values, min_size=0, max_size=3)), min_size=1, max_size=6),
       crlf=st.booleans())
def test_encode_then_parse_round_trips(rows, crlf):
    body = encode_batch("thirdPartyId", ["a", "b", "c"], rows, line_ending="\r\n" if crlf else "\n")
    f = parse_batch(body)
    assert f.accepted
    assert not [v for v in f.violations if v.rule_id != "batch.duplicate-id"]
    assert [(r[0], [c for c in r[1:] if c]) for r in f.rows] == [(i, [c for c in v if c]) for i, v in rows]


def test_xml_bodies_replace_characters_xml_cannot_carry():
    body = batch_status("demo-1-12345678", "complete", 1, None, [("a\x00b\x1fc", "failed")])
    assert parse_batch_status(body).profiles == [("a\ufffdb\ufffdc", "failed")]
    assert parse_response(batch_refused("bad \x07 byte & <tag>"))["message"] == "bad \ufffd byte & <tag>"
