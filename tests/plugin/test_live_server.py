"""The ``target_profile_server`` fixture: a real socket, one server per session, reset per test."""

from __future__ import annotations

import pytest
from conftest import Run


def test_live_server_is_shared_and_reset(run: Run) -> None:
    result = run('''
        import re, requests

        PORTS = set()

        def test_first(target_profile_server):
            PORTS.add(target_profile_server.url)
            assert target_profile_server.url.startswith("http://127.0.0.1:")
            target_profile_server.seed_profile("c-1", attributes={"tier": "gold"})
            r = requests.get(f"{target_profile_server.url}/rest/v1/profiles/thirdPartyId/c-1?client=demo")
            assert r.json()["profileAttributes"]["tier"]["value"] == "gold"
            target_profile_server.set_lifecycle("manual")

        def test_second_sees_a_fresh_fake_on_the_same_server(target_profile_server):
            PORTS.add(target_profile_server.url)
            assert len(PORTS) == 1
            assert target_profile_server.profiles() == [] and target_profile_server.requests() == []
            r = requests.post(f"{target_profile_server.url}/m2/demo/v2/profile/batchUpdate",
                              data="batch=thirdPartyId,tier\\nc-1,gold\\n")
            status_url = re.search("<batchStatus>(.*)</batchStatus>", r.text).group(1)
            assert status_url.startswith(target_profile_server.url)  # the status URL points back at the server
            assert "<status>incomplete" in requests.get(status_url).text  # default lifecycle again
            assert "<status>complete" in requests.get(status_url).text
            target_profile_server.assert_batch_submitted(rows=[{"thirdPartyId": "c-1", "tier": "gold"}], version=2)

        def test_a_client_in_another_process(target_profile_server):
            import subprocess, sys
            target_profile_server.seed_profile("c-9")
            code = ("import requests, sys; r = requests.post(sys.argv[1] + '/m2/demo/profile/update?"
                    "mbox3rdPartyId=c-9&profile.a=1'); print(r.status_code)")
            out = subprocess.run([sys.executable, "-c", code, target_profile_server.url], capture_output=True,
                                 text=True, check=True).stdout
            assert out.strip() == "200"
            target_profile_server.assert_updated("c-9", attributes={"a": "1"})
    ''')
    result.assert_outcomes(passed=3)


def test_live_server_strict_check_and_marker(run: Run) -> None:
    result = run('''
        import pytest, requests

        @pytest.mark.target_profiles(client_code="acme", lifecycle="immediate")
        def test_marker_applies(target_profile_server):
            assert target_profile_server.client_code == "acme"
            assert target_profile_server.backend.config.lifecycle.spec() == "immediate"

        def test_contract_error_fails(target_profile_server):
            requests.post(f"{target_profile_server.url}/m2/demo/profile/update?mbox3rdPartyId=a/b&profile.x=1")
    ''')
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*error id.third-party-chars*", "*Reproduce: curl -X POST*"])


def test_a_call_its_client_gave_up_on_ends_before_the_next_test_starts(run: Run) -> None:
    """A latency fault longer than the client's timeout: the server works on, as a real one would, and
    the next test's reset waits for that call instead of letting it land in the fresh state."""
    result = run('''
        import time, pytest, requests

        def test_gives_up_on_a_slow_update(target_profile_server):
            tp = target_profile_server
            tp.seed_profile("c-1", attributes={"tier": "bronze"})
            tp.add_fault("latency", latency=0.6, operation="single-update", times=1)
            with pytest.raises(requests.exceptions.ReadTimeout):
                requests.get(tp.url + "/m2/demo/profile/update?mbox3rdPartyId=c-1&profile.tier=gold",
                             timeout=(5, 0.05))

        def test_next_starts_clean(target_profile_server):
            tp = target_profile_server
            tp.seed_profile("c-1", attributes={"tier": "silver"})
            time.sleep(0.8)  # past the end of the slow call, had it still been running
            assert tp.requests() == []
            assert tp.profile("c-1")["attributes"] == {"tier": "silver"}
    ''')
    result.assert_outcomes(passed=2)


def test_live_server_counts_requests_in_flight() -> None:
    import threading
    import time

    import requests
    from target_profile_mock.mockserver import MockBackend, create_app
    from target_profile_mock.mockserver.server import LiveServer

    be = MockBackend()
    # long enough that the call is surely still sleeping when wait_idle(0.05) gives up, however loaded the machine
    be.faults.add("latency", latency=1.5, operation="fetch", times=1)
    with LiveServer(create_app(be)) as server:
        slow = threading.Thread(target=requests.get, args=(server.url + "/rest/v1/profiles/x?client=demo",),
                                kwargs={"timeout": 10})
        slow.start()
        deadline = time.monotonic() + 10
        while server.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.in_flight == 1
        assert server.wait_idle(0.05) is False  # bounded: gives up while the call still runs
        assert server.wait_idle(10) is True and server.in_flight == 0
        slow.join(10)
        assert requests.get(server.url + "/_mock/health", timeout=5).status_code == 200
        # the client can have its answer a moment before the server closes the answer's iterable, which
        # is when the count drops: wait for that (bounded) rather than expect it at once
        assert server.wait_idle(10) is True and server.in_flight == 0


def test_a_body_the_server_refuses_before_the_app_fails_the_test_as_a_contract_error(run: Run) -> None:
    result = run('''
        import socket

        def test_declares_a_file_over_50_mb(target_profile_server):
            host, port = target_profile_server.url.removeprefix("http://").rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(b"POST /m2/demo/profile/batchUpdate HTTP/1.1\\r\\nHost: x\\r\\n"
                             b"Content-Length: 50000001\\r\\n\\r\\nbatch=")
                assert sock.recv(65536).startswith(b"HTTP/1.1 413 ")
    ''')
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*error batch.too-large*"])


def test_live_server_on_a_redis_store(run: Run, redis_url: str) -> None:
    import redis

    result = run('''
        import redis, requests

        def keys():
            return redis.Redis.from_url(REDIS).keys("tpm-pytest-*")

        def test_state_in_redis(target_profile_server):
            assert target_profile_server.backend.store.shared
            target_profile_server.seed_profile("c-1", attributes={"tier": "gold"})
            r = requests.get(f"{target_profile_server.url}/rest/v1/profiles/thirdPartyId/c-1?client=demo")
            assert r.json()["profileAttributes"]["tier"]["value"] == "gold"
            assert any(k.endswith(b":tenant:demo") for k in keys())

        def test_reset_between_tests(target_profile_server):
            assert target_profile_server.profiles() == []
            assert not any(k.endswith(b":tenant:demo") for k in keys())
    '''.replace("REDIS", repr(redis_url)), "--target-profiles-store", redis_url)
    result.assert_outcomes(passed=2)
    assert redis.Redis.from_url(redis_url).keys("tpm-pytest-*") == []  # the session's prefix, gone whole


def test_a_bad_store_option_is_a_usage_error(run: Run) -> None:
    result = run("def test_x(): pass", "--target-profiles-store", "mysql://db/0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--target-profiles-store: 'mysql://db/0' is not a store URL*"])
