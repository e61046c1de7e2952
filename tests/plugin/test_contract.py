"""Contract verdicts: the strict check, assert_contract, and the assertion helpers' messages."""

from __future__ import annotations

from conftest import Run

BAD_UPDATE = '''
import requests
def send_bad_update():
    # '+' is not allowed in mbox3rdPartyId; the client ignores the 400
    requests.post("https://demo.tt.omtrdc.net/m2/demo/profile/update",
                  params={"mbox3rdPartyId": "a+b", "profile.x": "1"})
'''

DEVIATION = '''
import requests
def send_deviation():
    # a "profile." prefix in a batch header works here; Adobe documents plain names
    requests.post("https://demo.tt.omtrdc.net/m2/demo/v2/profile/batchUpdate",
                  data="batch=thirdPartyId,profile.a\\nc-1,1\\n")
'''


def test_strict_check_fails_a_test_that_sent_a_contract_error(run: Run) -> None:
    result = run(BAD_UPDATE + '''
def test_sends_error(target_profiles):
    send_bad_update()
''')
    result.assert_outcomes(failed=1)  # a failure of the test itself, not an error in teardown
    result.stdout.fnmatch_lines([
        "*The code under test sent 1 request that Adobe would refuse:*",
        "*1. POST https://demo.tt.omtrdc.net/m2/demo/profile/update?mbox3rdPartyId=a%2Bb&profile.x=1 -> 400*",
        "*error id.third-party-chars: mbox3rdPartyId 'a+b' contains '+'*",
        "*Adobe documents: The plus sign (+) and the forward slash (/) are not allowed*",
        "*Fix: Remove or replace + and /*",
        "*Reproduce: curl -X POST 'https://demo.tt.omtrdc.net/m2/demo/profile/update?mbox3rdPartyId=a%2Bb*",
        "*@pytest.mark.target_profiles(strict=False)*",
    ])


def test_strict_opt_outs(run: Run) -> None:
    result = run(BAD_UPDATE + '''
import pytest

@pytest.mark.target_profiles(strict=False)
def test_marker_opt_out(target_profiles):
    send_bad_update()

@pytest.mark.target_profiles(allow=["id.third-party-chars"])
def test_allowed_rule(target_profiles):
    send_bad_update()

def test_allowed_at_runtime(target_profiles):
    target_profiles.allow("id.third-party-chars")
    send_bad_update()

def test_strict_off_at_runtime(target_profiles):
    target_profiles.strict = False
    send_bad_update()
''')
    result.assert_outcomes(passed=4)


def test_deviations_are_listed_but_fail_only_when_asked(run: Run) -> None:
    result = run(DEVIATION + '''
import pytest

def test_deviation_passes(target_profiles):
    send_deviation()

@pytest.mark.target_profiles(strict="deviations")
def test_deviation_fails_when_strict(target_profiles):
    send_deviation()
''', "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*target-profiles: contract deviations*",
        "*test_example.py::test_deviation_passes: *batch.profile-prefix*",
    ])
    result.stdout.fnmatch_lines(["*deviation batch.profile-prefix*", "*Fix: Drop the profile. prefix*"])
    assert "test_deviation_fails_when_strict FAILED" in result.stdout.str() or \
        "FAILED test_example.py::test_deviation_fails_when_strict" in result.stdout.str()


def test_strict_check_stays_out_of_tests_that_failed_anyway(run: Run) -> None:
    result = run(BAD_UPDATE + '''
def test_fails_itself(target_profiles):
    send_bad_update()
    assert 1 == 2, "own failure"
''')
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*own failure*"])
    result.stdout.no_fnmatch_line("*would refuse*")


