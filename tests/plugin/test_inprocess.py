"""The in-process ``target_profiles`` fixture: routing, state, isolation, other hosts, httpx."""

from __future__ import annotations

from conftest import Run


def test_unmodified_client_updates_fetches_and_uploads(run: Run) -> None:
    result = run('''
        from client import TargetClient

        def test_update_and_fetch(target_profiles):
            target_profiles.seed_profile("c-1", attributes={"tier": "silver"})
            client = TargetClient("demo")
            assert client.update("c-1", tier="gold").status_code == 200
            assert target_profiles.profile("c-1")["attributes"] == {"tier": "gold"}
            body = client.fetch("c-1").json()
            assert body["profileAttributes"]["tier"]["value"] == "gold"
            target_profiles.assert_updated("c-1", attributes={"tier": "gold"})
            assert [e.operation for e in target_profiles.requests()] == ["single-update", "fetch"]

        def test_polling_upload_completes_after_one_incomplete_poll(target_profiles):
            target_profiles.fake_sleep()
            status = TargetClient("demo").upload([{"id": "c-1", "tier": "gold"}, {"id": "c-2", "tier": "silver"}])
            assert status == "complete"
            polls = target_profiles.requests("batch-status")
            assert [e.parsed["status"] for e in polls] == ["incomplete", "complete"]
            target_profiles.assert_batch_submitted(
                rows=[{"thirdPartyId": "c-1", "tier": "gold"}, {"thirdPartyId": "c-2", "tier": "silver"}], version=2)
            assert target_profiles.profile("c-2")["attributes"] == {"tier": "silver"}  # v2 creates profiles
    ''')
    result.assert_outcomes(passed=2)


def test_every_tt_omtrdc_host_and_scheme_is_answered(run: Run) -> None:
    result = run('''
        import pytest, requests

        @pytest.mark.parametrize("url", [
            "https://demo.tt.omtrdc.net/rest/v1/profiles/thirdPartyId/x?client=demo",
            "http://demo.tt.omtrdc.net/rest/v1/profiles/thirdPartyId/x?client=demo",
            "https://mboxedge45.tt.omtrdc.net/rest/v1/profiles/thirdPartyId/x?client=demo",
            "http://MBOXEDGE17.TT.OMTRDC.NET:80/rest/v1/profiles/thirdPartyId/x?client=demo",
        ])
        def test_host(target_profiles, url):
            assert requests.get(url).status_code == 404  # answered by the fake: the profile is unknown
            assert target_profiles.last_request("fetch").tenant == "demo"
    ''')
    result.assert_outcomes(passed=4)


def test_token_route_on_mc_adobe_io_and_auth(run: Run) -> None:
    result = run('''
        import pytest, requests
        from client import TargetClient

        TOKEN_URL = "https://mc.adobe.io/demo/target/authentication/token?authorizationScope=profile_api"

        def test_client_gets_the_token_from_the_admin_api(target_profiles):
            token = target_profiles.set_auth(True)
            assert requests.get(TOKEN_URL).json()["accessToken"] == token
            target_profiles.seed_profile("c-1", attributes={"a": "1"})
            assert TargetClient("demo", token=token).fetch("c-1").status_code == 200
            new = requests.post(TOKEN_URL).json()["accessToken"]
            assert new == target_profiles.token() != token

        @pytest.mark.target_profiles(auth=True, allow=["auth.missing-token"])
        def test_missing_token_is_refused(target_profiles):
            assert TargetClient("demo").fetch("c-1").status_code == 401
            assert target_profiles.last_request().errors[0].rule_id == "auth.missing-token"
    ''')
    result.assert_outcomes(passed=2)


def test_state_does_not_leak_between_tests(run: Run) -> None:
    result = run('''
        import requests

        def test_a_changes_everything(target_profiles):
            target_profiles.seed_profile("c-1", attributes={"a": "1"})
            target_profiles.set_lifecycle("manual")
            target_profiles.configure(update_delay=30)
            target_profiles.set_auth(True)
            target_profiles.freeze_clock()
            target_profiles.advance(3600)
            target_profiles.strict = "off"
            requests.get("https://demo.tt.omtrdc.net/rest/v1/profiles/thirdPartyId/c-1?client=demo")

        def test_b_starts_clean(target_profiles):
            import time
            be = target_profiles.backend
            assert target_profiles.profiles() == [] and target_profiles.requests() == []
            assert be.config.lifecycle.spec() == "polls=1" and be.config.update_delay == 0
            assert be.config.auth is False and not be.clock.frozen
            assert abs(target_profiles.now() - time.time()) < 5
            assert target_profiles.strict == "errors"

        def test_c_moves_the_running_clock(target_profiles):
            target_profiles.advance(7200)

        def test_d_is_back_to_real_time(target_profiles):
            import time
            assert abs(target_profiles.now() - time.time()) < 5
    ''')
    result.assert_outcomes(passed=4)


