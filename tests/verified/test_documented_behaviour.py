"""Adobe's documented behaviour of the Profile APIs, as a client sees it over HTTP.

Every test here is marked ``verified=True``: it goes through the handle's names that live mode also has
(``url``, ``client_code``, ``headers``, ``id``, ``seed_profile``, ``wait_for_profile``), so
``pytest tests/verified --target-profiles-live`` runs the same tests against a real tenant (README, "Verify
against your tenant"). Each names the page that documents what it checks (sources in docs/fidelity.md).
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

import pytest
import requests

# fake_sleep: the fake's clock moves when a test waits for a batch; live mode really waits
pytestmark = pytest.mark.target_profiles(verified=True, fake_sleep=True)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SUBMITTED = "<message>Request successfully submitted</message>"


def _single(t: Any, **params: str) -> requests.Response:
    return requests.get(f"{t.url}/m2/{t.client_code}/profile/update", params=params, headers=t.headers(),
                        timeout=30)


def _fetch(t: Any, third_party_id: str) -> requests.Response:
    return requests.get(f"{t.url}/rest/v1/profiles/thirdPartyId/{quote(third_party_id, safe='')}",
                        params={"client": t.client_code}, headers=t.headers(), timeout=30)


def _submit(t: Any, csv: str) -> requests.Response:
    return requests.post(f"{t.url}/m2/{t.client_code}/v2/profile/batchUpdate", data="batch=" + csv,
                         headers={**FORM, **t.headers()}, timeout=30)


def _status_url(r: requests.Response) -> str:
    m = re.search(r"<batchStatus>([^<]+)</batchStatus>", r.text)
    assert m, f"no batchStatus in the submit answer: {r.text}"
    return m.group(1)


def _until_done(t: Any, status_url: str, timeout: float = 600) -> str:
    """Poll the status URL as a client does, until the batch is no longer incomplete."""
    deadline, delay = time.monotonic() + timeout, 0.5
    while True:
        body = requests.get(status_url + "&showDetails=true", headers=t.headers(), timeout=30).text
        if "<status>incomplete</status>" not in body or time.monotonic() > deadline:
            return body
        time.sleep(delay)
        delay = min(delay * 2, 30)


# --- single profile update (EL-SINGLE) ----------------------------------------------------------------
def test_single_update_by_third_party_id_answers_success_and_updates_the_profile(target_profiles: Any) -> None:
    t = target_profiles
    customer = t.seed_profile(t.id("sync-1"), attributes={"tier": "silver"})["thirdPartyId"]
    r = _single(t, mbox3rdPartyId=customer, **{"profile.tier": "gold"})
    assert r.status_code == 200
    assert "<success>true</success>" in r.text and SUBMITTED in r.text
    assert t.wait_for_profile(customer, attributes={"tier": "gold"})["attributes"]["tier"] == "gold"


def test_single_update_accepts_post_with_the_parameters_in_the_query(target_profiles: Any) -> None:
    t = target_profiles
    customer = t.seed_profile(t.id("sync-2"), attributes={"tier": "silver"})["thirdPartyId"]
    r = requests.post(f"{t.url}/m2/{t.client_code}/profile/update",
                      params={"mbox3rdPartyId": customer, "profile.points": "10"}, headers=t.headers(), timeout=30)
    assert r.status_code == 200 and SUBMITTED in r.text
    assert t.wait_for_profile(customer, attributes={"points": "10"})["attributes"]["points"] == "10"


def test_single_update_does_not_create_a_profile(target_profiles: Any) -> None:
    t = target_profiles
    stranger = t.id("never-seen")
    assert "<success>true</success>" in _single(t, mbox3rdPartyId=stranger, **{"profile.tier": "gold"}).text
    assert _fetch(t, stranger).status_code == 404


# --- bulk profile update v2 and batch status (EL-BULK) ------------------------------------------------
def test_a_v2_batch_creates_profiles_and_reports_complete_with_counters(target_profiles: Any) -> None:
    t = target_profiles
    a, b = t.id("bulk-1"), t.id("bulk-2")
    r = _submit(t, f"thirdPartyId,tier,points\n{a},gold,10\n{b},silver\n")
    assert r.status_code == 200
    assert "<success>true</success>" in r.text and "<message>Batch submitted for processing</message>" in r.text
    url = _status_url(r)
    assert "/profile/batchStatus?" in url and "batchId=" in url
    body = _until_done(t, url)
    assert "<status>complete</status>" in body and "<batchSize>2</batchSize>" in body
    assert "<successfulUpdates>2</successfulUpdates>" in body and "<failedUpdates>0</failedUpdates>" in body
    assert t.wait_for_profile(b, attributes={"tier": "silver"})["attributes"] == {"tier": "silver"}


def test_empty_cells_never_clear_an_attribute(target_profiles: Any) -> None:
    t = target_profiles
    customer = t.id("bulk-3")
    _until_done(t, _status_url(_submit(t, f"thirdPartyId,tier,points\n{customer},gold,10\n")))
    t.wait_for_profile(customer, attributes={"tier": "gold", "points": "10"})
    _until_done(t, _status_url(_submit(t, f"thirdPartyId,tier,points\n{customer},,20\n")))
    assert t.wait_for_profile(customer, attributes={"points": "20"})["attributes"]["tier"] == "gold"


# --- profile fetch (EL-FETCH, EL-PROFILES) ------------------------------------------------------------
def test_fetch_by_third_party_id_returns_the_documented_structure(target_profiles: Any) -> None:
    t = target_profiles
    customer = t.seed_profile(t.id("fetch-1"), attributes={"tier": "gold"})["thirdPartyId"]
    r = _fetch(t, customer)
    assert r.status_code == 200
    body = r.json()
    assert body["client"] == t.client_code and body["visitorId"] == customer
    assert {"modifiedAt", "profileAttributes"} <= set(body)
    tier = body["profileAttributes"]["tier"]
    assert tier["value"] == "gold"  # values are strings
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}([+-]\d\d:\d\d|Z)", tier["modifiedAt"])


def test_fetch_of_an_unknown_third_party_id_answers_the_documented_404(target_profiles: Any) -> None:
    t = target_profiles
    stranger = t.id("nobody")
    r = _fetch(t, stranger)
    assert r.status_code == 404
    assert r.json() == {"status": 404,
                        "message": f"No profile found for client {t.client_code} with third party id={stranger}"}


def test_fetch_of_an_unknown_tnt_id_answers_the_documented_404(target_profiles: Any) -> None:
    t = target_profiles
    r = requests.get(f"{t.url}/rest/v1/profiles/111492025094307-353046", params={"client": t.client_code},
                     headers=t.headers(), timeout=30)
    assert r.status_code == 404
    assert r.json() == {"status": 404,
                        "message": f"No profile found for client {t.client_code} with mboxPC=111492025094307-353046"}
