"""The in-memory store: the backend's own objects, one process, no serialisation on any path."""

from __future__ import annotations

from .base import Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """State in this process's memory (the default). Its transaction is a ``threading.RLock``: the
    model's objects (tenants, profile stores, batches, windows, journal, fault queue) are the records,
    and putting one back is a no-op."""

    shared = False
    url = "memory://"
