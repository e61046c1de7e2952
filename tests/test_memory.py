"""Memory any client could grow: the journal's byte bound, paged and streamed journal reads, the bound on
batch data and on tenants. (Peak RSS under attack is measured by bench/memory.py, not here.)"""

from __future__ import annotations

import hashlib
import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from target_profile_mock.mockserver import MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.cli import _parser, config_from_args
from target_profile_mock.mockserver.models.journal import BODY_KEEP, ENTRY_OVERHEAD, Journal
from target_profile_mock.mockserver.server import LiveServer

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _update(client: FlaskClient, i: int, **headers: str) -> None:
    assert client.get(f"/m2/demo/profile/update?mbox3rdPartyId=u{i}&profile.x={i}", headers=headers).status_code == 200


# --- the journal's bounds -------------------------------------------------------------------------------------
def test_the_journal_drops_its_oldest_entries_beyond_its_byte_bound(backend: MockBackend) -> None:
    backend.configure(journal_bytes=300_000)
    client = create_app(backend).test_client()
    for i in range(10):
        _update(client, i, **{"X-Big": "h" * 50_000})  # each entry holds about 50 KB of header text
    journal = backend.journal
    ids = [e.parsed["id"] for e in journal.entries()]
    assert 3 <= len(ids) < 10 and ids == [f"u{i}" for i in range(10 - len(ids), 10)]  # the newest, in order
    assert journal.bytes == sum(e.cost for e in journal.entries()) <= 300_000
    assert all(e.cost > 50_000 + ENTRY_OVERHEAD for e in journal.entries())


def test_the_entry_bound_still_holds_and_clear_frees_the_bytes(backend: MockBackend) -> None:
    backend.configure(journal_size=3)
    client = create_app(backend).test_client()
    for i in range(5):
        _update(client, i)
    assert [e.parsed["id"] for e in backend.journal.entries()] == ["u2", "u3", "u4"]
    assert backend.journal.bytes > 0
    backend.journal.clear()
    assert (len(backend.journal), backend.journal.bytes) == (0, 0)


def test_no_byte_bound_keeps_everything() -> None:
    journal = Journal(None, None)
    assert (journal.maxlen, journal.max_bytes) == (None, None)
    be = MockBackend(MockConfig(journal_size=None, journal_bytes=None))
    client = create_app(be).test_client()
    for i in range(20):
        _update(client, i, **{"X-Big": "h" * 10_000})
    assert len(be.journal) == 20


def test_journal_bytes_defaults_and_is_checked(backend: MockBackend, client: FlaskClient) -> None:
    assert MockConfig().journal_bytes == 64 * 1024 * 1024 == MockBackend().journal.max_bytes
    r = client.put("/_mock/settings", json={"journal_bytes": -1})
    assert r.status_code == 400 and "journal_bytes" in r.get_json()["error"]
    assert client.put("/_mock/settings", json={"journal_bytes": 1_000_000}).status_code == 200
    assert backend.journal.max_bytes == 1_000_000


@pytest.mark.parametrize(("given", "expected"), [("1000", 1000), ("64M", 64 * 2**20), ("1G", 2**30),
                                                 ("512KiB", 512 * 1024), ("2mb", 2 * 2**20)])
def test_the_cli_takes_journal_bytes(given: str, expected: int) -> None:
    assert config_from_args(_parser().parse_args(["serve", "--journal-bytes", given])).journal_bytes == expected
    assert config_from_args(_parser().parse_args(["serve"])).journal_bytes == 64 * 2**20


