"""Fault injection through the fixtures: every kind, in process and on the live server, alike."""

from __future__ import annotations

import asyncio
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
import requests
from conftest import Run
from target_profile_mock.contracts.xmlbodies import parse_response
from target_profile_mock.mockserver import ControlError
from target_profile_mock.plugin import TargetProfiles

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BATCH = b"batch=thirdPartyId,tier\nv1,gold\nv2,silver\n"
UPDATE = "/m2/demo/profile/update?mbox3rdPartyId=v1&profile.tier=gold"
SUBMIT = "/m2/demo/v2/profile/batchUpdate"
FETCH = "/rest/v1/profiles/thirdPartyId/v1?client=demo"
TOKEN = "/demo/target/authentication/token?authorizationScope=profile_api"
#: Exactly what the fake answers a successful single update: the same bytes in both modes.
UPDATED = b"<response><success>true</success><pcId></pcId><message>Request successfully submitted</message></response>"
FIXTURES = ["target_profiles", "target_profile_server"]
Answer = tuple[int, dict[str, str], bytes]


@pytest.fixture(params=FIXTURES)
def tp(request: pytest.FixtureRequest) -> TargetProfiles:
    """Each test runs against the in-process fixture and against the live server."""
    return request.getfixturevalue(request.param)


def url(tp: TargetProfiles, op: str, status_url: str = "") -> str:
    """Where a client sends ``op``: Adobe's hosts in process, the server's address when live."""
    if op == "token":
        base = tp.url if tp.url.startswith("http://127.") else "https://mc.adobe.io"
        return base + TOKEN
    return status_url or tp.url + {"single-update": UPDATE, "batch-submit": SUBMIT, "fetch": FETCH}[op]


class Lib:
    """requests or httpx (sync) behind one call."""

    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, tp: TargetProfiles, op: str, status_url: str = "") -> Answer:
        method, body, headers = ("POST", BATCH, FORM) if op == "batch-submit" else ("GET", None, None)
        target = url(tp, op, status_url)
        if self.name == "requests":
            r = requests.request(method, target, data=body, headers=headers, timeout=5)
            return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content
        with httpx.Client(timeout=5) as client:
            h = client.request(method, target, content=body, headers=headers)
        return h.status_code, dict(h.headers), h.content


@pytest.fixture(params=["requests", "httpx"])
def lib(request: pytest.FixtureRequest) -> Lib:
    return Lib(request.param)


def submit(tp: TargetProfiles) -> str:
    """A batch submitted without faults; its batchStatus URL."""
    r = requests.post(url(tp, "batch-submit"), data=BATCH, headers=FORM, timeout=5)
    assert r.status_code == 200, r.text
    return parse_response(r.content)["batchStatus"]


def raised(call: Callable[[], object]) -> tuple[str, str]:
    """The class and text of what ``call`` raised."""
    try:
        call()
    except Exception as exc:  # any exception is the observation
        return type(exc).__qualname__, str(exc)
    raise AssertionError("nothing was raised")


def journal(tp: TargetProfiles) -> list[tuple[str, int, str | None]]:
    return [(e.operation, e.status, e.fault) for e in tp.requests()]


# --- status-like faults --------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["single-update", "batch-submit", "batch-status", "fetch", "token"])
def test_status_fault_with_a_target_shaped_body(tp: TargetProfiles, lib: Lib, op: str) -> None:
    status_url = submit(tp) if op == "batch-status" else ""
    rule = tp.add_fault(502, operation=op, times=1, message="upstream hiccup")
    assert tp.faults() == [rule]
    status, headers, body = lib.send(tp, op, status_url)
    assert status == 502
    if op in ("single-update", "batch-submit", "batch-status"):
        assert headers["content-type"].startswith("application/xml")
        fields = parse_response(body)
        assert (fields["success"], fields["message"]) == ("false", "upstream hiccup")
    elif op == "fetch":
        assert json.loads(body) == {"status": 502, "message": "upstream hiccup"}
    else:
        assert headers["content-type"] == "application/vnd.adobe.target.v1+json"
        assert json.loads(body)["errors"][0]["errorCode"] == "BadGateway"
    assert tp.faults() == []  # used up
    assert lib.send(tp, op, status_url)[0] in (200, 404)
    assert tp.last_request(op).fault is None and tp.requests(op)[-2].fault == "status 502"


