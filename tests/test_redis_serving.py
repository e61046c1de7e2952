"""Several server processes on one Redis behave as one fake: two ``serve`` processes on their own ports,
and ``serve --workers 2`` on one port. Real processes, real sockets and a real redis-server (the
``redis_url`` fixture: an emptied Redis of this xdist worker); nothing of Redis is mocked."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import requests
from target_profile_mock.contracts.xmlbodies import parse_batch_status, parse_response
from target_profile_mock.mockserver import create_app
from test_cli import Server, _assert_refused, _run, serving

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="fork and POSIX signals")]

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BATCH = b"batch=thirdPartyId,tier\nu1,gold\nu2,silver\n"
FETCH = "/rest/v1/profiles/thirdPartyId/{}?client={}"


@contextmanager
def fakes(redis_url: str, *urls_of: tuple[str, ...]) -> Iterator[list[Server]]:
    """One ``serve`` process per tuple of extra options, all on ``redis_url`` (one fake)."""
    with ExitStack() as stack:
        yield [stack.enter_context(serving("--store", redis_url, "--lifecycle", "polls=1", "--bulk-rate-limit", "5",
                                           *extra)) for extra in urls_of]


def fresh(method: str, url: str, **kw: object) -> requests.Response:
    """One request on a connection of its own (so a pre-forked server may give it to either worker)."""
    headers = {"Connection": "close", **kw.pop("headers", {})}  # type: ignore[dict-item]
    return requests.request(method, url, headers=headers, timeout=10, **kw)  # type: ignore[arg-type]


def at_once(calls: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Run the calls together, each in its own thread, released at the same moment."""
    start = threading.Barrier(len(calls))
    out: list[requests.Response | None] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        out[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r is not None for r in out)
    return out  # type: ignore[return-value]


def status_url(base: str, submit: requests.Response) -> str:
    assert submit.status_code == 200, submit.text
    url = parse_response(submit.content)["batchStatus"]
    return base + url[url.index("/m2/"):]


