"""Submitting bulk profile updates (v1 and v2) over HTTP: encoding, CSV rules, limits, the success answer."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from target_profile_mock.contracts.xmlbodies import batch_submitted, parse_response
from target_profile_mock.mockserver import MockBackend
from target_profile_mock.mockserver.server import LiveServer
from werkzeug.test import EnvironBuilder, run_wsgi_app

pytestmark = pytest.mark.both_stores

SAMPLE = (b"batch=pcId,param1,param2,param3,param4\n"
          b"123,value1\n"
          b"124,value1,,,value4\n"
          b"125,,value2\n"
          b"126,value1,value2,value3,value4\n")


def violations(client, batch_id: str) -> set[str]:
    r = client.get(f"/_mock/batches/{batch_id}")
    assert r.status_code == 200
    return {v["rule"] for v in r.get_json()["violations"]}


def last_entry(backend: MockBackend):
    return backend.journal.entries(lambda e: e.operation == "batch-submit")[-1]


def assert_refused(r, status: int, *needles: str) -> str:
    """A refusal as the issue defines it: 4xx, success false, an empty batchStatus, a message naming why."""
    assert r.status_code == status, r.data
    fields = parse_response(r.data)
    assert fields["success"] == "false"
    assert fields["batchStatus"] == ""
    for needle in needles:
        assert needle in fields["message"], fields["message"]
    return fields["message"]


# --- the documented request ------------------------------------------------------------------------
def test_documented_sample_sent_as_curl_data_binary(bulk, client, backend, tmp_path: Path):
    path = tmp_path / "BATCH.TXT"
    path.write_bytes(SAMPLE)
    # what `curl -X POST --data-binary @BATCH.TXT <url>` puts on the wire
    r = client.post("/m2/demo/v2/profile/batchUpdate", data=path.read_bytes(),
                    headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "curl/8.5.0",
                             "Accept": "*/*"})
    assert r.status_code == 200
    entry = last_entry(backend)
    assert entry.body.startswith(b"batch=pcId,param1")
    assert entry.body == SAMPLE
    assert not entry.errors
    url = parse_response(r.data)["batchStatus"]
    assert bulk.status(url).status == "incomplete"  # polls=1: the first poll sees it pending
    assert bulk.status(url, details=True).counters == {
        "batchSize": 4, "consumedCount": 4, "successfulUpdates": 4, "profilesNotFound": 0, "failedUpdates": 0}
    assert bulk.profile("tntId", "123") == {"param1": "value1"}
    assert bulk.profile("tntId", "124") == {"param1": "value1", "param4": "value4"}
    assert bulk.profile("tntId", "125") == {"param2": "value2"}
    assert bulk.profile("tntId", "126") == {"param1": "value1", "param2": "value2", "param3": "value3",
                                            "param4": "value4"}


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
def test_documented_sample_with_real_curl(app, backend, tmp_path: Path):
    path = tmp_path / "BATCH.TXT"
    path.write_bytes(SAMPLE)
    backend.set_lifecycle("immediate")
    with LiveServer(app) as server:
        proc = subprocess.run(["curl", "-sS", "-X", "POST", "--data-binary", f"@{path}",
                               f"{server.url}/m2/demo/profile/batchUpdate"],
                              capture_output=True, timeout=30, check=True)
        fields = parse_response(proc.stdout)
        assert fields["success"] == "true"
        status = requests.get(fields["batchStatus"] + "&showDetails=true", timeout=10)
    entry = last_entry(backend)
    assert entry.header("Content-Type") == "application/x-www-form-urlencoded"
    assert entry.body == SAMPLE
    assert status.status_code == 200
    assert b"<profilesNotFound>4</profilesNotFound>" in status.content  # v1: unknown pcIds are not created


def test_file_posted_as_a_form_field_is_refused_saying_what_happened(app, backend):
    # a common mistake: requests form-encodes the whole file into one field
    text = "thirdPartyId,tier\ncust-1,gold\ncust-2,silver\n"
    with LiveServer(app) as server:
        r = requests.post(f"{server.url}/m2/demo/v2/profile/batchUpdate", data={"batch": text}, timeout=10)
    assert r.status_code == 400
    fields = parse_response(r.content)
    assert (fields["success"], fields["batchStatus"]) == ("false", "")
    assert fields["message"].startswith("[batch.form-encoded-file] the whole file arrived form-encoded as one field")
    assert "'thirdPartyId,tier'" in fields["message"]
    assert backend.batches("demo") == []
    assert [v.rule_id for v in last_entry(backend).violations] == ["batch.form-encoded-file"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
def test_curl_data_at_file_strips_line_breaks_and_the_deviation_says_so(app, backend, tmp_path: Path):
    path = tmp_path / "batch.txt"
    path.write_bytes(b"batch=thirdPartyId,tier\ncust-1,gold\ncust-2,silver\n")
    with LiveServer(app) as server:
        proc = subprocess.run(["curl", "-sS", "-d", f"@{path}", f"{server.url}/m2/demo/v2/profile/batchUpdate"],
                              capture_output=True, timeout=30, check=True)
    assert parse_response(proc.stdout)["success"] == "true"  # accepted: a header-only batch, skipped
    entry = last_entry(backend)
    assert entry.body == b"batch=thirdPartyId,tiercust-1,goldcust-2,silver"  # what curl -d sent
    (v,) = entry.violations
    assert v.rule_id == "batch.header-only"
    assert "curl removed the file's line breaks: send files with curl --data-binary @file" in v.detail


# --- cell encoding -----------------------------------------------------------------------------------
def test_percent_encoded_special_characters_land_in_the_profile(bulk, client):
    body = (b"batch=thirdPartyId,plus,amp,eq,pct,comma,quote,accent,space\n"
            b"c1,a%2Bb,salt%26pepper,k%3Dv,100%25,x%2Cy,say%20%22hi%22,caf%C3%A9%20%E2%82%AC,a%20b+c\n")
    bulk.apply(body)
    assert bulk.profile("thirdPartyId", "c1") == {
        "plus": "a+b", "amp": "salt&pepper", "eq": "k=v", "pct": "100%", "comma": "x,y", "quote": 'say "hi"',
        "accent": "café €", "space": "a b c"}


def test_raw_plus_becomes_a_space_and_is_a_deviation(bulk, client):
    sub = bulk.apply(b"batch=thirdPartyId,a\nc1,1+1\n")
    assert bulk.profile("thirdPartyId", "c1") == {"a": "1 1"}
    assert violations(client, sub.batch_id) == {"batch.raw-plus"}


def test_raw_percent_is_kept_and_a_deviation(bulk, client):
    sub = bulk.apply(b"batch=thirdPartyId,a\nc1,50%\n")
    assert bulk.profile("thirdPartyId", "c1") == {"a": "50%"}
    assert violations(client, sub.batch_id) == {"batch.raw-percent"}


def test_raw_ampersand_is_refused_naming_the_line(bulk, client, backend):
    r = bulk.post(b"batch=thirdPartyId,a\nc1,ok\nc2,salt&pepper\n")
    message = assert_refused(r, 400, "batch.raw-ampersand", "line 3")
    assert "%26" in message
    assert backend.batches("demo") == []
    assert bulk.profile("thirdPartyId", "c1") is None  # nothing half-applied


def test_raw_equals_and_non_ascii(bulk, client):
    sub = bulk.apply("batch=thirdPartyId,a,b\nc1,k=v,café\n".encode())
    assert bulk.profile("thirdPartyId", "c1") == {"a": "k=v", "b": "café"}
    assert violations(client, sub.batch_id) == {"batch.raw-non-ascii"}


def test_raw_quotes_are_read_as_rfc4180_and_a_deviation(bulk, client):
    sub = bulk.apply(b'batch=thirdPartyId,a,b\nc1,"x,y","say ""hi"""\n')
    assert bulk.profile("thirdPartyId", "c1") == {"a": "x,y", "b": 'say "hi"'}
    assert violations(client, sub.batch_id) == {"batch.quoted-cell"}


