"""The plugin explains every failure: contract reports on failing tests, assert_updated's reasons,
missing profiles and batches, stray client codes, property tests, and the summary under xdist."""

from __future__ import annotations

import pytest
from conftest import ROOT, Run

BAD_UPDATE = '''
import requests
def send_bad_update(code="demo"):
    # '+' is not allowed in mbox3rdPartyId; the client ignores the 400
    requests.post(f"https://{code}.tt.omtrdc.net/m2/{code}/profile/update",
                  params={"mbox3rdPartyId": "a+b", "profile.x": "1"})
'''


# --- the contract report on a test that failed on its own ----------------------------------------------
def test_a_test_failing_on_its_own_assertion_shows_what_the_fake_refused(run: Run) -> None:
    result = run(BAD_UPDATE + '''
def test_fails_itself(target_profiles):
    send_bad_update()
    assert target_profiles.profiles() == ["never"], "own failure"
''')
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: own failure*",
        "*Captured target-profiles contract report call*",
        "The fake refused 1 request(s) in this test; the failure may come from them:",
        "1. POST https://demo.tt.omtrdc.net/m2/demo/profile/update?mbox3rdPartyId=a%2Bb&profile.x=1 -> 400",
        "*error id.third-party-chars: mbox3rdPartyId 'a+b' contains '+'*",
        "*Adobe documents: The plus sign (+) and the forward slash (/) are not allowed*",
        "*Fix: Remove or replace + and /*",
        "*Reproduce: curl -X POST 'https://demo.tt.omtrdc.net/m2/demo/profile/update?mbox3rdPartyId=a%2Bb*",
    ])
    result.stdout.no_fnmatch_line("*strict check fails a test*")  # the test's own failure stays the failure


def test_the_report_is_attached_whatever_the_strict_setting_and_for_deviations_alone(run: Run) -> None:
    result = run(BAD_UPDATE + '''
import pytest, requests

@pytest.mark.target_profiles(strict=False)
def test_strict_off(target_profiles):
    send_bad_update()
    raise RuntimeError("boom")

def test_only_a_deviation(target_profiles):
    requests.post("https://demo.tt.omtrdc.net/m2/demo/v2/profile/batchUpdate",
                  data="batch=thirdPartyId,profile.a\\nc-1,1\\n")
    assert False, "own failure"

def test_nothing_to_report(target_profiles):
    assert False, "plain failure"
''')
    result.assert_outcomes(failed=3)
    out = result.stdout.str()
    assert out.count("Captured target-profiles contract report call") == 2
    result.stdout.fnmatch_lines(["*RuntimeError: boom*", "*contract report*", "The fake refused 1 request(s)*"])
    result.stdout.fnmatch_lines([
        "*own failure*", "*contract report*",
        "The fake accepted these requests, but Adobe does not document them; the failure may come from them:",
        "*deviation batch.profile-prefix*", "*Fix: Drop the profile. prefix*"])


def test_allowed_rules_stay_out_of_the_report(run: Run) -> None:
    result = run(BAD_UPDATE + '''
import pytest

@pytest.mark.target_profiles(allow=["id.third-party-chars"])
def test_allowed(target_profiles):
    send_bad_update()
    assert False, "own failure"
''')
    result.assert_outcomes(failed=1)
    result.stdout.no_fnmatch_line("*contract report*")


# --- assert_updated counts only updates that updated a profile -----------------------------------------
def test_assert_updated_fails_for_a_refused_update_and_says_why(run: Run) -> None:
    result = run(BAD_UPDATE + '''
import pytest

@pytest.mark.target_profiles(strict=False)
def test_refused(target_profiles):
    target_profiles.seed_profile("a+b")
    send_bad_update()
    target_profiles.assert_updated("a+b", attributes={"x": "1"})
''')
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*expected 1 single update(s) matching third_party_id='a+b', attributes={'x': '1'}; 1 such request(s) were "
        "sent, 1 of which changed nothing:",
        "  POST https://demo.tt.omtrdc.net/m2/demo/profile/update?mbox3rdPartyId=a%2Bb&profile.x=1 -> 400",
        "    - refused with HTTP 400: ?id.third-party-chars? mbox3rdPartyId 'a+b' contains '+'*",
    ])