def check_one_fake(a: str, b: str) -> None:
    """The checks of one fake served at ``a`` and ``b`` (two servers, or one port twice)."""
    # a batch submitted through one is polled through the other and completes once
    fresh("POST", a + "/_mock/tenants/t1/profiles", json={"thirdPartyId": "u1"}).raise_for_status()
    poll = status_url(b, fresh("POST", a + "/m2/t1/v2/profile/batchUpdate", data=BATCH, headers=FORM))
    assert parse_batch_status(fresh("GET", poll).content).status == "incomplete"  # polls=1
    done = parse_batch_status(fresh("GET", poll.replace(b, a) + "&showDetails=true").content)
    assert done.status == "complete"
    again = parse_batch_status(fresh("GET", poll + "&showDetails=true").content)
    assert again.status == "complete" and again.counters == done.counters
    for base in (a, b):
        batches = fresh("GET", base + "/_mock/tenants/t1/batches").json()
        # two polls moved it (polls after the end count no more, as in one process)
        assert [(x["status"], x["polls"]) for x in batches] == [("complete", 2)]
        got = fresh("GET", base + FETCH.format("u2", "t1")).json()["profileAttributes"]
        assert got["tier"]["value"] == "silver"

    # the bulk limit (5 a minute) counts the calls through both, exactly: the 6th, whichever port, is refused
    answers = [fresh("POST", base + "/m2/t2/v2/profile/batchUpdate", data=BATCH, headers=FORM) for base in (a, b) * 4]
    assert [r.status_code for r in answers] == [200] * 5 + [503] * 3
    for refused in answers[5:]:
        assert parse_response(refused.content)["message"].startswith("[rate.bulk] client t2 has made 5 bulk calls")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60

    # a fault with times: 1 added through one fires exactly once across both
    fresh("POST", a + "/_mock/faults", json={"kind": "status", "status": 502, "operation": "fetch", "tenant": "t3",
                                             "times": 1}).raise_for_status()
    answers = at_once([lambda base=base: fresh("GET", base + FETCH.format("nobody", "t3")) for base in (b, a) * 4])
    assert sorted(r.status_code for r in answers) == [404] * 7 + [502]
    assert fresh("GET", b + "/_mock/faults").json() == []

    # a seeded probability draws the same sequence whichever process answers: the one a lone fake draws
    fault = {"kind": "status", "status": 503, "operation": "fetch", "tenant": "t4", "probability": 0.5, "seed": 7}
    alone = create_app().test_client()
    alone.post("/_mock/faults", json=fault)
    expected = [alone.get(FETCH.format("nobody", "t4")).status_code for _ in range(12)]
    assert 404 in expected and 503 in expected
    fresh("POST", b + "/_mock/faults", json=fault).raise_for_status()
    assert [fresh("GET", base + FETCH.format("nobody", "t4")).status_code for base in (a, b) * 6] == expected
    fresh("DELETE", a + "/_mock/faults").raise_for_status()

    # a single update is served on the state its process holds, checked in the update's own script: a change
    # made through the other process in between is never missed (the update runs again on the fresh state)
    def update(base: str, tier: str) -> int:
        return fresh("GET", base + f"/m2/t5/profile/update?mbox3rdPartyId=s1&profile.tier={tier}").status_code

    def tier(base: str) -> str:
        return str(fresh("GET", base + FETCH.format("s1", "t5")).json()["profileAttributes"]["tier"]["value"])

    fresh("POST", a + "/_mock/tenants/t5/profiles", json={"thirdPartyId": "s1"}).raise_for_status()
    assert [update(base, "gold") for base in (a, b)] == [200, 200]  # both hold the state now
    fresh("POST", b + "/_mock/faults", json={"kind": "status", "status": 502, "operation": "single-update",
                                             "tenant": "t5", "times": 1}).raise_for_status()
    assert [update(base, "silver") for base in (a, b, a)] == [502, 200, 200]
    fresh("PUT", a + "/_mock/settings", json={"update_delay": 3600}).raise_for_status()
    assert update(b, "bronze") == 200
    assert [tier(base) for base in (a, b)] == ["silver", "silver"]  # delayed, as the setting now says
    fresh("PUT", b + "/_mock/settings", json={"update_delay": 0}).raise_for_status()
    # a POST's body is kept for the second run: a form body after a change made through the other process
    fresh("POST", b + "/_mock/faults", json={"kind": "status", "status": 502, "operation": "fetch",
                                             "tenant": "t5", "times": 1}).raise_for_status()
    assert fresh("POST", a + "/m2/t5/profile/update", data="mbox3rdPartyId=s1&profile.tier=diamond",
                 headers=FORM).status_code == 200
    fresh("DELETE", a + "/_mock/faults").raise_for_status()
    assert [tier(base) for base in (a, b)] == ["diamond", "diamond"]
    assert update(a, "platinum") == 200
    assert [tier(base) for base in (a, b)] == ["platinum", "platinum"]

    # a clock advance through one is seen by the other
    before = fresh("GET", b + "/_mock/clock").json()["now"]
    fresh("POST", a + "/_mock/clock", json={"advance": 86_400}).raise_for_status()
    assert fresh("GET", b + "/_mock/clock").json()["now"] - before >= 86_400


def test_two_servers_on_one_redis_are_one_fake(redis_url: str) -> None:
    with fakes(redis_url, (), (), ("--store-prefix", "other")) as (one, two, other):
        assert one.url != two.url
        check_one_fake(one.url, two.url)
        # another prefix on the same Redis is another fake
        assert fresh("GET", other.url + "/_mock/tenants").json() == []
        fresh("POST", other.url + "/_mock/tenants/t1/profiles", json={"thirdPartyId": "o1"}).raise_for_status()
        assert fresh("GET", one.url + FETCH.format("o1", "t1")).status_code == 404


def test_the_bulk_limit_is_exact_for_calls_sent_at_once(redis_url: str) -> None:
    with fakes(redis_url, (), ()) as (one, two):
        for n in range(10):
            answers = at_once([lambda base=base, n=n: fresh("POST", base + f"/m2/c{n}/v2/profile/batchUpdate",
                                                       data=BATCH, headers=FORM) for base in (one.url, two.url) * 6])
            assert sorted(r.status_code for r in answers) == [200] * 5 + [503] * 7, n


def worker_pids(base: str, tries: int = 200) -> set[str]:
    """The workers seen answering fresh connections, until two have (at most ``tries`` connections)."""
    seen: set[str] = set()
    for _ in range(tries):
        seen.add(fresh("GET", base + "/_mock/health").headers["X-Mock-Worker"])
        if len(seen) == 2:
            break
    return seen