def test_throttle_is_429_with_retry_after(tp: TargetProfiles, lib: Lib) -> None:
    tp.add_fault("throttle", operation="fetch", times=1, retry_after=3)
    status, headers, body = lib.send(tp, "fetch")
    assert (status, headers["retry-after"]) == (429, "3")
    assert json.loads(body) == {"status": 429, "message": "Too Many Requests"}
    assert journal(tp) == [("fetch", 429, "throttle 429 (Retry-After: 3)")]


def test_503_as_the_bulk_rate_limit_answers(tp: TargetProfiles, lib: Lib) -> None:
    tp.configure("demo", bulk_calls_per_minute=2)
    tp.add_fault("rate-limit", operation="batch-submit", times=1)
    injected = lib.send(tp, "batch-submit")  # counts towards the limit, as any call that arrives
    assert lib.send(tp, "batch-submit")[0] == 200
    tp.allow("rate.bulk")  # the next call breaks the limit on purpose; an injected 503 is no violation
    real = lib.send(tp, "batch-submit")  # over the real limit of 2 a minute
    assert injected[0] == real[0] == 503 and injected[2] == real[2]
    assert injected[1]["retry-after"] == "1"
    assert len(tp.batches()) == 1  # a faulted call applies nothing


def test_latency(tp: TargetProfiles, lib: Lib) -> None:
    tp.add_fault(503, latency=0.1, operation="fetch", times=1)
    start = time.monotonic()
    assert lib.send(tp, "fetch")[0] == 503
    assert time.monotonic() - start >= 0.1
    assert journal(tp) == [("fetch", 503, "latency 0.100s, status 503")]


def test_a_client_that_stops_waiting_gets_its_read_timeout(tp: TargetProfiles) -> None:
    tp.seed_profile("v1", attributes={"tier": "bronze"})
    tp.add_fault("latency", latency=0.3, operation="single-update", times=2)
    assert raised(lambda: requests.get(url(tp, "single-update"), timeout=(5, 0.05))) == (
        "ReadTimeout", f"{urlsplit(tp.url).scheme.upper()}ConnectionPool(host={urlsplit(tp.url).hostname!r}, "
                       f"port={urlsplit(tp.url).port or 443}): Read timed out. (read timeout=0.05)")
    assert raised(lambda: httpx.get(url(tp, "single-update"), timeout=0.05)) == ("ReadTimeout", "timed out")
    # the fake works on, as a server does after its client hung up
    tp.wait_for_requests(2, "single-update")
    assert tp.profile("v1")["attributes"] == {"tier": "gold"}
    assert journal(tp) == [("single-update", 200, "latency 0.300s")] * 2


def test_async_latency_leaves_the_event_loop_free(tp: TargetProfiles) -> None:
    tp.add_fault("latency", latency=0.5, operation="fetch", times=4)
    tp.add_fault("latency", latency=0.3, operation="token", times=1)

    async def calls() -> float:
        async with httpx.AsyncClient(timeout=5) as client:
            start = time.monotonic()
            answers = await asyncio.gather(*(client.get(url(tp, "fetch")) for _ in range(4)))
            assert [a.status_code for a in answers] == [404] * 4
            return time.monotonic() - start

    async def timed_out() -> None:
        # only the read is short: on a loaded machine the live server's connect alone can take 50 ms
        async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=0.05)) as client:
            await client.get(url(tp, "token"))

    elapsed = asyncio.run(calls())
    assert 0.5 <= elapsed < 1.5  # side by side (0.5 s), not one after another (2 s)
    assert raised(lambda: asyncio.run(timed_out())) == ("ReadTimeout", "")  # anyio's timeout has no text