def test_reads_have_no_side_effects(run: Run) -> None:
    result = run('''
        import re, requests

        def test_reading_a_batch_is_not_a_poll(target_profiles):
            r = requests.post("https://demo.tt.omtrdc.net/m2/demo/profile/batchUpdate",
                              data="batch=thirdPartyId,a\\nc-1,1\\n")
            for _ in range(3):
                assert target_profiles.batch()["status"] == "incomplete"
                assert target_profiles.batches()[0]["polls"] == 0
            url = re.search("<batchStatus>(.*)</batchStatus>", r.text).group(1)
            assert "<status>incomplete</status>" in requests.get(url).text
            assert "<status>complete</status>" in requests.get(url).text

        def test_force_a_batch_stuck(target_profiles):
            requests.post("https://demo.tt.omtrdc.net/m2/demo/v2/profile/batchUpdate",
                          data="batch=thirdPartyId,a\\nc-1,1\\n")
            assert target_profiles.force_batch(state="stuck")["status"] == "stuck"
            assert target_profiles.profile("c-1", default=None) is None
    ''')
    result.assert_outcomes(passed=2)


def test_other_hosts_pass_through_by_default(run: Run) -> None:
    # the live server stands in for "some other host on the network"
    result = run('''
        import requests

        def test_passthrough(target_profiles, target_profile_server):
            r = requests.get(f"{target_profile_server.url}/_mock/health")
            assert r.json()["status"] == "ok"
            assert target_profiles.requests() == []
    ''')
    result.assert_outcomes(passed=1)


def test_other_hosts_can_be_blocked_with_a_clear_error(run: Run) -> None:
    result = run('''
        import pytest, requests, responses

        pytestmark = pytest.mark.target_profiles(other_hosts="block")

        def test_blocked(target_profiles, target_profile_server):
            with pytest.raises(requests.ConnectionError) as info:
                requests.get(f"{target_profile_server.url}/_mock/health")
            assert "target-profiles blocked GET" in str(info.value)
            assert "other_hosts='passthrough'" in str(info.value)

        def test_stubs_and_passthru_prefixes_still_work(target_profiles, target_profile_server):
            target_profiles.responses.add(responses.GET, "https://api.example.com/x", json={"ok": True})
            assert requests.get("https://api.example.com/x").json() == {"ok": True}
            target_profiles.responses.add_passthru(target_profile_server.url)
            assert requests.get(f"{target_profile_server.url}/_mock/health").status_code == 200
            # a stub on an Adobe URL wins over the fake, and the fake keeps answering the rest
            target_profiles.responses.add(responses.GET, "https://demo.tt.omtrdc.net/rest/v1/profiles/x", status=503)
            assert requests.get("https://demo.tt.omtrdc.net/rest/v1/profiles/x").status_code == 503
            assert requests.get("https://demo.tt.omtrdc.net/rest/v1/profiles/y?client=demo").status_code == 404
    ''')
    result.assert_outcomes(passed=2)


def test_the_responses_mock_is_the_tests_own(run: Run) -> None:
    # the mock is reused while no test touches it, and replaced once one has: either way a test sees
    # only its own stubs, passthru prefixes and calls
    result = run('''
        import pytest, requests, responses

        UPDATE = "https://demo.tt.omtrdc.net/m2/demo/profile/update?mbox3rdPartyId=c-1&profile.a=1"

        def test_1_untouched(target_profiles):
            assert requests.get(UPDATE).status_code == 200

        def test_2_sees_only_its_calls(target_profiles):
            requests.get(UPDATE + "2")
            assert [c.request.url for c in target_profiles.responses.calls] == [UPDATE + "2"]
            target_profiles.responses.add(responses.GET, "https://api.example.com/x", json={"ok": 1})
            target_profiles.responses.add(responses.GET, UPDATE, status=503)
            assert requests.get(UPDATE).status_code == 503

        @pytest.mark.target_profiles(other_hosts="block")
        def test_3_no_stub_or_passthru_left(target_profiles):
            assert len(target_profiles.responses.calls) == 0
            assert requests.get(UPDATE).status_code == 200
            with pytest.raises(requests.ConnectionError, match="target-profiles blocked"):
                requests.get("https://api.example.com/x")

        def test_4_passthrough_again(target_profiles):
            assert len(target_profiles.responses.calls) == 0
            assert target_profiles.responses.registered() == []
            assert requests.get(UPDATE).status_code == 200
            assert len(target_profiles.responses.calls) == 1
    ''')
    result.assert_outcomes(passed=4)


def test_requests_is_unpatched_after_the_test(run: Run) -> None:
    result = run('''
        import requests
        from requests.adapters import HTTPAdapter
        ORIGINAL = HTTPAdapter.send

        def test_uses_fixture(target_profiles):
            assert HTTPAdapter.send is not ORIGINAL

        def test_after():
            assert HTTPAdapter.send is ORIGINAL
    ''')
    result.assert_outcomes(passed=2)


