"""What the WSGI server (waitress) does before and around the app, over a real socket: headers with
underscores, raw bytes in the request target, body and header limits, and many idle connections."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterable, Iterator

import pytest
import requests
from target_profile_mock.contracts.xmlbodies import parse_response
from target_profile_mock.mockserver import MockBackend, create_app
from target_profile_mock.mockserver.config import MockConfig
from target_profile_mock.mockserver.server import LiveServer

LIMIT = 20_000  # a small batch_max_bytes, so the server's body limit is reached cheaply
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
OK = b"<response><success>true</success><pcId></pcId><message>Request successfully submitted</message></response>"


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[MockBackend, LiveServer]]:
    be = MockBackend(MockConfig(batch_max_bytes=LIMIT))
    with LiveServer(create_app(be)) as server:
        yield be, server


@pytest.fixture
def be(live: tuple[MockBackend, LiveServer]) -> MockBackend:
    live[1].wait_idle(10)
    live[0].reset()
    live[0].configure(auth=False)
    return live[0]


@pytest.fixture
def server(live: tuple[MockBackend, LiveServer], be: MockBackend) -> LiveServer:
    return live[1]


def _address(server: LiveServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host.strip("[]"), int(port)


def exchange(server: LiveServer, data: bytes, *,
             body: Iterable[bytes] = ()) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes (then ``body``'s chunks while the server still reads) and read the answer."""
    with socket.create_connection(_address(server), timeout=10) as sock:
        sock.sendall(data)
        try:
            for chunk in body:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the rest was sent
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # what it had written arrived first
    head, _, payload = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in headers.items()}, payload


# --- headers ------------------------------------------------------------------------------------
def test_the_access_token_header_with_an_underscore_is_accepted(be: MockBackend, server: LiveServer) -> None:
    be.configure(auth=True)
    be.seed_profile("demo", third_party_id="u1")
    token = be.current_token("demo").value
    url = server.url + "/m2/demo/profile/update?mbox3rdPartyId=u1&profile.tier=gold"
    assert requests.get(url, timeout=5).status_code == 401
    r = requests.get(url, headers={"access_token": token}, timeout=5)
    assert (r.status_code, r.content) == (200, OK)
    assert be.get_profile("demo", "thirdPartyId", "u1")["attributes"] == {"tier": "gold"}
    entry = be.journal.entries()[-1]
    assert "auth.access-token-header" in [v.rule_id for v in entry.violations]
    # fetch and batch status read it too
    fetched = requests.get(server.url + "/rest/v1/profiles/thirdPartyId/u1?client=demo",
                           headers={"access_token": token}, timeout=5)
    assert fetched.status_code == 200
    assert requests.get(server.url + "/m2/demo/profile/update?mbox3rdPartyId=u1&profile.tier=x",
                        headers={"access_token": "wrong"}, timeout=5).status_code == 401