def test_assert_contract_lists_errors_and_notes_deviations(run: Run) -> None:
    result = run(BAD_UPDATE + DEVIATION + '''
import pytest

@pytest.mark.target_profiles(strict=False)
def test_explicit(target_profiles):
    send_deviation()
    target_profiles.assert_contract()  # deviations alone pass
    with pytest.raises(pytest.fail.Exception, match="deviation batch.profile-prefix"):
        target_profiles.assert_contract(deviations=True)
    send_bad_update()
    target_profiles.assert_contract()
''')
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*sent 1 request that breaks Adobe Target's documented contract:*",
        "*error id.third-party-chars*",
        "*Also noted (deviations: accepted here, Adobe may refuse them):*",
        "*deviation batch.profile-prefix*",
    ])


def test_assertion_helpers_pass_and_fail_with_the_nearest_match(run: Run) -> None:
    result = run('''
import pytest, requests
from client import TargetClient

def test_helpers_pass(target_profiles):
    target_profiles.seed_profile("c-1")
    client = TargetClient("demo")
    client.update("c-1", tier="gold", city="Paris")
    target_profiles.assert_updated("c-1", attributes={"tier": "gold"})
    target_profiles.assert_updated("c-1", attributes={"tier": "gold", "city": "Paris"}, exact=True)
    target_profiles.assert_called("single-update", times=1, method="POST", tenant="demo")
    target_profiles.assert_not_called("batch-submit")

def test_updated_nearest(target_profiles):
    target_profiles.seed_profiles([{"thirdPartyId": "c-1"}, {"thirdPartyId": "c-2"}])
    client = TargetClient("demo")
    client.update("c-2", tier="bronze")
    client.update("c-1", tier="gold")
    target_profiles.assert_updated("c-1", attributes={"tier": "silver", "city": "Rome"})

def test_batch_nearest(target_profiles):
    requests.post("https://demo.tt.omtrdc.net/m2/demo/profile/batchUpdate",
                  data="batch=thirdPartyId,tier\\nc-1,gold\\nc-2,silver\\n")
    target_profiles.assert_batch_submitted(rows=[{"thirdPartyId": "c-1", "tier": "gold"},
                                                 {"thirdPartyId": "c-2", "tier": "gold"}], version=2)

def test_nothing_sent(target_profiles):
    target_profiles.assert_batch_submitted(version=2)

def test_called_times(target_profiles):
    TargetClient("demo").fetch("c-1")
    target_profiles.assert_called("single-update", times=2)

def test_too_many(target_profiles):
    target_profiles.seed_profile("c-1")
    TargetClient("demo").update("c-1", a="1")
    TargetClient("demo").update("c-1", a="1")
    target_profiles.assert_updated("c-1", attributes={"a": "1"})

def test_bad_operation_name(target_profiles):
    target_profiles.requests("update")
''')
    result.assert_outcomes(passed=1, failed=6)
    result.stdout.fnmatch_lines([
        "*expected 1 single update(s) matching third_party_id='c-1', attributes=*; 0 matched.",
        "*Nearest match: POST https://demo.tt.omtrdc.net/m2/demo/profile/update?mbox3rdPartyId=c-1&profile.tier=gold"
        " -> 200",
        "*- attributes: tier: sent 'gold', expected 'silver'; not sent: city",
        "*(1 other request(s) of this kind*",
    ])
    result.stdout.fnmatch_lines([
        "*expected 1 batch submission(s) matching version=2, rows=*; 0 matched.",
        "*- version: sent 1, expected 2",
        "*- rows: row 2 differs: sent {'thirdPartyId': 'c-2', 'tier': 'silver'}, expected {'thirdPartyId': 'c-2', "
        "'tier': 'gold'}",
    ])
    result.stdout.fnmatch_lines(["*expected 1 batch submission(s) matching version=2; 0 matched.",
                                 "*No request of this kind was sent."])
    result.stdout.fnmatch_lines(["*expected 2 single-update request(s); 0 were sent.",
                                 "*Sent: GET fetch (demo) x1"])
    result.stdout.fnmatch_lines(["*expected 1 single update(s) matching third_party_id='c-1', attributes=*; "
                                 "2 matched:"])
    result.stdout.fnmatch_lines(["*operation='update': use one of single-update, batch-submit*"])
