"""Batch status over HTTP: the documented bodies, counters, v2 per-row lists, unknown ids, and v1/v2 semantics."""

from __future__ import annotations

import pytest
from target_profile_mock.contracts.xmlbodies import parse_response

pytestmark = pytest.mark.both_stores

BODY = b"batch=thirdPartyId,a,b\nc1,1,x\nc2,2\nc3,3,z\n"


def settle(bulk, url: str) -> None:
    """Poll until the batch ends (the fixture's lifecycle is polls=1)."""
    for _ in range(5):
        if bulk.status(url).status != "incomplete":
            return
    raise AssertionError("the batch never ended")


# --- the documented bodies, byte for byte ------------------------------------------------------------
def test_default_body_is_the_documented_one_line(bulk, backend):
    backend.set_lifecycle("immediate")
    sub = bulk.submit(b"batch=thirdPartyId,a\nc1,x\n")
    r = bulk.status_response(sub.status_url)
    reference = (b"<response><batchId>demo4-1701473848678-13029383</batchId><status>complete</status>"
                 b"<batchSize>1</batchSize></response>")
    assert r.status_code == 200
    assert r.data == reference.replace(b"demo4-1701473848678-13029383", sub.batch_id.encode())
    assert r.mimetype == "application/xml"


def test_detailed_body_is_the_documented_layout(bulk, backend):
    backend.set_lifecycle("immediate")
    sub = bulk.submit(b"batch=thirdPartyId,a\nc1,x\n", version=1)
    backend.seed_profile("demo", third_party_id="c1")  # too late for this batch: it already ended
    r = bulk.status_response(sub.status_url, details=True)
    reference = (b"<response>\n"
                 b"    <batchId>demo4-1701473848678-13029383</batchId>\n"
                 b"    <status>complete</status>\n"
                 b"    <batchSize>1</batchSize>\n"
                 b"    <consumedCount>1</consumedCount>\n"
                 b"    <successfulUpdates>0</successfulUpdates>\n"
                 b"    <profilesNotFound>1</profilesNotFound>\n"
                 b"    <failedUpdates>0</failedUpdates>\n"
                 b"</response>")
    assert r.data == reference.replace(b"demo4-1701473848678-13029383", sub.batch_id.encode())


def test_v2_failed_rows_are_the_2020_layout(bulk, backend):
    backend.set_lifecycle("immediate,failed=1")
    sub = bulk.submit(b"batch=thirdPartyId,a\nc1,x\n")
    r = bulk.status_response(sub.status_url)
    expected = (b"<response>\n"
                b"    <batchId>" + sub.batch_id.encode() + b"</batchId>\n"
                b"    <status>complete</status>\n"
                b"    <batchSize>1</batchSize>\n"
                b"    <profile>\n"
                b"        <id>c1</id>\n"
                b"        <status>failed</status>\n"
                b"    </profile>\n"
                b"</response>")
    assert r.data == expected


# --- tokens and counters -----------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["immediate", "polls=2", "immediate,stuck", "polls=1,stuck", "manual"])
def test_status_tokens_are_only_the_documented_three(bulk, backend, spec):
    backend.set_lifecycle(spec)
    sub = bulk.submit(BODY)
    seen = {bulk.status(sub.status_url).status for _ in range(4)}
    assert seen <= {"incomplete", "complete", "stuck"}


def test_counters_while_incomplete_and_after_completion(bulk, backend):
    backend.seed_profile("demo", third_party_id="c1")
    sub = bulk.submit(BODY, version=1)
    pending = bulk.status(sub.status_url, details=True)
    assert pending.status == "incomplete"
    assert pending.counters == {"batchSize": 3, "consumedCount": 0, "successfulUpdates": 0,
                                "profilesNotFound": 0, "failedUpdates": 0}
    done = bulk.status(sub.status_url, details=True)
    assert done.status == "complete"
    assert done.counters == {"batchSize": 3, "consumedCount": 3, "successfulUpdates": 1,
                             "profilesNotFound": 2, "failedUpdates": 0}


def test_show_details_other_than_true_adds_no_counters(bulk, backend):
    backend.set_lifecycle("immediate")
    sub = bulk.submit(BODY)
    for value in ("false", "1", ""):
        body = bulk.status_response(sub.status_url + f"&showDetails={value}").data
        assert b"consumedCount" not in body and body.startswith(b"<response><batchId>")