# --- the request target ---------------------------------------------------------------------------
def test_raw_utf8_in_the_query_is_read_as_utf8_and_journaled(be: MockBackend, server: LiveServer) -> None:
    be.seed_profile("demo", third_party_id="u1")
    status, _, body = exchange(server, b"GET /m2/demo/profile/update?mbox3rdPartyId=u1&profile.city=Z\xc3\xbcrich "
                                       b"HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (status, body) == (200, OK)
    assert be.get_profile("demo", "thirdPartyId", "u1")["attributes"] == {"city": "Zürich"}
    entry = be.journal.entries()[-1]
    assert entry.operation == "single-update" and entry.status == 200


def test_raw_latin1_bytes_in_the_query_never_get_a_plain_text_400(be: MockBackend, server: LiveServer) -> None:
    status, headers, body = exchange(server, b"GET /rest/v1/profiles/thirdPartyId/\xe9t\xe9?client=demo HTTP/1.1\r\n"
                                             b"Host: x\r\nConnection: close\r\n\r\n")
    assert status == 404 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["status"] == 404
    assert [e.operation for e in be.journal.entries()] == ["fetch"]


def test_a_huge_get_update_is_refused_as_the_contract_says(be: MockBackend, server: LiveServer) -> None:
    status, headers, body = exchange(server, b"GET /m2/demo/profile/update?mbox3rdPartyId=u1&profile.a="
                                     + b"a" * 300_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 414 and headers["content-type"].startswith("application/xml")
    assert parse_response(body)["message"].startswith("[single.get-too-large]")
    entry = be.journal.entries()[-1]
    assert (entry.operation, entry.tenant, entry.status) == ("single-update", "demo", 414)
    assert [v.rule_id for v in entry.violations] == ["single.get-too-large"]


def test_huge_headers_elsewhere_get_431_in_the_apis_shape(be: MockBackend, server: LiveServer) -> None:
    status, headers, body = exchange(server, b"GET /rest/v1/profiles/1-2?client=demo HTTP/1.1\r\nHost: x\r\n"
                                             b"X-Big: " + b"b" * 300_000 + b"\r\n\r\n")
    assert status == 431 and headers["content-type"].startswith("application/json")
    assert "262,144 bytes" in json.loads(body)["message"]
    [entry] = be.journal.entries()
    assert (entry.operation, entry.path, entry.status, entry.violations) == ("fetch", "/rest/v1/profiles/1-2", 431, [])


# --- bodies over the limit --------------------------------------------------------------------------
def test_a_declared_body_over_the_limit_is_answered_at_once_without_sending_it(be: MockBackend,
                                                                              server: LiveServer) -> None:
    # only the headers and a few bytes go out: the answer must not wait for the rest
    status, headers, body = exchange(server, b"POST /m2/demo/v2/profile/batchUpdate HTTP/1.1\r\nHost: x\r\n"
                                             b"Content-Type: application/x-www-form-urlencoded\r\n"
                                             b"Content-Length: %d\r\n\r\nbatch=thirdPartyId,a\n" % (LIMIT + 1))
    assert status == 413 and headers["content-type"].startswith("application/xml")
    answer = parse_response(body)
    assert answer["success"] == "false" and answer["message"].startswith("[batch.too-large]")
    assert f"{LIMIT:,} bytes" in answer["message"]
    assert be.batches("demo") == []
    # journaled as the fake's own refusals are, so a test's contract check sees it
    entry = be.journal.entries()[-1]
    assert (entry.operation, entry.tenant, entry.method, entry.path, entry.status) == (
        "batch-submit", "demo", "POST", "/m2/demo/v2/profile/batchUpdate", 413)
    assert [v.rule_id for v in entry.violations] == ["batch.too-large"] and entry.body_size == LIMIT + 1
    assert entry.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert entry.response_body == body


def test_a_client_sending_a_body_over_the_limit_gets_the_answer(be: MockBackend, server: LiveServer) -> None:
    # requests sends the whole body; the server answers after the headers and stops reading
    r = requests.post(server.url + "/m2/demo/profile/batchUpdate", data=b"batch=thirdPartyId,a\n" + b"x" * 4 * LIMIT,
                      headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert r.status_code == 413 and parse_response(r.content)["message"].startswith("[batch.too-large]")
    assert be.batches("demo") == []


def test_a_client_that_sends_everything_before_reading_still_gets_the_answer(be: MockBackend,
                                                                             server: LiveServer) -> None:
    # http.client writes the whole body first: a server that closed at once would reset the connection
    # under it, and it would never read the 413
    conn = http.client.HTTPConnection(*_address(server), timeout=10)
    try:
        conn.request("POST", "/m2/demo/profile/batchUpdate", body=b"batch=" + b"x" * 16_000_000, headers=FORM)
        resp = conn.getresponse()
        assert resp.status == 413 and parse_response(resp.read())["message"].startswith("[batch.too-large]")
    finally:
        conn.close()
    # and the server is not left reading it: the next call is answered
    assert requests.get(server.url + "/_mock/health", timeout=10).status_code == 200


def test_a_body_of_exactly_the_limit_is_still_read(be: MockBackend, server: LiveServer) -> None:
    head = b"batch=thirdPartyId,a\nu1,"
    data = head + b"x" * (LIMIT - len(head) - 1) + b"\n"
    assert len(data) == LIMIT
    r = requests.post(server.url + "/m2/demo/v2/profile/batchUpdate", data=data, timeout=10,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text


def test_a_chunked_body_is_refused_once_it_passes_the_limit(be: MockBackend, server: LiveServer) -> None:
    chunk = b"x" * 4096
    endless = (b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10 * LIMIT // len(chunk)))
    status, _, body = exchange(server, b"POST /m2/demo/profile/batchUpdate HTTP/1.1\r\nHost: x\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n", body=endless)
    assert status == 413 and parse_response(body)["message"].startswith("[batch.too-large]")
    assert be.batches("demo") == []


def test_a_control_call_over_the_limit_changes_nothing(be: MockBackend, server: LiveServer) -> None:
    be.seed_profile("demo", third_party_id="kept")
    status, _, body = exchange(server, b"POST /_mock/reset HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                       b"Content-Length: %d\r\n\r\n{}" % (LIMIT + 1))
    assert status == 413 and "Request Entity Too Large" in json.loads(body)["error"]
    assert be.get_profile("demo", "thirdPartyId", "kept") is not None
    assert be.journal.entries() == []  # control calls are never journaled


def test_a_single_update_body_over_the_servers_limit_names_the_contracts_rule(server: LiveServer) -> None:
    status, _, body = exchange(server, b"POST /m2/demo/profile/update HTTP/1.1\r\nHost: x\r\n"
                                       b"Content-Length: %d\r\n\r\nmbox" % (LIMIT + 1))
    assert status == 413 and parse_response(body)["message"].startswith("[single.post-too-large]")


# --- connections ---------------------------------------------------------------------------------
def test_idle_and_slow_connections_do_not_shut_out_other_clients(be: MockBackend, server: LiveServer) -> None:
    """Twice waitress' default limit of 100 connections, held open half idle, half mid-request."""
    be.seed_profile("demo", third_party_id="u1")
    held: list[socket.socket] = []
    try:
        for i in range(200):
            sock = socket.create_connection(_address(server), timeout=10)
            if i % 2:  # a slowloris: headers never finished
                sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: x\r\n")
            else:  # a slow upload: body never finished
                sock.sendall(b"POST /m2/demo/profile/batchUpdate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nba")
            held.append(sock)
        # generous bounds: each answer comes at once unless the server stopped accepting
        assert requests.get(server.url + "/_mock/health", timeout=10).status_code == 200
        r = requests.get(server.url + "/m2/demo/profile/update?mbox3rdPartyId=u1&profile.a=1", timeout=10)
        assert (r.status_code, r.content) == (200, OK)
    finally:
        for sock in held:
            sock.close()



def test_huge_headers_on_the_delivery_api_are_journaled_as_a_visit(be: MockBackend, server: LiveServer) -> None:
    status, headers, body = exchange(server, b"POST /rest/v1/delivery?client=acme&sessionId=s HTTP/1.1\r\n"
                                             b"Host: x\r\nX-Big: " + b"b" * 300_000 + b"\r\n\r\n")
    assert status == 431 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["status"] == 431
    [entry] = be.journal.entries()
    assert (entry.operation, entry.tenant, entry.path, entry.status) == ("delivery", "acme", "/rest/v1/delivery", 431)