# --- body faults ---------------------------------------------------------------------------------
def test_empty_body(tp: TargetProfiles, lib: Lib) -> None:
    tp.add_fault("empty", operation="single-update", times=1, status=502)
    status, headers, body = lib.send(tp, "single-update")
    assert (status, body, headers["content-length"]) == (502, b"", "0")
    assert journal(tp) == [("single-update", 502, "empty body")]


def test_malformed_bodies(tp: TargetProfiles, lib: Lib) -> None:
    tp.fault_sequence(["malformed"], operation="single-update")
    tp.add_fault("malformed", operation="fetch", times=1)
    status, _, body = lib.send(tp, "single-update")
    assert status == 200 and body.startswith(b"<response><success>true</success>")
    with pytest.raises(ET.ParseError):
        ET.fromstring(body)
    status, _, body = lib.send(tp, "fetch")
    assert status == 404 and body.startswith(b'{"status" : 404')
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


# --- connection faults: the exceptions a broken socket raises ------------------------------------
REQUESTS_RAISES = {
    "reset": ("ConnectionError", "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))"),
    "disconnect": ("ConnectionError",
                   "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))"),
    "truncated": ("ChunkedEncodingError", "('Connection broken: IncompleteRead(20 bytes read, 86 more expected)', "
                                          "IncompleteRead(20 bytes read, 86 more expected))"),
}
HTTPX_RAISES = {
    "reset": ("ReadError", "[Errno 104] Connection reset by peer"),
    "disconnect": ("RemoteProtocolError", "Server disconnected without sending a response."),
    "truncated": ("RemoteProtocolError",
                  "peer closed connection without sending complete message body (received 20 bytes, expected 106)"),
}
JOURNALED = {"reset": (0, "connection reset"), "disconnect": (0, "disconnect without a response"),
             "truncated": (200, "truncated body (20 of 106 bytes sent)")}


@pytest.mark.parametrize("kind", ["reset", "disconnect", "truncated"])
def test_connection_faults_raise_what_a_broken_socket_raises(tp: TargetProfiles, kind: str) -> None:
    tp.add_fault(kind, operation="single-update", times=2, **({"keep": 20} if kind == "truncated" else {}))
    assert raised(lambda: Lib("requests").send(tp, "single-update")) == REQUESTS_RAISES[kind]
    assert raised(lambda: Lib("httpx").send(tp, "single-update")) == HTTPX_RAISES[kind]
    assert journal(tp) == [("single-update", *JOURNALED[kind])] * 2
    assert tp.requests()[0].response_body == (UPDATED[:20] if kind == "truncated" else b"")
    assert Lib("requests").send(tp, "single-update")[2] == UPDATED  # and the next call is answered


@pytest.mark.parametrize("kind", ["reset", "disconnect", "truncated"])
def test_connection_faults_in_async_httpx(tp: TargetProfiles, kind: str) -> None:
    tp.add_fault(kind, operation="single-update", times=1, **({"keep": 20} if kind == "truncated" else {}))

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.get(url(tp, "single-update"))

    # anyio, under httpx's async transport, reports a reset without text
    expected = ("ReadError", "") if kind == "reset" else HTTPX_RAISES[kind]
    assert raised(lambda: asyncio.run(call())) == expected
    assert asyncio.run(call()).content == UPDATED


def test_a_truncated_body_fails_when_read(tp: TargetProfiles) -> None:
    tp.add_fault("truncated", operation="single-update", times=2, keep=20)
    with requests.get(url(tp, "single-update"), stream=True, timeout=5) as r:
        assert (r.status_code, r.headers["Content-Length"]) == (200, "106")  # the headers arrived
        assert r.raw.read(20) == UPDATED[:20]
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            r.content  # noqa: B018 - reading is what fails
    with httpx.Client(timeout=5) as client, client.stream("GET", url(tp, "single-update")) as h:
        assert h.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError, match="received 20 bytes, expected 106"):
            h.read()