def test_assert_updated_fails_for_a_profile_never_seeded_and_says_why(run: Run) -> None:
    result = run('''
import pytest
from client import TargetClient

def test_never_seeded(target_profiles):
    TargetClient("demo").update("c-9", tier="gold")
    target_profiles.assert_updated("c-9", attributes={"tier": "gold"})

@pytest.mark.target_profiles(client_code="acme")
def test_by_tnt_id_in_another_tenant(target_profiles):
    import requests
    requests.get("https://beta.tt.omtrdc.net/m2/beta/profile/update",
                 params={"mboxPC": "1000000000000-000001", "profile.a": "1"})
    target_profiles.assert_updated(tnt_id="1000000000000-000001", tenant="beta")

@pytest.mark.target_profiles(freeze_clock=False)
def test_seeded_only_afterwards(target_profiles):
    TargetClient("demo").update("c-8", tier="gold")
    target_profiles.advance(1)
    target_profiles.seed_profile("c-8")
    target_profiles.assert_updated("c-8")
''')
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines([
        "*expected 1 single update(s) matching third_party_id='c-9', attributes={'tier': 'gold'}; 1 such request(s) "
        "were sent, 1 of which changed nothing:",
        "  POST https://demo.tt.omtrdc.net/m2/demo/profile/update?mbox3rdPartyId=c-9&profile.tier=gold -> 200",
        "    - accepted (HTTP 200), but client demo has no profile with thirdPartyId 'c-9': single updates never "
        "create profiles (Adobe: if nothing is found, a profile is not created); seed it first: "
        "target_profiles.seed_profile('c-9')",
    ])
    result.stdout.fnmatch_lines([
        "*client beta has no profile with tntId '1000000000000-000001'*"
        "target_profiles.seed_profile(tnt_id='1000000000000-000001', tenant='beta')"])
    result.stdout.fnmatch_lines([
        "*- accepted (HTTP 200) before client demo had a profile with thirdPartyId 'c-8' (it was created later), "
        "so it changed nothing*"])


def test_assert_batch_submitted_fails_for_a_refused_submission_and_says_why(run: Run) -> None:
    result = run('''
import pytest
import requests

URL = "https://demo.tt.omtrdc.net/m2/demo/v2/profile/batchUpdate"
FORM = "application/x-www-form-urlencoded"

@pytest.mark.target_profiles(strict=False)
def test_refused(target_profiles):
    requests.post(URL, data=b"thirdPartyId,tier\\nc-1,gold\\n", headers={"Content-Type": FORM})  # no batch=
    target_profiles.assert_batch_submitted(version=2)

@pytest.mark.target_profiles(strict=False)
def test_one_refused_one_taken(target_profiles):
    requests.post(URL, data=b"thirdPartyId,tier\\nc-1,gold\\n", headers={"Content-Type": FORM})
    requests.post(URL, data=b"batch=thirdPartyId,tier\\nc-1,gold\\n", headers={"Content-Type": FORM})
    assert target_profiles.assert_batch_submitted(version=2)["status"] == "incomplete"
''')
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines([
        "*expected 1 batch submission(s) matching version=2; 1 such request(s) were sent, 1 of which changed "
        "nothing:",
        "  POST https://demo.tt.omtrdc.net/m2/demo/v2/profile/batchUpdate -> 4*",
        "    - refused with HTTP 4*",
    ])


def test_assert_updated_counts_what_updated_and_still_passes(run: Run) -> None:
    result = run(BAD_UPDATE + '''
import pytest
from client import TargetClient

@pytest.mark.target_profiles(strict=False)
def test_one_of_two_counts(target_profiles):
    target_profiles.seed_profile("c-1")
    target_profiles.seed_profile("a+b")
    TargetClient("demo").update("c-1", x="1")
    send_bad_update()
    target_profiles.assert_updated("c-1", attributes={"x": "1"})
    with pytest.raises(pytest.fail.Exception, match="1 of which changed nothing"):
        target_profiles.assert_updated("a+b", times=None)
    assert len(target_profiles.assert_updated("c-1", times=None)) == 1

@pytest.mark.target_profiles(update_delay=60)
def test_a_delayed_update_counts(target_profiles):
    target_profiles.seed_profile("c-1")
    TargetClient("demo").update("c-1", x="1")
    target_profiles.assert_updated("c-1", attributes={"x": "1"})
''')
    result.assert_outcomes(passed=2)


