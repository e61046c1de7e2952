"""The single update's one-script path on Redis: the same answers and profiles as the in-memory store,
its round trips, and the cases that must take the transaction instead."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import redis.client
import requests
from bulk_client import BulkClient
from flask.testing import FlaskClient
from redis_server import RedisServer, redis_server_path
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.server import LiveServer
from target_profile_mock.mockserver.store import open_store
from target_profile_mock.mockserver.store.redis import shown_url

TNT = "1368007744041-575948.01_00"
# names and values a JSON record must keep exactly: quotes, backslashes, brackets, non-ASCII, key-like text
TRICKY = [
    {"tier": "gold", "city": "Zürich"},
    {"note": 'say "hi" \\ bye', "tier": "", "x": "],\"tier\":[\"z\",1]"},
    {'q"uo\\te': "v1", "activeMs": "1", "attributes": "{}", "tier": "platinum"},
    {"note": "\\", "emoji": "🙂", "city": ""},
    {"x": "\\\"", 'q"uo\\te': "v2"},
]


@pytest.fixture
def pair(redis_url: str) -> Iterator[Callable[[Callable[[MockBackend, FlaskClient], Any]], tuple[Any, Any]]]:
    """Run a scenario on a memory backend and on a Redis one; answer both results."""
    stores: list[Any] = []

    def run(scenario: Callable[[MockBackend, FlaskClient], Any]) -> tuple[Any, Any]:
        out = []
        for url in (None, redis_url):
            store = None if url is None else open_store(url, prefix=f"p{len(stores)}")
            stores.append(store)
            be = MockBackend(MockConfig(lifecycle=Lifecycle.parse("polls=1")), store=store)
            be.clock.freeze(1_780_000_000.0)  # both at the same time, so their answers compare byte for byte
            be.seed_profile("acme", tnt_id=TNT, third_party_id="cust-1", attributes={"tier": "silver"})
            out.append(scenario(be, create_app(be).test_client()))
        return out[0], out[1]

    yield run
    for s in stores:
        if s is not None:
            s.close()


def _update(client: FlaskClient, attributes: dict[str, str], **ids: str) -> tuple[int, bytes, str | None]:
    body = urlencode({**ids, **{f"profile.{k}": v for k, v in attributes.items()}})
    r = client.post("/m2/acme/profile/update", data=body, content_type="application/x-www-form-urlencoded")
    return r.status_code, r.data, r.headers.get("Retry-After")


def _fetch(client: FlaskClient) -> tuple[bytes, bytes]:
    return (client.get(f"/rest/v1/profiles/{TNT}?client=acme").data,
            client.get("/rest/v1/profiles/thirdPartyId/cust-1?client=acme").data)


def _journal(be: MockBackend) -> Any:
    """What the journal holds, as its readers see it (not the entries' weights, which each store reckons
    its own way)."""
    return [(e.seq, e.operation, e.tenant, e.method, e.path, e.status, e.body, e.response_body, e.response_size,
             [v.rule.id for v in e.violations], e.parsed) for e in be.journal.entries()]


def _scripts(be: MockBackend) -> list[str]:
    """The fast path's answers during the backend's next calls (spies on the store's script)."""
    answers: list[str] = []
    store = be.store
    call = store._call  # type: ignore[attr-defined]

    def spy(script: Any, keys: list[Any], args: list[Any]) -> Any:
        got = call(script, keys, args)
        if script is store._fast_single:  # type: ignore[attr-defined]
            answers.append(got[0].decode())
        return got

    store._call = spy  # type: ignore[attr-defined]
    return answers


def test_updates_through_the_script_answer_and_store_what_memory_does(pair: Any) -> None:
    def scenario(be: MockBackend, client: FlaskClient) -> Any:
        answers = _scripts(be) if be.store.shared else None
        out = []
        for n, attributes in enumerate(TRICKY):
            be.advance(1)
            ids = {"mbox3rdPartyId": "cust-1"} if n % 2 else {"mboxPC": TNT}
            out.append(_update(client, attributes, **ids))
            out.append(_fetch(client))
        out.append(_update(client, {"tier": "x"}, mbox3rdPartyId="nobody"))  # updates never create
        out.append(_update(client, {"tier": "y"}, mbox3rdPartyId="nobody", mboxPC=TNT))  # the fallback id
        out.append(_fetch(client))
        out.append(be.get_profile("acme", "thirdPartyId", "cust-1"))
        out.append(be.get_profile("acme", "thirdPartyId", "nobody"))
        out.append(_journal(be))
        if answers is not None:
            assert answers == ["done"] * (len(TRICKY) + 2)  # every one took the script
        return out

    memory, on_redis = pair(scenario)
    assert on_redis == memory


def _round_trips(store: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The round trips the store makes from now on: its scripts (by the first key's name) and any plain
    redis-py command."""
    trips: list[str] = []
    call, execute = store._call, redis.client.Redis.execute_command

    def script(script: Any, keys: list[Any], args: list[Any]) -> Any:
        trips.append(f"script {keys[0]}")
        return call(script, keys, args)

    def command(self: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(str(args[0]))
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(store, "_call", script)
    monkeypatch.setattr(redis.client.Redis, "execute_command", command)
    return trips


def test_a_single_update_takes_two_round_trips_and_one_when_optimistic(redis_url: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(redis_url)
    try:
        be = MockBackend(MockConfig(), store=store)
        be.seed_profile("acme", third_party_id="cust-1", attributes={"tier": "silver"})
        client = create_app(be).test_client()
        client.post("/m2/acme/profile/update?mbox3rdPartyId=cust-1&profile.tier=gold")  # loads the scripts
        trips = _round_trips(store, monkeypatch)
        r = client.post("/m2/acme/profile/update?mbox3rdPartyId=cust-1&profile.tier=platinum")
        assert r.status_code == 200
        # the token check's refresh, the update's script (rate limit counted and entry journaled in it)
        assert trips == ["script tpm:versions", "script tpm:lock"], trips
        # optimistic, as the server runs it: the script checks what was read, and nothing else goes to Redis
        trips.clear()
        with store.optimistic():
            r = client.post("/m2/acme/profile/update?mbox3rdPartyId=cust-1&profile.tier=bronze")
        assert r.status_code == 200
        assert trips == ["script tpm:lock"], trips
        monkeypatch.undo()
        assert be.get_profile("acme", "thirdPartyId", "cust-1")["attributes"]["tier"] == "bronze"  # type: ignore[index]
        assert [e.parsed["attributes"]["tier"] for e in be.journal.entries()[-2:]] == ["platinum", "bronze"]
    finally:
        store.close()


def test_an_optimistic_request_on_stale_state_writes_nothing_and_says_so(redis_url: str) -> None:
    from target_profile_mock.mockserver.errors import StaleState

    mine, other = open_store(redis_url, prefix="st"), open_store(redis_url, prefix="st")
    try:
        be, elsewhere = MockBackend(MockConfig(), store=mine), MockBackend(MockConfig(), store=other)
        be.seed_profile("acme", third_party_id="cust-1", attributes={"tier": "silver"})
        client = create_app(be).test_client()
        client.post("/m2/acme/profile/update?mbox3rdPartyId=cust-1&profile.tier=gold")
        elsewhere.configure("acme", update_delay=60)  # another process: updates now wait a minute
        before = len(be.journal)
        with pytest.raises(StaleState), mine.optimistic():  # the update script sees the change
            client.post("/m2/acme/profile/update?mbox3rdPartyId=cust-1&profile.tier=platinum")
        assert len(be.journal) == before
        # a refusal is journaled by a script that checks as well: nothing journaled either
        elsewhere.configure("acme", update_delay=0)
        with pytest.raises(StaleState), mine.optimistic():
            client.post("/m2/acme/profile/update?mbox3rdPartyId=cust-1")  # no attribute: refused
        assert len(be.journal) == before
        # and a transaction taken optimistically refuses to act on what it did not read
        elsewhere.configure("acme", update_delay=0.5)
        with pytest.raises(StaleState), mine.optimistic(), be.lock:
            pass
        mine.refresh()
        with mine.optimistic():  # nothing changed since: it goes through
            assert client.post("/m2/acme/profile/update?mbox3rdPartyId=cust-1&profile.tier=platinum").status_code == 200
        assert be.get_profile("acme", "thirdPartyId", "cust-1")["attributes"]["tier"] == "gold"  # type: ignore[index]
        be.advance(1)
        assert be.get_profile("acme", "thirdPartyId", "cust-1")["attributes"]["tier"] == "platinum"  # type: ignore[index]
    finally:
        mine.close()
        other.close()


def test_the_rate_limit_and_the_size_limit_answer_as_in_memory(pair: Any) -> None:
    def scenario(be: MockBackend, client: FlaskClient) -> Any:
        be.configure("acme", single_updates_per_day=3)
        # two posts of about 40 KB each: the profile then holds about 80 KB of attribute data
        out = [_update(client, {f"a{part}{n}": "v" * 240 for n in range(160)}, mbox3rdPartyId="cust-1")
               for part in "xy"]
        out += [_update(client, {"tier": "gold"}, mbox3rdPartyId="cust-1") for _ in range(3)]
        be.advance(86_400)
        out.append(_update(client, {"tier": "bronze"}, mbox3rdPartyId="cust-1"))
        out.append([(e.status, [v.rule.id for v in e.violations]) for e in be.journal.entries()])
        out.append(_journal(be))
        out.append(_fetch(client))
        return out

    memory, on_redis = pair(scenario)
    assert on_redis == memory
    assert [s for s, _, _ in memory[:6]] == [200, 200, 200, 429, 429, 200]
    assert [ids for _, ids in memory[6]][:2] == [[], ["profile.size"]]


def test_delays_pending_rows_and_lifetimes_take_the_transaction(pair: Any) -> None:
    def scenario(be: MockBackend, client: FlaskClient) -> Any:
        answers = _scripts(be) if be.store.shared else None
        out = []
        be.configure("acme", update_delay=5)
        out.append(_update(client, {"tier": "gold"}, mbox3rdPartyId="cust-1"))
        out.append(_fetch(client))  # not visible yet
        be.configure("acme", update_delay=0)
        out.append(_update(client, {"city": "Oslo"}, mbox3rdPartyId="cust-1"))  # the delayed one is due first
        be.advance(6)
        out.append(_fetch(client))
        be.configure("acme", profile_lifetime=10)
        be.advance(11)
        out.append(_update(client, {"tier": "late"}, mbox3rdPartyId="cust-1"))  # idle past its lifetime: gone
        out.append(_fetch(client))
        if answers is not None:
            out.append(answers)
        return out

    memory, on_redis = pair(scenario)
    assert on_redis[:-1] == memory
    assert "slow" in on_redis[-1]


def test_an_update_waits_for_a_transaction_holding_the_lock(redis_url: str) -> None:
    store = open_store(redis_url)
    try:
        be = MockBackend(MockConfig(), store=store)
        be.seed_profile("acme", third_party_id="cust-1", attributes={"tier": "silver"})
        client = create_app(be).test_client()
        answers = _scripts(be)
        other = open_store(redis_url)
        other_be = MockBackend(MockConfig(), store=other)
        inside, release = threading.Event(), threading.Event()

        def hold() -> None:
            with other_be.lock:  # another process's transaction, read-modify-writing the profile
                p = other_be.store._backend._tenants["acme"].profiles.find("thirdPartyId", "cust-1")  # type: ignore[attr-defined]
                inside.set()
                release.wait(5)
                p.update({"city": "Oslo"}, other_be.now_ms())

        t = threading.Thread(target=hold)
        t.start()
        assert inside.wait(5)
        threading.Timer(0.2, release.set).start()
        started = time.monotonic()
        assert client.post("/m2/acme/profile/update?mbox3rdPartyId=cust-1&profile.tier=gold").status_code == 200
        t.join(5)
        other.close()
        assert time.monotonic() - started >= 0.15  # it waited for the lock rather than writing beside it
        assert answers == ["busy"]
        # neither write is lost
        assert be.get_profile("acme", "thirdPartyId", "cust-1")["attributes"] == {"tier": "gold", "city": "Oslo"}  # type: ignore[index]
    finally:
        store.close()


# --- the store failing mid-request -------------------------------------------------------------------
def test_redis_stopping_mid_run_answers_503s_in_each_apis_shape_over_a_real_socket() -> None:
    executable = redis_server_path()
    if executable is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisServer(executable)  # its own: this test stops it
    store = None
    try:
        store = open_store(server.url)
        be = MockBackend(MockConfig(), store=store)
        be.seed_profile("acme", third_party_id="cust-1", attributes={"tier": "silver"})
        with LiveServer(create_app(be)) as live:
            update = f"{live.url}/m2/acme/profile/update?mbox3rdPartyId=cust-1&profile.tier=gold"
            fetch = f"{live.url}/rest/v1/profiles/thirdPartyId/cust-1?client=acme"
            assert requests.post(update, timeout=10).status_code == 200
            refused = requests.post(f"{live.url}/m2/acme/profile/update?profile.tier=gold", timeout=10)  # no id
            assert refused.status_code == 400
            server.stop()
            for url, method, like in ((update, "POST", refused), (fetch, "GET", None),
                                      (f"{live.url}/_mock/journal", "GET", None),
                                      (f"{live.url}/_mock/clock", "GET", None),
                                      (f"{live.url}/_mock/reset", "POST", None)):
                r = requests.request(method, url, timeout=30)
                assert r.status_code == 503, (url, r.text)
                assert r.headers["Retry-After"] == "1"
                assert "the fake's store is unreachable" in r.text and server.url in r.text, r.text
                if like is not None:  # the single update's own error shape (XML), not the fake's JSON
                    assert r.headers["Content-Type"] == like.headers["Content-Type"]
                    assert r.text.startswith(like.text[:20])
                else:
                    assert r.headers["Content-Type"].startswith("application/json")
                    assert "internal error" not in r.text
    finally:
        if store is not None:
            store.close()
        server.stop()


def test_messages_name_the_redis_url_without_its_password() -> None:
    assert shown_url("redis://user:s3cret@db.example:6379/0") == "redis://user:***@db.example:6379/0"
    assert shown_url("redis://:s3cret@db.example/1") == "redis://:***@db.example/1"
    assert shown_url("redis://db.example:6379/0") == "redis://db.example:6379/0"
    assert shown_url("unix:///run/redis.sock") == "unix:///run/redis.sock"


def test_an_id_still_a_pending_batch_row_takes_the_transaction(pair: Any) -> None:
    def scenario(be: MockBackend, client: FlaskClient) -> Any:
        answers = _scripts(be) if be.store.shared else None
        bulk = BulkClient(client)
        bulk.apply(b"batch=thirdPartyId,tier,city\nrow-1,gold,Oslo\nrow-2,silver,Rome\n", tenant="acme")
        out = [_update(client, {"tier": "platinum"}, mbox3rdPartyId="row-1"),  # made a profile by the update
               _update(client, {"city": "Lima"}, mbox3rdPartyId="row-1"),  # a profile now: the script's
               client.get("/rest/v1/profiles/thirdPartyId/row-1?client=acme").data,
               client.get("/rest/v1/profiles/thirdPartyId/row-2?client=acme").data]
        if answers is not None:
            out.append(answers)
        return out

    memory, on_redis = pair(scenario)
    assert on_redis[:-1] == memory
    assert on_redis[-1] == ["slow", "done"]
    assert b'"platinum"' in memory[2] and b'"Lima"' in memory[2]


def test_scripts_are_packed_as_redis_py_packs_them_without_copying_large_arguments() -> None:
    import redis.connection
    from target_profile_mock.mockserver.store.redis import _packed

    big = b"r" * 50_000
    items: list[Any] = [b"EVALSHA", "0" * 40, 2, "tpm:lock", "tpm:due", "ü", 1.25, 7, b"", big, "x" * 9_000, "z"]
    serializer = redis.connection.PythonRespSerializer(6000, redis.connection.Encoder("utf-8", "strict", False).encode)
    buffers = _packed(items)
    assert b"".join(buffers) == b"".join(serializer.pack(*items))
    assert any(b is big for b in buffers)  # sent as it is: a commit's arguments may be tens of MB


def test_each_thread_scripts_on_a_connection_of_its_own_closed_with_the_thread_or_the_store(redis_url: str) -> None:
    import gc

    store = open_store(redis_url, prefix="conns")
    try:
        MockBackend(MockConfig(), store=store).seed_profile("acme", third_party_id="cust-1")

        def clients() -> int:
            return sum(1 for c in redis.Redis.from_url(redis_url).client_list() if c["cmd"] == "evalsha")

        ran = threading.Thread(target=store.refresh)
        ran.start()
        ran.join()
        gc.collect()
        assert len(store._conns) == 1  # type: ignore[attr-defined]  # this thread's: the other's closed with it
        assert clients() == 1
    finally:
        store.close()
    assert clients() == 0


def test_behind_the_server_a_single_update_is_one_script_and_nothing_else(redis_url: str) -> None:
    store = open_store(redis_url, prefix="served")
    try:
        be = MockBackend(MockConfig(), store=store)
        be.seed_profile("acme", third_party_id="cust-1", attributes={"tier": "silver"})
        client = redis.Redis.from_url(redis_url)
        with LiveServer(create_app(be)) as live, requests.Session() as http:
            for tier in ("gold", "platinum"):  # the first loads the scripts and the records
                client.config_resetstat()
                r = http.get(f"{live.url}/m2/acme/profile/update?mbox3rdPartyId=cust-1&profile.tier={tier}", timeout=10)
                assert r.status_code == 200
            # the scripts Redis ran for the second: the update's alone (a refresh first would be another)
            stats = client.info("commandstats")
            asked = {name: s["calls"] for name, s in stats.items() if name in ("cmdstat_evalsha", "cmdstat_eval")}
            assert asked == {"cmdstat_evalsha": 1}, stats
        assert be.get_profile("acme", "thirdPartyId", "cust-1")["attributes"]["tier"] == "platinum"  # type: ignore[index]
    finally:
        store.close()