def test_the_cli_refuses_a_bad_byte_count(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--journal-bytes", "lots"])
    assert "'lots' is not a byte count" in capsys.readouterr().err


# --- large bodies: kept cut short, with their size and digest ------------------------------------------------
def _v2_without_ids(rows: int) -> bytes:
    return b"batch=pcId,tier\n" + b",gold\n" * rows


def test_a_large_answer_is_journaled_cut_short_with_its_size_and_digest(backend: MockBackend,
                                                                        client: FlaskClient) -> None:
    backend.set_lifecycle("immediate")
    r = client.post("/m2/demo/v2/profile/batchUpdate", data=_v2_without_ids(3_000), headers=FORM)
    url = urlsplit(r.data.split(b"<batchStatus>")[1].split(b"</batchStatus>")[0].decode().replace("&amp;", "&"))
    answer = client.get(f"{url.path}?{url.query}").data
    assert len(answer) > BODY_KEEP  # every row without an id is listed as failed
    entry = backend.journal.entries()[-1]
    assert entry.response_body == answer[:BODY_KEEP]
    assert entry.response_size == len(answer)
    assert entry.response_sha256 == hashlib.sha256(answer).hexdigest()
    d = entry.to_dict()
    assert (d["responseBodySize"], d["responseBodySha256"]) == (len(answer), entry.response_sha256)
    small = backend.journal.entries()[0]  # the submit answer: short, kept whole, no digest
    assert small.response_size == len(small.response_body) and small.response_sha256 is None


def test_a_large_request_body_is_journaled_cut_short_with_its_size_and_digest(backend: MockBackend,
                                                                              client: FlaskClient) -> None:
    body = _v2_without_ids(20_000)
    assert client.post("/m2/demo/v2/profile/batchUpdate", data=body, headers=FORM).status_code == 200
    entry = backend.journal.entries()[-1]
    assert entry.body == body[:BODY_KEEP] and entry.body_size == len(body)
    assert entry.body_sha256 == hashlib.sha256(body).hexdigest() == entry.to_dict()["bodySha256"]
    assert client.post("/m2/demo/v2/profile/batchUpdate", data=b"batch=pcId,a\n1-1,x\n",
                       headers=FORM).status_code == 200
    assert backend.journal.entries()[-1].body_sha256 is None  # kept whole: nothing to vouch for


def test_a_fault_damaged_answer_is_journaled_as_sent(backend: MockBackend, client: FlaskClient) -> None:
    backend.faults.load({"kind": "malformed", "operation": "single-update", "body": "<response>"})
    assert client.get("/m2/demo/profile/update?mbox3rdPartyId=u&profile.x=1").data == b"<response>"
    entry = backend.journal.entries()[-1]
    assert (entry.response_body, entry.response_size) == (b"<response>", 10)


# --- reading the journal: paged and streamed --------------------------------------------------------------------
def _seqs(r: object) -> list[int]:
    return [e["seq"] for e in r.get_json()]  # type: ignore[attr-defined]


def test_journal_pages_with_limit_and_after(backend: MockBackend, client: FlaskClient) -> None:
    for i in range(5):
        _update(client, i)
    client.get("/rest/v1/profiles/thirdPartyId/u1?client=demo")
    every = _seqs(client.get("/_mock/journal"))
    assert every == sorted(every) and len(every) == 6
    first = client.get("/_mock/journal?limit=2")
    assert _seqs(first) == every[:2]
    assert first.headers["Link"] == f'</_mock/journal?limit=2&after={every[1]}>; rel="next"'
    second = client.get(f"/_mock/journal?limit=2&after={every[1]}")
    assert _seqs(second) == every[2:4]
    last = client.get(f"/_mock/journal?limit=2&after={every[3]}")
    assert _seqs(last) == every[4:] and "Link" not in last.headers
    assert client.get(f"/_mock/journal?after={every[-1]}").get_json() == []
    # filters apply before the page is cut
    ups = client.get("/_mock/journal?operation=single-update&limit=4")
    assert _seqs(ups) == every[:4] and "operation=single-update" in ups.headers["Link"]
    assert _seqs(client.get("/_mock/journal?operation=fetch&limit=1")) == every[5:]


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "limit=-1", "after=-1", "after=1.5"])
def test_bad_page_parameters_are_400(client: FlaskClient, query: str) -> None:
    r = client.get(f"/_mock/journal?{query}")
    name = query.split("=")[0]
    assert r.status_code == 400 and f"?{name}= takes a whole number" in r.get_json()["error"]


def test_the_journal_is_streamed_not_built_whole(client: FlaskClient) -> None:
    _update(client, 1)
    r = client.get("/_mock/journal")
    assert r.is_streamed and "Content-Length" not in r.headers
    assert r.content_type.startswith("application/json") and len(r.get_json()) == 1