def test_two_workers_on_one_port_are_one_fake(redis_url: str) -> None:
    with fakes(redis_url, ("--workers", "2")) as (server,):
        line = next(line for line in server.lines if "serving on" in line)
        assert re.search(r"serving on http://127\.0\.0\.1:[1-9]\d*", line) and line.endswith(", 2 workers)")
        assert "store redis://127.0.0.1" in line
        pids = worker_pids(server.url)
        assert len(pids) == 2 and str(server.proc.pid) not in pids, pids  # the parent answers nothing
        # Adobe's routes answer as with one process: no worker header
        assert "X-Mock-Worker" not in fresh("GET", server.url + FETCH.format("x", "t0")).headers
        check_one_fake(server.url, server.url)
        assert server.stop(signal.SIGTERM) == 0
        assert any(line == "target-profile-mock stopped" for line in server.lines)
        for pid in pids:  # the workers are gone with the parent
            with pytest.raises(ProcessLookupError):
                os.kill(int(pid), 0)


def test_keep_alive_connections_spread_evenly_over_the_workers(redis_url: str) -> None:
    import http.client
    from urllib.parse import urlsplit

    with fakes(redis_url, ("--workers", "2")) as (server,):
        where = urlsplit(server.url)
        held: list[http.client.HTTPConnection] = []
        answered: list[str] = []
        try:
            for _ in range(8):  # opened one after another, each kept open once it has had an answer
                conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
                conn.request("GET", "/_mock/health")
                r = conn.getresponse()
                r.read()
                answered.append(r.headers["X-Mock-Worker"])
                held.append(conn)
            assert sorted(answered.count(pid) for pid in set(answered)) == [4, 4], answered
        finally:
            for conn in held:
                conn.close()


def test_a_worker_that_dies_stops_the_server(redis_url: str) -> None:
    with fakes(redis_url, ("--workers", "2")) as (server,):
        victim, survivor = sorted(worker_pids(server.url), key=int)
        os.kill(int(victim), signal.SIGKILL)
        assert server.proc.wait(20) == 1
        assert server.proc.stderr is not None
        assert f"worker {victim} exited with status -9; stopping the others" in server.proc.stderr.read()
        with pytest.raises(ProcessLookupError):
            os.kill(int(survivor), 0)