def test_status_route_of_either_version_reads_any_batch(bulk, client, backend):
    backend.set_lifecycle("immediate")
    sub = bulk.submit(BODY, version=1)
    for path in ("/m2/demo/profile/batchStatus", "/m2/demo/v2/profile/batchStatus"):
        r = client.get(f"{path}?batchId={sub.batch_id}")
        assert r.status_code == 200 and b"<status>complete</status>" in r.data


# --- v2 per-row lists ----------------------------------------------------------------------------------
def test_v2_lists_only_failed_rows_by_default_and_v1_none(bulk, backend):
    backend.set_lifecycle("immediate,failed=2")
    v2 = bulk.status(bulk.submit(BODY).status_url, details=True)
    assert len(v2.profiles) == 2 and {s for _, s in v2.profiles} == {"failed"}
    assert {i for i, _ in v2.profiles} < {"c1", "c2", "c3"}
    assert v2.counters["failedUpdates"] == 2 and v2.counters["successfulUpdates"] == 1
    v1 = bulk.status(bulk.submit(BODY, version=1).status_url, details=True)
    assert v1.profiles == [] and v1.counters["failedUpdates"] == 2


def test_v2_full_row_list_2017_shape(bulk, backend):
    backend.configure(v2_profile_rows="all")
    backend.set_lifecycle("polls=1,failed=1")
    sub = bulk.submit(BODY)
    pending = bulk.status(sub.status_url)
    assert pending.profiles == [("c1", "pending"), ("c2", "pending"), ("c3", "pending")]
    done = bulk.status(sub.status_url)
    assert [i for i, _ in done.profiles] == ["c1", "c2", "c3"]
    assert sorted(s for _, s in done.profiles) == ["failed", "success", "success"]


def test_v2_counters_only_shape(bulk, backend):
    backend.configure(v2_profile_rows="none")
    backend.set_lifecycle("immediate,failed=1")
    done = bulk.status(bulk.submit(BODY).status_url, details=True)
    assert done.profiles == [] and done.counters["failedUpdates"] == 1


def test_row_shape_is_a_tenant_setting(bulk, client, backend):
    backend.set_lifecycle("immediate,failed=1")
    backend.configure("acme", v2_profile_rows="none")
    acme = bulk.status(bulk.submit(BODY, tenant="acme").status_url)
    demo = bulk.status(bulk.submit(BODY).status_url)
    assert acme.profiles == [] and len(demo.profiles) == 1


# --- unknown, foreign and expired batch ids ----------------------------------------------------------
def _refused(r, status: int, *needles: str) -> None:
    assert r.status_code == status, r.data
    fields = parse_response(r.data)
    assert fields["success"] == "false"
    for needle in needles:
        assert needle in fields["message"]


def test_unknown_batch_id_is_404(client):
    r = client.get("/m2/demo/profile/batchStatus?batchId=demo-1701473848678-13029383")
    _refused(r, 404, "status.unknown-batch", "demo-1701473848678-13029383")


def test_another_clients_batch_is_404(bulk, client):
    sub = bulk.submit(BODY, tenant="acme")
    _refused(client.get(f"/m2/demo/profile/batchStatus?batchId={sub.batch_id}"), 404)
    assert client.get(f"/m2/acme/profile/batchStatus?batchId={sub.batch_id}").status_code == 200


def test_missing_batch_id_is_400(client):
    _refused(client.get("/m2/demo/profile/batchStatus"), 400, "status.missing-batch-id")
    _refused(client.get("/m2/demo/profile/batchStatus?batchId="), 400, "status.missing-batch-id")


def test_batch_expires_after_the_retention_time(bulk, backend):
    sub = bulk.submit(BODY)
    backend.advance(86_400)
    assert bulk.status_response(sub.status_url).status_code == 200
    backend.advance(1)
    _refused(bulk.status_response(sub.status_url), 404, "retention")


def test_retention_count_keeps_the_last_n_batches(bulk, backend):
    backend.configure(batch_retention_count=2)
    first, second, third = (bulk.submit(BODY) for _ in range(3))
    assert bulk.status_response(first.status_url).status_code == 404
    assert bulk.status_response(second.status_url).status_code == 200
    assert bulk.status_response(third.status_url).status_code == 200


@pytest.mark.parametrize("batch_id", ["%00", "x" * 5000, "demo-1-1&batchId=other", "<script>", "ü"])
def test_odd_batch_ids_never_cause_a_500(client, batch_id):
    r = client.get(f"/m2/demo/profile/batchStatus?batchId={batch_id}")
    assert r.status_code == 404
    assert parse_response(r.data)["success"] == "false"