def test_percent_escape_of_invalid_utf8_is_refused(bulk):
    assert_refused(bulk.post(b"batch=thirdPartyId,a\nc1,%C3\n"), 400, "batch.bad-encoding", "line 2")


# --- transports ------------------------------------------------------------------------------------
def test_multipart_file_upload_is_accepted_as_a_deviation(bulk, client):
    r = client.post("/m2/demo/v2/profile/batchUpdate", content_type="multipart/form-data",
                    data={"file": (io.BytesIO(b"batch=thirdPartyId,a\nc1,x%2By\n"), "batch.txt")})
    assert r.status_code == 200 and parse_response(r.data)["success"] == "true"
    url = parse_response(r.data)["batchStatus"]
    bulk.status(url)
    bulk.status(url)
    assert bulk.profile("thirdPartyId", "c1") == {"a": "x+y"}
    batch_id = url.rsplit("=", 1)[1]
    assert violations(client, batch_id) == {"batch.multipart"}


def test_multipart_batch_field_larger_than_flasks_form_cap_is_accepted(bulk, client):
    rows = "".join(f"c{i},{'v' * 20}\n" for i in range(30_000))  # ~700 kB: over Flask's 500 kB field cap
    r = client.post("/m2/demo/v2/profile/batchUpdate", content_type="multipart/form-data",
                    data={"batch": "thirdPartyId,a\n" + rows})
    assert r.status_code == 200, r.data
    assert parse_response(r.data)["success"] == "true"