def test_httpx_sync_and_async_in_process(run: Run) -> None:
    result = run('''
        import asyncio, httpx, pytest

        URL = "https://demo.tt.omtrdc.net/rest/v1/profiles/thirdPartyId/c-1?client=demo"

        def test_default_clients_are_routed(target_profiles):
            target_profiles.seed_profile("c-1", attributes={"a": "1"})
            assert httpx.get(URL).json()["visitorId"] == "c-1"
            async def fetch():
                async with httpx.AsyncClient() as client:
                    return await client.post("https://demo.tt.omtrdc.net/m2/demo/profile/update",
                                             params={"mbox3rdPartyId": "c-1", "profile.a": "2"})
            assert asyncio.run(fetch()).status_code == 200
            assert target_profiles.profile("c-1")["attributes"] == {"a": "2"}

        @pytest.mark.target_profiles(httpx=False)
        def test_explicit_transports(target_profiles):
            target_profiles.seed_profile("c-1", attributes={"a": "1"})
            with httpx.Client(transport=target_profiles.httpx_transport()) as client:
                assert client.get(URL).status_code == 200
            async def fetch():
                async with httpx.AsyncClient(transport=target_profiles.async_httpx_transport()) as client:
                    return await client.get(URL)
            assert asyncio.run(fetch()).json()["visitorId"] == "c-1"
            assert len(target_profiles.requests("fetch")) == 2

        async def get_async(url, transport=None):
            async with httpx.AsyncClient(transport=transport) as client:
                return await client.get(url)

        @pytest.mark.target_profiles(other_hosts="block")
        def test_blocked_for_httpx_too(target_profiles, target_profile_server):
            url = f"{target_profile_server.url}/_mock/health"
            with pytest.raises(httpx.ConnectError, match="target-profiles blocked"):
                httpx.get(url)
            with pytest.raises(httpx.ConnectError, match="target-profiles blocked"):
                with httpx.Client(transport=target_profiles.httpx_transport()) as client:
                    client.get(url)
            with pytest.raises(httpx.ConnectError, match="target-profiles blocked"):
                asyncio.run(get_async(url))
            with pytest.raises(httpx.ConnectError, match="target-profiles blocked"):
                asyncio.run(get_async(url, target_profiles.async_httpx_transport()))

        def test_other_hosts_pass_through_httpx(target_profiles, target_profile_server):
            url = f"{target_profile_server.url}/_mock/health"
            assert httpx.get(url).status_code == 200
            with httpx.Client(transport=target_profiles.httpx_transport()) as client:
                assert client.get(url).status_code == 200
            assert asyncio.run(get_async(url)).status_code == 200
            assert asyncio.run(get_async(url, target_profiles.async_httpx_transport())).status_code == 200
    ''')
    result.assert_outcomes(passed=4)


def test_httpx_is_unpatched_after_the_test(run: Run) -> None:
    result = run('''
        import httpx
        ORIGINAL = httpx.HTTPTransport.handle_request

        def test_uses_fixture(target_profiles):
            assert httpx.HTTPTransport.handle_request is not ORIGINAL

        def test_after():
            assert httpx.HTTPTransport.handle_request is ORIGINAL
    ''')
    result.assert_outcomes(passed=2)


def test_request_bodies_of_every_shape_arrive(run: Run) -> None:
    result = run('''
        import io, requests

        URL = "https://demo.tt.omtrdc.net/m2/demo/profile/batchUpdate"
        FILE = b"batch=thirdPartyId,a\\nc-1,1\\nc-2,2\\n"

        def test_bodies(target_profiles):
            requests.post(URL, data=FILE)
            requests.post(URL, data=FILE.decode())
            requests.post(URL, data=io.BytesIO(FILE))
            requests.post(URL, data=iter([FILE[:10], FILE[10:]]))  # chunked, no Content-Length
            for e in target_profiles.requests("batch-submit"):
                assert e.status == 200 and e.parsed["rows"] == 2, e.response_body
            target_profiles.assert_batch_submitted(rows=[{"thirdPartyId": "c-1", "a": "1"},
                                                         {"thirdPartyId": "c-2", "a": "2"}], times=4)
    ''')
    result.assert_outcomes(passed=1)


def test_a_snapshot_taken_in_one_test_restores_in_another(run: Run) -> None:
    result = run('''
        import json, pytest
        from client import TargetClient

        saved = {}

        def test_set_up_and_save(target_profiles):
            target_profiles.seed_profile("c-1", attributes={"tier": "silver"})
            target_profiles.set_lifecycle("manual")
            TargetClient("demo").update("c-1", tier="gold")
            saved["state"] = json.loads(json.dumps(target_profiles.snapshot()))

        def test_restore(target_profiles):
            assert target_profiles.profiles() == []  # each test starts empty
            target_profiles.restore(saved["state"])
            assert target_profiles.profile("c-1")["attributes"] == {"tier": "gold"}
            assert target_profiles.backend.settings()["lifecycle"] == "manual"

        def test_a_bad_snapshot_fails_with_the_field(target_profiles):
            bad = dict(saved["state"], version=7)
            with pytest.raises(ValueError, match="format version 7"):
                target_profiles.restore(bad)
    ''')
    result.assert_outcomes(passed=3)
