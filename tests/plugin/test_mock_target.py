"""mock_target: the in-process fake as a context manager and a decorator, for unittest and scripts."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import unittest
from pathlib import Path

import httpx
import pytest
import requests
from requests.adapters import HTTPAdapter
from target_profile_mock.plugin.intercept import BlockedRequest

from target_profile_mock import ContractViolation, TargetProfiles, mock_target

ROOT = Path(__file__).resolve().parents[2]
UPDATE = "https://acme.tt.omtrdc.net/m2/acme/profile/update?mbox3rdPartyId=c1&profile.tier=gold"
BAD_UPDATE = "https://acme.tt.omtrdc.net/m2/acme/profile/update?mbox3rdPartyId=a/b&profile.tier=gold"


def test_the_context_manager_answers_requests_and_httpx_and_hands_over_the_handle() -> None:
    with mock_target(client_code="acme") as target:
        assert isinstance(target, TargetProfiles)
        assert target.url == "https://acme.tt.omtrdc.net"
        target.seed_profile("c1", attributes={"tier": "silver"})
        assert requests.get(UPDATE).status_code == 200
        fetched = httpx.get("https://acme.tt.omtrdc.net/rest/v1/profiles/thirdPartyId/c1?client=acme")
        assert fetched.json()["profileAttributes"]["tier"]["value"] == "gold"
        target.assert_updated("c1", attributes={"tier": "gold"})
        assert [e.operation for e in target.requests()] == ["single-update", "fetch"]


def test_each_block_starts_from_a_fresh_fake_and_patches_are_undone() -> None:
    send = HTTPAdapter.send
    transport = httpx.HTTPTransport.handle_request
    with mock_target(client_code="acme") as target:
        target.seed_profile("c1")
        requests.get(UPDATE)
    assert HTTPAdapter.send is send and httpx.HTTPTransport.handle_request is transport
    with mock_target(client_code="acme") as again:
        assert again.requests() == [] and again.profiles() == []


def test_options_are_the_fixture_options() -> None:
    with mock_target(client_code="acme", auth=True, lifecycle="immediate", bulk_calls_per_minute=2) as target:
        assert requests.get(UPDATE).status_code == 401
        assert target.backend.config.bulk_calls_per_minute == 2
        assert target.backend.config.lifecycle.spec() == "immediate"
        target.allow("auth.missing-token")


def test_bad_options_are_refused_with_the_fixture_messages() -> None:
    from target_profile_mock.plugin.options import OptionError

    with pytest.raises(OptionError, match="other_hosts='nowhere': use 'passthrough' or 'block'"):
        mock_target(other_hosts="nowhere")
    with pytest.raises(OptionError, match=r"unknown setting\(s\) \['colour'\]"):
        mock_target(colour="blue")


def test_strict_block_raises_the_contract_verdict_when_it_ends() -> None:
    with pytest.raises(ContractViolation) as caught, mock_target(client_code="acme") as target:
        assert requests.get(BAD_UPDATE).status_code == 400
    message = str(caught.value)
    assert "id.third-party-chars" in message and "mock_target(strict=False)" in message
    assert isinstance(caught.value, AssertionError)
    # the verdicts stay on the handle for a caller that wants them
    assert [v.rule_id for _, vs in target.violations() for v in vs] == ["id.third-party-chars"]


def test_strict_off_allowed_rules_and_deviations() -> None:
    with mock_target(client_code="acme", strict=False) as target:
        requests.get(BAD_UPDATE)
    assert target.violations()
    with mock_target(client_code="acme", allow=["id.third-party-chars"]):
        requests.get(BAD_UPDATE)
    submit = "https://acme.tt.omtrdc.net/m2/acme/v2/profile/batchUpdate"
    with mock_target(client_code="acme"):  # a deviation passes under strict="errors"
        requests.post(submit, data=b"batch=thirdPartyId,x\nc1,1\n", headers={"Content-Type": "text/plain"})
    with pytest.raises(ContractViolation, match=r"batch\.content-type"), mock_target(client_code="acme",
                                                                                    strict="deviations"):
        requests.post(submit, data=b"batch=thirdPartyId,x\nc1,1\n", headers={"Content-Type": "text/plain"})


def test_an_error_in_the_block_wins_over_the_verdict() -> None:
    with pytest.raises(KeyError), mock_target(client_code="acme"):
        requests.get(BAD_UPDATE)
        raise KeyError("the code under test failed first")


def test_other_hosts_blocked_with_a_message_that_says_how_to_allow_them() -> None:
    with pytest.raises(BlockedRequest, match="other_hosts='passthrough'"), mock_target(other_hosts="block"):
        requests.get("http://example.invalid/")


def test_start_and_stop_for_setup_and_teardown_styles() -> None:
    mock = mock_target(client_code="acme")
    target = mock.start()
    try:
        assert mock.handle is target
        requests.get(BAD_UPDATE)
    finally:
        with pytest.raises(ContractViolation):
            mock.stop()
    with pytest.raises(RuntimeError, match="without a start"):
        mock.stop()


def test_nested_blocks_get_fakes_of_their_own() -> None:
    with mock_target(client_code="outer") as outer:
        outer.seed_profile("o1")
        with mock_target(client_code="inner") as inner:
            assert inner.backend is not outer.backend
            assert requests.get("https://inner.tt.omtrdc.net/m2/inner/profile/update?mbox3rdPartyId=i1"
                                "&profile.x=1").status_code == 200
        assert outer.requests() == [] and outer.profile("o1") is not None


def test_decorated_function_gets_the_handle_as_its_last_argument() -> None:
    seen: list[TargetProfiles] = []

    @mock_target(client_code="acme")
    def sync_job(label: str, target: TargetProfiles) -> str:
        seen.append(target)
        target.seed_profile("c1")
        return f"{label}:{requests.get(UPDATE).status_code}"

    assert sync_job("run") == "run:200"
    assert seen[0].requests("single-update")

    @mock_target(client_code="acme")
    async def async_job(target: TargetProfiles) -> int:
        async with httpx.AsyncClient() as client:
            return (await client.get(BAD_UPDATE)).status_code

    with pytest.raises(ContractViolation, match=r"id\.third-party-chars"):
        asyncio.run(async_job())
    assert asyncio.iscoroutinefunction(async_job)


def test_decorated_test_case_class_runs_each_test_in_a_fake_of_its_own() -> None:
    @mock_target(client_code="acme")
    class Sync(unittest.TestCase):
        def setUp(self) -> None:
            self.target_profiles.seed_profile("c1")  # type: ignore[attr-defined]

        def test_passes(self) -> None:
            self.assertEqual(requests.get(UPDATE).status_code, 200)
            self.target_profiles.assert_updated("c1", attributes={"tier": "gold"})  # type: ignore[attr-defined]

        def test_starts_clean(self) -> None:
            self.assertEqual(len(self.target_profiles.requests()), 0)  # type: ignore[attr-defined]

        def test_breaks_the_contract(self) -> None:
            requests.get(BAD_UPDATE)

    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(Sync).run(result)
    assert result.testsRun == 3 and not result.errors
    assert [case.id().rsplit(".", 1)[1] for case, _ in result.failures] == ["test_breaks_the_contract"]
    assert "ContractViolation" in result.failures[0][1] and "id.third-party-chars" in result.failures[0][1]


def test_plain_class_methods_named_test_are_decorated() -> None:
    @mock_target(client_code="acme")
    class Checks:
        def test_one(self, target: TargetProfiles) -> int:
            return len(target.requests())

        def helper(self) -> str:
            return "untouched"

    assert Checks().test_one() == 0  # type: ignore[call-arg]
    assert Checks().helper() == "untouched"


UNITTEST_SUITE = '''
import sys
import unittest

import requests
from target_profile_mock import mock_target

UPDATE = "https://acme.tt.omtrdc.net/m2/acme/profile/update?mbox3rdPartyId=c1&profile.tier=gold"

@mock_target(client_code="acme")
class Sync(unittest.TestCase):
    def test_update(self):
        self.target_profiles.seed_profile("c1")
        self.assertEqual(requests.get(UPDATE).status_code, 200)

    def test_assertion_of_the_handle(self):
        self.target_profiles.assert_called("fetch")

    def test_not_imported(self):
        self.assertNotIn("pytest", sys.modules)

class Async(unittest.IsolatedAsyncioTestCase):
    @mock_target(client_code="acme")
    async def test_async(self, target):
        target.seed_profile("c1")
        self.assertEqual(requests.get(UPDATE).status_code, 200)

unittest.main(verbosity=2)
'''


def test_unittest_run_without_pytest(tmp_path: Path) -> None:
    (tmp_path / "suite.py").write_text(UNITTEST_SUITE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_CURRENT_TEST", None)
    proc = subprocess.run([sys.executable, "suite.py"], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=60)
    out = proc.stderr
    assert "test_update (__main__.Sync.test_update) ... ok" in out, out
    assert "test_not_imported (__main__.Sync.test_not_imported) ... ok" in out, out
    # (asyncio's debug mode, on in IsolatedAsyncioTestCase, may note the first block's imports as slow)
    assert re.search(r"test_async \(__main__\.Async\.test_async\) \.\.\. (?:Executing .*\n)?ok", out), out
    # the handle's assertions fail a unittest test as a failure (AssertionError), with their message
    assert "test_assertion_of_the_handle (__main__.Sync.test_assertion_of_the_handle) ... FAIL" in out, out
    assert "AssertionError: expected at least 1 fetch request(s); 0 were sent." in out, out
    assert "FAILED (failures=1)" in out, out


def test_other_hosts_pass_through_by_default(other_host_port: int) -> None:
    with mock_target() as target:
        assert requests.get(f"http://127.0.0.1:{other_host_port}/").text == "hello"
        assert httpx.get(f"http://127.0.0.1:{other_host_port}/").text == "hello"
    assert target.requests() == []