# --- semantics: create, not-found, last write wins ----------------------------------------------------
@pytest.mark.parametrize(("key", "kind", "pid"), [("thirdPartyId", "thirdPartyId", "c9"),
                                                  ("pcId", "tntId", "1700000000000-123456.01_00")])
def test_v1_never_creates_and_counts_not_found(bulk, key, kind, pid):
    sub = bulk.submit(f"batch={key},a\n{pid},x\n".encode(), version=1)
    settle(bulk, sub.status_url)
    assert bulk.status(sub.status_url, details=True).counters["profilesNotFound"] == 1
    assert bulk.profile(kind, pid) is None


@pytest.mark.parametrize(("key", "kind", "pid"), [("thirdPartyId", "thirdPartyId", "c9"),
                                                  ("pcId", "tntId", "1700000000000-123456.01_00")])
def test_v2_creates_missing_profiles(bulk, key, kind, pid):
    sub = bulk.submit(f"batch={key},a\n{pid},x\n".encode(), version=2)
    settle(bulk, sub.status_url)
    counters = bulk.status(sub.status_url, details=True).counters
    assert counters["profilesNotFound"] == 0 and counters["successfulUpdates"] == 1
    assert bulk.profile(kind, pid) == {"a": "x"}


def test_v1_updates_existing_profiles(bulk, backend):
    backend.seed_profile("demo", third_party_id="c1", attributes={"a": "old", "keep": "me"})
    sub = bulk.submit(b"batch=thirdPartyId,a\nc1,new\n", version=1)
    settle(bulk, sub.status_url)
    assert bulk.profile("thirdPartyId", "c1") == {"a": "new", "keep": "me"}


def test_consecutive_batches_last_write_wins_per_attribute(bulk, client):
    first = bulk.submit(b"batch=thirdPartyId,a,b\nc1,1,1\n")
    settle(bulk, first.status_url)
    second = bulk.submit(b"batch=thirdPartyId,b,c\nc1,2,2\n")
    settle(bulk, second.status_url)
    assert bulk.profile("thirdPartyId", "c1") == {"a": "1", "b": "2", "c": "2"}
    stamps = client.get("/_mock/tenants/demo/profiles/thirdPartyId/c1").get_json()["modifiedAt"]
    assert set(stamps) == {"a", "b", "c"}


def test_batches_apply_in_completion_order(bulk, client, backend):
    backend.set_lifecycle("manual")
    older = bulk.submit(b"batch=thirdPartyId,a\nc1,older\n")
    newer = bulk.submit(b"batch=thirdPartyId,a\nc1,newer\n")
    client.post(f"/_mock/batches/{newer.batch_id}/force", json={"status": "complete"})
    client.post(f"/_mock/batches/{older.batch_id}/force", json={"status": "complete"})
    assert bulk.profile("thirdPartyId", "c1") == {"a": "older"}


def test_ids_with_characters_xml_cannot_carry_still_give_well_formed_xml(bulk, backend):
    backend.set_lifecycle("immediate,failed=1")
    sub = bulk.submit(b"batch=thirdPartyId,a\nc%00d,x\n")
    status = bulk.status(sub.status_url)
    assert status.profiles == [("c\ufffdd", "failed")]


@pytest.mark.parametrize("version", [1, 2])
def test_consumed_count_includes_failed_and_not_found_rows(bulk, backend, version):
    backend.seed_profile("demo", third_party_id="c1")
    backend.seed_profile("demo", third_party_id="c2")
    backend.set_lifecycle("immediate,failed=1")
    done = bulk.status(bulk.submit(BODY, version=version).status_url, details=True)
    c = done.counters
    assert c["failedUpdates"] == 1
    assert c["consumedCount"] == c["batchSize"] == 3
    assert c["successfulUpdates"] + c["profilesNotFound"] + c["failedUpdates"] == c["consumedCount"]


def test_v2_full_row_list_of_a_stuck_batch_fails_every_row(bulk, backend):
    backend.configure(v2_profile_rows="all")
    backend.set_lifecycle("polls=1,stuck")
    sub = bulk.submit(BODY)
    assert bulk.status(sub.status_url).profiles == [("c1", "pending"), ("c2", "pending"), ("c3", "pending")]
    stuck = bulk.status(sub.status_url, details=True)
    assert stuck.status == "stuck"
    assert stuck.profiles == [("c1", "failed"), ("c2", "failed"), ("c3", "failed")]
    assert stuck.counters["successfulUpdates"] == 0
    # under the default shape a stuck batch lists no row
    backend.configure(v2_profile_rows="failed")
    assert bulk.status(sub.status_url).profiles == []