def test_reset_after_applying_loses_only_the_answer(tp: TargetProfiles, lib: Lib) -> None:
    tp.add_fault("reset", operation="batch-submit", times=1, applied=True)
    with pytest.raises((requests.exceptions.ConnectionError, httpx.ReadError)):
        lib.send(tp, "batch-submit")
    assert len(tp.batches()) == 1
    assert journal(tp) == [("batch-submit", 0, "connection reset after applying the request")]


def test_both_fixtures_meet_the_same_faults(target_profiles: TargetProfiles,
                                            target_profile_server: TargetProfiles) -> None:
    profile = [{"sequence": [503, "reset", "pass", {"kind": "truncated", "keep": 10}, "disconnect"],
                "operation": "single-update"},
               {"kind": 500, "operation": "fetch", "probability": 0.5},  # unseeded: the rule id seeds it
               {"kind": "throttle", "operation": "token", "times": 1}]

    def script(tp: TargetProfiles) -> list[object]:
        # a frozen clock: a token's expiresIn counts down by the second, however loaded the machine
        tp.freeze_clock(1_700_000_000)
        assert [r["id"] for r in tp.load_faults(profile)] == list(range(1, 8))  # ids start over in each test
        seen: list[object] = []
        for op in ["single-update"] * 6 + ["fetch"] * 8 + ["token"] * 2:
            for name in ("requests", "httpx"):
                try:
                    status, headers, body = Lib(name).send(tp, op)
                    if op == "token":  # the Admin API's error carries a fresh request id and the time
                        body = {k: v for k, v in json.loads(body).items() if k not in ("requestId", "requestTime")}
                    seen.append((status, headers.get("retry-after"), body))
                except Exception as exc:
                    seen.append((type(exc).__qualname__, str(exc)))
        return seen + journal(tp)

    in_process, live = script(target_profiles), script(target_profile_server)
    assert in_process == live
    assert {x[0] for x in in_process[12:28]} == {404, 500}  # the probability rule fired, and not always


# --- scope ---------------------------------------------------------------------------------------
def test_operation_tenant_and_next_n(tp: TargetProfiles) -> None:
    tp.add_fault(500, operation=["fetch", "token"], tenant="demo", times=3)
    get = Lib("requests").send
    assert get(tp, "single-update")[0] == 200  # another operation
    other = tp.url + "/rest/v1/profiles/thirdPartyId/v1?client=other"
    tp.allow("tenant.unknown")  # a client code the test does not set up, on purpose
    assert requests.get(other, timeout=5).status_code == 404  # another tenant
    assert [get(tp, "fetch")[0], get(tp, "token")[0]] == [500, 500]
    [rule] = tp.faults()
    assert (rule["times"], rule["hits"], rule["operation"], rule["tenant"]) == (1, 2, ["fetch", "token"], "demo")
    assert [get(tp, "fetch")[0], get(tp, "fetch")[0]] == [500, 404]
    assert tp.faults() == []


def test_probability_under_a_seed_is_reproducible(tp: TargetProfiles) -> None:
    def pattern(seed: int) -> list[int]:
        tp.clear_faults()
        tp.add_fault(500, operation="token", probability=0.5, seed=seed)
        return [Lib("requests").send(tp, "token")[0] for _ in range(12)]

    first = pattern(7)
    assert first == pattern(7) and set(first) == {200, 500} and first != pattern(8)


def test_fault_handle_calls(tp: TargetProfiles) -> None:
    a = tp.add_fault(500, tenant="demo")
    b = tp.add_fault("latency", latency=[0.01, 0.02], tenant="other")
    c, d = tp.fault_sequence([{"kind": "empty"}, "pass"], operation="fetch")
    assert [r["id"] for r in tp.faults()] == [a["id"], b["id"], c["id"], d["id"]]
    assert tp.remove_fault(a["id"]) == a
    with pytest.raises(ControlError, match=f"no fault rule {a['id']}"):
        tp.remove_fault(a["id"])
    assert tp.clear_faults("other") == 1 and tp.clear_faults() == 2 and tp.faults() == []
    with pytest.raises(ControlError, match="unknown fault kind 'explode'"):
        tp.add_fault("explode")
    with pytest.raises(ControlError, match="fault 1: a status fault needs a status"):
        tp.load_faults([{"kind": "reset"}, {"kind": "status"}])
    assert tp.faults() == []  # nothing half-queued


