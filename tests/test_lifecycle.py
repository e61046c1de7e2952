"""The simulated batch lifecycle: every progression mode at server, tenant and batch level, forced states,
side-effect-free reads, determinism, and the single-update visibility delay."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from target_profile_mock.contracts.xmlbodies import parse_batch_status
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.cli import _parser, config_from_args

pytestmark = pytest.mark.both_stores

BODY = b"batch=thirdPartyId,a\nc1,1\nc2,2\nc3,3\nc4,4\n"
IDS = ("c1", "c2", "c3", "c4")


@dataclass
class Run:
    """One batch submitted under a lifecycle set at some level; polls and reads go through HTTP."""

    bulk: object
    client: object
    tenant: str
    batch_id: str
    url: str

    def poll(self, details: bool = False):
        return self.bulk.status(self.url, details=details)  # type: ignore[attr-defined]

    def applied(self) -> dict[str, dict[str, str] | None]:
        return {i: self.bulk.profile("thirdPartyId", i, tenant=self.tenant) for i in IDS}  # type: ignore

    def control(self) -> dict:
        return self.client.get(f"/_mock/batches/{self.batch_id}").get_json()  # type: ignore[attr-defined]


LEVELS = ["server-py", "server-http", "tenant-py", "tenant-http", "batch-py", "batch-http"]


@pytest.fixture
def start(bulk, client, backend: MockBackend) -> Callable[[str, str], Run]:
    """Set ``spec`` at ``level`` and submit a 4-row v2 batch it governs."""

    def go(level: str, spec: str) -> Run:
        tenant = "acme" if level.startswith("tenant") else "demo"
        if level == "server-py":
            backend.set_lifecycle(spec)
        elif level == "server-http":
            assert client.put("/_mock/lifecycle", json={"lifecycle": spec}).status_code == 200
        elif level == "tenant-py":
            backend.set_lifecycle(spec, tenant=tenant)
        elif level == "tenant-http":
            r = client.put("/_mock/lifecycle", json={"lifecycle": spec, "tenant": tenant})
            assert r.status_code == 200 and r.get_json()["lifecycle"] == Lifecycle.parse(spec).spec()
        sub = bulk.submit(BODY, tenant=tenant)
        if level == "batch-py":
            backend.set_lifecycle(spec, batch_id=sub.batch_id)
        elif level == "batch-http":
            r = client.put(f"/_mock/batches/{sub.batch_id}/lifecycle", json={"lifecycle": spec})
            assert r.status_code == 200, r.data
        run = Run(bulk, client, tenant, sub.batch_id, sub.status_url)
        assert run.control()["lifecycle"] == Lifecycle.parse(spec).spec()
        return run

    return go


# --- every mode at every level ---------------------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
def test_immediate(start, level):
    run = start(level, "immediate")
    assert run.poll().status == "complete"
    assert run.applied() == {"c1": {"a": "1"}, "c2": {"a": "2"}, "c3": {"a": "3"}, "c4": {"a": "4"}}


@pytest.mark.parametrize("level", LEVELS)
def test_after_n_polls(start, level):
    run = start(level, "polls=3")
    for _ in range(3):
        assert run.poll().status == "incomplete"
        assert set(run.applied().values()) == {None}  # rows wait for completion
    assert run.poll().status == "complete"
    assert run.applied()["c4"] == {"a": "4"}
    assert run.control()["polls"] == 4


@pytest.mark.parametrize("level", LEVELS)
def test_after_seconds_of_the_fake_clock(start, level, backend):
    run = start(level, "seconds=30")
    assert run.poll().status == "incomplete"
    backend.advance(29.999)
    assert run.poll().status == "incomplete"
    assert run.applied()["c1"] is None
    backend.advance(0.001)
    assert run.applied()["c1"] == {"a": "1"}  # time alone ends it: no poll needed
    assert run.poll().status == "complete"
    assert run.control()["endedAt"] == run.control()["submittedAt"] + 30_000


@pytest.mark.parametrize("level", LEVELS)
def test_manual_waits_for_a_forced_state(start, level, backend, client):
    run = start(level, "manual")
    for _ in range(5):
        assert run.poll().status == "incomplete"
    backend.advance(3600)
    assert run.poll().status == "incomplete"
    r = client.post(f"/_mock/batches/{run.batch_id}/force", json={"status": "complete"})
    assert r.status_code == 200 and r.get_json()["status"] == "complete"
    assert run.poll().status == "complete"
    assert run.applied()["c2"] == {"a": "2"}


@pytest.mark.parametrize("level", LEVELS)
def test_ends_stuck(start, level):
    run = start(level, "polls=1,stuck")
    assert run.poll().status == "incomplete"
    stuck = run.poll(details=True)
    assert stuck.status == "stuck"
    assert stuck.counters == {"batchSize": 4, "consumedCount": 0, "successfulUpdates": 0,
                              "profilesNotFound": 0, "failedUpdates": 0}
    assert run.poll().status == "stuck"  # for good
    assert set(run.applied().values()) == {None}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("spec", ["immediate,failed=2", "immediate,failed=50%"])
def test_failed_rows(start, level, spec):
    run = start(level, spec)
    done = run.poll(details=True)
    assert done.status == "complete"
    assert done.counters["failedUpdates"] == 2 and done.counters["successfulUpdates"] == 2
    failed = {pid for pid, status in done.profiles if status == "failed"}
    assert len(failed) == 2
    applied = run.applied()
    assert {i for i, attrs in applied.items() if attrs is None} == failed
    assert sorted(run.control()["failedIds"]) == sorted(failed)


@pytest.mark.parametrize("level", LEVELS)
def test_lost_rows_are_reported_as_successes(start, level):
    run = start(level, "immediate,lost=1")
    done = run.poll(details=True)
    assert done.status == "complete"
    assert done.counters["successfulUpdates"] == 4 and done.counters["failedUpdates"] == 0
    assert done.profiles == []  # silently lost: no failed row either
    (lost,) = run.control()["lostIds"]
    assert [i for i, attrs in run.applied().items() if attrs is None] == [lost]


def test_lost_share_like_adobes_warning(bulk, backend):
    backend.set_lifecycle("immediate,lost=0.1%")
    body = b"batch=thirdPartyId,a\n" + b"".join(b"c%d,x\n" % i for i in range(2000))
    sub = bulk.submit(body)
    assert bulk.status(sub.status_url, details=True).counters["successfulUpdates"] == 2000
    assert len(backend.batch(sub.batch_id)["lostIds"]) == 2
    assert len(backend.profiles("demo")) == 1998


# --- levels override each other ---------------------------------------------------------------------
def test_batch_beats_tenant_beats_server(bulk, backend):
    backend.set_lifecycle("polls=5")
    backend.set_lifecycle("polls=1,stuck", tenant="acme")
    plain = bulk.submit(BODY)
    acme = bulk.submit(BODY, tenant="acme")
    fixed = bulk.submit(BODY, tenant="acme")
    backend.set_lifecycle("polls=0", batch_id=fixed.batch_id)
    assert [bulk.status(u.status_url).status for u in (plain, acme, fixed)] == ["incomplete"] * 2 + ["complete"]
    assert [bulk.status(u.status_url).status for u in (plain, acme, fixed)] == ["incomplete", "stuck", "complete"]


def test_changing_a_lifecycle_leaves_submitted_batches_alone(bulk, backend):
    sub = bulk.submit(BODY)  # polls=1
    backend.set_lifecycle("manual")
    assert bulk.status(sub.status_url).status == "incomplete"
    assert bulk.status(sub.status_url).status == "complete"


def test_tenant_lifecycle_does_not_leak_to_other_tenants(bulk, client):
    client.put("/_mock/lifecycle", json={"lifecycle": "manual", "tenant": "acme"})
    sub = bulk.submit(BODY)
    bulk.status(sub.status_url)
    assert bulk.status(sub.status_url).status == "complete"


def test_lifecycle_of_an_ended_batch_cannot_change(bulk, client, backend):
    backend.set_lifecycle("immediate")
    sub = bulk.submit(BODY)
    r = client.put(f"/_mock/batches/{sub.batch_id}/lifecycle", json={"lifecycle": "manual"})
    assert r.status_code == 409 and "complete" in r.get_json()["error"]


@pytest.mark.parametrize("spec", ["sometimes", "polls=x", "failed=150%", "seconds=-1", ""])
def test_bad_lifecycle_specs_are_400(client, spec):
    r = client.put("/_mock/lifecycle", json={"lifecycle": spec})
    assert r.status_code == 400 and r.get_json()["error"]


# --- rows applied on completion, seen through the edge ------------------------------------------------
def test_rows_reach_the_fetch_api_only_when_the_batch_completes(bulk, client):
    sub = bulk.submit(b"batch=thirdPartyId,a\nc1,x\n")
    assert client.get("/rest/v1/profiles/thirdPartyId/c1?client=demo").status_code == 404
    assert bulk.status(sub.status_url).status == "incomplete"
    assert client.get("/rest/v1/profiles/thirdPartyId/c1?client=demo").status_code == 404
    assert bulk.status(sub.status_url).status == "complete"
    r = client.get("/rest/v1/profiles/thirdPartyId/c1?client=demo")
    assert r.status_code == 200 and r.get_json()["profileAttributes"]["a"]["value"] == "x"


# --- forced states -------------------------------------------------------------------------------------
def test_force_stuck_applies_nothing_and_sticks(bulk, client):
    sub = bulk.submit(BODY)
    r = client.post(f"/_mock/batches/{sub.batch_id}/force", json={"status": "stuck"})
    assert r.status_code == 200 and r.get_json()["status"] == "stuck"
    assert bulk.status(sub.status_url).status == "stuck"
    assert bulk.profile("thirdPartyId", "c1") is None


def test_force_incomplete_holds_a_batch_until_forced_again(bulk, client, backend):
    backend.set_lifecycle("seconds=10")
    sub = bulk.submit(BODY)
    assert client.post(f"/_mock/batches/{sub.batch_id}/force", json={"status": "incomplete"}).status_code == 200
    backend.advance(60)
    assert bulk.status(sub.status_url).status == "incomplete"
    assert client.get(f"/_mock/batches/{sub.batch_id}").get_json()["forced"] is True
    client.post(f"/_mock/batches/{sub.batch_id}/force", json={"status": "complete"})
    assert bulk.status(sub.status_url).status == "complete"
    assert bulk.profile("thirdPartyId", "c3") == {"a": "3"}


def test_force_complete_applies_the_scripted_failures(bulk, client, backend):
    backend.set_lifecycle("manual,failed=1")
    sub = bulk.submit(BODY)
    client.post(f"/_mock/batches/{sub.batch_id}/force", json={"status": "complete"})
    assert bulk.status(sub.status_url, details=True).counters["failedUpdates"] == 1


def test_forcing_an_ended_batch_elsewhere_is_409_and_same_state_is_fine(bulk, client, backend):
    backend.set_lifecycle("immediate")
    sub = bulk.submit(BODY)
    r = client.post(f"/_mock/batches/{sub.batch_id}/force", json={"status": "stuck"})
    assert r.status_code == 409 and "already ended complete" in r.get_json()["error"]
    assert client.post(f"/_mock/batches/{sub.batch_id}/force", json={"status": "complete"}).status_code == 200


@pytest.mark.parametrize("body", [{"status": "failed"}, {"status": "in progress"}, {}])
def test_force_to_an_undocumented_state_is_400(bulk, client, body):
    sub = bulk.submit(BODY)
    r = client.post(f"/_mock/batches/{sub.batch_id}/force", json=body)
    assert r.status_code == 400 and "incomplete, complete or stuck" in r.get_json()["error"]


def test_force_unknown_batch_is_404(client):
    r = client.post("/_mock/batches/demo-1-12345678/force", json={"status": "complete"})
    assert r.status_code == 404


# --- reads never advance a lifecycle ---------------------------------------------------------------------
def test_control_reads_never_count_as_polls(bulk, client, backend):
    backend.set_lifecycle("polls=1")
    sub = bulk.submit(BODY)
    for _ in range(3):
        assert client.get(f"/_mock/batches/{sub.batch_id}").get_json()["polls"] == 0
        assert client.get("/_mock/batches").status_code == 200
        assert client.get("/_mock/tenants/demo/batches").status_code == 200
        assert client.get("/_mock/tenants/demo/profiles").status_code == 200
        assert client.get("/_mock/tenants/demo/profiles/thirdPartyId/c1").status_code == 404
        assert client.get("/_mock/journal").status_code == 200
        backend.batch(sub.batch_id)
        backend.batches()
        backend.profiles("demo")
    assert client.get(f"/_mock/batches/{sub.batch_id}").get_json()["status"] == "incomplete"
    assert bulk.status(sub.status_url).status == "incomplete"  # still the first real poll
    assert bulk.status(sub.status_url).status == "complete"


# --- determinism ---------------------------------------------------------------------------------------
def _script(seed: int) -> list[object]:
    be = MockBackend(MockConfig(seed=seed, lifecycle=Lifecycle.parse("immediate,failed=30%,lost=10%")))
    be.clock.freeze(1_701_473_848.678)
    c = create_app(be).test_client()
    body = b"batch=thirdPartyId,a\n" + b"".join(b"c%d,x\n" % i for i in range(50))
    out: list[object] = []
    for tenant in ("demo", "acme", "demo"):
        r = c.post(f"/m2/{tenant}/v2/profile/batchUpdate", data=body, content_type="application/x-www-form-urlencoded")
        url = r.data.split(b"<batchStatus>")[1].split(b"</batchStatus>")[0].decode()
        status = parse_batch_status(c.get(url + "&showDetails=true").data)
        batch = be.batch(status.batch_id)
        out += [status.batch_id, status.profiles, status.counters, batch["lostIds"]]
    return out


def test_same_seed_and_frozen_clock_give_the_same_ids_and_outcomes():
    first = _script(7)
    assert first == _script(7)
    assert first[0].startswith("demo-1701473848678-")  # type: ignore[union-attr]
    other = _script(8)
    assert other[0] != first[0] and other[1] != first[1]


def test_reset_replays_the_same_ids(bulk, client):
    before = [bulk.submit(BODY).batch_id for _ in range(2)]
    client.post("/_mock/reset")
    assert [bulk.submit(BODY).batch_id for _ in range(2)] == before


# --- the standalone default ------------------------------------------------------------------------------
def test_standalone_default_completes_shortly_after_submission():
    be = MockBackend()  # the CLI's defaults
    assert be.config.lifecycle == Lifecycle(mode="seconds", seconds=2.0)
    c = create_app(be).test_client()
    r = c.post("/m2/demo/v2/profile/batchUpdate", data=b"batch=thirdPartyId,a\nc1,x\n",
               content_type="application/x-www-form-urlencoded")
    url = r.data.split(b"<batchStatus>")[1].split(b"</batchStatus>")[0].decode()
    assert b"<status>incomplete</status>" in c.get(url).data
    be.advance(2)
    assert b"<status>complete</status>" in c.get(url).data


@pytest.mark.parametrize(("argv", "spec"), [([], "seconds=2"), (["--batch-delay", "0.5"], "seconds=0.5"),
                                            (["--lifecycle", "polls=2,stuck"], "polls=2,stuck")])
def test_cli_sets_the_default_lifecycle(argv, spec):
    assert config_from_args(_parser().parse_args(["serve", *argv])).lifecycle.spec() == spec


# --- single-update visibility delay ------------------------------------------------------------------------
def _update(client, tenant: str = "demo", value: str = "x"):
    return client.get(f"/m2/{tenant}/profile/update?mbox3rdPartyId=c1&profile.a={value}")


def test_single_updates_are_visible_at_once_by_default(client, backend):
    assert MockConfig().update_delay == 0
    backend.seed_profile("demo", third_party_id="c1")
    assert _update(client).status_code == 200
    assert client.get("/_mock/tenants/demo/profiles/thirdPartyId/c1").get_json()["attributes"] == {"a": "x"}


@pytest.mark.parametrize("level", ["server", "tenant"])
def test_single_update_visibility_delay(client, backend, level):
    if level == "server":
        assert client.put("/_mock/settings", json={"update_delay": 3600}).status_code == 200
    else:
        assert client.put("/_mock/settings", json={"update_delay": 3600, "tenant": "demo"}).status_code == 200
    backend.seed_profile("demo", third_party_id="c1", attributes={"a": "old"})
    assert _update(client, value="new").status_code == 200
    read = lambda: client.get("/rest/v1/profiles/thirdPartyId/c1?client=demo").get_json()  # noqa: E731
    assert read()["profileAttributes"]["a"]["value"] == "old"
    backend.advance(3599)
    assert read()["profileAttributes"]["a"]["value"] == "old"
    backend.advance(1)
    assert read()["profileAttributes"]["a"]["value"] == "new"


def test_time_based_batches_apply_in_the_order_they_ended(bulk, backend):
    """A batch submitted later but with a shorter delay ends first; the earlier batch's later end wins."""
    backend.seed_profile("demo", third_party_id="c1", attributes={"tier": "bronze"})
    backend.set_lifecycle("seconds=10")
    first = bulk.submit(b"batch=thirdPartyId,tier\nc1,gold\n")
    backend.set_lifecycle("seconds=1")
    bulk.submit(b"batch=thirdPartyId,tier\nc1,silver\n")
    backend.advance(30)  # both are due at the next read: silver ended at +1 s, gold at +10 s
    assert backend.get_profile("demo", "thirdPartyId", "c1")["attributes"]["tier"] == "gold"
    assert backend.batch(first.batch_id)["status"] == "complete"
