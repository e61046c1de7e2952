"""Methods: every 405 carries Allow, OPTIONS advertises only what is served, HEAD is refused on every Adobe
route (never a poll, an update or a token); and the rate limits' answers stay true when the clock is
frozen in the past or a limit is 0."""

from __future__ import annotations

import pytest
import requests
from target_profile_mock.contracts.xmlbodies import parse_response
from target_profile_mock.mockserver import MockBackend, create_app
from target_profile_mock.mockserver.server import LiveServer

FORM = "application/x-www-form-urlencoded"
FILE = b"batch=thirdPartyId,a\nc1,x\n"

# path (with {batch} for a submitted batch), what it serves, the rule its 405 names
ADOBE = [
    ("/m2/demo/profile/update?mbox3rdPartyId=c1&profile.a=1", "GET, POST, OPTIONS", "single.method"),
    ("/m2/demo/profile/batchUpdate", "POST, OPTIONS", "batch.method"),
    ("/m2/demo/v2/profile/batchUpdate", "POST, OPTIONS", "batch.method"),
    ("/m2/demo/profile/batchStatus?batchId={batch}", "GET, OPTIONS", "status.method"),
    ("/m2/demo/v2/profile/batchStatus?batchId={batch}", "GET, OPTIONS", "status.method"),
    ("/rest/v1/profiles/thirdPartyId/c1?client=demo", "GET, OPTIONS", "fetch.method"),
    ("/rest/v1/profiles/marketingCloudVisitorId/e1?client=demo", "GET, OPTIONS", "fetch.method"),
    ("/rest/v1/profiles/1-2?client=demo", "GET, OPTIONS", "fetch.method"),
    ("/demo/target/authentication/token?authorizationScope=profile_api", "GET, POST, OPTIONS", "token.method"),
    ("/rest/v1/delivery?client=demo&sessionId=s1", "POST, OPTIONS", "delivery.method"),
]


def _batch(client) -> str:
    r = client.post("/m2/demo/v2/profile/batchUpdate", data=FILE, content_type=FORM)
    return parse_response(r.data)["batchStatus"].split("batchId=")[1]


REFUSED = [(path, allow, rule_id, method) for path, allow, rule_id in ADOBE
           for method in ("HEAD", "PUT", "PATCH", "DELETE", "POST", "GET", "TRACE") if method not in allow.split(", ")]


@pytest.mark.parametrize(("path", "allow", "rule_id", "method"), REFUSED)
def test_adobe_routes_refuse_what_they_do_not_serve_with_allow(client, backend, path, allow, rule_id, method):
    batch = _batch(client)
    backend.seed_profile("demo", third_party_id="c1")
    before = (backend.batch(batch)["polls"], backend.profiles("demo"), backend.tenant("demo").token)
    r = client.open(path.format(batch=batch), method=method)
    assert r.status_code == 405, r.data
    assert r.headers["Allow"] == allow
    if method == "HEAD":
        assert r.data == b""
    if method != "TRACE":  # TRACE never reaches the views: Flask refuses it, with the same Allow
        entry = backend.journal.entries()[-1]
        assert entry.status == 405 and rule_id in [v.rule.id for v in entry.violations]
    assert (backend.batch(batch)["polls"], backend.profiles("demo"), backend.tenant("demo").token) == before


@pytest.mark.parametrize(("path", "allow", "rule_id"), ADOBE)
def test_options_advertises_only_the_methods_served(client, backend, path, allow, rule_id):
    r = client.open(path.format(batch=_batch(client)), method="OPTIONS")
    assert r.status_code == 200 and r.headers["Allow"] == allow


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("DELETE", "/_mock/health", {"GET", "HEAD", "OPTIONS"}),
    ("POST", "/_mock/settings", {"GET", "HEAD", "OPTIONS", "PUT", "PATCH"}),
    ("GET", "/_mock/reset", {"POST", "OPTIONS"}),
    ("GET", "/_mock/faults/1", {"DELETE", "OPTIONS"}),
])
def test_control_routes_answer_405_with_allow_and_options_agrees(client, method, path, allow):
    r = client.open(path, method=method)
    assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) == allow
    assert r.get_json()["error"]
    r = client.options(path)
    assert r.status_code == 200 and set(r.headers["Allow"].split(", ")) == allow


def test_head_on_a_control_read_answers_as_get_without_a_body(client):
    r = client.head("/_mock/health")
    assert r.status_code == 200 and r.data == b""


def test_a_head_on_batch_status_never_counts_as_a_poll(client, backend):
    batch = _batch(client)
    for _ in range(3):
        assert client.head(f"/m2/demo/profile/batchStatus?batchId={batch}").status_code == 405
    assert backend.batch(batch)["polls"] == 0 and backend.batch(batch)["status"] == "incomplete"