# --- a retrying client ---------------------------------------------------------------------------
RETRYABLE = (429, 500, 502, 503, 504)


def submit_with_retries(send: Callable[[], int], *, attempts: int = 5,
                        broken: tuple[type[Exception], ...] = (requests.exceptions.ConnectionError,
                                                               requests.exceptions.ChunkedEncodingError,
                                                               httpx.TransportError)) -> tuple[int, int]:
    """A bulk client's submit loop: retry 429/5xx and broken connections; (final status, attempts)."""
    for attempt in range(1, attempts + 1):
        try:
            status = send()
        except broken:
            if attempt == attempts:
                raise
            continue
        if status not in RETRYABLE or attempt == attempts:
            return status, attempt
    raise AssertionError("unreachable")


def test_retrying_client_recovers_from_503_503_200(tp: TargetProfiles, lib: Lib) -> None:
    tp.fault_sequence([503, 503], operation="batch-submit")
    assert submit_with_retries(lambda: lib.send(tp, "batch-submit")[0]) == (200, 3)
    assert journal(tp) == [("batch-submit", 503, "status 503")] * 2 + [("batch-submit", 200, None)]
    assert len(tp.batches()) == 1
    tp.fault_sequence([503, 503], operation="batch-submit")
    assert submit_with_retries(lambda: lib.send(tp, "batch-submit")[0], attempts=2) == (503, 2)  # gives up


def test_retrying_client_recovers_from_broken_connections(tp: TargetProfiles, lib: Lib) -> None:
    tp.fault_sequence(["reset", "disconnect", "truncated"], operation="batch-submit")
    assert submit_with_retries(lambda: lib.send(tp, "batch-submit")[0]) == (200, 4)
    assert len(tp.batches()) == 2  # the truncated answer's submit had been applied: sent twice


# --- per test: reset and the marker --------------------------------------------------------------
def test_faults_are_per_test_and_the_marker_queues_them(run: Run) -> None:
    result = run('''
        import pytest, requests

        FETCH = "/rest/v1/profiles/thirdPartyId/v1?client=demo"
        DRAWS = []

        @pytest.fixture(params=["target_profiles", "target_profile_server"])
        def tp(request):
            return request.getfixturevalue(request.param)

        def draws(tp):
            tp.add_fault(500, operation="fetch", probability=0.5)  # no seed: the draws follow the rule id
            return [requests.get(tp.url + FETCH).status_code for _ in range(10)]

        def test_first_leaves_faults_behind(tp):
            DRAWS.append(draws(tp))
            tp.add_fault("reset", operation="token", tenant="demo")

        def test_next_starts_without_them(tp):
            assert tp.faults() == []
            assert requests.get(tp.url + FETCH).status_code == 404
            DRAWS.append(draws(tp))
            assert DRAWS[-1] == DRAWS[0]  # whatever ran before, a test meets the same faults

        @pytest.mark.target_profiles(faults=[{"sequence": [503, 503], "operation": "fetch"},
                                             {"kind": "throttle", "operation": "token"}])
        def test_marker(tp):
            assert [r["kind"] for r in tp.faults()] == ["status", "status", "throttle"]
            codes = [requests.get(tp.url + FETCH).status_code for _ in range(3)]
            assert codes == [503, 503, 404]

        @pytest.mark.target_profiles(faults=[{"kind": "status", "operation": "fetch"}])
        def test_bad_marker_faults(target_profiles):
            pass
    ''')
    result.assert_outcomes(passed=6, errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.target_profiles: faults: fault 0: a status fault needs a status*"])


def test_marker_faults_other_than_a_list_are_refused() -> None:
    from target_profile_mock.plugin.options import OptionError, Settings

    assert Settings().merge(faults={"faults": [{"kind": "reset"}]}).faults == ({"kind": "reset"},)
    with pytest.raises(OptionError, match="give a list of fault objects"):
        Settings().merge(faults="reset")

