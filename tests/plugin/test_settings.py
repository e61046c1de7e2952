"""Registration, ini and command-line defaults, and the marker."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, Run

SHOW = '''
    def test_show(target_profiles):
        cfg = target_profiles.backend.config
        print("SETTINGS", target_profiles.client_code, cfg.lifecycle.spec(), cfg.auth, target_profiles.strict)
'''


def test_defaults(run: Run) -> None:
    result = run(SHOW, "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SETTINGS demo polls=1 False errors*"])


def test_ini_options(run: Run) -> None:
    ini = '''
        [pytest]
        target_profiles_client_code = acme
        target_profiles_lifecycle = polls=3
        target_profiles_auth = true
        target_profiles_strict = deviations
    '''
    result = run(SHOW, "-s", ini=ini)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SETTINGS acme polls=3 True deviations*"])


def test_command_line_wins_over_ini(run: Run) -> None:
    ini = "[pytest]\ntarget_profiles_client_code = acme\ntarget_profiles_lifecycle = polls=3\n"
    result = run(SHOW, "-s", "--target-profiles-client-code=globex", "--target-profiles-strict=off", ini=ini)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SETTINGS globex polls=3 False off*"])


@pytest.mark.parametrize(("args", "message"), [
    (["--target-profiles-lifecycle=sometimes"], "*--target-profiles-lifecycle*unknown lifecycle part*"),
    (["--target-profiles-strict=maybe"], "*--target-profiles-strict*use 'errors'*"),
    (["--target-profiles-other-hosts=drop"], "*use 'passthrough' or 'block'*"),
    (["--target-profiles-auth=perhaps"], "*auth='perhaps': use true or false*"),
])
def test_bad_options_are_usage_errors(run: Run, args: list[str], message: str) -> None:
    result = run(SHOW, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_marker_configures_one_test(run: Run) -> None:
    result = run('''
        import pytest, requests

        pytestmark = pytest.mark.target_profiles(client_code="acme", lifecycle="polls=2")

        class TestGroup:
            pytestmark = pytest.mark.target_profiles(lifecycle="immediate")

            @pytest.mark.target_profiles(auth=True, update_delay=60, freeze_clock=True)
            def test_closest_marker_wins(self, target_profiles):
                cfg = target_profiles.backend.config
                assert target_profiles.client_code == "acme"        # from the module
                assert cfg.lifecycle.spec() == "immediate"           # from the class
                assert cfg.auth and cfg.update_delay == 60           # from the function
                assert target_profiles.backend.clock.frozen

            def test_class_marker(self, target_profiles):
                assert target_profiles.backend.config.lifecycle.spec() == "immediate"
                assert not target_profiles.backend.config.auth

        def test_module_marker(target_profiles):
            assert target_profiles.backend.config.lifecycle.spec() == "polls=2"
            assert target_profiles.url == "https://acme.tt.omtrdc.net"

        @pytest.mark.target_profiles(lifecycle="seconds=10", freeze_clock=True)
        def test_frozen_clock_advanced_by_hand(target_profiles):
            requests.post("https://acme.tt.omtrdc.net/m2/acme/v2/profile/batchUpdate",
                          data="batch=thirdPartyId,a\\nc-1,1\\n")
            target_profiles.advance(9.9)
            assert target_profiles.batch()["status"] == "incomplete"
            target_profiles.advance(0.1)
            assert target_profiles.batch()["status"] == "complete"
    ''')
    result.assert_outcomes(passed=4)


@pytest.mark.parametrize(("marker", "message"), [
    ("colour='blue'", "*unknown setting(s) ?'colour'?*the marker takes client_code*"),
    ("'acme'", "*keywords only*"),
    ("lifecycle='polls=x'", "*lifecycle='polls=x'*"),
    ("allow=['no.such-rule']", "*no rule(s) ?'no.such-rule'?; known rules: auth.access-token-header*"),
    ("strict='sometimes'", "*strict='sometimes'*"),
])
def test_bad_marker_fails_setup_with_a_message(run: Run, marker: str, message: str) -> None:
    result = run(f'''
        import pytest

        @pytest.mark.target_profiles({marker})
        def test_x(target_profiles):
            pass
    ''')
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])
    result.stdout.no_fnmatch_line("*During handling of the above exception*")


def test_marker_is_registered(run: Run) -> None:
    result = run('''
        import pytest

        @pytest.mark.target_profiles(strict=False)
        def test_x():
            pass
    ''', "--strict-markers")
    result.assert_outcomes(passed=1)


def test_registered_by_entry_point_and_can_be_disabled(run: Run) -> None:
    code = "def test_x(target_profiles):\n    assert target_profiles.client_code == 'demo'\n"
    result = run(code)  # no -p: the pytest11 entry point registered the plugin
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["plugins:*target-profile-mock*"])
    result = run(code, "-p", "no:target_profiles")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'target_profiles' not found*"])


def test_entry_point_is_declared() -> None:
    text = Path(ROOT, "pyproject.toml").read_text(encoding="utf-8")
    assert '[project.entry-points.pytest11]\ntarget_profiles = "target_profile_mock.plugin.pytest_plugin"' in text


def test_each_xdist_worker_gets_its_own_server(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xdist")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the source tree, not an installed copy
    pytester.makepyfile(test_x='''
        import pytest
        @pytest.mark.parametrize("i", range(8))
        def test_x(target_profile_server, target_profiles, i):
            target_profile_server.seed_profile(f"c-{i}")
            assert len(target_profile_server.profiles()) == 1
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=8)
