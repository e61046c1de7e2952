"""The storage seam: open_store, the in-memory store, and the backend and app built on a store."""

from __future__ import annotations

import pytest
from target_profile_mock.mockserver.app import create_app
from target_profile_mock.mockserver.backend import MockBackend
from target_profile_mock.mockserver.errors import ControlError
from target_profile_mock.mockserver.store import MemoryStore, open_store


@pytest.mark.parametrize("url", [None, "memory://"])
def test_open_store_without_a_url_is_the_memory_store(url: str | None) -> None:
    store = open_store(url)
    assert isinstance(store, MemoryStore) and store.shared is False
    store.close()


@pytest.mark.parametrize("url", ["postgres://localhost/db", "redis:/localhost", ""])
def test_an_unknown_store_url_is_refused_with_the_schemes_that_work(url: str) -> None:
    with pytest.raises(ControlError, match=r"unknown store .*memory:// or redis://host:port/db"):
        open_store(url)


def test_a_backend_keeps_its_state_in_the_store_it_was_given() -> None:
    store = MemoryStore()
    be = MockBackend(store=store)
    assert be.store is store and be.lock is store.lock
    with store.transaction():  # the backend's operations run inside the store's transaction, reentrantly
        be.seed_profile("acme", tnt_id="t1", attributes={"a": "1"})
    assert be.get_profile("acme", "tntId", "t1")["attributes"] == {"a": "1"}
    assert isinstance(MockBackend().store, MemoryStore)


def test_create_app_builds_its_backend_on_the_store_given() -> None:
    store = MemoryStore()
    app = create_app(store=store)
    assert app.config["BACKEND"].store is store
    with pytest.raises(ValueError, match="a backend or a store"):
        create_app(MockBackend(), store=MemoryStore())


def test_rate_limit_reports_the_limit_in_force_and_creates_no_tenant() -> None:
    be = MockBackend()
    assert be.rate_limit("acme", "bulk") == 50 and be.tenants() == []
    be.configure("acme", bulk_calls_per_minute=3, single_updates_per_day=None)
    assert (be.rate_limit("acme", "bulk"), be.rate_limit("acme", "single")) == (3, None)


def test_the_redis_fixture_is_a_real_emptied_server(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    assert client.ping() is True and client.dbsize() == 0
    client.set("k", "v")
    assert client.get("k") == b"v"
    client.close()
