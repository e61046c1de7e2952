"""Fault injection over real sockets (waitress), with requests and httpx, and in process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from target_profile_mock.contracts.xmlbodies import parse_response
from target_profile_mock.mockserver import ControlError, Lifecycle, MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.faults import ConnectionFault, FaultInjector
from target_profile_mock.mockserver.server import LiveServer

ROOT = Path(__file__).resolve().parent.parent
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BATCH = b"batch=thirdPartyId,tier\nv1,gold\nv2,silver\n"


@dataclass
class Call:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] | None = None


CALLS = {
    "single-update": Call("GET", "/m2/acme/profile/update?mbox3rdPartyId=v1&profile.tier=gold"),
    "batch-submit": Call("POST", "/m2/acme/v2/profile/batchUpdate", BATCH, FORM),
    "batch-status": Call("GET", ""),  # filled in by the fixture: the status URL of a submitted batch
    "fetch": Call("GET", "/rest/v1/profiles/thirdPartyId/v1?client=acme"),
    "token": Call("GET", "/acme/target/authentication/token?authorizationScope=profile_api"),
}
XML_OPS = ("single-update", "batch-submit", "batch-status")


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[MockBackend, str]]:
    be = MockBackend(MockConfig(lifecycle=Lifecycle.parse("polls=5")))
    with LiveServer(create_app(be)) as server:
        yield be, server.url


@pytest.fixture
def be(live: tuple[MockBackend, str]) -> MockBackend:
    live[0].reset()
    return live[0]


@pytest.fixture
def url(live: tuple[MockBackend, str], be: MockBackend) -> str:
    return live[1]


@pytest.fixture(scope="module")
def hx() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


class Lib:
    """requests or httpx behind one call, so every fault is checked with both."""

    def __init__(self, name: str, hx: httpx.Client) -> None:
        self.name = name
        self.hx = hx

    def send(self, method: str, url: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        if self.name == "requests":
            r = requests.request(method, url, data=body, headers=headers, timeout=5)
            return r.status_code, dict(r.headers), r.content
        h = self.hx.request(method, url, content=body, headers=headers)
        return h.status_code, dict(h.headers), h.content

    def call(self, base: str, op: str, status_url: str = "") -> tuple[int, dict[str, str], bytes]:
        c = CALLS[op]
        return self.send(c.method, status_url if op == "batch-status" else base + c.path, c.body, c.headers)


@pytest.fixture(params=["requests", "httpx"])
def lib(request: pytest.FixtureRequest, hx: httpx.Client) -> Lib:
    return Lib(request.param, hx)


def submit(url: str) -> str:
    """Submit a batch without faults; its batchStatus URL."""
    r = requests.post(url + CALLS["batch-submit"].path, data=BATCH, headers=FORM, timeout=5)
    assert r.status_code == 200, r.text
    return parse_response(r.content)["batchStatus"]


def header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


# --- status-like faults --------------------------------------------------------------------------
@pytest.mark.parametrize("op", list(CALLS))
def test_status_fault_answers_in_the_shape_of_the_api(op: str, be: MockBackend, url: str, lib: Lib) -> None:
    status_url = submit(url) if op == "batch-status" else ""
    be.faults.add(502, operation=op, times=1, message="upstream hiccup")
    status, headers, body = lib.call(url, op, status_url)
    assert status == 502
    ctype = header(headers, "content-type") or ""
    if op in XML_OPS:
        assert ctype.startswith("application/xml")
        fields = parse_response(body)
        assert fields["success"] == "false" and fields["message"] == "upstream hiccup"
    elif op == "fetch":
        assert json.loads(body) == {"status": 502, "message": "upstream hiccup"}
    else:
        assert ctype == "application/vnd.adobe.target.v1+json"
        doc = json.loads(body)
        assert doc["httpStatus"] == 502 and doc["errors"][0] == {"errorCode": "BadGateway",
                                                                  "message": "upstream hiccup", "meta": {}}
    # used up: the next call is answered normally
    assert lib.call(url, op, status_url)[0] in (200, 404)


def test_status_fault_is_not_applied_unless_asked(be: MockBackend, url: str, lib: Lib) -> None:
    be.seed_profile("acme", third_party_id="v1", attributes={"tier": "bronze"})
    be.faults.add(500, operation="single-update", times=1)
    assert lib.call(url, "single-update")[0] == 500
    assert be.get_profile("acme", "thirdPartyId", "v1")["attributes"] == {"tier": "bronze"}
    be.faults.add(504, operation="single-update", times=1, applied=True)
    assert lib.call(url, "single-update")[0] == 504
    assert be.get_profile("acme", "thirdPartyId", "v1")["attributes"] == {"tier": "gold"}


def test_throttle_is_429_with_retry_after(be: MockBackend, url: str, lib: Lib) -> None:
    be.faults.add("throttle", operation="fetch", times=1, retry_after=7)
    status, headers, body = lib.call(url, "fetch")
    assert (status, header(headers, "retry-after")) == (429, "7")
    assert json.loads(body) == {"status": 429, "message": "Too Many Requests"}


def test_rate_limit_fault_answers_like_the_bulk_rate_limit(be: MockBackend, url: str, lib: Lib) -> None:
    be.configure("acme", bulk_calls_per_minute=2)
    be.faults.add("rate-limit", operation="batch-submit", times=1)
    injected = lib.call(url, "batch-submit")
    assert lib.call(url, "batch-submit")[0] == 200
    real = lib.call(url, "batch-submit")  # over the real limit of 2 calls a minute
    assert real[0] == injected[0] == 503
    assert real[2] == injected[2]
    assert header(injected[1], "retry-after") == "1" and header(real[1], "retry-after") is not None
    assert len(be.batches("acme")) == 1  # only the call between them made a batch


# --- connection faults ---------------------------------------------------------------------------
def test_reset_raises_what_a_reset_connection_raises(be: MockBackend, url: str, hx: httpx.Client) -> None:
    be.faults.add("reset", operation="single-update", times=2)
    with pytest.raises(requests.exceptions.ConnectionError) as r_exc:
        requests.get(url + CALLS["single-update"].path, timeout=5)
    assert isinstance(r_exc.value.args[0].args[1], ConnectionResetError)
    with pytest.raises(httpx.ReadError, match="Connection reset by peer"):
        hx.get(url + CALLS["single-update"].path)
    assert be.get_profile("acme", "thirdPartyId", "v1") is None
    entries = be.journal.entries()
    assert [(e.status, e.fault) for e in entries] == [(0, "connection reset")] * 2


def test_disconnect_closes_without_a_response(be: MockBackend, url: str, hx: httpx.Client) -> None:
    be.faults.add("disconnect", operation="fetch", times=2)
    with pytest.raises(requests.exceptions.ConnectionError, match="without response"):
        requests.get(url + CALLS["fetch"].path, timeout=5)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        hx.get(url + CALLS["fetch"].path)


def test_reset_after_applying_loses_only_the_answer(be: MockBackend, url: str, lib: Lib) -> None:
    be.faults.add("reset", operation="batch-submit", times=1, applied=True)
    with pytest.raises((requests.exceptions.ConnectionError, httpx.ReadError)):
        lib.call(url, "batch-submit")
    assert len(be.batches("acme")) == 1
    assert be.journal.entries()[-1].fault == "connection reset after applying the request"


def test_truncated_body_breaks_the_read(be: MockBackend, url: str, hx: httpx.Client) -> None:
    be.faults.add("truncated", operation="batch-submit", times=1, keep=20)
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        requests.post(url + CALLS["batch-submit"].path, data=BATCH, headers=FORM, timeout=5)
    be.faults.add("truncated", operation="batch-submit", times=1)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending complete message body"):
        hx.post(url + CALLS["batch-submit"].path, content=BATCH, headers=FORM)
    assert len(be.batches("acme")) == 2  # the work was done; only the answer was cut
    first, second = be.journal.entries()
    assert first.status == 200 and len(first.response_body) == 20
    assert first.fault is not None and first.fault.startswith("truncated body (20 of ")
    sent, announced = map(int, re.findall(r"\d+", second.fault or ""))
    assert sent == len(second.response_body) and announced in (2 * sent, 2 * sent + 1)  # half, by default


def test_a_connection_fault_leaves_the_server_serving(be: MockBackend, url: str, lib: Lib) -> None:
    be.faults.add("reset", times=1)
    with pytest.raises((requests.exceptions.ConnectionError, httpx.ReadError)):
        lib.call(url, "token")
    assert lib.call(url, "token")[0] == 200


# --- body faults ---------------------------------------------------------------------------------
def test_empty_body(be: MockBackend, url: str, lib: Lib) -> None:
    be.faults.add("empty", operation="single-update", times=1)
    status, headers, body = lib.call(url, "single-update")
    assert (status, body, header(headers, "content-length")) == (200, b"", "0")
    assert be.get_profile("acme", "thirdPartyId", "v1") is None  # single updates never create profiles
    be.faults.add("empty", operation="token", status=502, times=1)
    assert lib.call(url, "token")[:3:2] == (502, b"")


def test_malformed_xml_body(be: MockBackend, url: str, lib: Lib) -> None:
    be.faults.add("malformed", operation="batch-submit", times=1)
    status, _, body = lib.call(url, "batch-submit")
    assert status == 200 and b"<success>true</success>" in body
    with pytest.raises(ET.ParseError):
        ET.fromstring(body)
    be.faults.add("malformed", operation="batch-submit", times=1, body="<html>Bad gateway", status=502)
    assert lib.call(url, "batch-submit")[::2] == (502, b"<html>Bad gateway")


def test_malformed_json_body(be: MockBackend, url: str, lib: Lib) -> None:
    be.faults.add("malformed", operation="fetch", times=1)
    status, _, body = lib.call(url, "fetch")
    assert status == 404 and body.startswith(b'{"status" : 404')
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


# --- latency -------------------------------------------------------------------------------------
def test_fixed_latency_then_the_normal_answer(be: MockBackend, url: str, lib: Lib) -> None:
    be.faults.add("latency", latency=0.15, operation="token", times=1)
    start = time.monotonic()
    assert lib.call(url, "token")[0] == 200
    assert time.monotonic() - start >= 0.15
    assert be.journal.entries()[-1].fault == "latency 0.150s"


def test_latency_combines_with_a_status(be: MockBackend, url: str, lib: Lib) -> None:
    be.faults.add(503, latency=0.1, operation="fetch", times=1)
    start = time.monotonic()
    assert lib.call(url, "fetch")[0] == 503
    assert time.monotonic() - start >= 0.1
    assert be.journal.entries()[-1].fault == "latency 0.100s, status 503"


def test_random_latency_is_reproducible_under_a_seed(be: MockBackend, url: str) -> None:
    def run() -> list[str | None]:
        be.reset()
        be.faults.add("latency", latency=[0.0, 0.05], seed=42)
        for _ in range(4):
            requests.get(url + CALLS["token"].path, timeout=5)
        return [e.fault for e in be.journal.entries()]

    first = run()
    assert first == run()
    assert len(set(first)) == 4  # drawn per call, not once
    seconds = [float(re.findall(r"[\d.]+", f or "")[0]) for f in first]
    assert all(0 <= s <= 0.05 for s in seconds)


def test_latency_does_not_hold_up_other_requests(be: MockBackend, url: str) -> None:
    be.faults.add("latency", latency=1.5, tenant="slow", times=1)
    slow: dict[str, float] = {}

    def call_slow() -> None:
        start = time.monotonic()
        requests.get(url + "/rest/v1/profiles/thirdPartyId/x?client=slow", timeout=10)
        slow["elapsed"] = time.monotonic() - start

    t = threading.Thread(target=call_slow)
    t.start()
    deadline = time.monotonic() + 10
    while be.faults.list() and time.monotonic() < deadline:  # the slow call has taken its fault: it sleeps
        time.sleep(0.01)
    assert be.faults.list() == []
    assert requests.get(url + CALLS["fetch"].path, timeout=10).status_code == 404
    still_running = t.is_alive()  # answered while the slow call still slept
    t.join(10)
    assert still_running and slow["elapsed"] >= 1.5


# --- scope ---------------------------------------------------------------------------------------
def test_operation_scope(be: MockBackend, url: str) -> None:
    be.faults.add(500, operation=["fetch", "token"])
    assert requests.get(url + CALLS["single-update"].path, timeout=5).status_code == 200
    assert requests.get(url + CALLS["fetch"].path, timeout=5).status_code == 500
    assert requests.get(url + CALLS["token"].path, timeout=5).status_code == 500


def test_tenant_scope(be: MockBackend, url: str) -> None:
    be.faults.add(500, tenant="other")
    assert requests.get(url + CALLS["fetch"].path, timeout=5).status_code == 404
    assert requests.get(url + "/rest/v1/profiles/thirdPartyId/v1?client=other", timeout=5).status_code == 500


def test_next_n_calls_then_used_up(be: MockBackend, url: str) -> None:
    rule = be.faults.add(503, operation="fetch", times=3)
    codes = [requests.get(url + CALLS["fetch"].path, timeout=5).status_code for _ in range(2)]
    assert be.faults.list() == [{**rule, "times": 1, "hits": 2}]
    codes += [requests.get(url + CALLS["fetch"].path, timeout=5).status_code for _ in range(3)]
    assert codes == [503, 503, 503, 404, 404]
    assert be.faults.list() == []


def test_probability_under_a_seed_is_reproducible(be: MockBackend, url: str) -> None:
    def pattern(seed: int) -> list[int]:
        be.reset()
        be.faults.add(500, operation="token", probability=0.5, seed=seed)
        return [requests.get(url + CALLS["token"].path, timeout=5).status_code for _ in range(12)]

    first = pattern(7)
    assert first == pattern(7)
    assert set(first) == {200, 500}
    assert first != pattern(8)


def test_faults_come_after_the_contract_checks(be: MockBackend, url: str) -> None:
    be.faults.add(503, operation="single-update", times=1)
    bad = requests.get(url + "/m2/acme/profile/update?profile.tier=gold", timeout=5)  # no id: refused
    assert bad.status_code == 400
    assert requests.get(url + CALLS["single-update"].path, timeout=5).status_code == 503


def test_first_matching_rule_wins_and_a_sequence_plays_in_order(be: MockBackend, url: str) -> None:
    be.faults.sequence([503, "reset", "pass", {"kind": "throttle", "retry_after": 2}], operation="token")
    be.faults.add(418, operation="token", times=1)  # queued behind the sequence
    outcomes: list[object] = []
    for _ in range(6):
        try:
            r = requests.get(url + CALLS["token"].path, timeout=5)
            outcomes.append((r.status_code, r.headers.get("Retry-After")))
        except requests.exceptions.ConnectionError:
            outcomes.append("reset")
    assert outcomes == [(503, None), "reset", (200, None), (429, "2"), (418, None), (200, None)]
    assert [e.fault for e in be.journal.entries()] == [
        "status 503", "connection reset", None, "throttle 429 (Retry-After: 2)", "status 418", None]


def test_reset_clears_faults(be: MockBackend) -> None:
    be.faults.add(500, tenant="acme")
    be.faults.add(500, tenant="other")
    be.faults.add(500)
    be.reset("acme")
    assert [r["tenant"] for r in be.faults.list()] == ["other", None]
    be.reset()
    assert be.faults.list() == []



def test_a_full_reset_restores_the_injector_to_a_fresh_start() -> None:
    """Unseeded rules draw from a stream derived from their id: after POST /_mock/reset they must meet
    the same faults as on a new server, not carry on from ids the earlier test used up."""
    def pattern(be: MockBackend) -> tuple[int, list[bool]]:
        rule = be.faults.add(500, operation="token", probability=0.5)
        return rule["id"], [be.faults.take("token", "acme") is not None for _ in range(40)]

    fresh = pattern(MockBackend(MockConfig(seed=3)))
    be = MockBackend(MockConfig(seed=3))
    client = create_app(be).test_client()
    for _ in range(3):
        be.faults.add(503, operation="fetch", probability=0.5)
    pattern(be)
    assert client.post("/_mock/reset").status_code == 200
    assert pattern(be) == fresh
    assert fresh[0] == 1 and True in fresh[1] and False in fresh[1]
    be.reset("acme")  # a tenant reset keeps the queue's numbering: other tenants' rules stay as they are
    assert be.faults.add(500)["id"] == 2

# --- the Python API refuses bad faults clearly ---------------------------------------------------
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "explode"}, "unknown fault kind 'explode'"),
    ({"kind": "status"}, "needs a status"),
    ({"kind": 99}, "from 200 to 599"),
    ({"kind": "reset", "status": 500}, "do(es) not apply to a reset fault"),
    ({"kind": "latency"}, "needs latency"),
    ({"kind": "latency", "latency": [0.2, 0.1]}, "0 <= min <= max"),
    ({"kind": 500, "operation": "delete"}, "unknown operation(s) ['delete']"),
    ({"kind": 500, "times": 0}, "times takes a whole number >= 1"),
    ({"kind": 500, "probability": 1.5}, "probability takes a number from 0 to 1"),
    ({"kind": 500, "applied": "yes"}, "applied takes true or false"),
])
def test_bad_faults_are_refused(kwargs: dict[str, Any], message: str) -> None:
    injector = FaultInjector()
    with pytest.raises(ControlError) as exc:
        injector.add(**kwargs)
    assert message in str(exc.value)
    assert injector.list() == []


# --- the HTTP control API ------------------------------------------------------------------------
def test_control_routes(be: MockBackend, url: str) -> None:
    r = requests.post(url + "/_mock/faults", json={"kind": "status", "status": 503, "operation": "batch-submit",
                                                  "times": 2}, timeout=5)
    assert r.status_code == 201
    [rule] = r.json()
    assert rule == {"id": rule["id"], "kind": "status", "status": 503, "operation": ["batch-submit"],
                    "tenant": None, "times": 2, "probability": 1.0, "seed": None, "hits": 0}
    r = requests.post(url + "/_mock/faults", json=[
        {"sequence": [503, {"kind": "truncated", "keep": 3}], "operation": "fetch", "tenant": "acme"},
        {"kind": "latency", "latency": [0.01, 0.02], "probability": 0.25, "seed": 3}], timeout=5)
    assert r.status_code == 201 and [x["kind"] for x in r.json()] == ["status", "truncated", "latency"]
    listed = requests.get(url + "/_mock/faults", timeout=5).json()
    assert [x["kind"] for x in listed] == ["status", "status", "truncated", "latency"]
    assert listed == be.faults.list()
    r = requests.delete(f"{url}/_mock/faults/{listed[3]['id']}", timeout=5)
    assert r.status_code == 200 and r.json()["kind"] == "latency"
    assert requests.delete(f"{url}/_mock/faults/{listed[3]['id']}", timeout=5).status_code == 404
    assert requests.delete(url + "/_mock/faults?tenant=acme", timeout=5).json() == {"cleared": 2}
    assert requests.delete(url + "/_mock/faults", timeout=5).json() == {"cleared": 1}
    assert requests.get(url + "/_mock/faults", timeout=5).json() == []


@pytest.mark.parametrize(("body", "message"), [
    (b"", "send a fault"),
    (b"not json", "not valid JSON"),
    (b'{"kind": "status", "status": 503, "colour": "red"}', "['colour'] do(es) not apply"),
    (b'[{"kind": "reset"}, {"kind": "nope"}]', "fault 1: unknown fault kind 'nope'"),
    (b'{"sequence": [{"kind": "reset", "times": 2}]}', "cannot carry ['times']"),
    (b'{"sequence": []}', "non-empty list"),
    (b"42", "a fault profile is a fault object"),
])
def test_control_route_refuses_bad_faults(be: MockBackend, url: str, body: bytes, message: str) -> None:
    r = requests.post(url + "/_mock/faults", data=body, headers={"Content-Type": "application/json"}, timeout=5)
    assert r.status_code == 400
    assert message in r.json()["error"]
    assert be.faults.list() == []  # nothing half-queued


def test_journal_records_faults(be: MockBackend, url: str) -> None:
    be.faults.sequence([429, "empty"], operation="fetch")
    for _ in range(3):
        requests.get(url + CALLS["fetch"].path, timeout=5)
    journal = requests.get(url + "/_mock/journal?operation=fetch", timeout=5).json()
    assert [(e["status"], e["fault"]) for e in journal] == [
        (429, "status 429"), (404, "empty body"), (404, None)]
    assert journal[1]["responseBody"] == ""


# --- the CLI -------------------------------------------------------------------------------------
def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "target_profile_mock", "serve", "--port", "0", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_fault_profile(tmp_path: Path) -> None:
    profile = tmp_path / "faults.json"
    profile.write_text(json.dumps({"faults": [
        {"sequence": [503, 503], "operation": "batch-submit"},
        {"kind": "throttle", "operation": "fetch", "tenant": "acme", "retry_after": 5},
    ]}))
    proc = _serve("--fault-profile", str(profile))
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[0].strip() == f"target-profile-mock: 3 fault rule(s) queued from {profile}"
        base = re.search(r"serving on (http://\S+)", lines[1]).group(1)  # type: ignore[union-attr]
        codes = [requests.post(base + "/m2/demo/profile/batchUpdate", data=BATCH, headers=FORM,
                               timeout=5).status_code for _ in range(3)]
        assert codes == [503, 503, 200]
        fetched = requests.get(base + CALLS["fetch"].path, timeout=5)
        assert (fetched.status_code, fetched.headers["Retry-After"]) == (429, "5")
        assert len(requests.get(base + "/_mock/faults", timeout=5).json()) == 1
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_cli_refuses_a_bad_fault_profile(tmp_path: Path) -> None:
    profile = tmp_path / "faults.json"
    profile.write_text('[{"kind": "status"}]')
    proc = _serve("--fault-profile", str(profile))
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert "--fault-profile: fault 0: a status fault needs a status" in err
    proc = _serve("--fault-profile", str(tmp_path / "missing.json"))
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2 and "cannot read the fault profile" in err


# --- a retrying client recovers ------------------------------------------------------------------
RETRYABLE = (429, 500, 502, 503, 504)


def submit_with_retries(session: requests.Session, url: str, body: bytes, *, attempts: int = 5,
                        sleep: Callable[[float], None] = time.sleep) -> tuple[requests.Response, int]:
    """A bulk client's submit loop: retry 429/5xx (honouring Retry-After) and broken connections."""
    for attempt in range(1, attempts + 1):
        try:
            r = session.post(url, data=body, headers=FORM, timeout=5)
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
            if attempt == attempts:
                raise
            sleep(0.01 * 2**attempt)
            continue
        if r.status_code not in RETRYABLE or attempt == attempts:
            return r, attempt
        sleep(float(r.headers.get("Retry-After", 0.01 * 2**attempt)))
    raise AssertionError("unreachable")