def test_the_journal_over_a_socket_is_chunked_and_pages(backend: MockBackend) -> None:
    with LiveServer(create_app(backend)) as server:
        parts = urlsplit(server.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            for i in range(3):
                conn.request("GET", f"/m2/demo/profile/update?mbox3rdPartyId=u{i}&profile.x=1", headers={
                    "X-Big": "h" * 100_000})
                assert conn.getresponse().read()
            conn.request("GET", "/_mock/journal")
            resp = conn.getresponse()
            entries = json.loads(resp.read())
            assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
            assert [e["headers"]["X-Big"] == "h" * 100_000 for e in entries] == [True] * 3
            conn.request("GET", "/_mock/journal?limit=1")
            resp = conn.getresponse()
            page = json.loads(resp.read())
            assert [e["seq"] for e in page] == [entries[0]["seq"]] and 'rel="next"' in resp.getheader("Link")
        finally:
            conn.close()


# --- batch data: bounded in bytes across tenants --------------------------------------------------------------
def _file(rows: int, start: int = 0) -> bytes:
    return b"batch=thirdPartyId,tier\n" + b"".join(b"u%d,gold\n" % i for i in range(start, start + rows))


def test_ended_batches_lose_their_rows_oldest_first_and_polls_stay_truthful(backend: MockBackend, bulk) -> None:
    backend.configure(v2_profile_rows="failed")
    backend.set_lifecycle("immediate,failed=1")
    first = bulk.submit(_file(2_000), tenant="a")
    one_batch = backend.batch_bytes()
    backend.configure(batch_retention_bytes=int(one_batch * 2.5))
    second = bulk.submit(_file(2_000, 5_000), tenant="b")
    before = bulk.status(first.status_url, details=True)
    assert not backend.batch(first.batch_id)["detailsDropped"] and backend.batch(first.batch_id)["rows"]
    third = bulk.submit(_file(2_000, 9_000), tenant="c")  # no room for three: the oldest ended batch pays
    dropped = backend.batch(first.batch_id)
    assert dropped["detailsDropped"] and dropped["rows"] is None
    assert not backend.batch(second.batch_id)["detailsDropped"] and backend.batch(third.batch_id)["rows"]
    assert backend.batch_bytes() <= int(one_batch * 2.5)
    # its status, counters and failed rows are unchanged
    after = bulk.status(first.status_url, details=True)
    assert after == before and after.status == "complete" and len(after.profiles) == 1
    assert dropped["counters"]["successfulUpdates"] == 1_999 and len(dropped["failedIds"]) == 1
    # the full per-row list of the 2017 shape cannot be given any more: the answer says so
    backend.configure(v2_profile_rows="all")
    r = bulk.status_response(first.status_url)
    assert r.status_code == 404 and b"dropped its per-row statuses" in r.data and b"batch_retention_bytes" in r.data
    assert len(bulk.status(second.status_url).profiles) == 2_000


def test_batches_not_yet_applied_are_never_dropped_a_new_one_is_refused(backend: MockBackend, bulk) -> None:
    backend.set_lifecycle("manual")
    held = bulk.submit(_file(2_000), tenant="a")
    backend.configure(batch_retention_bytes=backend.batch_bytes() + 1_000)
    r = bulk.post(_file(2_000, 5_000), tenant="b")
    assert r.status_code == 503 and "Retry-After" not in r.headers  # waiting alone would not help
    message = r.data.decode()
    assert "<success>false</success>" in message and "batch_retention_bytes" in message
    assert "force them" in message and "not yet applied" in message
    assert [b["batchId"] for b in backend.batches()] == [held.batch_id]  # b exists: its bulk call counted
    entry = backend.journal.entries()[-1]
    assert entry.status == 503 and "batch_retention_bytes" in entry.parsed["refused"] and not entry.violations
    assert backend.batch(held.batch_id)["rows"] and backend._reserved == 0
    # once the held batch is applied, its rows may go, and the next batch is taken
    backend.force_batch(held.batch_id, "complete")
    assert bulk.post(_file(2_000, 5_000), tenant="b").status_code == 200
    assert backend.batch(held.batch_id)["detailsDropped"]


def test_a_refusal_says_when_a_timed_batch_will_have_ended(backend: MockBackend, bulk) -> None:
    backend.set_lifecycle("seconds=5")
    bulk.submit(_file(2_000), tenant="a")
    backend.configure(batch_retention_bytes=backend.batch_bytes() + 1_000)
    backend.advance(1.5)
    r = bulk.post(_file(2_000, 5_000), tenant="a")
    assert r.status_code == 503 and r.headers["Retry-After"] == "4"
    backend.advance(4)
    assert bulk.post(_file(2_000, 5_000), tenant="a").status_code == 200  # the first one ended meanwhile


def test_a_batch_is_always_taken_when_nothing_else_is_held(backend: MockBackend, bulk) -> None:
    backend.configure(batch_retention_bytes=1)
    backend.set_lifecycle("manual")
    bulk.submit(_file(500))
    assert bulk.post(_file(10)).status_code == 503
    backend.reset()
    bulk.submit(_file(10))
    backend.configure(batch_retention_bytes=None)
    for i in range(3):
        bulk.submit(_file(500, 1_000 * i))


def test_batch_memory_settings_are_checked(client: FlaskClient) -> None:
    for key in ("batch_retention_bytes", "max_tenants"):
        r = client.put("/_mock/settings", json={key: -5})
        assert r.status_code == 400 and key in r.get_json()["error"]
    defaults = client.get("/_mock/settings").get_json()
    assert (defaults["batch_retention_bytes"], defaults["max_tenants"]) == (128 * 2**20, 10_000)
    config = config_from_args(_parser().parse_args(["serve", "--batch-retention-bytes", "1G", "--max-tenants", "5"]))
    assert (config.batch_retention_bytes, config.max_tenants) == (2**30, 5)


# --- tenants: a global bound ---------------------------------------------------------------------------------
def test_writes_naming_a_new_tenant_beyond_the_bound_get_503(backend: MockBackend, client: FlaskClient, bulk) -> None:
    backend.configure(max_tenants=2)
    for code in ("a", "b"):
        assert client.get(f"/m2/{code}/profile/update?mbox3rdPartyId=u&profile.x=1").status_code == 200
    r = client.get("/m2/c/profile/update?mbox3rdPartyId=u&profile.x=1")
    assert r.status_code == 503 and b"<success>false</success>" in r.data and b"max_tenants" in r.data
    assert backend.journal.entries()[-1].status == 503
    # a request the contract refuses gets the contract's answer first
    assert client.put("/m2/c/profile/update?mbox3rdPartyId=u&profile.x=1").status_code == 405
    r = bulk.post(_file(3), tenant="c")
    assert r.status_code == 503 and b"max_tenants" in r.data and b"<batchStatus></batchStatus>" in r.data
    r = client.get("/c/target/authentication/token?authorizationScope=profile_api")
    assert r.status_code == 503 and r.get_json()["errors"][0]["errorCode"] == "ServiceUnavailable"
    r = client.post("/_mock/tenants/c/profiles", json={"thirdPartyId": "u"})
    assert r.status_code == 503 and "max_tenants" in r.get_json()["error"]
    # reads never needed a tenant, and tenants that exist go on as before
    assert client.get("/rest/v1/profiles/thirdPartyId/u?client=c").status_code == 404
    assert client.get("/m2/a/profile/update?mbox3rdPartyId=u&profile.x=2").status_code == 200
    assert backend.tenants() == ["a", "b"]
    backend.reset()
    assert client.get("/m2/c/profile/update?mbox3rdPartyId=u&profile.x=1").status_code == 200


@pytest.mark.parametrize("lean", [True, False])
def test_a_tenant_refused_past_the_views_own_check_is_a_503_not_a_500(backend: MockBackend, lean: bool,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # another thread may create the last tenant between a view's check and its write
    backend.configure(max_tenants=0)
    answers = iter([None])
    real = backend.tenant_refusal
    monkeypatch.setattr(backend, "tenant_refusal", lambda code: next(answers, real(code)))
    if not lean:  # a queued fault sends every request through Flask's dispatch, not the lean front
        backend.faults.load({"kind": "latency", "latency": 0.001, "operation": "fetch"})
    r = create_app(backend).test_client().get("/m2/x/profile/update?mbox3rdPartyId=u&profile.x=1")
    assert r.status_code == 503 and b"max_tenants" in r.data and b"<success>false</success>" in r.data


def test_the_standalone_server_tunes_glibc_malloc_to_give_memory_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform
    import subprocess
    import sys

    from target_profile_mock.mockserver import server

    # in a process of its own, as the server is: it changes the allocator of the process it runs in
    out = subprocess.run([sys.executable, "-c", "from target_profile_mock.mockserver.server import tune_allocator;"
                          "print(tune_allocator())"], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == str(platform.libc_ver()[0] == "glibc"), out.stderr
    monkeypatch.setattr(platform, "libc_ver", lambda: ("musl", "1.2"))
    assert server.tune_allocator() is False  # elsewhere it leaves the allocator alone
