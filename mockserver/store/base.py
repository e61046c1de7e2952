"""The storage seam: where a :class:`~..backend.MockBackend` keeps its state.

Every model operation runs inside ``with store.lock:`` (also ``backend.lock``), a transaction that is
reentrant per thread. What a transaction changes is whole when it ends, as seen by every process
sharing the store: the in-memory store holds the live objects and its transaction is a lock; a shared
store (Redis) loads the records the model needs when the transaction starts and writes back what
changed when it ends, in one step, before releasing its lock.

The records that cross the seam to a shared store are the per-entity JSON values of
:mod:`..snapshot` (a tenant, the server's settings, the clock, the generator states, the fault queue,
journal entries): plain JSON, no object identity, nothing only Python can hold.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import StoreUnavailable
from ..models.journal import JOURNAL_BYTES, Journal, JournalEntry

if TYPE_CHECKING:
    from ..backend import MockBackend
    from ..models.profiles import IdKind, Profile

__all__ = ["Store", "TransactionLock", "shown_url"]


def shown_url(url: str) -> str:
    """``url`` fit for a message: its password (``redis://user:secret@host``) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"


class TransactionLock(Protocol):
    """A reentrant context manager (``threading.RLock`` is one)."""

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> Any: ...


class Store:
    """Where a backend keeps its state. Subclasses: ``MemoryStore`` (the default), ``RedisStore``."""

    #: True when several processes may use the store at once (``serve --workers N`` needs it).
    shared: bool = False
    #: The URL the store was opened with, for messages (``memory://``, ``redis://host:port/db``).
    url: str = "memory://"

    def __init__(self) -> None:
        self.lock: TransactionLock = threading.RLock()

    def transaction(self) -> TransactionLock:
        """The store's transaction: ``with store.transaction(): ...`` (reentrant per thread)."""
        return self.lock

    def read(self) -> TransactionLock:
        """For an operation that only reads: the latest state, without making other processes wait
        (the memory store's is its lock). Writing inside it is an error on a shared store."""
        return self.lock

    def attach(self, backend: MockBackend) -> None:
        """Called once by the backend built on this store; a shared store adopts the state it holds."""

    def journal(self, maxlen: int | None = 10_000, max_bytes: int | None = JOURNAL_BYTES) -> Journal:
        """A journal bounded by ``maxlen`` entries and about ``max_bytes`` bytes, kept in this store."""
        return Journal(maxlen, max_bytes)

    def refresh(self) -> None:
        """Bring in what other processes changed since this one last looked, without the transaction's
        lock (for reads made outside any operation: whether faults are queued, the clock). Nothing to
        do for a store only this process uses."""

    def optimistic(self) -> AbstractContextManager[object]:
        """For one request served on the state this process already holds, without ``refresh()`` first:
        inside it, the store's first step that reads or writes shared state checks, in the same step,
        that nothing changed since this process last read it, and raises :class:`~..errors.StaleState`
        (having written nothing) when something did; the server then refreshes and runs the request
        again. Nothing to check for a store only this process uses."""
        return nullcontext()

    def confirm(self) -> None:
        """Inside :meth:`optimistic`: check now (refreshing) that the state read so far is current, raising
        ``StaleState`` if not; from then on the request runs as any other. Elsewhere, nothing."""

    def fault_lock(self) -> TransactionLock:
        """The lock the fault queue decides under (a shared store's transaction, so a rule's hits and
        draws are counted once across processes)."""
        return threading.Lock()

    def single_update(self, backend: MockBackend, tenant: str, kind: IdKind, profile_id: str,
                      fallback: tuple[IdKind, str] | None, attributes: dict[str, str], size_limit: int,
                      entry: JournalEntry | None = None) -> tuple[str, float | None, Profile | None, bool] | None:
        """A single update counted and applied in one step of the store, where it has one and the case
        allows: ``("limited", seconds, None, False)``, ``("done", None, profile, journaled)`` (the profile
        only when it may be over ``size_limit`` bytes; ``journaled``: ``entry``, the call's journal entry
        as a success, was journaled in the same step), or None: the caller counts and applies it in
        transactions."""
        return None

    def unavailable(self, exc: BaseException) -> StoreUnavailable | None:
        """``exc`` as the store's own 503 when it means the store failed (unreachable, timed out), else
        None (a bug, answered as one)."""
        return exc if isinstance(exc, StoreUnavailable) else None

    def drop(self) -> None:
        """Remove the whole state this store holds, for every process using it (a shared store's keys
        under its prefix); the in-memory store holds nothing outside its backend."""

    def close(self) -> None:
        """Release connections; the state stays in a shared store for the next process."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