def running(pid: int) -> bool:
    """Whether the process still runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def test_the_workers_stop_when_the_parent_is_killed(redis_url: str) -> None:
    with fakes(redis_url, ("--workers", "2")) as (server,):
        pids = [int(pid) for pid in worker_pids(server.url)]
        server.proc.kill()
        server.proc.wait(10)
        deadline = time.monotonic() + 20
        while any(running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(running(pid) for pid in pids)


def test_an_unreachable_redis_is_one_line_naming_it() -> None:
    url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    for workers in ("1", "2"):
        proc = _run("serve", "--port", "0", "--store", url, "--workers", workers)
        _assert_refused(proc, "--store", url)


def test_a_snapshot_moves_between_the_memory_and_the_redis_store(redis_url: str) -> None:
    with serving("--lifecycle", "polls=2") as memory:
        base = memory.url
        fresh("POST", base + "/_mock/clock", json={"freeze": True, "at": 1_800_000_000}).raise_for_status()
        fresh("POST", base + "/_mock/tenants/acme/profiles",
              json={"thirdPartyId": "c1", "attributes": {"tier": "silver"}}).raise_for_status()
        poll = status_url(base, fresh("POST", base + "/m2/acme/v2/profile/batchUpdate", data=BATCH, headers=FORM))
        fresh("GET", poll).raise_for_status()  # one poll of two made
        fresh("POST", base + "/_mock/faults", json={"kind": "status", "status": 503, "operation": "fetch",
                                                    "times": 2}).raise_for_status()
        taken = fresh("GET", base + "/_mock/snapshot").json()

    with fakes(redis_url, ("--workers", "2")) as (shared,):
        r = fresh("PUT", shared.url + "/_mock/snapshot", json=taken)
        assert r.status_code == 200 and r.json()["restored"] is True, r.text
        assert fresh("GET", shared.url + "/_mock/snapshot").json() == taken
        for _ in range(2):  # the two faults, then the profile as it was, whichever worker answers
            assert fresh("GET", shared.url + FETCH.format("c1", "acme")).status_code == 503
        got = fresh("GET", shared.url + FETCH.format("c1", "acme")).json()["profileAttributes"]
        assert got["tier"]["value"] == "silver"
        shared_poll = poll.replace(base, shared.url)
        assert parse_batch_status(fresh("GET", shared_poll).content).status == "incomplete"  # the second poll
        assert parse_batch_status(fresh("GET", shared_poll).content).status == "complete"
        back = fresh("GET", shared.url + "/_mock/snapshot").json()

    with serving() as memory:
        r = fresh("PUT", memory.url + "/_mock/snapshot", json=back)
        assert r.status_code == 200, r.text
        assert fresh("GET", memory.url + "/_mock/snapshot").json() == back
        batch = fresh("GET", memory.url + "/_mock/tenants/acme/batches").json()[0]
        assert (batch["status"], batch["polls"]) == ("complete", 3)  # one poll here, two on Redis
        assert fresh("GET", memory.url + "/_mock/faults").json() == []


def test_the_state_file_with_a_shared_store(redis_url: str, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with serving() as memory:
        fresh("POST", memory.url + "/_mock/tenants/acme/profiles", json={"thirdPartyId": "s1"}).raise_for_status()
        state.write_text(json.dumps(fresh("GET", memory.url + "/_mock/snapshot").json()))

    # an empty store is loaded from the file; the parent writes it from the store once the workers stopped
    with fakes(redis_url, ("--workers", "2", "--state-file", str(state))) as (server,):
        assert any(f"state loaded from {state}" in line for line in server.lines), server.lines
        assert fresh("GET", server.url + FETCH.format("s1", "acme")).status_code == 200
        fresh("POST", server.url + "/_mock/tenants/acme/profiles", json={"thirdPartyId": "s2"}).raise_for_status()
        assert server.stop(signal.SIGINT) == 0
        assert any(f"state written to {state}" in line for line in server.lines), server.lines
    saved = json.loads(state.read_text())
    assert sorted(p["thirdPartyId"] for p in saved["tenants"]["acme"]["profiles"]) == ["s1", "s2"]

    # a store that already holds state is the truth: the file is not loaded over it
    state.write_text(json.dumps(json.loads(state.read_text()) | {"tenants": {}}))
    with fakes(redis_url, ("--state-file", str(state))) as (server,):
        assert any("the store already holds state" in line and "was not loaded" in line for line in server.lines)
        assert fresh("GET", server.url + FETCH.format("s2", "acme")).status_code == 200


def test_workers_need_nothing_of_the_parent_to_answer(redis_url: str) -> None:
    """SIGSTOP the parent: the workers go on answering (the parent holds no state and serves nothing)."""
    with fakes(redis_url, ("--workers", "2")) as (server,):
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            assert len(worker_pids(server.url)) == 2
            fresh("POST", server.url + "/_mock/tenants/p/profiles", json={"thirdPartyId": "p1"}).raise_for_status()
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert server.stop(signal.SIGTERM) == 0


def test_live_server_on_a_store_url(redis_url: str) -> None:
    from target_profile_mock import LiveServer

    with LiveServer(store=redis_url) as one, LiveServer(store=redis_url) as two:
        backend = one.app.config["BACKEND"]
        assert backend.store.shared and backend.store is not two.app.config["BACKEND"].store
        fresh("POST", one.url + "/_mock/tenants/ls/profiles", json={"thirdPartyId": "l1"}).raise_for_status()
        assert fresh("GET", two.url + FETCH.format("l1", "ls")).status_code == 200
    with pytest.raises(ValueError, match="an app, or a store to build one on, not both"):
        LiveServer(create_app(), store=redis_url)


def test_ci_has_redis() -> None:
    """In CI the Redis tests must run: a missing redis-server fails here instead of skipping them."""
    from redis_server import redis_server_path

    if os.environ.get("CI") != "true":
        pytest.skip("checked in CI only (CI=true)")
    assert redis_server_path() is not None, "CI needs redis-server (apt-get install redis-server; see .ci/run)"
