"""One visitor, one profile: a tntId names the same profile with any location hint or none."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from target_profile_mock.contracts.ids import TNT_ID_RE, check_tnt_id, location_hint, tnt_id_key
from target_profile_mock.contracts.strategies import tnt_ids
from target_profile_mock.mockserver import MockBackend

pytestmark = pytest.mark.both_stores

if TYPE_CHECKING:
    from bulk_client import BulkClient

HINTED = "1368007744041-575948.28_0"
FORMS = ["1368007744041-575948", "1368007744041-575948.28_0", "1368007744041-575948.17_05",
         "1368007744041-575948.01"]


@pytest.mark.parametrize("tnt", ["10abf6304b2714215b1fd39a870f01afc.28_20", "1368007744041-575948.28_0", "123",
                                 "123.35_0", "1000000000000-100000.01", "10abf6304b2714215b1fd39a870f01af"])
def test_ids_target_issues_are_not_deviations(tnt: str) -> None:
    assert check_tnt_id(tnt, "tntId") == []


def test_key_and_hint() -> None:
    assert tnt_id_key("1368007744041-575948.28_0") == "1368007744041-575948"
    assert tnt_id_key("1368007744041-575948") == "1368007744041-575948"
    assert location_hint("1368007744041-575948.28_0") == "28_0"
    assert location_hint("1368007744041-575948") is None


@given(tnt_ids())
@settings(max_examples=200)
def test_strategy_ids_match_the_rule(tnt: str) -> None:
    assert TNT_ID_RE.match(tnt), tnt


def test_strategy_draws_every_documented_shape() -> None:
    from hypothesis import find

    find(tnt_ids(), lambda s: len(s.partition(".")[0]) == 32)  # 32 hex digits
    find(tnt_ids(), lambda s: "-" not in s and "." in s)  # 123.35_0 style
    find(tnt_ids(), lambda s: s.count("_") == 1 and len(s.rpartition("_")[2]) == 1)  # one-digit hint .28_0
    find(tnt_ids(with_location_hint=False), lambda s: "-" in s)


@pytest.mark.parametrize("asked", FORMS)
def test_fetch_finds_a_seeded_profile_by_any_hint(client: FlaskClient, backend: MockBackend, asked: str) -> None:
    backend.seed_profile("acme", tnt_id=HINTED, attributes={"tier": "gold"})
    r = client.get(f"/rest/v1/profiles/{asked}?client=acme")
    assert r.status_code == 200, r.data
    assert r.json["profileAttributes"]["tier"]["value"] == "gold"
    assert r.json["visitorId"] == asked


@pytest.mark.parametrize("sent", FORMS)
def test_single_update_reaches_the_profile_by_any_hint(client: FlaskClient, backend: MockBackend, sent: str) -> None:
    backend.seed_profile("acme", tnt_id=HINTED)
    r = client.get(f"/m2/acme/profile/update?mboxPC={sent}&profile.tier=silver")
    assert r.status_code == 200
    assert backend.get_profile("acme", "tntId", HINTED)["attributes"] == {"tier": "silver"}


@pytest.mark.parametrize("version", [1, 2])
def test_batch_rows_reach_the_profile_by_any_hint(client: FlaskClient, backend: MockBackend, bulk: BulkClient,
                                                  version: int) -> None:
    backend.seed_profile("acme", tnt_id=HINTED)
    sub = bulk.submit(b"batch=pcId,tier\n1368007744041-575948,bronze\n", version=version, tenant="acme")
    body = bulk.status(sub.status_url)  # polls=1: incomplete
    body = bulk.status(sub.status_url, details=True)
    assert body.status == "complete"
    assert body.counters["profilesNotFound"] == 0
    assert len(backend.profiles("acme")) == 1  # v2 created no second profile
    p = backend.get_profile("acme", "tntId", "1368007744041-575948.17_05")
    assert p["attributes"] == {"tier": "bronze"} and p["tntId"] == HINTED  # the hint Target gave is kept


def test_v2_batch_creating_hinted_ids_keeps_the_hint(backend: MockBackend, bulk: BulkClient) -> None:
    bulk.apply(b"batch=pcId,tier\n1-1.28_0,a\n2-2,b\n", version=2, tenant="acme")
    assert backend.get_profile("acme", "tntId", "1-1")["tntId"] == "1-1.28_0"
    assert backend.get_profile("acme", "tntId", "2-2.01")["tntId"] == "2-2"


def test_one_batch_naming_a_visitor_twice_with_different_hints_makes_one_profile(
        backend: MockBackend, bulk: BulkClient) -> None:
    bulk.apply(b"batch=pcId,a,b\n1-1.28_0,x,\n1-1,,y\n", version=2, tenant="acme")
    profiles = backend.profiles("acme")
    assert len(profiles) == 1 and profiles[0]["attributes"] == {"a": "x", "b": "y"}


def test_seeding_merges_hinted_and_plain_forms(backend: MockBackend) -> None:
    backend.seed_profile("acme", tnt_id=HINTED, attributes={"a": "1"})
    backend.seed_profile("acme", tnt_id="1368007744041-575948", third_party_id="c-1", attributes={"b": "2"})
    profiles = backend.profiles("acme")
    assert len(profiles) == 1
    assert profiles[0]["tntId"] == HINTED and profiles[0]["attributes"] == {"a": "1", "b": "2"}


def test_seeding_a_list_sees_hinted_forms_as_one_visitor(backend: MockBackend) -> None:
    from target_profile_mock.mockserver.backend import ControlError

    with pytest.raises(ControlError, match="name different profiles"):
        backend.seed_profiles("acme", [{"tntId": "1-1.28_0"}, {"thirdPartyId": "b"},
                                       {"tntId": "1-1", "thirdPartyId": "b"}])
    assert backend.profiles("acme") == []
