"""The Redis store: one fake's state shared by every process on the same Redis and key prefix.

Records are the per-entity JSON of :mod:`..snapshot`: ``<prefix>:meta`` (settings, clock, generator
state, fault queue) and ``<prefix>:tenant:<code>`` (one tenant), each with a version number in the hash
``<prefix>:versions``. A process keeps the records it read with their versions and re-reads only those
another process changed since. The journal is a list appended by a script, outside the transaction.
docs/stores.md describes the keys and the transaction.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from redis.exceptions import NoScriptError

from ..errors import ControlError, StaleState, StoreUnavailable
from ..models.batches import Batch
from ..models.journal import ENTRY_OVERHEAD, JOURNAL_BYTES, Journal, JournalEntry
from ..models.tenant import Tenant
from ..snapshot import (
    _entry_in,
    _entry_out,
    _Reader,
    apply_meta,
    batch_body_out,
    batch_in,
    batch_out,
    dumps,
    meta_in,
    meta_out,
    tenant_in,
    tenant_out,
)
from .base import Store, shown_url
from .redis_fast import FAST_SINGLE, JOURNAL_FN, STALE_FN, due_marker, fast_single_update
from .redis_limits import BUCKET, SLIDING, RedisBucketWindow, RedisSlidingWindow
from .redis_profiles import FIND, FIND_MANY, RedisProfiles, profile_keys

if TYPE_CHECKING:
    from ..backend import MockBackend
    from ..models.profiles import IdKind, Profile

__all__ = ["LOCK_TTL_MS", "RedisJournal", "RedisStore", "shown_url"]

#: A read this soon after the same thread's refresh uses it rather than ask again: the server refreshes
#: before each request, and the request's first read (the token check) comes a fraction of a ms later.
FRESH_S = 0.002

#: How long the transaction lock lives if its holder dies without releasing it. Generous: an operation
#: that outlives it (a huge batch applied on a starved machine) is refused at commit, never half-written.
LOCK_TTL_MS = 120_000

# Take the lock; when taken, answer the versions of every record and the generation in the same round trip.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('HGETALL', KEYS[2]), tonumber(redis.call('GET', KEYS[3]) or '0')}
end
return {0}
"""

# The generation and the versions of every record (what refresh() compares with what this process holds).
_VERSIONS = """
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('HGETALL', KEYS[1])}
"""