# --- missing profiles and batches explain themselves ----------------------------------------------------
def test_a_missing_profile_raises_a_lookup_error_that_says_why(run: Run) -> None:
    result = run('''
import pytest, requests
from client import TargetClient
from target_profile_mock.plugin import ProfileNotFoundError

def test_missing_after_an_update(target_profiles):
    TargetClient("demo").update("c-9", tier="gold")
    target_profiles.profile("c-9")["attributes"]

def test_default_and_the_error_type(target_profiles):
    assert target_profiles.profile("nope", default=None) is None
    assert target_profiles.profile(tnt_id="1-1", default={}) == {}
    with pytest.raises(LookupError):
        target_profiles.profile(ecid="123")
    with pytest.raises(ProfileNotFoundError, match=r"seed_profile\\(ecid='123'\\)"):
        target_profiles.profile(ecid="123")

@pytest.mark.target_profiles(lifecycle="manual")
def test_hints(target_profiles):
    target_profiles.seed_profile("cust-10", tenant="acme")
    target_profiles.seed_profile("cust-100")
    for version in ("/v2", ""):  # v2 held incomplete (manual), then v1 forced complete
        requests.post(f"https://demo.tt.omtrdc.net/m2/demo{version}/profile/batchUpdate",
                      data="batch=thirdPartyId,a\\ncust-10,1\\n")
    target_profiles.force_batch(state="complete")
    target_profiles.profile("cust-10")
''')
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "E *.ProfileNotFoundError: client demo has no profile with thirdPartyId 'c-9'.",
        "E       1 single update(s) for it reached the fake, and single updates never create profiles (Adobe: if "
        "nothing is found, a profile is not created):",
        "E         POST https://demo.tt.omtrdc.net/m2/demo/profile/update?mbox3rdPartyId=c-9&profile.tier=gold -> 200",
        "E       A profile exists once Target has seen the visitor: seed it first "
        "(target_profiles.seed_profile('c-9')) or create it with a v2 batch; single updates and v1 batches never "
        "create profiles. To look up a profile that may be missing, pass default=None.",
    ])
    result.stdout.fnmatch_lines([
        "E *.ProfileNotFoundError: client demo has no profile with thirdPartyId 'cust-10'.",
        "E       Batch demo-* holds it and is still incomplete: poll it until it completes, or "
        "target_profiles.force_batch().",
        "E       Batch demo-* holds it, but v1 batches never create profiles; v2 batches do.",
        "E       Client acme has a profile with this id: pass tenant='acme'.",
        "E       Client demo holds similar ids: 'cust-100'.",
    ])
    assert "handle.py" not in result.stdout.str()  # the traceback stops at the test's own line


def test_an_unknown_batch_raises_a_lookup_error_listing_what_the_fake_holds(run: Run) -> None:
    result = run('''
import pytest, requests
from target_profile_mock.mockserver import ControlError
from target_profile_mock.plugin import BatchNotFoundError

def test_unknown(target_profiles):
    r = requests.post("https://demo.tt.omtrdc.net/m2/demo/v2/profile/batchUpdate",
                      data="batch=thirdPartyId,a\\nc-1,1\\n")
    held = target_profiles.batch()["batchId"]
    for error in (BatchNotFoundError, LookupError, ControlError):
        with pytest.raises(error):
            target_profiles.batch("nope")
    with pytest.raises(BatchNotFoundError, match=f"It holds: {held}"):
        target_profiles.force_batch("nope")
    with pytest.raises(BatchNotFoundError, match="That is a status URL: pass the batchId it names"):
        target_profiles.batch(r.text.split("<batchStatus>")[1].split("</batchStatus>")[0])

@pytest.mark.target_profiles(allow=["batch.form-encoded-file"])
def test_none_yet(target_profiles):
    requests.post("https://demo.tt.omtrdc.net/m2/demo/v2/profile/batchUpdate", data={"batch": "thirdPartyId,a\\nc,1"})
    target_profiles.batch()
''')
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "E *.BatchNotFoundError: no batch has been submitted yet.",
        "E       1 batch submission(s) got no batch:",
        "E         POST https://demo.tt.omtrdc.net/m2/demo/v2/profile/batchUpdate -> 400: "
        "?batch.form-encoded-file? the whole file arrived form-encoded as one field*",
    ])


