"""Live mode's configuration, credentials, write guard and redaction, without a remote."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from target_profile_mock.plugin.live import LiveConfig, LiveError, Recorder

BASE = {"TARGET_PROFILES_LIVE_CLIENT_CODE": "acme", "TARGET_PROFILES_LIVE_PREFIX": "tpmx-"}
TOKEN_URL = "https://mc.adobe.io/acme/target/authentication/token"


def test_defaults_name_adobes_hosts_and_a_fresh_prefix() -> None:
    cfg = LiveConfig.from_env({"TARGET_PROFILES_LIVE_CLIENT_CODE": "acme"})
    assert cfg.edge == "https://acme.tt.omtrdc.net" and cfg.admin == "https://mc.adobe.io"
    assert cfg.token is None and cfg.timeout == 300 and cfg.record is None
    assert cfg.prefix.startswith("tpm-") and cfg.prefix != LiveConfig.from_env(BASE | {
        "TARGET_PROFILES_LIVE_PREFIX": ""}).prefix


@pytest.mark.parametrize(("env", "message"), [
    ({}, "set TARGET_PROFILES_LIVE_CLIENT_CODE to your tenant's client code"),
    ({"TARGET_PROFILES_LIVE_CLIENT_CODE": "a b"}, "'a b' is not one"),
    (BASE | {"TARGET_PROFILES_LIVE_EDGE": "acme.tt.omtrdc.net"}, "give a base URL such as https://acme.tt.omtrdc.net"),
    (BASE | {"TARGET_PROFILES_LIVE_TIMEOUT": "soon"}, "TARGET_PROFILES_LIVE_TIMEOUT: give a number of seconds > 0"),
    (BASE | {"TARGET_PROFILES_LIVE_PREFIX": "x"}, "4-40 letters, digits"),
    (BASE | {"TARGET_PROFILES_LIVE_IMS_TOKEN": "ims"}, "needs TARGET_PROFILES_LIVE_API_KEY"),
])
def test_a_bad_environment_is_a_usage_error_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(LiveError) as info:
        LiveConfig.from_env(env)
    assert message in str(info.value)


@responses.activate
def test_client_credentials_get_an_ims_token_then_the_profile_token_by_get() -> None:
    ims = responses.post("https://ims-na1.adobelogin.com/ims/token/v3", json={"access_token": "ims-1"})
    admin = responses.get(TOKEN_URL, json={"accessToken": "profile-1", "tokenType": "bearer"})
    cfg = LiveConfig.from_env(BASE | {"TARGET_PROFILES_LIVE_IMS_CLIENT_ID": "cid",
                                      "TARGET_PROFILES_LIVE_IMS_CLIENT_SECRET": "csecret"})
    assert cfg.token == "profile-1"
    assert "grant_type=client_credentials" in ims.calls[0].request.body
    sent = admin.calls[0].request
    assert sent.headers["Authorization"] == "Bearer ims-1" and sent.headers["x-api-key"] == "cid"
    assert "authorizationScope=profile_api" in sent.url
    assert {"cid", "csecret", "ims-1", "profile-1"} <= set(cfg.secrets)


@responses.activate
def test_refused_credentials_say_what_to_check() -> None:
    responses.post("https://ims-na1.adobelogin.com/ims/token/v3", status=400, json={"error": "invalid_client"})
    with pytest.raises(LiveError, match="Adobe IMS refused the client credentials \\(HTTP 400\\)"):
        LiveConfig.from_env(BASE | {"TARGET_PROFILES_LIVE_IMS_CLIENT_ID": "c",
                                    "TARGET_PROFILES_LIVE_IMS_CLIENT_SECRET": "s"})
    responses.get(TOKEN_URL, status=401, json={"httpStatus": 401})
    with pytest.raises(LiveError, match=re.escape(f"HTTP 401 from GET {TOKEN_URL}")):
        LiveConfig.from_env(BASE | {"TARGET_PROFILES_LIVE_IMS_TOKEN": "i", "TARGET_PROFILES_LIVE_API_KEY": "k"})


def _prepared(method: str, url: str, body: str | None = None) -> requests.PreparedRequest:
    return requests.Request(method, url, data=body).prepare()


@pytest.mark.parametrize(("method", "url", "body"), [
    ("GET", "https://acme.tt.omtrdc.net/m2/acme/profile/update?mbox3rdPartyId=real&profile.a=1", None),
    ("POST", "https://acme.tt.omtrdc.net/m2/acme/profile/update", "mboxPC=1234567890123-123456&profile.a=1"),
    ("POST", "https://acme.tt.omtrdc.net/m2/acme/v2/profile/batchUpdate", "batch=thirdPartyId,a\ntpmx-1,x\nreal,y\n"),
    ("POST", "https://acme.tt.omtrdc.net/rest/v1/delivery?client=acme", json.dumps({"id": {"thirdPartyId": "real"}})),
])
def test_writes_to_ids_outside_the_run_are_refused_before_sending(method: str, url: str, body: str | None) -> None:
    recorder = Recorder(LiveConfig.from_env(BASE))
    with pytest.raises(pytest.fail.Exception, match="live mode refused to send"):
        recorder.check_write(_prepared(method, url, body))


def test_writes_to_the_runs_ids_and_issued_tnt_ids_and_all_reads_go_out() -> None:
    recorder = Recorder(LiveConfig.from_env(BASE))
    recorder.issued.add("0123456789abcdef0123456789abcdef")
    for method, url, body in [
        ("GET", "https://acme.tt.omtrdc.net/m2/acme/profile/update?mbox3rdPartyId=tpmx-1&profile.a=1", None),
        ("POST", "https://acme.tt.omtrdc.net/m2/acme/v2/profile/batchUpdate", "batch=thirdPartyId,a\ntpmx-1,x\n"),
        ("POST", "https://acme.tt.omtrdc.net/rest/v1/delivery?client=acme",
         json.dumps({"id": {"tntId": "0123456789abcdef0123456789abcdef.35_0"}})),
        ("GET", "https://acme.tt.omtrdc.net/rest/v1/profiles/thirdPartyId/anyone?client=acme", None),
    ]:
        recorder.check_write(_prepared(method, url, body))  # no refusal


def test_the_cassette_redacts_secrets_and_replaces_ids_consistently(tmp_path: Path) -> None:
    cfg = LiveConfig.from_env(BASE | {"TARGET_PROFILES_LIVE_TOKEN": "tok-secret",
                                      "TARGET_PROFILES_LIVE_RECORD": str(tmp_path / "c.json")})
    recorder = Recorder(cfg)
    tnt = "0123456789abcdef0123456789abcdef"

    def exchange(url: str, answer: str, headers: dict[str, str]) -> None:
        response = requests.Response()
        response.status_code, response._content = 200, answer.encode()
        response.elapsed = __import__("datetime").timedelta(milliseconds=12)
        recorder.add(requests.Request("GET", url, headers=headers).prepare(), response, 100.0)

    exchange("https://acme.tt.omtrdc.net/rest/v1/delivery?client=acme", json.dumps({"id": {"tntId": f"{tnt}.35_0"}}),
             {"Authorization": "Bearer tok-secret"})
    exchange(f"https://acme.tt.omtrdc.net/rest/v1/profiles/{tnt}.35_0?client=acme",
             json.dumps({"visitorId": "tpmx-7", "note": "tok-secret"}), {"x-api-key": "k"})
    path = recorder.write()
    assert path == tmp_path / "c.json"
    text = path.read_text()
    assert "tok-secret" not in text and "tpmx-" not in text and tnt not in text
    data = json.loads(text)
    first, second = data["exchanges"]
    assert first["request"]["headers"]["Authorization"] == "Bearer REDACTED"
    assert second["request"]["headers"]["x-api-key"] == "REDACTED"
    pseudonym = json.loads(first["response"]["body"])["id"]["tntId"]
    assert pseudonym.endswith(".35_0") and pseudonym != f"{tnt}.35_0"
    assert f"/rest/v1/profiles/{pseudonym}?" in second["request"]["url"]  # the same pseudonym everywhere
    assert json.loads(second["response"]["body"]) == {"visitorId": "run-7", "note": "REDACTED"}
    assert first["at"] == 0 and first["elapsed_ms"] == 12.0


def test_pseudonyms_keep_the_shape_of_targets_ids() -> None:
    recorder = Recorder(LiveConfig.from_env(BASE))
    assert re.fullmatch(r"\d{13}-\d{6}", recorder._pseudonym("1368007744041-575948"))
    assert recorder._pseudonym("1368007744041-575948") != "1368007744041-575948"
    assert recorder._pseudonym("1368007744041-575948") == recorder._pseudonym("1368007744041-575948")
    assert re.fullmatch(r"[0-9a-f]{32}", recorder._pseudonym("0123456789abcdef0123456789abcdef"))


def test_each_xdist_worker_records_to_its_own_file(tmp_path: Path) -> None:
    recorder = Recorder(LiveConfig.from_env(BASE | {"TARGET_PROFILES_LIVE_RECORD": str(tmp_path / "live.json")}),
                        worker="gw1")
    assert recorder.write() == tmp_path / "live.gw1.json"
    assert json.loads((tmp_path / "live.gw1.json").read_text())["exchanges"] == []


def test_the_fakes_handle_has_the_names_live_mode_shares(target_profiles: Any) -> None:
    t = target_profiles
    assert t.id("c-1") == "c-1"
    assert t.headers() == {}
    token = t.set_auth(True)
    assert t.headers() == {"Authorization": f"Bearer {token}"}
    t.seed_profile("c-1", attributes={"tier": "gold"})
    assert t.wait_for_profile("c-1", attributes={"tier": "gold"})["attributes"] == {"tier": "gold"}
    with pytest.raises(pytest.fail.Exception, match=re.escape("no profile 'c-1' with {'tier': 'silver'} in the fake")):
        t.wait_for_profile("c-1", attributes={"tier": "silver"})


def test_live_handle_waits_instead_of_moving_a_clock_and_skips_what_needs_the_fake() -> None:
    from target_profile_mock.plugin.live import LiveTargetProfiles

    cfg = LiveConfig.from_env(BASE | {"TARGET_PROFILES_LIVE_TIMEOUT": "5"})
    slept: list[float] = []
    live = LiveTargetProfiles(cfg, Recorder(cfg), sleep=slept.append)
    live.advance(2)
    assert slept == [2]
    with pytest.raises(pytest.skip.Exception, match=re.escape("advance(60) would wait longer than "
                                                              "TARGET_PROFILES_LIVE_TIMEOUT (5 s)")):
        live.advance(60)
    with pytest.raises(pytest.skip.Exception, match=re.escape("live mode: target_profiles.force_batch needs the "
                                                              "fake (forcing a batch's state is not something")):
        live.force_batch("acme-1-2", "stuck")
    with pytest.raises(pytest.skip.Exception, match="a real Target issues tntIds and ECIDs itself"):
        live.seed_profile(tnt_id="1368007744041-575948")
    with pytest.raises(AttributeError):
        live.no_such_thing  # noqa: B018
    assert live.id("c-1") == "tpmx-c-1" and live.id("tpmx-c-1") == "tpmx-c-1"
    assert live.headers() == {} and live.url == "https://acme.tt.omtrdc.net"


class _Clock:
    """Stands in for the live module's ``time``: sleeping moves it on, so a wait's timeout comes at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_live_waits_back_off_and_fail_at_the_timeout_saying_what_they_last_saw(monkeypatch: pytest.MonkeyPatch
                                                                                ) -> None:
    from target_profile_mock.plugin import live as live_module
    from target_profile_mock.plugin.live import LiveTargetProfiles

    cfg = LiveConfig.from_env(BASE | {"TARGET_PROFILES_LIVE_TIMEOUT": "40"})
    clock = _Clock()
    monkeypatch.setattr(live_module, "time", clock)
    live = LiveTargetProfiles(cfg, Recorder(cfg), sleep=clock.sleep)
    status_url = "https://acme.tt.omtrdc.net/m2/acme/v2/profile/batchStatus?batchId=acme-1-2"
    with responses.RequestsMock() as rsps:
        rsps.get(re.compile(r"https://acme\.tt\.omtrdc\.net/rest/v1/profiles/.*"), json={
            "profileAttributes": {"tier": {"value": "silver", "modifiedAt": "2026-01-01T00:00:00Z"}}})
        rsps.get(status_url, status=503, body="busy")
        with pytest.raises(pytest.fail.Exception, match=re.escape(
                "live mode: the profile 'tpmx-c-1' did not show {'tier': 'gold'} within 40 s "
                "(TARGET_PROFILES_LIVE_TIMEOUT); last seen: {'thirdPartyId': 'tpmx-c-1', 'attributes': "
                "{'tier': 'silver'}")):
            live.wait_for_profile("tpmx-c-1", attributes={"tier": "gold"})
        assert clock.slept == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0]
        clock.slept.clear()
        with pytest.raises(pytest.fail.Exception, match=re.escape(
                "live mode: the batch did not reach 'complete' within 5 s; last answer HTTP 503: busy")):
            live.wait_for_batch(status_url=status_url, timeout=5)
        assert clock.slept == [0.5, 1.0, 2.0, 4.0]
        rsps.replace(responses.GET, status_url, body="<response><batchId>acme-1-2</batchId><status>complete</status>"
                     "<batchSize>1</batchSize></response>")
        assert live.wait_for_batch(status_url=status_url) == {"status": "complete", "batchSize": 1}
