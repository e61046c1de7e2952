"""Control API reads for watching the fake (docs/control-api.md): tenant counts, profile search with the
requests and batches that wrote each attribute, batch due times, one journal entry, the journal stream."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
import requests
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.server import LiveServer

pytestmark = pytest.mark.both_stores

BATCH = b"batch=pcId,tier\n1700000000000-1.01_00,gold\n1700000000000-2,silver\n"
TOKEN = "s3cret-token"


def submit(client, body=BATCH, tenant="acme"):
    r = client.post(f"/m2/{tenant}/v2/profile/batchUpdate", data=body,
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200, r.data
    return r.data.decode().split("batchId=")[1].split("<")[0]


# --- GET /_mock/tenants/<tenant> -------------------------------------------------------------------------------
def test_tenant_summary_counts_what_the_tenant_holds(client, backend):
    backend.configure("acme", lifecycle=Lifecycle.parse("seconds=30"), update_delay=10)
    backend.seed_profile("acme", tnt_id="1700000000000-1.01_00")
    submit(client)
    client.post("/m2/acme/profile/update?mboxPC=1700000000000-1.01_00&profile.tier=gold")
    client.post("/m2/demo/profile/update?mboxPC=1700000000000-1.01_00&profile.tier=gold")
    client.put("/_mock/tenants/acme/auth", json={"enabled": True})
    r = client.get("/_mock/tenants/acme")
    assert r.status_code == 200
    s = r.get_json()
    now = backend.now_ms()
    assert s["tenant"] == "acme" and s["profiles"] == 1 and s["requests"] == 2
    assert s["batches"] == {"incomplete": 1, "complete": 0, "stuck": 0}
    assert s["pendingUpdates"] == 1 and s["nextChangeAt"] == now + 10_000  # the delayed update beats the batch
    assert s["auth"] == {"enabled": True, "tokenIssued": True, "tokenExpiresIn": 86400}
    assert s["rateLimits"]["bulk"] == {"limit": 50, "windowSeconds": 60.0, "used": 1}
    assert s["rateLimits"]["single"]["used"] == 1 and s["rateLimits"]["single"]["limit"] == 1_000_000
    backend.advance(61)  # the bulk window slides; the update lands; the batch is still due later
    s = client.get("/_mock/tenants/acme").get_json()
    assert s["rateLimits"]["bulk"]["used"] == 0 and s["rateLimits"]["single"]["used"] == 1
    assert s["pendingUpdates"] == 0 and s["batches"]["complete"] == 1 and s["nextChangeAt"] is None


def test_tenant_summary_of_an_unknown_tenant_is_404_and_creates_nothing(client):
    r = client.get("/_mock/tenants/nobody")
    assert r.status_code == 404 and "GET /_mock/tenants" in r.get_json()["error"]
    assert client.get("/_mock/tenants").get_json() == []


# --- dueAt ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "due"), [("seconds=2.5", 2500), ("immediate", None), ("polls=3", None),
                                           ("manual", None)])
def test_batches_show_when_the_clock_alone_ends_them(client, backend, spec, due):
    backend.configure(lifecycle=Lifecycle.parse(spec))
    batch_id = submit(client)
    b = client.get(f"/_mock/batches/{batch_id}").get_json()
    assert b["dueAt"] == (None if due is None else b["submittedAt"] + due)


def test_a_held_or_ended_batch_has_no_due_time(client, backend):
    backend.configure(lifecycle=Lifecycle.parse("seconds=5"))
    batch_id = submit(client)
    assert client.post(f"/_mock/batches/{batch_id}/force", json={"status": "incomplete"}).get_json()["dueAt"] is None
    other = submit(client)
    backend.advance(5)
    assert client.get(f"/_mock/batches/{other}").get_json() | {"status": "complete", "dueAt": None} == \
        client.get(f"/_mock/batches/{other}").get_json()


# --- profile search -------------------------------------------------------------------------------------------
def test_profile_search_by_tnt_id_with_or_without_location_hint_lists_the_writers(client, backend):
    backend.configure(lifecycle=Lifecycle.parse("immediate"))
    backend.seed_profile("acme", tnt_id="1700000000000-1.01_00", third_party_id="c1",
                         attributes={"seeded": "yes"})
    batch_id = submit(client, b"batch=pcId,tier,city\n1700000000000-1.01_00,gold,\n")
    backend.advance(1)
    client.post("/m2/acme/profile/update?mbox3rdPartyId=c1&profile.city=Basel")
    backend.advance(1)
    client.post("/m2/acme/profile/update?mboxPC=1700000000000-1.01_00&profile.tier=platinum")
    client.post("/m2/acme/profile/update?mboxPC=1700000000000-1.01_00")  # refused: wrote nothing
    seqs = [e.seq for e in backend.journal if e.operation == "single-update"]
    for needle in ("1700000000000-1", "1700000000000-1.01_00", "1700000000000-1.02_00"):
        found = client.get(f"/_mock/tenants/acme/profiles?tntId={needle}").get_json()
        assert [p["tntId"] for p in found] == ["1700000000000-1.01_00"], needle
    p = found[0]
    assert p["attributes"] == {"seeded": "yes", "tier": "platinum", "city": "Basel"}
    assert p["writtenBy"] == {"seeded": [], "tier": [{"batch": batch_id}, {"request": seqs[1]}],
                              "city": [{"request": seqs[0]}]}
    by_third = client.get("/_mock/tenants/acme/profiles?thirdPartyId=c1").get_json()
    assert [q["tntId"] for q in by_third] == ["1700000000000-1.01_00"]
    assert client.get("/_mock/tenants/acme/profiles?thirdPartyId=c2").get_json() == []
    assert client.get("/_mock/tenants/acme/profiles?tntId=1700000000000-9").get_json() == []
    assert client.get("/_mock/tenants/other/profiles?tntId=1700000000000-1").get_json() == []
    r = client.get("/_mock/tenants/acme/profiles?tntId=1&thirdPartyId=c1")
    assert r.status_code == 400 and "one id at a time" in r.get_json()["error"]


# --- GET /_mock/journal/<seq> ----------------------------------------------------------------------------------
def test_a_journal_entry_by_seq_with_its_verdict(client, backend):
    client.post("/m2/acme/profile/update?mbox3rdPartyId=c1&profile.a=1")  # clean
    client.post("/m2/client/profile/update?mbox3rdPartyId=c1&profile.a=1")  # deviation: literal client
    client.post("/m2/acme/profile/update?mbox3rdPartyId=c1")  # error
    backend.faults.add("status", status=503, times=1)
    client.post("/m2/acme/profile/update?mbox3rdPartyId=c1&profile.a=1")  # faulted
    seqs = [e.seq for e in backend.journal]
    verdicts = [client.get(f"/_mock/journal/{s}").get_json()["verdict"] for s in seqs]
    assert verdicts == ["clean", "deviation", "error", "faulted"]
    one = client.get(f"/_mock/journal/{seqs[2]}").get_json()
    assert one["violations"][0]["rule"] == "single.no-attributes" and one["curl"].startswith("curl -X POST")
    r = client.get("/_mock/journal/999")
    assert r.status_code == 404 and "no journal entry 999" in r.get_json()["error"]


# --- GET /_mock/journal/stream ---------------------------------------------------------------------------------
def _events(text: str) -> list[tuple[str, dict]]:
    out = []
    for chunk in text.split("\n\n"):
        event = re.search(r"^event: (.*)$", chunk, re.M)
        data = re.search(r"^data: (.*)$", chunk, re.M)
        if event and data:
            out.append((event.group(1), json.loads(data.group(1))))
    return out


def test_the_stream_sends_entries_after_a_seq_filtered_and_ends_after_its_wait(client):
    client.post("/m2/acme/profile/update?mbox3rdPartyId=c1&profile.a=1")
    submit(client)
    client.post("/m2/demo/profile/update?mbox3rdPartyId=c1")
    r = client.get("/_mock/journal/stream?wait=0")
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    events = _events(r.get_data(as_text=True))
    assert [(e, d["seq"], d["verdict"]) for e, d in events] == [("entry", 1, "clean"), ("entry", 2, "clean"),
                                                                  ("entry", 3, "error")]
    assert events[1][1]["batchId"] and events[2][1]["rules"] == ["single.no-attributes"]
    assert "body" not in events[0][1] and "curl" not in events[0][1]
    after = _events(client.get("/_mock/journal/stream?wait=0&after=1&tenant=acme").get_data(as_text=True))
    assert [d["seq"] for _, d in after] == [2]
    resumed = client.get("/_mock/journal/stream?wait=0&operation=single-update", headers={"Last-Event-ID": "1"})
    assert [d["seq"] for _, d in _events(resumed.get_data(as_text=True))] == [3]


@pytest.mark.parametrize("query", ["after=-1", "after=x", "wait=301", "wait=1.5"])
def test_the_stream_refuses_bad_parameters(client, query):
    r = client.get(f"/_mock/journal/stream?{query}")
    assert r.status_code == 400 and r.get_json()["error"]


@pytest.mark.slow
def test_the_stream_delivers_new_requests_live_over_a_real_socket():
    be = MockBackend(MockConfig(control_token=TOKEN))
    with LiveServer(create_app(be)) as server:
        assert requests.get(f"{server.url}/_mock/journal/stream?wait=0", timeout=5).status_code == 401
        seen: list[dict] = []
        with requests.get(f"{server.url}/_mock/journal/stream?wait=20", headers={"X-Mock-Token": TOKEN},
                          stream=True, timeout=20) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            lines = stream.iter_lines(decode_unicode=True)
            assert next(lines) == "retry: 1000"
            started = time.monotonic()
            threading.Timer(0.3, requests.post, (f"{server.url}/m2/acme/profile/update?mbox3rdPartyId=c1"
                                                 "&profile.tier=gold",), {"timeout": 5}).start()
            for line in lines:
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    break
            waited = time.monotonic() - started
        assert seen[0]["seq"] == 1 and seen[0]["tenant"] == "acme" and seen[0]["status"] == 200
        assert waited < 10  # it came while the stream was open, not when it ended
        server.wait_idle()