# --- requests to a client code the test never set up ----------------------------------------------------
def test_a_mistyped_client_code_is_a_deviation_the_report_names(run: Run) -> None:
    result = run('''
import pytest
from client import TargetClient

@pytest.mark.target_profiles(client_code="acme")
def test_typo(target_profiles):
    target_profiles.seed_profile("c-1")
    TargetClient("acmee").update("c-1", tier="gold")
    assert target_profiles.profile("c-1")["attributes"] == {"tier": "gold"}

@pytest.mark.target_profiles(client_code="acme")
def test_listed_at_the_end(target_profiles):
    TargetClient("acmee").fetch("c-1")

@pytest.mark.target_profiles(client_code="acme", strict="deviations")
def test_fails_when_strict(target_profiles):
    TargetClient("zzz").fetch("c-1")
''')
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*assert {} == {'tier': 'gold'}*",
        "*Captured target-profiles contract report call*",
        "The fake accepted these requests, but Adobe does not document them; the failure may come from them:",
        "1. POST https://acmee.tt.omtrdc.net/m2/acmee/profile/update?mbox3rdPartyId=c-1&profile.tier=gold -> 200",
        "   deviation tenant.unknown: client code 'acmee' was never set up in this test (it set up acme); the fake "
        "served it as a new, empty tenant. Did you mean 'acme'?",
        "     Adobe documents: Not an Adobe rule: the fake's own check.*",
        "     Fix: Send to the test's client code*allow('tenant.unknown').",
    ])
    result.stdout.fnmatch_lines([
        "*deviation tenant.unknown: client code 'zzz' was never set up in this test (it set up acme); the fake "
        "served it as a new, empty tenant.",
    ])
    result.stdout.fnmatch_lines([
        "*target-profiles: contract deviations*",
        "test_example.py::test_typo: tenant.unknown",
        "test_example.py::test_listed_at_the_end: tenant.unknown",
        "test_example.py::test_fails_when_strict: tenant.unknown",
    ])


def test_client_codes_the_test_set_up_are_not_flagged(run: Run) -> None:
    result = run('''
import pytest, requests
from client import TargetClient

@pytest.mark.target_profiles(client_code="acme", strict="deviations",
                             faults=[{"kind": "throttle", "operation": "token", "tenant": "faulty"}])
def test_set_up_every_way(target_profiles):
    target_profiles.seed_profile("c-1", tenant="seeded")
    target_profiles.configure("configured", update_delay=0)
    target_profiles.set_auth(False, tenant="authed")
    target_profiles.set_lifecycle("immediate", tenant="lifecycled")
    target_profiles.add_fault(503, tenant="faulted", operation="token")
    for code in ("acme", "seeded", "configured", "authed", "lifecycled", "faulted", "faulty"):
        TargetClient(code).fetch("c-1")

@pytest.mark.target_profiles(strict="deviations")
def test_named_in_an_assertion_or_allowed(target_profiles):
    TargetClient("other").fetch("c-1")
    target_profiles.assert_called("fetch", tenant="other")

@pytest.mark.target_profiles(strict="deviations", allow=["tenant.unknown"])
def test_allowed(target_profiles):
    TargetClient("anything").fetch("c-1")
''')
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*tenant.unknown*")


# --- property tests -------------------------------------------------------------------------------------
PROPERTY = '''
import pytest, requests
from hypothesis import HealthCheck, given, settings, strategies as st

EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

def push(customer_id, tier):
    requests.post("https://demo.tt.omtrdc.net/m2/demo/profile/update",
                  params={"mbox3rdPartyId": customer_id, "profile.tier": tier})
'''


