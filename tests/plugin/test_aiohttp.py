"""aiohttp in process: sessions reach the fake with no socket, and meet faults as on a real one."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from target_profile_mock.plugin.aiohttp_intercept import BlockedRequest

from target_profile_mock import TargetProfiles, mock_target

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
FIXTURES = ["target_profiles", "target_profile_server"]


@pytest.fixture(params=FIXTURES)
def tp(request: pytest.FixtureRequest) -> TargetProfiles:
    """Each test runs against the in-process fixture and against the live server (a real socket)."""
    return request.getfixturevalue(request.param)


def base(tp: TargetProfiles) -> str:
    return tp.url if tp.url.startswith("http://127.") else "https://demo.tt.omtrdc.net"


def run(job: Callable[[aiohttp.ClientSession], Awaitable[Any]], **session: Any) -> Any:
    async def go() -> Any:
        async with aiohttp.ClientSession(**session) as s:
            return await job(s)

    return asyncio.run(go())


def outcome(job: Callable[[aiohttp.ClientSession], Awaitable[Any]], **session: Any) -> tuple[str, str]:
    try:
        return "ok", repr(run(job, **session))
    except Exception as exc:
        return type(exc).__name__, str(exc)


def test_the_whole_flow_in_process_without_a_socket(target_profiles: TargetProfiles,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_connection(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a connection was opened")

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", no_connection)
    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", no_connection)
    target_profiles.seed_profile("c1", attributes={"tier": "silver"})

    async def job(s: aiohttp.ClientSession) -> tuple[int, str, str, str]:
        async with s.post("https://demo.tt.omtrdc.net/m2/demo/profile/update",
                          params={"mbox3rdPartyId": "c1", "profile.tier": "gold"}) as r:
            updated = r.status
        async with s.post("https://demo.tt.omtrdc.net/m2/demo/v2/profile/batchUpdate",
                          data=b"batch=thirdPartyId,tier\nc2,bronze\n", headers=FORM) as r:
            status_url = (await r.text()).split("<batchStatus>")[1].split("</batchStatus>")[0]
        polls = []
        for _ in range(2):
            async with s.get(status_url) as r:
                polls.append((await r.text()).split("<status>")[1].split("</status>")[0])
        async with s.get("https://demo.tt.omtrdc.net/rest/v1/profiles/thirdPartyId/c2?client=demo") as r:
            fetched = (await r.json())["profileAttributes"]["tier"]["value"]
        return updated, status_url, ",".join(polls), fetched

    updated, status_url, polls, fetched = run(job)
    assert updated == 200 and polls == "incomplete,complete" and fetched == "bronze"
    assert status_url.startswith("https://demo.tt.omtrdc.net/m2/demo/profile/batchStatus?batchId=")
    target_profiles.assert_updated("c1", attributes={"tier": "gold"})
    target_profiles.assert_batch_submitted([{"thirdPartyId": "c2", "tier": "bronze"}])


def test_chunked_request_bodies_arrive_whole(target_profiles: TargetProfiles) -> None:
    async def rows() -> Any:
        yield b"batch=thirdPartyId,tier\n"
        yield b"c1,gold\n"

    async def job(s: aiohttp.ClientSession) -> int:
        async with s.post("https://demo.tt.omtrdc.net/m2/demo/v2/profile/batchUpdate", data=rows(),
                          headers=FORM) as r:
            return r.status

    assert run(job) == 200
    target_profiles.assert_batch_submitted([{"thirdPartyId": "c1", "tier": "gold"}])


def test_contract_verdicts_of_aiohttp_requests_fail_the_test_as_for_requests(target_profiles: TargetProfiles) -> None:
    async def job(s: aiohttp.ClientSession) -> int:
        async with s.get("https://demo.tt.omtrdc.net/m2/demo/profile/update?mbox3rdPartyId=a/b&profile.x=1") as r:
            return r.status

    assert run(job) == 400
    message = target_profiles.strict_failure()
    assert message is not None and "id.third-party-chars" in message
    target_profiles.allow("id.third-party-chars")


@pytest.mark.parametrize("kind", ["reset", "disconnect", "truncated"])
def test_connection_faults_raise_what_aiohttp_raises_on_a_broken_socket(tp: TargetProfiles, kind: str) -> None:
    # the same fault against the live server (a real socket) and in process: the same exception
    tp.add_fault(kind, operation="batch-submit", times=1, **({"keep": 10} if kind == "truncated" else {}))

    async def job(s: aiohttp.ClientSession) -> bytes:
        async with s.post(f"{base(tp)}/m2/demo/v2/profile/batchUpdate", data=b"batch=thirdPartyId,x\nc1,1\n",
                          headers=FORM) as r:
            return await r.read()

    expected = {
        "reset": ("ClientOSError", "[Errno 104] Connection reset by peer"),
        "disconnect": ("ServerDisconnectedError", "Server disconnected"),
        "truncated": ("ClientPayloadError", "Response payload is not completed: <ContentLengthError: 400, "
                                            "message='Not enough data to satisfy content length header "
                                            "(received 10 of N bytes).'>"),
    }[kind]
    kind_raised, message = outcome(job)
    assert (kind_raised, re.sub(r"of \d+ bytes", "of N bytes", message)) == expected
    assert [(e.operation, e.fault is not None) for e in tp.requests()] == [("batch-submit", True)]


def test_aiohttp_retries_an_idempotent_request_once_as_on_a_socket(tp: TargetProfiles) -> None:
    tp.add_fault("reset", operation="fetch", times=1)

    async def job(s: aiohttp.ClientSession) -> int:
        async with s.get(f"{base(tp)}/rest/v1/profiles/thirdPartyId/c1?client=demo") as r:
            return r.status

    assert outcome(job) == ("ok", "404")
    assert len(tp.requests("fetch")) == 2


def test_latency_meets_aiohttp_s_read_timeout_and_leaves_the_loop_free(tp: TargetProfiles) -> None:
    tp.add_fault("latency", latency=0.5, operation="single-update", times=1)
    ticks = 0

    async def job(s: aiohttp.ClientSession) -> None:
        nonlocal ticks

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        ticker = asyncio.ensure_future(tick())
        try:
            async with s.post(f"{base(tp)}/m2/demo/profile/update?mbox3rdPartyId=c1&profile.x=1",
                              timeout=aiohttp.ClientTimeout(sock_read=0.3)):
                pass
        finally:
            ticker.cancel()

    try:
        run(job)
    except aiohttp.ServerTimeoutError as exc:  # SocketTimeoutError since aiohttp 3.10
        assert str(exc) == "Timeout on reading data from socket"
    else:
        raise AssertionError("no read timeout")
    assert ticks >= 3  # the loop ran while the answer was due


@pytest.fixture
def other_host(other_host_port: int) -> str:
    return f"http://127.0.0.1:{other_host_port}/"


def get_text(url: str) -> Callable[[aiohttp.ClientSession], Awaitable[str]]:
    async def job(s: aiohttp.ClientSession) -> str:
        async with s.get(url) as r:
            return await r.text()

    return job


def test_other_hosts_pass_through(target_profiles: TargetProfiles, other_host: str) -> None:
    assert run(get_text(other_host)) == "hello"


@pytest.mark.target_profiles(other_hosts="block")
def test_other_hosts_blocked_with_the_way_to_allow_them(target_profiles: TargetProfiles, other_host: str) -> None:
    kind, message = outcome(get_text(other_host))
    assert kind == "BlockedRequest"
    assert message.startswith(f"target-profiles blocked aiohttp GET {other_host}") and "passthrough" in message
    assert issubclass(BlockedRequest, aiohttp.ClientConnectionError)


@pytest.mark.target_profiles(aiohttp=False)
def test_aiohttp_false_leaves_aiohttp_alone(target_profiles: TargetProfiles) -> None:
    assert aiohttp.TCPConnector._create_connection.__qualname__.startswith("TCPConnector")


def test_mock_target_routes_aiohttp_and_a_pooled_connection_does_not_outlive_the_block() -> None:
    async def main() -> tuple[str, str]:
        async with aiohttp.ClientSession() as s:
            url = "https://acme.tt.omtrdc.net/rest/v1/profiles/thirdPartyId/c1?client=acme"
            with mock_target(client_code="acme") as target:
                target.seed_profile("c1", attributes={"tier": "gold"})
                async with s.get(url) as r:
                    inside = (await r.json())["profileAttributes"]["tier"]["value"]
            # the block closed the session's pooled connection to the fake; a new one is not routed
            with mock_target(client_code="acme", other_hosts="block") as target:
                async with s.get(url) as r:
                    again = str(r.status)
            return inside, again

    assert asyncio.run(main()) == ("gold", "404")


def test_mock_target_decorates_async_functions_using_aiohttp() -> None:
    @mock_target(client_code="acme", other_hosts="block")
    async def job(target: TargetProfiles) -> tuple[int, list[str]]:
        async with aiohttp.ClientSession() as s, s.post(
                "https://acme.tt.omtrdc.net/m2/acme/profile/update?mbox3rdPartyId=c1&profile.x=1") as r:
            return r.status, [e.operation for e in target.requests()]

    assert asyncio.run(job()) == (200, ["single-update"])


def test_expect_100_continue_gets_its_interim_answer(target_profiles: TargetProfiles) -> None:
    async def job(s: aiohttp.ClientSession) -> int:
        async with s.post("https://demo.tt.omtrdc.net/m2/demo/v2/profile/batchUpdate", expect100=True,
                          data=b"batch=thirdPartyId,tier\nc1,gold\n", headers=FORM,
                          timeout=aiohttp.ClientTimeout(total=5)) as r:
            return r.status

    assert run(job) == 200
    target_profiles.assert_batch_submitted([{"thirdPartyId": "c1", "tier": "gold"}])
