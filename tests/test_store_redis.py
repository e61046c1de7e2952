"""The Redis store: several backends (one per process in a deployment) on one Redis behave as one fake.

Two ``MockBackend`` objects on the same URL and prefix stand for two processes: each keeps its own
copy of what it read, so what one sees of the other's work went through Redis. One test uses real OS
processes. Nothing here mocks Redis: the fixtures start a real redis-server.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from target_profile_mock.contracts.batch import parse_batch
from target_profile_mock.mockserver.backend import MockBackend
from target_profile_mock.mockserver.config import MockConfig
from target_profile_mock.mockserver.errors import ControlError
from target_profile_mock.mockserver.lifecycle import Lifecycle
from target_profile_mock.mockserver.store import open_store

from target_profile_mock import create_app

T0 = 1_700_000_000.0
FORM = "application/x-www-form-urlencoded"
Make = Callable[..., MockBackend]


@pytest.fixture
def make(redis_url: str) -> Iterator[Make]:
    """Build backends on the test's Redis (each one a process's view of the shared fake)."""
    stores = []

    def build(config: MockConfig | None = None, *, prefix: str = "tpm", url: str = redis_url) -> MockBackend:
        store = open_store(url, prefix=prefix)
        stores.append(store)
        return MockBackend(config, store=store)

    yield build
    for s in stores:
        s.close()


def _submit(be: MockBackend, tenant: str, text: bytes, version: int = 2) -> str:
    file = parse_batch(text)
    batch_id = be.new_batch_id(tenant)
    be.submit_batch(tenant, version, file, batch_id, f"http://fake/{batch_id}")
    return batch_id


# --- opening --------------------------------------------------------------------------------------
def test_an_unreachable_redis_is_refused_with_its_url() -> None:
    with pytest.raises(ControlError, match=r"cannot reach the Redis store at redis://127\.0\.0\.1:1/0"):
        open_store("redis://127.0.0.1:1/0")


def test_an_unreachable_unix_socket_is_refused_with_its_url(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/none.sock"
    with pytest.raises(ControlError, match=f"cannot reach the Redis store at {url}"):
        open_store(url)


def test_without_the_redis_package_the_error_says_what_to_install(redis_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis now raises ImportError
    with pytest.raises(ControlError, match=r"pip install 'target-profile-mock\[redis\]'"):
        open_store(redis_url)


def test_a_redis_store_is_shared(make: Make) -> None:
    be = make()
    assert be.store.shared is True and be.store.url.startswith("redis://")


# --- adopting the state the store holds -------------------------------------------------------------
def test_a_second_process_adopts_the_state_and_the_settings_in_the_store(make: Make) -> None:
    first = make(MockConfig(lifecycle=Lifecycle.parse("polls=3"), update_delay=5.0, control_token="one"))
    first.seed_profile("acme", tnt_id="t1", attributes={"a": "1"})
    second = make(MockConfig(lifecycle=Lifecycle.parse("polls=1"), control_token="two"))
    # the store held settings: the second process's own are not applied, except its control token
    assert second.settings()["lifecycle"] == "polls=3" and second.config.update_delay == 5.0
    assert (first.config.control_token, second.config.control_token) == ("one", "two")
    assert second.get_profile("acme", "tntId", "t1")["attributes"] == {"a": "1"}  # type: ignore[index]


def test_the_first_process_writes_its_own_settings(make: Make) -> None:
    make(MockConfig(batch_max_rows=7))
    assert make().config.batch_max_rows == 7


def test_prefixes_are_separate_fakes_and_reset_clears_only_its_own(make: Make) -> None:
    a, b = make(prefix="one"), make(prefix="two")
    a.seed_profile("acme", tnt_id="t1")
    b.seed_profile("acme", tnt_id="t2")
    assert a.get_profile("acme", "tntId", "t2") is None
    a.reset()
    assert make(prefix="one").tenants() == [] and make(prefix="two").profiles("acme")[0]["tntId"] == "t2"


# --- one fake across processes -----------------------------------------------------------------------
def test_a_profile_written_through_one_process_is_read_through_another(make: Make) -> None:
    a, b = make(), make()
    a.seed_profile("acme", tnt_id="t1", attributes={"x": "1"})
    assert b.single_update("acme", "tntId", "t1", None, {"x": "2"}) is None
    assert a.fetch("acme", "tntId", "t1")[0]["x"][0] == "2"  # type: ignore[index]
    b.delete_profile("acme", "tntId", "t1")
    assert a.fetch("acme", "tntId", "t1") is None


def test_a_batch_submitted_through_one_process_is_polled_through_another_and_applied_once(make: Make) -> None:
    a = make(MockConfig(lifecycle=Lifecycle.parse("polls=2")))
    b = make()
    a.seed_profile("acme", tnt_id="p1", attributes={"n": "0"})
    batch_id = _submit(a, "acme", b"batch=pcId,n\np1,1\np2,2\n")
    assert b.poll_batch("acme", batch_id).state == "incomplete"  # type: ignore[union-attr]
    assert a.poll_batch("acme", batch_id).state == "incomplete"  # type: ignore[union-attr]
    ended = b.poll_batch("acme", batch_id)
    assert ended is not None and ended.state == "complete" and ended.polls == 3
    assert a.batch(batch_id)["status"] == "complete" and a.batch(batch_id)["polls"] == 3
    assert a.get_profile("acme", "tntId", "p1")["attributes"] == {"n": "1"}  # type: ignore[index]
    # the v2 batch created the profile it did not find, once
    assert [p["tntId"] for p in b.profiles("acme")] == ["p1", "p2"]


def _batches_scenario(a: MockBackend, b: MockBackend) -> list[object]:
    """Batches creating, updating and re-batching profiles, alternating between two backends; what each
    step answers."""
    for be in {id(a): a, id(b): b}.values():
        be.clock.freeze(T0)
    a.configure(lifecycle="immediate")
    rows = "".join(f"t{i}.28_0,{i},x\n" for i in range(50))
    seen: list[object] = []
    _submit(a, "acme", f"batch=pcId,n,s\n{rows}".encode())
    seen += [b.tenant_summary("acme")["profiles"], b.fetch("acme", "tntId", "t7"), a.get_profile("acme", "tntId", "t7")]
    b.advance(1)
    b.single_update("acme", "tntId", "t8", None, {"n": "eight"})
    seen.append(a.get_profile("acme", "tntId", "t8"))
    a.advance(1)
    # a second batch names some of them again (pending rows, a profile already read) and new ones
    _submit(b, "acme", b"batch=pcId,n\nt8,8b\nt9,9b\nnew1,1\n")
    seen += [a.get_profile("acme", "tntId", i) for i in ("t8", "t9", "new1", "t10")]
    seen += [a.tenant_summary("acme")["profiles"], sorted(p["tntId"] for p in b.profiles("acme"))]
    # a v1 batch updates only what exists, and a delete goes through the other process
    a.delete_profile("acme", "tntId", "t3")
    _submit(b, "acme", b"batch=pcId,n\nt3,3c\nt4,4c\nghost,1\n", version=1)
    seen += [b.batches("acme")[-1]["counters"], a.get_profile("acme", "tntId", "t4"), len(a.profiles("acme"))]
    return seen


def test_profiles_created_by_batches_behave_across_processes_as_in_memory(make: Make) -> None:
    memory = MockBackend()
    assert _batches_scenario(make(), make()) == _batches_scenario(memory, memory)


def test_the_bulk_limit_counts_every_process_exactly(make: Make) -> None:
    backends = [make(), make(), make()]
    backends[0].clock.freeze(T0)
    passed = sum(backends[i % 3].acquire_rate("acme", "bulk") is None for i in range(80))
    assert passed == 50
    assert all(be.acquire_rate("acme", "bulk") == pytest.approx(60.0) for be in backends)
    backends[2].advance(60)
    assert backends[1].acquire_rate("acme", "bulk") is None


def test_a_call_timed_a_moment_ahead_by_another_process_still_counts(make: Make) -> None:
    # each process reads the shared clock before its script runs: the call counted first may carry the
    # later time, and must still count against the one counted after it
    be = make()
    be.configure(bulk_calls_per_minute=5)
    window, single = be.tenant("acme").bulk_window, be.tenant("acme").single_window
    for _ in range(5):
        assert window.try_acquire(T0 + 0.004) is None
    assert window.try_acquire(T0 + 0.003) is not None
    assert window.count(T0 + 0.004) == 5
    be.configure(single_updates_per_day=2)
    single = be.tenant("acme").single_window
    assert single.try_acquire(T0 + 60.0) is None  # the next minute's bucket
    assert single.try_acquire(T0 + 59.999) is None
    assert single.try_acquire(T0 + 59.998) is not None


def test_a_clock_moved_back_leaves_the_later_calls_out_of_the_window(make: Make) -> None:
    be = make()
    be.configure(bulk_calls_per_minute=2)
    window = be.tenant("acme").bulk_window
    assert window.try_acquire(T0 + 30) is None and window.try_acquire(T0 + 30) is None
    assert window.try_acquire(T0 + 10) is None  # 20 s back: those calls have not happened yet


def test_threads_of_two_processes_share_the_limit_and_lose_no_update(make: Make) -> None:
    a, b = make(), make()
    a.clock.freeze(T0)
    a.seed_profile("acme", tnt_id="t1")
    passed: list[bool] = []

    def work(be: MockBackend, n: int) -> None:
        for i in range(20):
            passed.append(be.acquire_rate("acme", "bulk") is None)
            be.single_update("acme", "tntId", "t1", None, {f"k{n}-{i}": "v"})

    threads = [threading.Thread(target=work, args=((a, b)[n % 2], n)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(passed) == 50 and len(passed) == 120
    assert len(b.get_profile("acme", "tntId", "t1")["attributes"]) == 120  # type: ignore[index]


def _hammer(url: str, calls: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = open_store(url)
    be = MockBackend(store=store)
    out.put(sum(be.acquire_rate("acme", "bulk") is None for _ in range(calls)))
    store.close()


@pytest.mark.slow
def test_the_bulk_limit_holds_across_real_processes(redis_url: str, make: Make) -> None:
    make().clock.freeze(T0)  # the processes adopt the frozen clock: no call leaves the window
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(redis_url, 40, out)) for _ in range(3)]
    for p in procs:
        p.start()
    counts = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert sum(counts) == 50, counts


def test_a_fault_with_times_1_fires_once_across_processes(make: Make) -> None:
    a, b = make(), make()
    a.faults.add(503, operation="batch-submit", times=1)
    hits = [be.faults.take("batch-submit", "acme") for be in (b, a, b)]
    assert [h is not None for h in hits] == [True, False, False]
    assert a.faults.list() == [] == b.faults.list()


def test_a_seeded_probability_draws_the_same_sequence_whichever_process_answers(make: Make,
                                                                               redis_url: str) -> None:
    def draws(backends: list[MockBackend]) -> list[bool]:
        backends[0].faults.add(500, probability=0.5, seed=11)
        return [backends[i % len(backends)].faults.take("fetch", "acme") is not None for i in range(30)]

    one = MockBackend()
    alone = draws([one])
    shared = draws([make(prefix="p"), make(prefix="p")])
    assert shared == alone and 0 < sum(alone) < 30


def test_seeded_ids_and_tokens_continue_one_sequence_across_processes(make: Make) -> None:
    def draws(one: MockBackend, other: MockBackend) -> list[str]:
        one.clock.freeze(T0)
        return [one.new_batch_id("acme"), other.issue_token("acme").value, one.issue_token("beta").value,
                other.new_batch_id("acme")]

    memory = MockBackend(MockConfig(seed=5))
    assert draws(make(MockConfig(seed=5)), make()) == draws(memory, memory)


def test_a_clock_change_is_seen_by_every_process_at_its_next_operation(make: Make) -> None:
    a, b = make(), make()
    a.clock.freeze(T0)
    b.advance(90)
    assert a.settings() and a.clock.now() == T0 + 90
    assert b.clock.frozen
    a.clock.unfreeze()
    b.tenants()
    assert not b.clock.frozen


def test_refresh_brings_in_another_process_s_changes_without_the_lock(make: Make) -> None:
    a, b = make(), make()
    b.tenants()
    a.clock.freeze(T0)
    a.faults.add(503, operation="fetch")
    a.seed_profile("acme", tnt_id="t1")
    assert not b.clock.frozen and len(b.faults) == 0  # reads outside an operation: as last seen
    with a.lock:  # another process holds the lock: refresh does not wait for it
        b.store.refresh()
    assert b.clock.now() == T0 and len(b.faults) == 1 and "acme" in dict.keys(b._tenants)
    MockBackend().store.refresh()  # the memory store has nothing to bring in


def test_reads_do_not_wait_for_the_lock_and_writing_inside_one_is_refused(make: Make) -> None:
    a, b = make(), make()
    a.set_auth("acme", True)
    token = a.issue_token("acme").value
    with a.lock:  # another process is inside an operation: a token check and a limit still answer
        assert b.check_token("acme", token) is None and b.rate_limit("acme", "bulk") == 50
    with b.store.read(), b.store.read():
        assert b.check_token("acme", "stale") is not None
        with pytest.raises(RuntimeError, match=r"writes ran inside store\.read"):
            b.issue_token("acme")
    assert b.issue_token("acme").value != token  # after the read, writing works again


def test_a_server_wide_limit_set_through_one_process_holds_in_another(make: Make) -> None:
    a, b = make(), make()
    b.clock.freeze(T0)
    assert b.acquire_rate("acme", "bulk") is None  # b holds the tenant, with the limit of then
    a.configure(bulk_calls_per_minute=2)
    assert [b.acquire_rate("acme", "bulk") is None for _ in range(2)] == [True, False]
    assert b.tenant_summary("acme")["rateLimits"]["bulk"] == {"limit": 2, "windowSeconds": 60.0, "used": 2}


def test_tokens_and_settings_are_shared(make: Make) -> None:
    a, b = make(), make()
    a.set_auth("acme", True)
    token = a.issue_token("acme").value
    assert b.check_token("acme", token) is None
    assert b.check_token("acme", "stale") is not None
    b.configure("acme", bulk_calls_per_minute=2)
    assert a.rate_limit("acme", "bulk") == 2


def test_the_journal_is_shared_and_bounded(make: Make) -> None:
    a = make(MockConfig(journal_size=3))
    b = make()
    ca, cb = create_app(a).test_client(), create_app(b).test_client()
    a.seed_profile("demo", tnt_id="t1")
    for i in range(5):
        (ca if i % 2 else cb).get(f"/m2/demo/profile/update?mboxPC=t1&profile.n={i}")
    entries = b.journal.entries()
    assert [e.parsed["attributes"]["n"] for e in entries] == ["2", "3", "4"]
    assert [e.seq for e in entries] == [3, 4, 5]
    assert [e["seq"] for e in cb.get("/_mock/journal").get_json()] == [3, 4, 5]
    a.reset()
    assert len(b.journal) == 0


def test_an_operation_that_outlives_the_lock_is_not_written_and_says_so(make: Make,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from target_profile_mock.mockserver.store import redis as redis_store

    a, b = make(), make()
    monkeypatch.setattr(redis_store, "LOCK_TTL_MS", 100)
    with pytest.raises(ControlError, match="outlived the Redis store's lock") as caught, a.lock:
        a.seed_profile("acme", tnt_id="slow")
        time.sleep(0.3)  # the lock expires; another process goes on
        b.seed_profile("acme", tnt_id="quick")
    assert caught.value.status == 503
    for be in (a, b):  # the late write changed nothing; the first process reads what Redis holds again
        assert [p["tntId"] for p in be.profiles("acme")] == ["quick"]


# --- snapshots move state between the stores -------------------------------------------------------
def test_a_snapshot_restored_over_the_same_batches_replaces_them(make: Make) -> None:
    a, b = make(MockConfig(lifecycle=Lifecycle.parse("polls=1"))), make()
    batch_id = _submit(a, "acme", b"batch=pcId,n\np1,1\n")
    before = a.snapshot()
    for _ in range(2):
        b.poll_batch("acme", batch_id)  # the second poll applies it: counters and the profile change
    after = b.snapshot()
    assert after["tenants"]["acme"]["batches"][0]["state"] == "complete"
    before["tenants"]["acme"]["batches"][0]["polls"] = 2  # the same polls, state and times, other counters
    before["tenants"]["acme"]["batches"][0]["state"] = "complete"
    before["tenants"]["acme"]["batches"][0]["endedMs"] = after["tenants"]["acme"]["batches"][0]["endedMs"]
    a.restore(before)
    assert b.batch(batch_id)["counters"] == {} and b.profiles("acme") == []


def test_a_snapshot_moves_from_memory_to_redis_and_back_unchanged(make: Make) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_snapshot import _busy_backend  # the snapshot tests' backend holding some of everything

    memory = _busy_backend()
    snap = memory.snapshot(journal=True)
    redis_be = make()
    redis_be.restore(json.loads(json.dumps(snap)))
    # a second process on the same Redis sees the restored state
    again = make().snapshot(journal=True)
    back = MockBackend()
    back.restore(again)
    assert back.snapshot(journal=True) == snap == again


def test_drop_removes_the_prefix_and_only_it(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    stores = [open_store(redis_url, prefix=p) for p in ("a*", "a*b", "other")]
    try:
        for store in stores:
            be = MockBackend(MockConfig(), store=store)
            be.seed_profile("acme", third_party_id="cust-1")
            create_app(be).test_client().get("/m2/acme/profile/update?mbox3rdPartyId=cust-1&profile.tier=gold")
        stores[0].drop()
        keys = {k.decode() for k in client.keys("*")}
        assert not [k for k in keys if k.startswith("a*:")]
        # "a*:*" read as a pattern would match "a*b:..." too
        assert [k for k in keys if k.startswith("a*b:")] and [k for k in keys if k.startswith("other:")]
    finally:
        for store in stores:
            store.close()
