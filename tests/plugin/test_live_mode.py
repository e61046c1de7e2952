"""``pytest --target-profiles-live``: verified tests against a remote Target, recorded, then replayed.

No Adobe here: a second, independently configured standalone server (another process, its own client code,
authentication on, its own batch lifecycle and seed) plays the remote tenant; the edge and Admin API
overrides point live mode at it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from target_profile_mock.mockserver import cli

ROOT = Path(__file__).resolve().parents[2]
#: Profiles are born by Delivery API visits on a real tenant; a remote without that API makes the seeding
#: tests skip, saying so
DELIVERY = importlib.util.find_spec("target_profile_mock.mockserver.views.delivery") is not None
NO_DELIVERY = "has no Delivery API (POST /rest/v1/delivery answered 404), and a visit is how a profile is born"

pytestmark = pytest.mark.slow

TESTS = '''
import time

import pytest
import requests

verified = pytest.mark.target_profiles(verified=True)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@verified
def test_a_v2_batch_creates_the_profiles_it_names(target_profiles):
    t = target_profiles
    ids = [t.id("c-1"), t.id("c-2")]
    body = "batch=thirdPartyId,tier\\n" + "".join(f"{i},gold\\n" for i in ids)
    r = requests.post(f"{t.url}/m2/{t.client_code}/v2/profile/batchUpdate", data=body,
                      headers={**FORM, **t.headers()})
    assert r.status_code == 200 and "<success>true</success>" in r.text
    status_url = r.text.split("<batchStatus>")[1].split("</batchStatus>")[0]
    for _ in range(50):
        status = requests.get(status_url, headers=t.headers()).text
        if "<status>incomplete</status>" not in status:
            break
        time.sleep(0.1)
    assert "<status>complete</status>" in status
    assert t.wait_for_profile(ids[1], attributes={"tier": "gold"})["attributes"] == {"tier": "gold"}


@verified
def test_a_visit_starts_a_profile_the_single_update_api_then_updates(target_profiles):
    t = target_profiles
    customer = t.id("c-3")
    t.seed_profile(customer, attributes={"tier": "silver"})
    r = requests.get(f"{t.url}/m2/{t.client_code}/profile/update",
                     params={"mbox3rdPartyId": customer, "profile.tier": "gold"}, headers=t.headers())
    assert r.status_code == 200 and "<success>true</success>" in r.text
    assert t.wait_for_profile(customer, attributes={"tier": "gold"})["attributes"]["tier"] == "gold"
    missing = requests.get(f"{t.url}/rest/v1/profiles/thirdPartyId/{t.id('nobody')}",
                           params={"client": t.client_code}, headers=t.headers())
    assert missing.status_code == 404


@verified
def test_faults_need_the_fake(target_profiles):
    target_profiles.add_fault(503, operation="batch-submit")


@verified
def test_writes_to_ids_of_other_runs_are_refused(target_profiles):
    requests.get(f"{target_profiles.url}/m2/{target_profiles.client_code}/profile/update",
                 params={"mbox3rdPartyId": "a-real-customer", "profile.tier": "gold"})


@pytest.mark.target_profiles(verified=False)
def test_not_verified(target_profiles):
    pass


def test_unmarked_is_deselected():
    pass
'''


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[str]:
    """A standalone server in its own process, configured unlike the fake verify replays against."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "target_profile_mock", "serve", "--port", "0", "--client-code",
                             "acme", "--auth", "--lifecycle", "polls=1", "--seed", "7", "--bulk-rate-limit", "off"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=env, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"serving on (http://\S+)", line)
        assert m, f"the remote did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        yield m.group(1)
    finally:
        proc.terminate()
        proc.wait(10)