def test_text_csv_body_is_accepted_as_a_deviation(bulk, client):
    sub = bulk.apply(b"thirdPartyId,a\nc1,x\n", content_type="text/csv")
    assert bulk.profile("thirdPartyId", "c1") == {"a": "x"}
    assert violations(client, sub.batch_id) == {"batch.content-type"}


def test_body_without_content_type_is_accepted_as_a_deviation(bulk, client):
    sub = bulk.submit(b"batch=thirdPartyId,a\nc1,x\n", content_type=None)
    assert violations(client, sub.batch_id) == {"batch.content-type"}


def test_form_body_without_batch_prefix_is_refused(bulk):
    assert_refused(bulk.post(b"thirdPartyId,a\nc1,x\n"), 400, "batch.missing-prefix", "batch=")


def test_empty_body_is_refused(bulk):
    assert_refused(bulk.post(b""), 400, "batch.empty")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_only_post_submits(client, method):
    r = client.open("/m2/demo/profile/batchUpdate", method=method)
    assert r.status_code == 405
    assert parse_response(r.data)["success"] == "false"
    assert "batch.method" in parse_response(r.data)["message"]


# --- CSV rules ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("header", [b"tntId", b"mboxPC", b"pcid", b"marketingCloudVisitorId", b"email"])
def test_first_header_must_be_pcid_or_third_party_id(bulk, header):
    msg = assert_refused(bulk.post(b"batch=" + header + b",a\nc1,x\n"), 400)
    assert "pcId or thirdPartyId" in msg


def test_header_with_no_attribute_is_refused(bulk):
    assert_refused(bulk.post(b"batch=thirdPartyId\nc1\n"), 400, "batch.no-attribute-headers")


def test_profile_prefix_in_header_is_dropped_and_a_deviation(bulk, client):
    sub = bulk.apply(b"batch=thirdPartyId,profile.tier\nc1,gold\n")
    assert bulk.profile("thirdPartyId", "c1") == {"tier": "gold"}
    assert violations(client, sub.batch_id) == {"batch.profile-prefix"}


def test_short_rows_crlf_and_bom(bulk, client):
    sub = bulk.apply(b"\xef\xbb\xbfbatch=thirdPartyId,a,b,c\r\nc1,1\r\nc2,,2\r\nc3,1,2,3\r\n")
    assert bulk.profile("thirdPartyId", "c1") == {"a": "1"}
    assert bulk.profile("thirdPartyId", "c2") == {"b": "2"}
    assert bulk.profile("thirdPartyId", "c3") == {"a": "1", "b": "2", "c": "3"}
    assert violations(client, sub.batch_id) == set()


def test_duplicate_id_later_row_wins_attribute_by_attribute(bulk, client):
    sub = bulk.apply(b"batch=thirdPartyId,a,b,c\nc1,1,x,keep\nc1,2,,\nc1,,y\n")
    assert bulk.profile("thirdPartyId", "c1") == {"a": "2", "b": "y", "c": "keep"}
    assert violations(client, sub.batch_id) == {"batch.duplicate-id"}