def test_example_gives_each_hypothesis_example_a_fresh_fake(run: Run) -> None:
    result = run(PROPERTY + '''
SEEN = []

@EXAMPLES
@given(st.text("abc", min_size=1, max_size=5), st.sampled_from(["gold", "silver"]))
def test_each_example_starts_afresh(target_profiles, customer_id, tier):
    with target_profiles.example() as fake:
        assert fake is target_profiles
        assert target_profiles.profiles() == [] and target_profiles.requests() == []
        assert target_profiles.faults() == [] and not target_profiles.backend.clock.frozen
        target_profiles.seed_profile(customer_id)
        target_profiles.add_fault(503, operation="token")
        push(customer_id, tier)
        target_profiles.assert_updated(customer_id, attributes={"tier": tier})
        target_profiles.freeze_clock()
        SEEN.append(target_profiles.examples)

def test_they_ran():
    assert len(SEEN) > 5 and SEEN == list(range(1, len(SEEN) + 1))

@pytest.mark.target_profiles(client_code="acme", lifecycle="manual")
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.just(1))
def test_the_markers_settings_hold_in_each_example(target_profiles, _):
    with target_profiles.example():
        assert target_profiles.client_code == "acme"
        assert target_profiles.backend.settings()["lifecycle"] == "manual"

@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.just(1))
def test_on_the_live_server_too(target_profile_server, _):
    with target_profile_server.example():
        assert target_profile_server.requests() == []
        requests.get(target_profile_server.url + "/rest/v1/profiles/thirdPartyId/x?client=demo")
''')
    result.assert_outcomes(passed=4)


def test_a_contract_error_fails_the_example_so_hypothesis_shrinks_it(run: Run) -> None:
    result = run(PROPERTY + '''
@EXAMPLES
@given(st.text("ab+", min_size=1, max_size=6))
def test_ids_are_sent_as_adobe_documents(target_profiles, customer_id):
    with target_profiles.example():
        target_profiles.seed_profile(customer_id)
        push(customer_id, "gold")
''')
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        ">       with target_profiles.example():",
        "E       Failed: The code under test sent 1 request that Adobe would refuse:",
        "E       1. POST https://demo.tt.omtrdc.net/m2/demo/profile/update?mbox3rdPartyId=%2B&profile.tier=gold -> 400",
        "E          error id.third-party-chars: mbox3rdPartyId '+' contains '+'*",
    ])
    result.stdout.no_fnmatch_line("*contract report call*")  # the failure is the report already


def test_a_given_test_without_example_is_warned_about_shared_state(run: Run) -> None:
    result = run(PROPERTY + '''
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.just("c-1"))
def test_shares_state(target_profiles, customer_id):
    target_profiles.seed_profile(customer_id)
    push(customer_id, "gold")
''')
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*PytestWarning: test_example.py::test_shares_state: a @given test used the fake "
                                 "without target_profiles.example(): its examples share one fake*"])


def test_example_needs_a_fixtures_handle() -> None:
    from target_profile_mock.mockserver import MockBackend, create_app
    from target_profile_mock.plugin import Settings, TargetProfiles

    backend = MockBackend()
    handle = TargetProfiles(backend, create_app(backend), Settings())
    with pytest.raises(RuntimeError, match="use the handle of the target_profiles or target_profile_server fixture"):
        handle.example()


# --- the deviation summary under xdist ------------------------------------------------------------------
def test_the_deviation_summary_shows_under_xdist(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the workers import the source tree, not an installed copy
    pytester.makepyfile(test_example='''
import requests

def send_deviation(code):
    requests.post(f"https://{code}.tt.omtrdc.net/m2/{code}/v2/profile/batchUpdate",
                  data="batch=thirdPartyId,profile.a\\nc-1,1\\n",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})

def test_one(target_profiles):
    send_deviation("demo")

def test_two(target_profiles):
    send_deviation("demo")
    send_deviation("demo")

def test_clean(target_profiles):
    pass
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*target-profiles: contract deviations*"])
    out = result.stdout.str()
    assert "test_example.py::test_one: batch.profile-prefix\n" in out
    assert "test_example.py::test_two: batch.profile-prefix x2\n" in out
    assert out.count("batch.profile-prefix") == 2
