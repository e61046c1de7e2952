"""Snapshots of the whole state: export, restore, the state file, and what a bad snapshot gets."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from target_profile_mock.mockserver.backend import ControlError
from target_profile_mock.mockserver.config import MockConfig
from target_profile_mock.mockserver.snapshot import FORMAT, VERSION, read_file, write_file

from target_profile_mock import Lifecycle, MockBackend, create_app

ROOT = Path(__file__).resolve().parent.parent
FORM = "application/x-www-form-urlencoded"
T0 = 1_700_000_000.0


def _busy_backend() -> MockBackend:
    """A backend holding some of everything a snapshot carries."""
    be = MockBackend(MockConfig(seed=7))
    be.clock.freeze(T0)
    be.seed_profile("acme", third_party_id="c1", tnt_id="t1", attributes={"tier": "gold"})
    be.seed_profile("acme", ecid="e1", attributes={"x": "1"})
    be.configure("acme", lifecycle="polls=2,failed=1", bulk_calls_per_minute=None, auth=True)
    be.configure(update_delay=30.0, token_ttl=600.0)
    be.faults.add("latency", latency=(0.0, 0.0001), probability=0.5, tenant="other")
    be.faults.add(503, operation="fetch", times=3)
    app = create_app(be)
    c = app.test_client()
    token = be.current_token("acme").value
    auth = {"Authorization": f"Bearer {token}"}
    # a batch that stays incomplete (polls=2, polled once) and one ended by polling
    r = c.post("/m2/acme/v2/profile/batchUpdate", data=b"batch=thirdPartyId,tier,city\nc1,platinum,Bern\nc9,,Zug\n",
               content_type=FORM, headers=auth)
    assert r.status_code == 200, r.data
    be.advance(1.5)
    r = c.post("/m2/acme/profile/batchUpdate", data=b"batch=pcId,city\nt1,Basel\n", content_type=FORM,
               headers=auth)
    assert r.status_code == 200, r.data
    first, second = (b["batchId"] for b in be.batches("acme"))
    for _ in range(3):
        be.poll_batch("acme", second)
    be.poll_batch("acme", first)
    # a delayed single update still waiting, and the rate-limit window of another tenant
    r = c.get("/m2/acme/profile/update?mbox3rdPartyId=c1&profile.color=red", headers=auth)
    assert r.status_code == 200, r.data
    for _ in range(3):
        c.post("/m2/other/profile/batchUpdate", data=b"batch=pcId,a\np1,1\n", content_type=FORM)
        be.advance(2)
    return be


def test_a_snapshot_round_trips_through_json_into_a_new_backend() -> None:
    be = _busy_backend()
    snap = be.snapshot()
    assert snap["format"] == FORMAT and snap["version"] == VERSION
    assert "journal" not in snap
    other = MockBackend()
    other.restore(json.loads(json.dumps(snap)))
    assert other.snapshot() == snap
    # what the fake answers is the same on both, down to the timestamps and the lifecycle positions
    for b in (be, other):
        assert b.clock.now() == T0 + 7.5
    assert other.profiles("acme") == be.profiles("acme")
    assert other.batches() == be.batches()
    assert other.settings("acme") == be.settings("acme")
    assert other.current_token("acme") == be.current_token("acme")
    assert other.faults.list() == be.faults.list()


def test_a_restored_backend_goes_on_as_the_original_would() -> None:
    be = _busy_backend()
    other = MockBackend()
    other.restore(be.snapshot())
    incomplete = next(b for b in be.batches("acme") if b["status"] == "incomplete")
    # the next poll ends the polls=2 batch on both; the delayed update lands after its delay on both
    for b in (be, other):
        assert b.poll_batch("acme", incomplete["batchId"]).state == "incomplete"  # type: ignore[union-attr]
        assert b.poll_batch("acme", incomplete["batchId"]).state == "complete"  # type: ignore[union-attr]
        assert "color" not in (b.get_profile("acme", "thirdPartyId", "c1") or {})["attributes"]
        b.advance(30)
        assert b.get_profile("acme", "thirdPartyId", "c1")["attributes"]["color"] == "red"  # type: ignore[index]
        b.faults.take("fetch", "acme")
    assert other.snapshot() == be.snapshot()
    # ids drawn after the restore are the ones the original draws
    assert other.new_batch_id("acme") == be.new_batch_id("acme")
    assert other.issue_token("acme") == be.issue_token("acme")


def test_rate_limit_windows_survive() -> None:
    be = MockBackend()
    be.clock.freeze(T0)
    be.configure(bulk_calls_per_minute=2)
    assert be.acquire_rate("acme", "bulk") is None
    assert be.acquire_rate("acme", "bulk") is None
    other = MockBackend()
    other.restore(be.snapshot())
    assert other.acquire_rate("acme", "bulk") == pytest.approx(60.0)
    for _ in range(5):
        be.acquire_rate("acme", "single")
    other.restore(be.snapshot())
    assert other.tenant("acme").single_window.used == 5


def test_the_journal_is_kept_only_when_asked() -> None:
    be = _busy_backend()
    snap = be.snapshot(journal=True)
    assert len(snap["journal"]) == len(be.journal) > 0
    other = MockBackend()
    other.restore(json.loads(json.dumps(snap)))
    assert [e.to_dict() for e in other.journal] == [e.to_dict() for e in be.journal]
    # the journal's byte bound counts them again (an estimate, as when they were recorded)
    assert other.journal.bytes == pytest.approx(be.journal.bytes, rel=0.2)
    assert other.journal.next_seq() == max(e.seq for e in be.journal) + 1
    # without a journal in the snapshot, the journal is left alone
    other.restore(be.snapshot())
    assert len(other.journal) == len(be.journal)


def test_applied_large_batches_keep_their_counters_without_rows() -> None:
    be = MockBackend(MockConfig(keep_rows_max=1, lifecycle=Lifecycle("immediate")))
    c = create_app(be).test_client()
    r = c.post("/m2/acme/v2/profile/batchUpdate", data=b"batch=thirdPartyId,a\nu1,1\nu2,2\n", content_type=FORM)
    assert r.status_code == 200
    be.profiles("acme")  # ends it
    snap = be.snapshot()
    assert snap["tenants"]["acme"]["batches"][0]["file"]["rows"] is None
    other = MockBackend()
    other.restore(snap)
    assert other.batches() == be.batches()
    assert other.batch(be.batches()[0]["batchId"])["rows"] is None
    assert other.get_profile("acme", "thirdPartyId", "u2")["attributes"] == {"a": "2"}  # type: ignore[index]


def test_batches_whose_details_were_dropped_round_trip() -> None:
    be = _busy_backend()
    ended = next(b for t in be._tenants.values() for b in t.batches if b.state != "incomplete")
    assert ended.drop_details() > 0
    snap = be.snapshot()
    other = MockBackend()
    other.restore(snap)
    assert other.batches() == be.batches()
    assert other.batch_bytes() == be.batch_bytes()
    # an incomplete batch cannot have dropped its rows: they are still to be applied
    bad = copy.deepcopy(snap)
    for b in bad["tenants"]["acme"]["batches"]:
        if b["state"] == "incomplete":
            b.update(detailsDropped=True, ids=[], file=dict(b["file"], rows=None))
    with pytest.raises(ControlError, match="only an ended batch drops its details"):
        other.restore(bad)


def test_the_control_token_is_never_in_a_snapshot_nor_replaced_by_one() -> None:
    assert "random_tokens" not in MockBackend(MockConfig(random_tokens=True)).snapshot()["settings"]
    be = MockBackend(MockConfig(control_token="s3cret"))
    snap = be.snapshot()
    assert "s3cret" not in json.dumps(snap)
    other = MockBackend(MockConfig(control_token="mine"))
    other.restore(snap)
    assert other.config.control_token == "mine"


# --- refused snapshots: a clear error and nothing changed ----------------------------------------
def _mutations() -> list[Any]:
    def set_(path: str, value: Any) -> Any:
        def apply(d: dict[str, Any]) -> None:
            *head, last = path.split(".")
            for key in head:
                d = d[int(key)] if key.isdigit() else d[key]  # type: ignore[index]
            d[int(last) if last.isdigit() else last] = value  # type: ignore[index]
        return apply

    return [
        pytest.param(set_("version", VERSION + 1), ["format version 2", "newer target-profile-mock",
                                                    f"reads versions up to {VERSION}"], id="newer"),
        pytest.param(set_("format", "something-else"), ["not a target-profile-mock snapshot"], id="format"),
        pytest.param(set_("version", "1"), ["snapshot.version: expected a whole number >= 1"], id="version-type"),
        pytest.param(set_("tenants.acme.profiles.0.attributes.tier", ["gold"]),
                     ["snapshot.tenants.acme.profiles[0].attributes.tier", "[value, modified epoch ms]"],
                     id="attribute"),
        pytest.param(set_("tenants.acme.batches.1.polls", -1),
                     ["snapshot.tenants.acme.batches[1].polls: expected a whole number >= 0"], id="polls"),
        pytest.param(set_("tenants.acme.batches.1.state", "done"),
                     ["snapshot.tenants.acme.batches[1].state", "incomplete", "stuck"], id="state"),
        pytest.param(set_("tenants.acme.batches.0.lifecycle.mode", "soon"),
                     ["snapshot.tenants.acme.batches[0].lifecycle.mode"], id="lifecycle"),
        pytest.param(set_("tenants.acme.batches.0.ids", []), ["disagree on the number of rows"], id="ids"),
        pytest.param(set_("tenants.acme.settings.bulk_calls_per_minute", -4),
                     ["snapshot.tenants.acme.settings", "bulk_calls_per_minute"], id="tenant-setting"),
        pytest.param(set_("settings.journal_size", "many"), ["snapshot.settings", "journal_size"], id="setting"),
        pytest.param(set_("settings.colour", "red"), ["unknown setting(s) ['colour']"], id="unknown-setting"),
        pytest.param(set_("faults.rules.1.kind", "explode"), ["snapshot.faults.rules[1]", "unknown fault kind"],
                     id="fault"),
        pytest.param(set_("faults.nextId", 1), ["snapshot.faults.nextId"], id="fault-ids"),
        pytest.param(set_("tenants.acme.token", {"value": "x"}), ["snapshot.tenants.acme.token",
                                                                  "'issuedMs' is missing"], id="token"),
        pytest.param(set_("clock.frozenAt", 1e300), ["snapshot.clock.frozenAt"], id="clock"),
        pytest.param(set_("tenants.acme.batches.0.file.violations", [{"rule": "no.such", "detail": ""}]),
                     ["no rule 'no.such'"], id="rule"),
        pytest.param(set_("tenants.zz", {}), ["snapshot.tenants.zz", "'settings' is missing"], id="tenant"),
    ]


@pytest.mark.parametrize(("mutate", "fragments"), _mutations())
def test_a_bad_snapshot_is_refused_whole_and_changes_nothing(mutate: Any, fragments: list[str]) -> None:
    source = _busy_backend()
    snap = copy.deepcopy(source.snapshot())
    mutate(snap)
    target = MockBackend()
    target.seed_profile("keep", tnt_id="k1")
    target.faults.add(500)
    before = target.snapshot(journal=True)
    with pytest.raises(ControlError) as info:
        target.restore(snap)
    assert info.value.status == 400
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    assert target.snapshot(journal=True) == before


# --- over the control API ------------------------------------------------------------------------
def test_get_and_put_snapshot_round_trip_over_the_control_api() -> None:
    source = _busy_backend()
    c = create_app(source).test_client()
    got = c.get("/_mock/snapshot")
    assert got.status_code == 200 and got.is_json
    assert got.get_json() == source.snapshot()
    assert "journal" in c.get("/_mock/snapshot?journal=1").get_json()
    assert c.get("/_mock/snapshot?journal=maybe").status_code == 400
    target = MockBackend()
    tc = create_app(target).test_client()
    r = tc.put("/_mock/snapshot", data=got.data, content_type="application/json")
    assert r.status_code == 200 and r.get_json() == {"restored": True, "tenants": ["acme", "other"],
                                                     "journal": False}
    assert target.snapshot() == source.snapshot()


def test_put_snapshot_refuses_a_bad_one_with_the_field_and_keeps_the_state() -> None:
    target = MockBackend()
    target.seed_profile("keep", tnt_id="k1")
    tc = create_app(target).test_client()
    snap = target.snapshot()
    snap["version"] = 99
    r = tc.put("/_mock/snapshot", json=snap)
    assert r.status_code == 400 and "format version 99" in r.get_json()["error"]
    r = tc.put("/_mock/snapshot", json=[1])
    assert r.status_code == 400 and "send a snapshot" in r.get_json()["error"]
    r = tc.put("/_mock/snapshot", data=b'{"format": ', content_type="application/json")
    assert r.status_code == 400 and "not valid JSON" in r.get_json()["error"]
    assert target.profiles("keep")


def test_post_snapshot_writes_the_state_file(tmp_path: Path) -> None:
    be = _busy_backend()
    c = create_app(be).test_client()
    r = c.post("/_mock/snapshot")
    assert r.status_code == 409 and "--state-file" in r.get_json()["error"]
    be.state_file = str(tmp_path / "state.json")
    r = c.post("/_mock/snapshot")
    assert r.status_code == 200 and r.get_json()["written"] == be.state_file
    assert r.get_json()["bytes"] == os.path.getsize(be.state_file)
    assert read_file(be.state_file) == be.snapshot()
    be.state_file = str(tmp_path / "no-such-folder" / "state.json")
    r = c.post("/_mock/snapshot")
    assert r.status_code == 500 and "cannot write the state file" in r.get_json()["error"]


# --- the file ------------------------------------------------------------------------------------
def test_save_and_load_leave_no_temporary_files(tmp_path: Path) -> None:
    be = _busy_backend()
    path = tmp_path / "state.json"
    be.save(str(path))
    be.save(str(path))
    assert os.listdir(tmp_path) == ["state.json"]
    other = MockBackend()
    other.load(str(path))
    assert other.snapshot() == be.snapshot()


def test_a_damaged_file_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_file(path, _busy_backend().snapshot())
    path.write_bytes(path.read_bytes()[:-40])  # cut short, as a copy interrupted half-way would be
    target = MockBackend()
    target.seed_profile("keep", tnt_id="k1")
    with pytest.raises(ControlError, match=r"not valid JSON \(truncated or damaged"):
        target.load(str(path))
    assert target.tenants() == ["keep"]
    with pytest.raises(ControlError, match="cannot read the state file"):
        target.load(str(tmp_path / "missing.json"))


_WRITER = """
import os, sys, time
from target_profile_mock import MockBackend