def test_live_mode_runs_verified_tests_against_the_remote_records_and_replays(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, remote: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cassette = tmp_path / "rec" / "live.json"
    for name, value in {"CLIENT_CODE": "acme", "EDGE": remote, "ADMIN": remote, "IMS_TOKEN": "ims-secret-1",
                        "API_KEY": "api-key-1", "PREFIX": "tpmtest-", "RECORD": str(cassette),
                        "TIMEOUT": "5"}.items():
        monkeypatch.setenv(f"TARGET_PROFILES_LIVE_{name}", value)
    pytester.makepyfile(test_live=textwrap.dedent(TESTS))
    result = pytester.runpytest("-p", "no:cacheprovider", "--target-profiles-live", "-rs")
    result.assert_outcomes(passed=2 if DELIVERY else 1, skipped=1 if DELIVERY else 2, failed=1, deselected=2)
    out = result.stdout.str()
    assert (NO_DELIVERY in out) is not DELIVERY
    assert ("live mode: target_profiles.add_fault needs the fake (injecting faults is not something a real Target "
            "offers); run this test without --target-profiles-live") in out
    assert ("live mode refused to send GET /m2/acme/profile/update: it writes to 'a-real-customer', not an id of "
            "this run; build ids with target_profiles.id(...) (they start with 'tpmtest-')") in out
    assert f"replay them with: target-profile-mock verify {cassette}" in out

    # the writes reached the remote, under the run's prefix
    token = requests.get(f"{remote}/acme/target/authentication/token",
                         params={"authorizationScope": "profile_api"}).json()["accessToken"]
    held = {p["thirdPartyId"] for p in requests.get(f"{remote}/_mock/tenants/acme/profiles").json()}
    assert {"tpmtest-c-1", "tpmtest-c-2", *(["tpmtest-c-3"] if DELIVERY else [])} <= held

    # recorded, with secrets and the run's ids out of the file
    text = cassette.read_text()
    for secret in (token, "ims-secret-1", "api-key-1", "tpmtest-"):
        assert secret not in text
    data = json.loads(text)
    assert data["setup"]["settings"] == {"client_code": "acme", "auth": True}
    urls = [e["request"]["url"] for e in data["exchanges"]]
    assert any("thirdPartyId/run-c-2" in u for u in urls)
    assert any("mbox3rdPartyId=run-c-3" in u for u in urls) is DELIVERY
    assert all(e["request"]["headers"].get("Authorization") in (None, "Bearer REDACTED") for e in data["exchanges"])
    assert all(isinstance(e["at"], float | int) and e["elapsed_ms"] >= 0 for e in data["exchanges"])
    tnt_ids = {json.loads(e["response"]["body"])["id"]["tntId"].split(".")[0] for e in data["exchanges"]
               if e["request"]["url"].split("?")[0].endswith("/rest/v1/delivery") and e["response"]["status"] == 200}
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in tnt_ids)  # pseudonyms of Target's shape
    assert bool(tnt_ids) is DELIVERY

    # and the fake, set up as the remote's batches progress, answers every recorded request alike
    capsys.readouterr()  # the inner run's output
    code = cli.main(["verify", "--setting", "lifecycle=polls=1", str(cassette)])
    report = capsys.readouterr().out
    assert code == 0, report
    assert re.match(r"verify: 1 cassette\(s\), \d+ exchange\(s\), 0 differ", report)


def test_live_mode_without_a_client_code_says_what_to_set(pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TARGET_PROFILES_LIVE_CLIENT_CODE", raising=False)
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", "--target-profiles-live")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--target-profiles-live: set TARGET_PROFILES_LIVE_CLIENT_CODE to your tenant's "
                                 "client code*"])


def test_the_projects_verified_tests_pass_live_against_the_remote(pytester: pytest.Pytester,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  remote: str) -> None:
    # what a maintainer with a tenant runs: tests/verified with --target-profiles-live and a ready token
    token = requests.get(f"{remote}/acme/target/authentication/token",
                         params={"authorizationScope": "profile_api"}).json()["accessToken"]
    for name, value in {"CLIENT_CODE": "acme", "EDGE": remote, "TOKEN": token, "TIMEOUT": "5"}.items():
        monkeypatch.setenv(f"TARGET_PROFILES_LIVE_{name}", value)
    source = ROOT / "tests" / "verified" / "test_documented_behaviour.py"
    pytester.makepyfile(test_documented=source.read_text())
    result = pytester.runpytest("-p", "no:cacheprovider", "--target-profiles-live", "-rs")
    tests = len(re.findall(r"^def test_", source.read_text(), re.M))
    seeding = len(re.findall(r"seed_profile\(", source.read_text()))
    result.assert_outcomes(passed=tests if DELIVERY else tests - seeding, skipped=0 if DELIVERY else seeding)
    # the run's ids went to the remote under a generated prefix: tpm-<UTC time>-<random>-
    held = [p["thirdPartyId"] for p in requests.get(f"{remote}/_mock/tenants/acme/profiles").json()]
    assert held and all(re.fullmatch(r"tpm-\d{14}-[0-9a-f]{6}-[a-z0-9-]+", i) for i in held), held
