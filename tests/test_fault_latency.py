"""Fault latency is bounded, and sleeping faults never take every worker thread of the server: health, the
control API and unfaulted calls go on answering over the socket while faults sleep."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from target_profile_mock.mockserver import MockBackend, create_app
from target_profile_mock.mockserver.faults import MAX_LATENCY
from target_profile_mock.mockserver.server import LiveServer, make_server, sleeping_fault_bound


@pytest.mark.parametrize("latency", [1e308, 1e9, MAX_LATENCY + 1, [0, 1e308], [1, 601]])
def test_latency_beyond_the_maximum_is_refused(client, backend, latency):
    r = client.post("/_mock/faults", json={"kind": "latency", "latency": latency})
    assert r.status_code == 400, r.data
    assert "latency takes" in r.get_json()["error"] and "600" in r.get_json()["error"]
    assert backend.faults.list() == []
    with pytest.raises(ValueError, match=r"at most 600|from 0 to 600"):
        backend.faults.add(503, latency=latency)


def test_the_maximum_latency_itself_is_taken(backend):
    assert backend.faults.add("latency", latency=MAX_LATENCY)["latency"] == MAX_LATENCY


def test_make_server_bounds_the_sleeping_faults_below_its_threads():
    backend = MockBackend()
    server = make_server(create_app(backend), port=0, threads=5)
    try:
        assert backend.faults.max_sleeping == sleeping_fault_bound(5) == 3
    finally:
        server.close()
    assert sleeping_fault_bound(1) == 1 and sleeping_fault_bound(8) == 6


@pytest.mark.slow
def test_health_and_the_control_api_answer_while_every_sleep_slot_is_taken():
    backend = MockBackend()
    backend.seed_profile("demo", third_party_id="c1")
    backend.faults.add("latency", latency=3, operation="fetch")
    with LiveServer(create_app(backend), threads=4) as server:  # two requests may sleep at once
        url = f"{server.url}/rest/v1/profiles/thirdPartyId/c1?client=demo"
        answers: list[int] = []

        def slow_fetch() -> None:
            try:
                answers.append(requests.get(url, timeout=10).status_code)
            except requests.RequestException:
                answers.append(0)

        callers = [threading.Thread(target=slow_fetch) for _ in range(4)]  # as many as the threads
        for t in callers:
            t.start()
        deadline = time.monotonic() + 5
        while backend.faults.list()[0]["hits"] < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert backend.faults.list()[0]["hits"] == 4
        # two fetches sleep; the two others were answered at once, without their latency
        started = time.monotonic()
        assert requests.get(f"{server.url}/_mock/health", timeout=1).status_code == 200
        assert requests.get(f"{server.url}/_mock/faults", timeout=1).status_code == 200
        assert requests.get(f"{server.url}/m2/demo/profile/update?mbox3rdPartyId=c1&profile.a=1",
                            timeout=1).status_code == 200
        assert time.monotonic() - started < 1.5
        for t in callers:
            t.join(10)
        assert answers == [200] * 4
        faults = [e.fault for e in backend.journal.entries(lambda e: e.operation == "fetch")]
        assert faults.count("latency 3.000s") == 2
        assert faults.count("latency 3.000s (latency skipped: 2 faulted requests already sleeping)") == 2
        assert server.wait_idle(10)