def stall(fd):
    # the new state is on its way to disk: the moment a crash is most likely to damage a file
    print("writing", flush=True)
    time.sleep(60)

be = MockBackend()
be.seed_profiles("acme", [{"thirdPartyId": f"c{i}", "attributes": {"n": str(i)}} for i in range(2000)])
os.fsync = stall
be.save(sys.argv[1])
print("done without stopping to flush", flush=True)
"""


def test_kill_9_while_writing_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    before = MockBackend()
    before.seed_profile("acme", tnt_id="first")
    before.save(str(path))
    old = path.read_bytes()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    assert path.read_bytes() == old
    other = MockBackend()
    other.load(str(path))
    assert [p["tntId"] for p in other.profiles("acme")] == ["first"]
    # a killed writer leaves at most its temporary file beside the state file; the next save works
    assert all(name == "state.json" or name.startswith(".state.json.") for name in os.listdir(tmp_path))
    before.seed_profile("acme", tnt_id="second")
    before.save(str(path))
    other.load(str(path))
    assert {p["tntId"] for p in other.profiles("acme")} == {"first", "second"}


def _visit(be: MockBackend, tenant: str, ids: dict[str, str], params: dict[str, str]) -> dict[str, Any]:
    from target_profile_mock.contracts.delivery import parse_delivery

    body = {"context": {"channel": "web"}, "execute": {"mboxes": [{"index": 1, "name": "home",
                                                                   "profileParameters": params}]}}
    if ids:
        body["id"] = ids
    req = parse_delivery({"sessionId": "s"}, json.dumps(body).encode())
    assert not req.errors
    return be.visit(tenant, req)


def test_visitors_logins_offers_and_profile_life_survive() -> None:
    be = MockBackend(MockConfig(login_sync_delay=60.0, profile_lifetime=3600.0))
    be.clock.freeze(T0)
    tnt = _visit(be, "acme", {}, {"tier": "gold"})["id"]["tntId"]
    be.seed_profile("acme", third_party_id="cust-1", attributes={"city": "Bern"})
    be.advance(100)
    _visit(be, "acme", {"tntId": tnt, "thirdPartyId": "cust-1"}, {})  # a login, connected after 60 s
    be.set_offer("acme", "home", {"banner": "spring"})
    other = MockBackend()
    other.restore(json.loads(json.dumps(be.snapshot())))
    assert other.snapshot() == be.snapshot()
    assert other.tenant("acme").logins and other.tenant("acme").offers == be.tenant("acme").offers
    for b in (be, other):
        b.advance(60)  # the login lands on both
        assert b.get_profile("acme", "thirdPartyId", "cust-1")["attributes"] == {"tier": "gold", "city": "Bern"}  # type: ignore[index]
        b.advance(3600)  # idle for the whole lifetime: gone on both
        assert b.get_profile("acme", "thirdPartyId", "cust-1") is None