def test_retrying_client_recovers_from_503_503_200(be: MockBackend, url: str) -> None:
    requests.post(url + "/_mock/faults", json={"sequence": [503, 503], "operation": "batch-submit"}, timeout=5)
    waits: list[float] = []
    with requests.Session() as s:
        r, attempts = submit_with_retries(s, url + CALLS["batch-submit"].path, BATCH, sleep=waits.append)
    assert (r.status_code, attempts) == (200, 3)
    assert parse_response(r.content)["success"] == "true"
    assert [(e.status, e.fault) for e in be.journal.entries()] == [(503, "status 503")] * 2 + [(200, None)]
    assert len(be.batches("acme")) == 1  # exactly one batch, from the third attempt


def test_retrying_client_recovers_from_broken_connections(be: MockBackend, url: str) -> None:
    be.faults.sequence(["reset", "rate-limit", "truncated"], operation="batch-submit")
    waits: list[float] = []
    with requests.Session() as s:
        r, attempts = submit_with_retries(s, url + CALLS["batch-submit"].path, BATCH, sleep=waits.append)
    assert (r.status_code, attempts) == (200, 4)
    assert waits[1] == 1.0  # the rate-limit answer's Retry-After
    # the truncated answer came from a submit that was applied: the client, retrying, sent it twice
    assert len(be.batches("acme")) == 2


