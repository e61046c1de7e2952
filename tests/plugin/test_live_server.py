"""The ``target_profile_server`` fixture: a real socket, one server per session, reset per test."""

from __future__ import annotations

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
