"""Every ``serve`` option over a real socket, on a subprocess: one server per set of options, shared
by the tests that need it (each test uses a tenant of its own)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from target_profile_mock.contracts.xmlbodies import parse_batch_status, parse_response
from target_profile_mock.mockserver import MockBackend, MockConfig
from test_cli import OK, ROOT, Server, _env, serving

pytestmark = pytest.mark.slow

TOKEN = "s3cret"
LOCK = {"X-Mock-Token": TOKEN}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BATCH = b"batch=thirdPartyId,tier\nu1,gold\nu2,silver\n"


@pytest.fixture(scope="module")
def main() -> Iterator[Server]:
    with serving("--control-token", TOKEN, "--status-host", "mboxedge45.tt.omtrdc.net", "--lifecycle", "polls=1",
                 "--bulk-rate-limit", "2", "--update-delay", "600", "--seed", "7", "--journal-size", "3",
                 "--threads", "1") as server:
        yield server


def control(server: Server, method: str, path: str, **kw: object) -> requests.Response:
    return requests.request(method, server.url + path, headers=LOCK, timeout=10, **kw)  # type: ignore[arg-type]


# --- --control-token ------------------------------------------------------------------------------
def test_control_token_locks_the_control_api_only(main: Server) -> None:
    for headers in ({}, {"X-Mock-Token": "guess"}):
        r = requests.get(main.url + "/_mock/health", headers=headers, timeout=10)
        assert r.status_code == 401 and "X-Mock-Token" in r.json()["error"]
        r = requests.post(main.url + "/_mock/reset", headers=headers, timeout=10)
        assert r.status_code == 401
    assert control(main, "GET", "/_mock/health").json()["status"] == "ok"
    assert TOKEN not in control(main, "GET", "/_mock/settings").text
    # Adobe's routes need no control token
    r = requests.get(main.url + "/rest/v1/profiles/thirdPartyId/nobody?client=lock", timeout=10)
    assert r.status_code == 404


# --- --status-host and --lifecycle -----------------------------------------------------------------
def test_status_host_and_lifecycle(main: Server) -> None:
    r = requests.post(main.url + "/m2/sh/v2/profile/batchUpdate", data=BATCH, headers=FORM, timeout=10)
    assert r.status_code == 200, r.text
    status_url = parse_response(r.content)["batchStatus"]
    assert re.fullmatch(r"http://mboxedge45\.tt\.omtrdc\.net/m2/sh/profile/batchStatus\?batchId=sh-\d+-\d{8}",
                        status_url), status_url
    here = main.url + status_url.removeprefix("http://mboxedge45.tt.omtrdc.net") + "&showDetails=true"
    states = [parse_batch_status(requests.get(here, timeout=10).content).status for _ in range(2)]
    assert states == ["incomplete", "complete"]  # polls=1


# --- --bulk-rate-limit -----------------------------------------------------------------------------
def test_bulk_rate_limit(main: Server) -> None:
    codes = [requests.post(main.url + "/m2/rl/profile/batchUpdate", data=BATCH, headers=FORM, timeout=10)
             for _ in range(3)]
    assert [c.status_code for c in codes] == [200, 200, 503]
    assert parse_response(codes[2].content)["message"].startswith("[rate.bulk] client rl has made 2 bulk calls")
    assert 1 <= int(codes[2].headers["Retry-After"]) <= 60


# --- multipart uploads -------------------------------------------------------------------------------
def test_multipart_upload(main: Server) -> None:
    r = requests.post(main.url + "/m2/mp/v2/profile/batchUpdate", timeout=10,
                      files={"file": ("batch.csv", b"thirdPartyId,tier\nm1,gold\n", "text/csv")})
    assert r.status_code == 200 and parse_response(r.content)["success"] == "true", r.text
    batches = control(main, "GET", "/_mock/tenants/mp/batches").json()
    assert [(b["batchSize"], b["attributes"]) for b in batches] == [(1, ["tier"])]
    assert "batch.multipart" in [v["rule"] for v in batches[0]["violations"]]


# --- the 60 KB POST limit ----------------------------------------------------------------------------
def test_single_post_limit_is_60_kb(main: Server) -> None:
    control(main, "POST", "/_mock/tenants/pl/profiles", json={"thirdPartyId": "u1"}).raise_for_status()
    prefix = "mbox3rdPartyId=u1&profile.a="
    fits = prefix + "x" * (60 * 1024 - len(prefix))
    r = requests.post(main.url + "/m2/pl/profile/update", data=fits, headers=FORM, timeout=10)
    assert (r.status_code, r.content) == (200, OK)
    r = requests.post(main.url + "/m2/pl/profile/update", data=fits + "x", headers=FORM, timeout=10)
    assert r.status_code == 413
    assert parse_response(r.content)["message"].startswith("[single.post-too-large]")


# --- --update-delay ------------------------------------------------------------------------------------
def test_update_delay(main: Server) -> None:
    control(main, "POST", "/_mock/tenants/ud/profiles", json={"thirdPartyId": "u1", "attributes": {"a": "0"}})
    fetch = main.url + "/rest/v1/profiles/thirdPartyId/u1?client=ud"
    r = requests.get(main.url + "/m2/ud/profile/update?mbox3rdPartyId=u1&profile.a=1", timeout=10)
    assert r.content == OK
    assert requests.get(fetch, timeout=10).json()["profileAttributes"]["a"]["value"] == "0"
    control(main, "POST", "/_mock/clock", json={"advance": 599}).raise_for_status()
    assert requests.get(fetch, timeout=10).json()["profileAttributes"]["a"]["value"] == "0"
    control(main, "POST", "/_mock/clock", json={"advance": 2}).raise_for_status()
    assert requests.get(fetch, timeout=10).json()["profileAttributes"]["a"]["value"] == "1"


# --- --seed ------------------------------------------------------------------------------------------
def test_seed_draws_the_tokens(main: Server) -> None:
    control(main, "POST", "/_mock/reset").raise_for_status()  # the id generator starts again from the seed
    served = requests.get(main.url + "/sd/target/authentication/token?authorizationScope=profile_api",
                          timeout=10).json()["accessToken"]
    assert served == MockBackend(MockConfig(seed=7)).current_token("sd").value
    assert served != MockBackend(MockConfig(seed=0)).current_token("sd").value


# --- --journal-size ---------------------------------------------------------------------------------------
def test_journal_size(main: Server) -> None:
    for i in range(5):
        requests.get(main.url + f"/rest/v1/profiles/thirdPartyId/j{i}?client=js", timeout=10)
    entries = control(main, "GET", "/_mock/journal").json()
    assert [e["path"] for e in entries] == [f"/rest/v1/profiles/thirdPartyId/j{i}" for i in (2, 3, 4)]


# --- --threads ------------------------------------------------------------------------------------------
def test_threads(main: Server) -> None:
    """One worker: a call that sleeps in a latency fault holds up every other call until it is done."""
    control(main, "POST", "/_mock/faults", json={"kind": "latency", "latency": 1.0, "operation": "fetch",
                                                "tenant": "th", "times": 1}).raise_for_status()
    slow = threading.Thread(target=requests.get, args=(main.url + "/rest/v1/profiles/thirdPartyId/x?client=th",),
                            kwargs={"timeout": 10})
    slow.start()
    try:
        deadline = time.monotonic() + 20
        while control(main, "GET", "/_mock/faults").json() and time.monotonic() < deadline:
            time.sleep(0.01)
        # the first control answer that saw the fault taken was served after the slow call ended
        entries = control(main, "GET", "/_mock/journal?tenant=th").json()
        assert [e["operation"] for e in entries] == ["fetch"]
    finally:
        slow.join(20)


# --- --batch-delay, and a warning when listening beyond loopback ---------------------------------------------
def test_batch_delay_and_the_warning_beyond_loopback() -> None:
    with serving("--host", "0.0.0.0", "--batch-delay", "30") as server:
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        r = requests.post(url + "/m2/bd/profile/batchUpdate", data=BATCH, headers=FORM, timeout=10)
        status_url = url + "/m2/bd/profile/batchStatus?batchId=" + parse_response(r.content)["batchStatus"].split(
            "batchId=")[1]
        requests.post(url + "/_mock/clock", json={"advance": 29}, timeout=10).raise_for_status()
        assert parse_batch_status(requests.get(status_url, timeout=10).content).status == "incomplete"
        requests.post(url + "/_mock/clock", json={"advance": 1.5}, timeout=10).raise_for_status()
        assert parse_batch_status(requests.get(status_url, timeout=10).content).status == "complete"
        assert server.stop(signal.SIGTERM) == 0
        assert server.proc.stderr is not None
        assert "warning: listening beyond loopback with an unlocked control API" in server.proc.stderr.read()


def test_no_warning_on_loopback_or_with_a_control_token() -> None:
    for args in ((), ("--host", "0.0.0.0", "--control-token", TOKEN)):
        with serving(*args) as server:
            assert server.stop(signal.SIGTERM) == 0
            assert server.proc.stderr is not None and "warning" not in server.proc.stderr.read()


# --- IPv6 ------------------------------------------------------------------------------------------------------
def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_ipv6_loopback() -> None:
    with serving("--host", "::1") as server:
        assert re.fullmatch(r"http://\[::1\]:\d+", server.url), server.url
        assert requests.get(server.url + "/_mock/health", timeout=10).json()["status"] == "ok"
        r = requests.post(server.url + "/m2/v6/profile/batchUpdate", data=BATCH, headers=FORM, timeout=10)
        assert parse_response(r.content)["batchStatus"].startswith(server.url + "/m2/v6/profile/batchStatus?")
        assert server.stop(signal.SIGTERM) == 0
        assert server.proc.stderr is not None and "warning" not in server.proc.stderr.read()


# --- --connection-limit and --channel-timeout -------------------------------------------------------------------
def test_connection_limit_and_channel_timeout() -> None:
    with serving("--connection-limit", "5", "--channel-timeout", "1") as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(5)]
        try:
            # the limit reached, the server takes no new connection while the idle ones stay open...
            with pytest.raises(requests.exceptions.ReadTimeout):
                requests.get(server.url + "/_mock/health", timeout=(10, 0.3))
            # ...until the timeout closes them (waitress checks every second)
            assert requests.get(server.url + "/_mock/health", timeout=15).status_code == 200
            for sock in idle:
                assert sock.recv(1) == b""  # closed by the server
        finally:
            for sock in idle:
                sock.close()


@pytest.mark.parametrize(("option", "value"), [("--connection-limit", "0"), ("--connection-limit", "many"),
                                               ("--channel-timeout", "0"), ("--channel-timeout", "nan"),
                                               ("--channel-timeout", "-1")])
def test_connection_options_refuse_values_that_cannot_work(option: str, value: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "target_profile_mock", "serve", "--port", "0", f"{option}={value}"],
                          capture_output=True, text=True, timeout=30, env=_env(), cwd=ROOT)
    assert proc.returncode == 2 and option in proc.stderr and repr(value) in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "serving on" not in proc.stdout


# --- --profile-lifetime, --login-sync-delay, --location-hint -----------------------------------------------
def _visit(server: Server, **ids: str) -> dict:
    body = {"context": {"channel": "web"}, **({"id": ids} if ids else {})}
    r = requests.post(server.url + "/rest/v1/delivery?client=life&sessionId=s1", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_identity_options() -> None:
    with serving("--profile-lifetime", "2", "--login-sync-delay", "300", "--location-hint", "45_3") as server:
        tnt = _visit(server)["id"]["tntId"]
        assert tnt.endswith(".45_3")
        by_tnt = server.url + f"/rest/v1/profiles/{tnt}?client=life"
        by_third = server.url + "/rest/v1/profiles/thirdPartyId/crm-1?client=life"
        _visit(server, tntId=tnt, thirdPartyId="crm-1")  # a login: connected only after the sync delay
        assert requests.get(by_third, timeout=10).status_code == 404
        requests.post(server.url + "/_mock/clock", json={"advance": 301}, timeout=10).raise_for_status()
        assert requests.get(by_third, timeout=10).status_code == 200
        requests.post(server.url + "/_mock/clock", json={"advance": 2 * 86_400 - 60}, timeout=10).raise_for_status()
        assert requests.get(by_tnt, timeout=10).status_code == 200  # idle for less than two days
        requests.post(server.url + "/_mock/clock", json={"advance": 120}, timeout=10).raise_for_status()
        assert requests.get(by_tnt, timeout=10).status_code == 404