def test_empty_cells_never_set_or_clear(bulk, client, backend):
    backend.seed_profile("demo", third_party_id="c1", attributes={"a": "old-a", "b": "old-b"})
    bulk.apply(b'batch=thirdPartyId,a,b,c\nc1,,new-b,""\n', version=1)
    assert bulk.profile("thirdPartyId", "c1") == {"a": "old-a", "b": "new-b"}


def test_all_empty_batch_is_skipped(bulk, client, backend):
    backend.seed_profile("demo", third_party_id="c1", attributes={"a": "keep"})
    sub = bulk.submit(b"batch=thirdPartyId,a,b\nc1,,\nc2,,\nc3\n")
    assert bulk.status(sub.status_url).status == "incomplete"
    assert bulk.status(sub.status_url).status == "complete"
    assert bulk.profile("thirdPartyId", "c1") == {"a": "keep"}
    assert bulk.profile("thirdPartyId", "c2") is None  # v2 would create it, but the batch was skipped
    assert client.get(f"/_mock/batches/{sub.batch_id}").get_json()["skipped"] is True


# --- limits ------------------------------------------------------------------------------------------
def test_500001_rows_are_refused(bulk, backend):
    r = bulk.post(b"batch=thirdPartyId,a\n" + b"c,x\n" * 500_001)
    assert_refused(r, 400, "batch.too-many-rows", "500,000")
    assert backend.batches("demo") == []


def test_row_limit_boundary(bulk, backend):
    backend.configure(batch_max_rows=10)
    bulk.submit(b"batch=thirdPartyId,a\n" + b"c,x\n" * 10)
    assert_refused(bulk.post(b"batch=thirdPartyId,a\n" + b"c,x\n" * 11), 400, "10 rows")


