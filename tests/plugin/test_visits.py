"""Visits in the in-process fixture: urllib3 (and Adobe's SDK on it) routed without a socket; the handle's
visit/login/expire_profile; the life of a profile from first visit to expiry."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import Run


def test_urllib3_reaches_the_fake_without_a_socket(run: Run) -> None:
    result = run('''
        import json, socket
        import urllib3

        def test_urllib3(target_profiles, monkeypatch):
            def no_socket(*args, **kwargs):
                raise AssertionError("a socket was opened")
            monkeypatch.setattr(socket, "create_connection", no_socket)
            http = urllib3.PoolManager()
            r = http.request("POST", "https://acme.tt.omtrdc.net/rest/v1/delivery?client=acme&sessionId=s1",
                             body=json.dumps({"context": {"channel": "web"}}),
                             headers={"Content-Type": "application/json"})
            assert r.status == 200
            tnt = json.loads(r.data)["id"]["tntId"]
            r = http.request("GET", f"https://acme.tt.omtrdc.net/rest/v1/profiles/{tnt}?client=acme")
            assert r.status == 200 and json.loads(r.data)["visitorId"] == tnt
            pool = urllib3.HTTPSConnectionPool("mboxedge28.tt.omtrdc.net")
            assert pool.urlopen("GET", "/rest/v1/profiles/thirdPartyId/nobody?client=acme").status == 404
            assert [e.operation for e in target_profiles.requests()] == ["delivery", "fetch", "fetch"]

        def test_connection_faults_raise_what_urllib3_raises(target_profiles):
            target_profiles.add_fault("reset", operation="delivery")
            with __import__("pytest").raises(urllib3.exceptions.ProtocolError, match="Connection aborted"):
                urllib3.PoolManager(retries=False).request(
                    "POST", "https://acme.tt.omtrdc.net/rest/v1/delivery?sessionId=s",
                    body=b'{"context": {"channel": "web"}}', headers={"Content-Type": "application/json"})

        def test_the_patch_is_gone_after_the_test():
            from urllib3.connectionpool import HTTPConnectionPool
            assert HTTPConnectionPool.urlopen.__module__ == "urllib3.connectionpool"
    ''')
    result.assert_outcomes(passed=3)


@pytest.mark.skipif(importlib.util.find_spec("target_python_sdk") is None, reason="needs the sdk extra")
def test_adobes_python_sdk_in_process(run: Run) -> None:
    result = run('''
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from target_python_sdk import TargetClient
            from delivery_api_client import ChannelType, Context, DeliveryRequest, ExecuteRequest, MboxRequest

        def test_sdk_visit(target_profiles):
            from delivery_api_client import Configuration
            Configuration.set_default(None)  # the SDK keeps the first host it was given for the whole process
            client = TargetClient.create({"client": "demo", "organization_id": "0123456789@AdobeOrg"})
            request = DeliveryRequest(context=Context(channel=ChannelType.WEB), execute=ExecuteRequest(
                mboxes=[MboxRequest(index=1, name="home", profile_parameters={"tier": "gold"})]))
            response = client.get_offers({"request": request})["response"]
            tnt = response.id.tnt_id
            assert target_profiles.profile(tnt_id=tnt)["attributes"] == {"tier": "gold"}
            assert target_profiles.last_request("delivery").violations == []
    ''')
    result.assert_outcomes(passed=1)


def test_handle_visit_login_update_and_expiry(run: Run) -> None:
    result = run('''
        import requests

        def test_life(target_profiles):
            tnt = target_profiles.visit(profile_parameters={"seen": "home"})["id"]["tntId"]
            assert tnt.endswith(".28_0")
            target_profiles.seed_profile("c-1", attributes={"tier": "gold"})
            target_profiles.login("c-1", tnt_id=tnt.partition(".")[0], profile_parameters={"tier": "anon"})
            assert target_profiles.profile("c-1") == target_profiles.profile(tnt_id=tnt)
            assert target_profiles.profile("c-1")["attributes"] == {"tier": "anon", "seen": "home"}
            assert target_profiles.requests() == []  # handle calls are not journaled
            target_profiles.advance(14 * 86_400)
            assert requests.get("https://demo.tt.omtrdc.net/rest/v1/profiles/thirdPartyId/c-1?client=demo"
                                ).status_code == 404

        def test_expire_and_delete(target_profiles):
            target_profiles.seed_profile("c-1")
            target_profiles.seed_profile("c-2")
            assert target_profiles.expire_profile("c-1")["thirdPartyId"] == "c-1"
            assert target_profiles.profile("c-1", default=None) is None
            target_profiles.delete_profile(third_party_id="c-2")
            assert target_profiles.profiles() == []

        def test_offers_and_bad_visits(target_profiles):
            import pytest
            target_profiles.set_offer("home", "<p>hi</p>", offer_type="html")
            answer = target_profiles.visit(mboxes=["home"])
            assert answer["execute"]["mboxes"][0]["options"] == [{"type": "html", "content": "<p>hi</p>"}]
            with pytest.raises(pytest.fail.Exception, match="delivery.profile-prefix"):
                target_profiles.visit(profile_parameters={"profile.tier": "x"})
    ''')
    result.assert_outcomes(passed=3)