def test_without_retries_the_client_fails(be: MockBackend, url: str) -> None:
    be.faults.sequence([503, 503], operation="batch-submit")
    with requests.Session() as s:
        r, attempts = submit_with_retries(s, url + CALLS["batch-submit"].path, BATCH, attempts=2,
                                          sleep=lambda _: None)
    assert (r.status_code, attempts) == (503, 2)
    assert be.batches("acme") == []


# --- in process: the same failures as exceptions -------------------------------------------------
def _live_exception(lib: Lib, url: str) -> Exception:
    try:
        lib.call(url, "single-update")
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


@pytest.mark.parametrize("kind", ["reset", "disconnect", "truncated"])
def test_in_process_connection_fault_matches_the_live_exception(kind: str, be: MockBackend, url: str,
                                                                lib: Lib) -> None:
    be.faults.add(kind, operation="single-update", times=1)
    live_exc = _live_exception(lib, url)
    be.faults.add(kind, operation="single-update", times=1)
    with pytest.raises(ConnectionFault) as caught:
        create_app(be).test_client().get(CALLS["single-update"].path)
    fault = caught.value
    assert fault.kind == kind
    if lib.name == "requests":
        built: Exception = fault.requests_exception()
    else:
        built = fault.httpx_exception(httpx.Request("GET", url))
    assert type(built) is type(live_exc)
    assert str(built) == str(live_exc)
    assert [e.fault is not None for e in be.journal.entries()] == [True, True]


def test_in_process_truncated_fault_carries_what_was_sent(be: MockBackend) -> None:
    be.faults.add("truncated", operation="batch-submit", keep=10)
    with pytest.raises(ConnectionFault) as caught:
        create_app(be).test_client().post(CALLS["batch-submit"].path, data=BATCH, headers=FORM)
    fault = caught.value
    assert fault.status == 200 and fault.body == b"<response>"
    assert fault.expected is not None and fault.expected > 10
    assert ("Content-Type", "application/xml;charset=UTF-8") in fault.headers


def test_the_readme_fault_profile_loads() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"--fault-profile, not a command.*?```json\n(.*?)```", text, re.S)
    assert block is not None
    rules = FaultInjector().load(json.loads(block.group(1)))
    assert [r["kind"] for r in rules] == ["status", "reset", "status", "latency"]