def big_file(size: int) -> bytes:
    row = b"c1," + b"x" * 996 + b"\n"  # 1,000 bytes a row: the byte limit strikes long before the row limit
    return b"batch=thirdPartyId,a\n" + row * (size // len(row) + 1)


def test_51_mb_file_with_content_length_is_refused_unread(bulk, backend):
    body = big_file(51_000_000)
    r = bulk.post(body)
    assert_refused(r, 413, "batch.too-large", "50,000,000")
    entry = last_entry(backend)
    assert entry.body_size == len(body)
    assert entry.body == b""  # refused on Content-Length: the body was never read
    assert backend.batches("demo") == []


class _Chunks(io.RawIOBase):
    """A non-seekable request body with no known length, as a chunked upload reaches the app."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        self.consumed += n
        return n


def _chunks(body: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    view = memoryview(body)
    for i in range(0, len(body), size):
        yield bytes(view[i:i + size])


def test_51_mb_stream_without_content_length_is_refused_while_reading(app, backend):
    body = big_file(51_000_000)
    raw = _Chunks(_chunks(body))
    environ = EnvironBuilder(path="/m2/demo/v2/profile/batchUpdate", method="POST",
                             content_type="application/x-www-form-urlencoded").get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BufferedReader(raw)
    environ["wsgi.input_terminated"] = True  # what a server says when it de-chunks the body itself
    app_iter, status, _ = run_wsgi_app(app, environ)
    data = b"".join(app_iter)
    assert status.startswith("413")
    fields = parse_response(data)
    assert fields["success"] == "false" and fields["batchStatus"] == ""
    assert "batch.too-large" in fields["message"] and "50,000,000" in fields["message"]
    assert 50_000_000 < raw.consumed < len(body)  # counted while streaming and stopped past the limit
    assert backend.batches("demo") == []


def test_oversized_multipart_field_streamed_without_length_is_refused(app, backend):
    backend.configure(batch_max_bytes=10_000)
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"batch\"\r\n\r\n"
            f"thirdPartyId,a\n{'c1,x' * 5000}\n\r\n--{boundary}--\r\n").encode()
    environ = EnvironBuilder(path="/m2/demo/v2/profile/batchUpdate", method="POST",
                             content_type=f"multipart/form-data; boundary={boundary}").get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BufferedReader(_Chunks(_chunks(body, 4096)))
    environ["wsgi.input_terminated"] = True
    app_iter, status, _ = run_wsgi_app(app, environ)
    fields = parse_response(b"".join(app_iter))
    assert status.startswith("413")
    assert fields["success"] == "false" and "batch.too-large" in fields["message"]


def test_51_mb_chunked_upload_to_a_live_server_is_refused(app, backend):
    body = big_file(51_000_000)
    with LiveServer(app) as server:
        r = requests.post(f"{server.url}/m2/demo/v2/profile/batchUpdate", data=_chunks(body, 1 << 20),
                          headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=60)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in r.request.headers
    assert r.status_code == 413
    fields = parse_response(r.content)
    assert fields["success"] == "false" and fields["batchStatus"] == ""
    assert "50,000,000" in fields["message"]
    assert backend.batches("demo") == []


# --- the success answer --------------------------------------------------------------------------
def test_success_body_is_the_documented_xml(bulk, backend):
    sub = bulk.submit(b"batch=thirdPartyId,a\nc1,x\n")
    assert sub.body == batch_submitted(sub.status_url)
    m = re.fullmatch(r"demo-(\d{13})-(\d{8})", sub.batch_id)
    assert m is not None, sub.batch_id
    assert int(m.group(1)) == backend.now_ms()
    assert sub.status_url == f"http://localhost/m2/demo/profile/batchStatus?batchId={sub.batch_id}"


def test_status_url_points_back_at_the_host_the_client_used(app, bulk):
    c = app.test_client()
    r = c.post("/m2/acme/profile/batchUpdate", base_url="http://acme.tt.omtrdc.net",
               data=b"batch=thirdPartyId,a\nc1,x\n", content_type="application/x-www-form-urlencoded")
    url = parse_response(r.data)["batchStatus"]
    assert url.startswith("http://acme.tt.omtrdc.net/m2/acme/profile/batchStatus?batchId=acme-")
    assert c.get(url).status_code == 200


def test_status_host_is_configurable_and_the_url_works_verbatim(bulk, backend):
    backend.configure(status_host="mboxedge45.tt.omtrdc.net")
    sub = bulk.submit(b"batch=thirdPartyId,a\nc1,x\n", version=1)
    assert sub.status_url.startswith("http://mboxedge45.tt.omtrdc.net/m2/demo/profile/batchStatus?batchId=demo-")
    assert bulk.status(sub.status_url).batch_id == sub.batch_id


def test_versioned_status_path_for_v2(bulk, backend):
    backend.configure(status_path="versioned")
    v2 = bulk.submit(b"batch=thirdPartyId,a\nc1,x\n", version=2)
    v1 = bulk.submit(b"batch=thirdPartyId,a\nc1,x\n", version=1)
    assert "/m2/demo/v2/profile/batchStatus?" in v2.status_url
    assert "/m2/demo/profile/batchStatus?" in v1.status_url
    assert bulk.status(v2.status_url).status == "incomplete"


def test_extra_parameters_are_accepted_on_submit_and_status(bulk):
    sub = bulk.submit(b"batch=pcId,a\n1-1,x\n", query="m2Node=00&mboxPC=0000000000000-000000.19_05")
    r = bulk.status_response(sub.status_url + "&m2Node=00&mboxPC=0000000000000-000000.19_05")
    assert r.status_code == 200


def test_status_url_followed_verbatim_over_real_http(app, backend):
    backend.set_lifecycle("immediate")
    with LiveServer(app) as server:
        r = requests.post(f"{server.url}/m2/demo/v2/profile/batchUpdate", data=b"batch=thirdPartyId,a\nc1,x\n",
                          headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
        url = parse_response(r.content)["batchStatus"]
        assert url.startswith(server.url + "/m2/demo/profile/batchStatus?batchId=demo-")
        status = requests.get(url, timeout=10)
    assert status.status_code == 200
    assert b"<status>complete</status>" in status.content


def test_literal_client_path_takes_the_tenant_from_the_host(app):
    c = app.test_client()
    r = c.post("/m2/client/v2/profile/batchUpdate", base_url="http://acme.tt.omtrdc.net",
               data=b"batch=thirdPartyId,a\nc1,x\n", content_type="application/x-www-form-urlencoded")
    url = parse_response(r.data)["batchStatus"]
    assert "/m2/acme/profile/batchStatus?batchId=acme-" in url
    assert c.get(url).status_code == 200