@pytest.mark.slow
def test_methods_over_a_real_socket():
    backend = MockBackend()
    with LiveServer(create_app(backend)) as server:
        base = server.url
        r = requests.post(base + "/m2/demo/v2/profile/batchUpdate", data=FILE, headers={"Content-Type": FORM},
                          timeout=5)
        status_url = parse_response(r.content)["batchStatus"]
        r = requests.head(status_url, timeout=5)
        assert r.status_code == 405 and r.headers["Allow"] == "GET, OPTIONS" and r.content == b""
        r = requests.options(base + "/m2/demo/profile/update", timeout=5)
        assert r.status_code == 200 and r.headers["Allow"] == "GET, POST, OPTIONS"
        r = requests.put(base + "/rest/v1/profiles/thirdPartyId/c1?client=demo", timeout=5)
        assert r.status_code == 405 and r.headers["Allow"] == "GET, OPTIONS"
        assert r.json()["message"].startswith("[fetch.method]")
        assert [b["polls"] for b in backend.batches("demo")] == [0]


# --- rate limits with the clock frozen in the past, and limits of 0 --------------------------------------
def test_freezing_the_clock_at_0_leaves_a_truthful_retry_after(client, backend):
    backend.clock.restart()
    backend.configure("demo", bulk_calls_per_minute=1)
    assert client.post("/m2/demo/v2/profile/batchUpdate", data=FILE, content_type=FORM).status_code == 200
    assert client.post("/_mock/clock", json={"freeze": True, "at": 0}).status_code == 200
    # the call made "in the future" is not in the minute before 0: the limit has room again
    assert client.post("/m2/demo/v2/profile/batchUpdate", data=FILE, content_type=FORM).status_code == 200
    r = client.post("/m2/demo/v2/profile/batchUpdate", data=FILE, content_type=FORM)
    assert r.status_code == 503 and 1 <= int(r.headers["Retry-After"]) <= 60


def test_freezing_the_clock_in_the_past_frees_the_single_update_window(client, backend):
    backend.clock.restart()
    backend.configure("demo", single_updates_per_day=1)
    path = "/m2/demo/profile/update?mbox3rdPartyId=c1&profile.a=1"
    assert client.get(path).status_code == 200
    assert client.get(path).status_code == 429
    client.post("/_mock/clock", json={"freeze": True, "at": 0})
    assert client.get(path).status_code == 200
    r = client.get(path)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 86_400


@pytest.mark.parametrize("value", ["AAA", 1, 0, "false", None, [], {}])
def test_freeze_takes_only_a_boolean(client, backend, value):
    before = client.get("/_mock/clock").get_json()
    r = client.post("/_mock/clock", json={"freeze": value})
    assert r.status_code == 400 and r.get_json()["error"].startswith("freeze takes true or false")
    assert client.get("/_mock/clock").get_json()["frozen"] == before["frozen"]


@pytest.mark.parametrize("body", [{"advance": True}, {"advance": "5"}, {"advance": [5]}, {"frezee": True}])
def test_the_clock_refuses_other_types_and_unknown_keys(client, body):
    before = client.get("/_mock/clock").get_json()
    assert client.post("/_mock/clock", json=body).status_code == 400
    assert client.get("/_mock/clock").get_json() == before


def test_a_bulk_limit_of_0_says_so(client, backend):
    client.put("/_mock/rate-limits", json={"tenant": "demo", "bulkCallsPerMinute": 0})
    r = client.post("/m2/demo/v2/profile/batchUpdate", data=FILE, content_type=FORM)
    assert r.status_code == 503
    message = parse_response(r.data)["message"]
    assert message.startswith("[rate.bulk] the bulk limit of client demo is set to 0 calls a minute, so every bulk "
                              "call is refused")
    assert "has made 0" not in message


def test_a_bulk_limit_of_0_on_status_polls_says_so(client, backend):
    batch = _batch(client)
    backend.configure(rate_limit_status_polls=True)
    backend.configure("demo", bulk_calls_per_minute=0)
    r = client.get(f"/m2/demo/profile/batchStatus?batchId={batch}")
    assert r.status_code == 503 and "is set to 0 calls a minute" in parse_response(r.data)["message"]


def test_a_single_update_limit_of_0_says_so(client, backend):
    backend.configure("demo", single_updates_per_day=0)
    r = client.get("/m2/demo/profile/update?mbox3rdPartyId=c1&profile.a=1")
    assert r.status_code == 429
    assert "single update limit is 0 a day: every single update is refused" in parse_response(r.data)["message"]


def test_a_bulk_limit_above_0_still_counts_the_calls(client, backend):
    backend.configure("demo", bulk_calls_per_minute=2)
    for _ in range(2):
        client.post("/m2/demo/v2/profile/batchUpdate", data=FILE, content_type=FORM)
    r = client.post("/m2/demo/v2/profile/batchUpdate", data=FILE, content_type=FORM)
    assert "client demo has made 2 bulk calls in the last minute" in parse_response(r.data)["message"]