# Write the changed records and remove the removed ones, each with a new version number (the generation,
# KEYS[3], counts every version given and goes up once more when records are removed); apply the hash
# operations (quads: H key field value = HSET, D key field _ = HDEL, Z key member score = ZADD, X key _ _ = DEL,
# P key json _ = HSET
# every field of a JSON object of strings); release the lock; answer the new versions, then the generation.
# All or nothing, and nothing at all if the lock is no longer this transaction's.
_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local prefix, out, i = ARGV[2], {}, 4
for _ = 1, tonumber(ARGV[3]) do
  local v = redis.call('INCR', KEYS[3])
  redis.call('SET', prefix .. ':' .. ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[2], ARGV[i], v)
  out[#out + 1] = v
  i = i + 2
end
local removed = tonumber(ARGV[i])
i = i + 1
for _ = 1, removed do
  redis.call('DEL', prefix .. ':' .. ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
  i = i + 1
end
if removed > 0 then redis.call('INCR', KEYS[3]) end
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'H' then redis.call('HSET', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  elseif op == 'D' then redis.call('HDEL', ARGV[i + 1], ARGV[i + 2])
  elseif op == 'Z' then redis.call('ZADD', ARGV[i + 1], ARGV[i + 3], ARGV[i + 2])
  elseif op == 'P' then
    local pairs_ = {}
    for field, value in pairs(cjson.decode(ARGV[i + 2])) do
      pairs_[#pairs_ + 1] = field
      pairs_[#pairs_ + 1] = value
      if #pairs_ >= 2000 then redis.call('HSET', ARGV[i + 1], unpack(pairs_)); pairs_ = {} end
    end
    if #pairs_ > 0 then redis.call('HSET', ARGV[i + 1], unpack(pairs_)) end
  else redis.call('DEL', ARGV[i + 1]) end
  i = i + 4
end
redis.call('DEL', KEYS[1])
out[#out + 1] = tonumber(redis.call('GET', KEYS[3]) or '0')
return out
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Number and append one journal entry (KEYS: the list, its sequence, its size, the generation; ARGV: the
# entry's JSON, its cost, the bounds, the generation the caller read its state at or ''). Answers the
# entry's number, or -1 (nothing done) when the generation is no longer the caller's.
_JOURNAL_ADD = JOURNAL_FN + STALE_FN + """
if stale(KEYS[4], ARGV[5]) then return -1 end
return journal_add(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
"""


#: Arguments longer than this are sent as they are, not copied into the command's buffer (a commit may
#: carry a batch's rows: tens of MB).
_COPY_MAX = 8192


def _packed(items: list[Any]) -> list[bytes]:
    """One Redis command in the wire format (RESP), as the buffers to send: what redis-py would send,
    without its per-argument encoder calls (the hot scripts have some thirty arguments)."""
    out: list[bytes] = []
    part = [b"*%d\r\n" % len(items)]
    for item in items:
        if item.__class__ is not bytes:
            item = item.encode() if item.__class__ is str else str(item).encode()
        if len(item) > _COPY_MAX:
            part.append(b"$%d\r\n" % len(item))
            out += (b"".join(part), item)
            part = [b"\r\n"]
        else:
            part.append(b"$%d\r\n%s\r\n" % (len(item), item))
    out.append(b"".join(part))
    return out


def _versions(flat: list[bytes]) -> dict[str, int]:
    """The hash ``<prefix>:versions`` as HGETALL answers it inside a script (name, version, ...)."""
    return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}


def _fingerprint(b: Batch) -> tuple[Any, ...]:
    """What can change in a batch's record after it is submitted (its counters and ids change with its
    state): equal fingerprints, no need to serialise it again."""
    return (b.polls, b.state, b.forced, b.ended_ms, b.lifecycle, b.details_dropped, len(b.file.rows), len(b.ids))


def _meta_fingerprint(be: MockBackend) -> tuple[Any, ...]:
    """What the meta record holds, compared without serialising it (its generator states alone are
    kilobytes of JSON): settings, clock, the backend's generator, the rules with their hits and draws."""
    rng, faults = be._rng_state, be.faults
    return (dict(vars(be.config)), be.clock.snapshot(), None if rng is None else rng.getstate(), faults.seed,
            faults._next_id, [(r.id, r.hits, r.times, r.rng.getstate()) for r in faults._rules])


def _body_fingerprint(b: Batch) -> tuple[int, int]:
    """A body only ever loses its rows (applied, or dropped) or its ids (dropped)."""
    return len(b.file.rows), len(b.ids)


class _Tracked(dict[str, Tenant]):
    """The backend's tenants, noting which ones an operation reached (only those are compared and
    written back when the transaction ends)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.touched: set[str] = set()
        self.all = False

    def get(self, key: str, default: Any = None) -> Any:
        self.touched.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Tenant:
        self.touched.add(key)
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: Tenant) -> None:
        self.touched.add(key)
        super().__setitem__(key, value)

    def values(self) -> Any:
        self.all = True
        return super().values()

    def items(self) -> Any:
        self.all = True
        return super().items()

    def pop(self, key: str, *default: Any) -> Any:
        self.touched.add(key)
        return super().pop(key, *default)

    def clear(self) -> None:
        self.all = True
        super().clear()


class _Transaction:
    """Reentrant per thread: threads of this process take turns on a local lock, processes on the lock
    in Redis; the outermost ``with`` reads what changed and, on leaving, writes back what this one changed."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._local = threading.RLock()
        self._depth = 0  # changed only by the thread holding _local
        self._reading = False  # inside store.read(): nothing may be written

    def __enter__(self) -> _Transaction:
        self._local.acquire()
        if self._reading:
            self._local.release()
            raise RuntimeError("an operation that writes ran inside store.read(); use store.lock")
        self._depth += 1
        if self._depth == 1:
            try:
                self._store._begin()
            except BaseException:
                self._depth -= 1
                self._local.release()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._depth == 1:
                self._store._end()
        finally:
            self._depth -= 1
            self._local.release()


class _Read:
    """``store.read()``: the latest state without the lock, for operations that only read."""

    def __init__(self, tx: _Transaction) -> None:
        self._tx = tx

    def __enter__(self) -> _Read:
        tx = self._tx
        tx._local.acquire()
        if tx._depth == 0:
            try:
                tx._store._refresh_for_read()
            except BaseException:
                tx._local.release()
                raise
            tx._reading = True
        tx._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        tx = self._tx
        tx._depth -= 1
        if tx._depth == 0:
            tx._reading = False
        tx._local.release()


class _Optimistic:
    """``store.optimistic()``: this thread's request goes on the state the process holds, read at
    generation ``store._gen``; the first store step checks it (see :meth:`RedisStore.optimistic`)."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store

    def __enter__(self) -> _Optimistic:
        self._store._thread.optimistic = self._store._gen
        return self

    def __exit__(self, *exc: object) -> None:
        self._store._thread.optimistic = None


class RedisStore(Store):
    """State in Redis under a key prefix, shared by every process that opens the same URL and prefix."""

    shared = True

    def __init__(self, url: str, *, prefix: str = "tpm") -> None:
        super().__init__()
        self.url = url
        self.prefix = prefix
        try:
            self._redis = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)
            self._redis.ping()
        except (redis.RedisError, ValueError, OSError) as exc:
            raise ControlError(f"cannot reach the Redis store at {shown_url(url)}: {exc}") from None
        self.lock = _Transaction(self)
        self._read = _Read(self.lock)
        #: counter: the generation, which every commit that writes or removes a record moves on
        self._keys = {name: f"{prefix}:{name}" for name in ("lock", "versions", "counter")}
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._commit = self._redis.register_script(_COMMIT)
        self._release = self._redis.register_script(_RELEASE)
        self._journal_add = self._redis.register_script(_JOURNAL_ADD)
        self._find = self._redis.register_script(FIND)
        self._sliding = self._redis.register_script(SLIDING)
        self._bucket = self._redis.register_script(BUCKET)
        self.process = secrets.token_hex(4)  # tells this process's bulk calls from others' in Redis
        self._versions_script = self._redis.register_script(_VERSIONS)
        self._find_many = self._redis.register_script(FIND_MANY)
        self._fast_single = self._redis.register_script(FAST_SINGLE)
        self._backend: MockBackend | None = None
        self._versions: dict[str, int] = {}  # record name -> the version this process holds
        self._seen: dict[str, bytes] = {}  # record name -> its JSON as read or written (not batch bodies)
        # per batch id: its body as read or written, the fingerprints of its record and body, its tenant
        self._bodies: dict[str, tuple[list[Any], list[str]]] = {}
        self._fp: dict[str, tuple[Any, ...]] = {}
        self._body_fp: dict[str, tuple[Any, ...]] = {}
        self._batch_tenant: dict[str, str] = {}
        self._meta_fp: tuple[Any, ...] | None = None
        self._token = b""
        # .refreshed: when this thread last refreshed (monotonic s); .optimistic: the generation its
        # optimistic request read at, until a store step checks it; .conn: its connection for scripts
        self._thread = threading.local()
        self.fresh_s = FRESH_S
        self._gen = 0  # the generation of the records this process holds
        self._optimistic = _Optimistic(self)
        # every thread's connection, closed with the store; a thread's goes (and closes) when the thread ends
        self._conns: weakref.WeakSet[Any] = weakref.WeakSet()
        self._conns_lock = threading.Lock()

    # --- the seam ---------------------------------------------------------------------------------
    def attach(self, backend: MockBackend) -> None:
        """Adopt the state the prefix holds; with none yet, write the backend's own (its settings)."""
        self._backend = backend
        backend.clock.guard(self.lock)
        backend._tenants = _Tracked(backend._tenants)
        with self.lock:
            pass

    def journal(self, maxlen: int | None = 10_000, max_bytes: int | None = JOURNAL_BYTES) -> Journal:
        return RedisJournal(self, maxlen, max_bytes)

    def read(self) -> _Read:
        return self._read

    def optimistic(self) -> _Optimistic:
        """This thread's request reads the records the process holds without refreshing them first; the
        first script it runs (the single update's, the journal's, the transaction's lock) also checks that
        the generation is still the one read at, and raises ``StaleState`` without doing anything when it
        is not. A single update then takes one round trip instead of two."""
        return self._optimistic

    def confirm(self) -> None:
        gen = self._take_optimistic()
        if gen is not None and self._refresh() not in (None, gen):
            raise StaleState()

    def _take_optimistic(self) -> int | None:
        """The generation this thread's optimistic request read at, which the caller checks in its step
        (then the request goes on as any other); None outside one."""
        local = self._thread
        gen = getattr(local, "optimistic", None)
        if gen is not None:
            local.optimistic = None
        return gen

    def refresh(self) -> None:
        """One round trip when nothing changed (the versions), and the changed records; no lock is taken:
        every operation still reads the versions again under the lock before it acts.

        When Redis cannot be reached it returns without raising: the server calls it before each request,
        outside the app, and the request's own operations (reads too: ``store.read()``) then meet the
        failure and answer their API's 503."""
        try:
            fresh = self._refresh()
        except StoreUnavailable:
            return
        if fresh is not None:
            self._thread.refreshed = time.monotonic()

    def _refresh(self) -> int | None:
        """Bring in what changed; the generation now held, or None inside an operation (nothing to do)."""
        tx = self.lock
        with tx._local:
            if tx._depth:
                return None  # inside an operation this thread already started from the latest state
            tx._depth += 1  # the records are applied as inside a transaction: no nested one may start
            try:
                gen, flat = self._call(self._versions_script, [self._keys["versions"], self._keys["counter"]], [])
                self._load(_versions(flat))
                self._gen = int(gen)
            finally:
                tx._depth -= 1
        return self._gen

    def _refresh_for_read(self) -> None:
        """Refresh, unless this thread's own refresh is under :data:`FRESH_S` old and no read used it yet,
        or its request is optimistic (its first script checks what it read)."""
        local = self._thread
        if getattr(local, "optimistic", None) is not None:
            return
        at = getattr(local, "refreshed", None)
        local.refreshed = None
        if at is None or time.monotonic() - at > self.fresh_s:
            self._refresh()

    def fault_lock(self) -> _Transaction:
        return self.lock

    def single_update(self, backend: MockBackend, tenant: str, kind: IdKind, profile_id: str,
                      fallback: tuple[IdKind, str] | None, attributes: dict[str, str], size_limit: int,
                      entry: JournalEntry | None = None) -> tuple[str, float | None, Profile | None, bool] | None:
        """Count and apply a single update in one script, without the lock (see :mod:`.redis_fast`)."""
        t = dict.get(backend._tenants, tenant)
        if t is None or not isinstance(t.single_window, RedisBucketWindow):
            return None
        journal = backend.journal
        journaled = (None if entry is None or not isinstance(journal, RedisJournal)
                     else (entry, *journal.script_args(entry)))
        return fast_single_update(self, t, backend.now_ms(), backend.clock.now(), kind, profile_id, fallback,
                                  attributes, size_limit, journaled)

    def drop(self) -> None:
        # the prefix is matched literally: a '*' or '[' in it is not a pattern
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + ":*"
        try:
            batch: list[bytes] = []
            for key in self._redis.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._redis.unlink(*batch)
                    batch = []
            if batch:
                self._redis.unlink(*batch)
        except redis.RedisError as exc:
            raise self.unavailable(exc) from None  # type: ignore[misc]

    def close(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:
            conn.disconnect()
        self._redis.close()

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    # --- the transaction --------------------------------------------------------------------------
    def _begin(self) -> None:
        token = secrets.token_hex(16).encode()
        pause, deadline = 0.0005, time.monotonic() + LOCK_TTL_MS / 1000 + 10
        keys = [self._keys["lock"], self._keys["versions"], self._keys["counter"]]
        read_at = self._take_optimistic()  # checked once the lock is taken
        while True:
            got = self._call(self._acquire, keys, [token, LOCK_TTL_MS])
            if got[0] == 1:
                break
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"the fake's Redis store at {self.shown_url} (prefix {self.prefix!r}) stayed "
                                       f"locked for {LOCK_TTL_MS // 1000 + 10} s; is another process stuck?")
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
        self._token = token
        try:
            self._load(_versions(got[1]))
            self._gen = int(got[2])
            if read_at is not None and read_at != self._gen:
                raise StaleState()
        except BaseException:
            self._call(self._release, [self._keys["lock"]], [token])
            raise

    def _load(self, versions: dict[str, int]) -> None:
        """Bring the records another process changed since this one read them (and drop those removed)."""
        be = self._backend
        assert be is not None
        stale = [n for n, v in versions.items() if self._versions.get(n) != v]
        tenants = be._tenants if isinstance(be._tenants, _Tracked) else _Tracked(be._tenants)
        for name in [n for n in self._versions if n not in versions]:
            self._drop(name, tenants)
        if stale:
            found = dict(zip(stale, self._redis.mget([self.key(n) for n in stale]), strict=True))
            check = be.check_setting
            for name, data in found.items():
                if data is None:
                    continue
                self._versions[name] = versions[name]
                kind, _, rest = name.partition(":")
                if kind == "meta":
                    self._seen[name] = data
                    apply_meta(be, meta_in(json.loads(data), be.config, check))
                    self._meta_fp = _meta_fingerprint(be)
                    for t in dict.values(tenants):  # the server-wide limits they inherit
                        t.refresh_limits()
                    if (be.journal.maxlen, be.journal.max_bytes) != (be.config.journal_size, be.config.journal_bytes):
                        be.journal = self.journal(be.config.journal_size, be.config.journal_bytes)
                elif kind == "rows":
                    body = json.loads(data)
                    self._bodies[rest] = (body["rows"], body["ids"])
                elif kind == "batch":
                    self._seen[name] = data
            # batches whose record or body changed, built anew; then the tenants they belong to
            rebuilt: dict[str, dict[str, Batch]] = {}
            for batch_id in {n.partition(":")[2] for n in found if n.startswith(("batch:", "rows:"))}:
                data = self._seen.get(f"batch:{batch_id}")
                if data is None:
                    continue
                record = json.loads(data)
                b = batch_in(record["batch"], record["tenant"], self._bodies.get(batch_id, ([], [])))
                self._batch_tenant[batch_id] = record["tenant"]
                self._fp[batch_id], self._body_fp[batch_id] = _fingerprint(b), _body_fingerprint(b)
                rebuilt.setdefault(record["tenant"], {})[batch_id] = b
            for name, data in found.items():
                if data is None or not name.startswith("tenant:"):
                    continue
                self._seen[name] = data
                code = name[7:]
                head = json.loads(data)
                t = tenant_in(head, code, be.config, check)
                t.profiles = RedisProfiles(self, self.key(name))
                self._windows(t, name)
                old = dict.get(tenants, code)
                fresh = rebuilt.pop(code, {})
                for batch_id in head.get("batchIds", []):
                    b = fresh.get(batch_id) or (old.find_batch(batch_id) if old is not None else None)
                    if b is not None:
                        t.add_batch(b)
                t._open = [b for b in t.batches if b.state == "incomplete"]
                dict.__setitem__(tenants, code, t)
            for code, fresh in rebuilt.items():  # the tenant's own record did not change: swap the batches in
                t = dict.get(tenants, code)
                if t is None:
                    continue
                t.batches = deque(fresh.get(b.batch_id, b) for b in t.batches)
                t._by_id = {b.batch_id: b for b in t.batches}
                t._open = [b for b in t.batches if b.state == "incomplete"]
        tenants.touched.clear()
        tenants.all = False
        be._tenants = tenants

    def _drop(self, name: str, tenants: _Tracked) -> None:
        """Forget a record another process removed."""
        self._versions.pop(name, None)
        self._seen.pop(name, None)
        kind, _, rest = name.partition(":")
        if kind == "tenant":
            dict.pop(tenants, rest, None)
        elif kind in ("batch", "rows"):
            self._bodies.pop(rest, None)
            self._body_fp.pop(rest, None)
            if kind == "batch":
                self._fp.pop(rest, None)
                self._batch_tenant.pop(rest, None)

    def _end(self) -> None:
        be = self._backend
        assert be is not None
        token, self._token = self._token, b""
        tenants = be._tenants
        tracked = isinstance(tenants, _Tracked)
        reached = list(dict.keys(tenants) if not tracked or tenants.all else tenants.touched)
        if not tracked:  # the state was replaced (a snapshot restored): compare every batch by its content
            self._fp.clear()
            self._body_fp.clear()
        try:
            changed: list[tuple[str, bytes]] = []
            fps: dict[str, tuple[Any, ...]] = {}
            body_fps: dict[str, tuple[Any, ...]] = {}
            owners: dict[str, str] = {}
            ops: list[Any] = []
            meta_fp = _meta_fingerprint(be)
            if meta_fp != self._meta_fp:
                meta = dumps(meta_out(be))
                if meta != self._seen.get("meta"):
                    changed.append(("meta", meta))
            live: set[str] = set()
            # the fast single update's markers: every tenant's when the server-wide settings changed
            marked = list(dict.keys(tenants)) if meta_fp != self._meta_fp else reached
            due_key = self.key("due")
            for code in marked:
                t = dict.get(tenants, code)
                if t is not None:
                    ops += ["H", due_key, code, due_marker(t)]
            for code in reached:
                t = dict.get(tenants, code)
                if t is None:
                    continue
                name = f"tenant:{code}"
                if isinstance(t.profiles, RedisProfiles):
                    ops += t.profiles.ops()
                else:  # a tenant new here, or restored from a snapshot: Redis holds exactly its profiles
                    profiles = RedisProfiles(self, self.key(name))
                    ops += profiles.replace_ops(t.profiles)
                    t.profiles = profiles
                if not isinstance(t.bulk_window, RedisSlidingWindow):  # and exactly its windows
                    bulk, single = self._window_keys(name)
                    ops += ["X", bulk, "", "", "X", single, "", ""]
                    for n, at in enumerate(t.bulk_window._events):
                        ops += ["Z", bulk, f"{at!r}:{self.process}:{n}", repr(at)]
                    for start, count in t.single_window._buckets:
                        ops += ["H", single, repr(float(start)), int(count)]
                    self._windows(t, name)
                head = tenant_out(t, whole=False)
                head["batchIds"] = [b.batch_id for b in t.batches]
                data = dumps(head)
                if data != self._seen.get(name):
                    changed.append((name, data))
                for b in t.batches:
                    bid = b.batch_id
                    live.add(bid)
                    fp = _fingerprint(b)
                    if fp != self._fp.get(bid):
                        record = dumps({"tenant": code, "batch": batch_out(b, body=False)})
                        fps[bid], owners[bid] = fp, code
                        if record != self._seen.get(f"batch:{bid}"):
                            changed.append((f"batch:{bid}", record))
                    bfp = _body_fingerprint(b)
                    if bfp != self._body_fp.get(bid):
                        body = batch_body_out(b)
                        body_fps[bid] = bfp
                        self._bodies[bid] = (body["rows"], body["ids"])
                        changed.append((f"rows:{bid}", dumps(body)))
            reached_set = set(reached)
            removed = [n for n in self._versions if n.startswith("tenant:") and not dict.__contains__(tenants, n[7:])]
            gone_tenants = {n[7:] for n in removed}
            for bid, code in self._batch_tenant.items():
                if (code in reached_set or code in gone_tenants) and bid not in live:
                    removed += [n for n in (f"batch:{bid}", f"rows:{bid}") if n in self._versions]
            for name in removed:
                if name.startswith("tenant:"):
                    keys = [*profile_keys(self.key(name)).values(), *self._window_keys(name)]
                    ops += [op for key in keys for op in ("X", key, "", "")]
                    ops += ["D", self.key("due"), name[7:], ""]
        except BaseException:
            self._call(self._release, [self._keys["lock"]], [token])
            raise
        finally:
            for code in reached:
                t = dict.get(tenants, code)
                if t is not None and isinstance(t.profiles, RedisProfiles):
                    t.profiles.forget()
            if not tracked:
                be._tenants = _Tracked(tenants)
            else:
                tenants.touched.clear()
                tenants.all = False
        if not changed and not removed and not ops:
            self._call(self._release, [self._keys["lock"]], [token])
            self._meta_fp = meta_fp
            return
        args: list[Any] = [token, self.prefix, len(changed)]
        for name, data in changed:
            args += [name, data]
        args += [len(removed), *removed, *ops]
        versions = self._call(self._commit, [self._keys["lock"], self._keys["versions"], self._keys["counter"]], args)
        if versions is not None:
            self._gen = int(versions.pop())
        if versions is None:
            # another process took the lock after it expired: what this one did is not written, so forget
            # every record read and start the next transaction from what Redis holds
            for cache in (self._versions, self._seen, self._fp, self._body_fp, self._bodies, self._batch_tenant):
                cache.clear()
            self._meta_fp = None
            dict.clear(tenants)
            raise StoreUnavailable(f"an operation outlived the Redis store's lock ({LOCK_TTL_MS // 1000} s) and "
                                   "was not saved; try it again")
        for (name, data), version in zip(changed, versions, strict=True):
            self._versions[name] = int(version)
            if not name.startswith("rows:"):
                self._seen[name] = data
        self._fp.update(fps)
        self._meta_fp = meta_fp
        self._body_fp.update(body_fps)
        self._batch_tenant.update(owners)
        for name in removed:
            self._drop(name, tenants)

    def _window_keys(self, name: str) -> tuple[str, str]:
        return self.key(f"{name}:limit:bulk"), self.key(f"{name}:limit:single")

    def _windows(self, t: Tenant, name: str) -> None:
        """Give a tenant the rate-limit windows Redis keeps for it."""
        bulk, single = self._window_keys(name)
        t.bulk_window = RedisSlidingWindow(self, bulk, None, t.bulk_window.window)
        t.single_window = RedisBucketWindow(self, single, None)
        t.refresh_limits()

    def unavailable(self, exc: BaseException) -> StoreUnavailable | None:
        if isinstance(exc, StoreUnavailable):
            return exc
        if isinstance(exc, (redis.RedisError, OSError)):
            return StoreUnavailable(f"the fake's store is unreachable: the Redis store at {self.shown_url} "
                                    f"failed ({exc}); nothing of this call was saved")
        return None

    @property
    def shown_url(self) -> str:
        return shown_url(self.url)

    def _run(self, pipe: Any) -> list[Any]:
        self.confirm()  # in an optimistic request: a step that does not check the generation itself
        try:
            return pipe.execute()  # type: ignore[no-any-return]
        except redis.RedisError as exc:
            raise self.unavailable(exc) from None  # type: ignore[misc]

    def _call(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """Run a script on this thread's own connection (reused without the pool's bookkeeping, the
        command packed here): a script is what nearly every request runs, once or twice."""
        self.confirm()  # in an optimistic request: a step that does not check the generation itself
        conn = getattr(self._thread, "conn", None)
        if conn is None:
            conn = self._thread.conn = self._redis.connection_pool.make_connection()
            with self._conns_lock:
                self._conns.add(conn)
        try:
            try:
                conn.send_packed_command(_packed([b"EVALSHA", script.sha, len(keys), *keys, *args]), False)
                return conn.read_response()
            except NoScriptError:  # a Redis restarted or flushed: EVAL runs it and caches it again
                conn.send_packed_command(_packed([b"EVAL", script.script, len(keys), *keys, *args]), False)
                return conn.read_response()
        except (redis.RedisError, OSError) as exc:
            if not isinstance(exc, redis.ResponseError):
                conn.disconnect()  # a reply may be left unread: the next call connects anew
            raise self.unavailable(exc) from None  # type: ignore[misc]


class RedisJournal(Journal):
    """The journal as a Redis list: appended by one script (number, push, trim), read by everyone."""

    def __init__(self, store: RedisStore, maxlen: int | None = 10_000, max_bytes: int | None = JOURNAL_BYTES) -> None:
        super().__init__(maxlen, max_bytes)
        self._store = store
        self._r = store._redis
        self._list, self._seq_key, self._bytes_key = (store.key("journal"), store.key("journal:seq"),
                                                      store.key("journal:bytes"))

    @property
    def bytes(self) -> int:
        return int(self._r.get(self._bytes_key) or 0)

    def next_seq(self) -> int:
        return int(self._r.incr(self._seq_key))

    def add(self, entry: JournalEntry) -> None:
        keys, args = self.script_args(entry)
        store = self._store
        read_at = store._take_optimistic()
        seq = int(store._call(store._journal_add, [*keys, store._keys["counter"]],
                              [*args, "" if read_at is None else read_at]))
        if seq < 0:
            raise StaleState()
        entry.seq = seq

    def script_args(self, entry: JournalEntry) -> tuple[list[str], list[Any]]:
        """The keys and arguments of ``journal_add`` for ``entry`` (its cost set): the journal script's, and
        the one-script single update's, which journals its call in the same step."""
        entry.cost = cost = self._cost(entry)
        return ([self._list, self._seq_key, self._bytes_key],
                [dumps(_entry_out(entry)), cost, -1 if self.maxlen is None else self.maxlen,
                 -1 if self.max_bytes is None else self.max_bytes])

    @staticmethod
    def _cost(entry: JournalEntry) -> int:
        """What an entry weighs against the byte bound here: its bodies and the fixed overhead."""
        return ENTRY_OVERHEAD + len(entry.body) + len(entry.response_body)

    def clear(self) -> None:
        self._r.delete(self._list, self._bytes_key)

    def restore(self, entries: list[JournalEntry]) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(self._list, self._bytes_key)
        total = 0
        for e in entries:
            cost = self._cost(e)
            total += cost
            pipe.rpush(self._list, b"%d %d " % (e.seq, cost) + dumps(_entry_out(e)))
        pipe.set(self._bytes_key, total)
        pipe.set(self._seq_key, max((e.seq for e in entries), default=0))
        pipe.execute()

    def _snapshot(self) -> list[JournalEntry]:
        out = []
        for raw in self._r.lrange(self._list, 0, -1):
            seq, cost, data = raw.split(b" ", 2)
            entry = _entry_in(_Reader(json.loads(data), "journal entry"))
            entry.seq, entry.cost = int(seq), int(cost)
            out.append(entry)
        return out

    def __len__(self) -> int:
        return int(self._r.llen(self._list))

    def wait_for(self, predicate: Callable[[list[JournalEntry]], bool], timeout: float) -> bool:
        """Poll until ``predicate(entries)`` holds or ``timeout`` seconds pass (another process may add)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self._snapshot()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
