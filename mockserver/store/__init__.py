"""Stores: where a backend keeps its state (docs/stores.md).

``open_store(None)`` or ``open_store("memory://")`` is the in-memory store; ``redis://``,
``rediss://`` and ``unix://`` URLs open the Redis store, shared by every process on the same
Redis and key prefix.
"""

from __future__ import annotations

from .base import Store, TransactionLock, shown_url
from .memory import MemoryStore

__all__ = ["MemoryStore", "Store", "TransactionLock", "open_store", "shown_url"]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_store(url: str | None, *, prefix: str = "tpm") -> Store:
    """The store a URL names: ``None``/``memory://`` (in this process) or ``redis://host:port/db``.

    Raises ``ValueError`` (a :class:`~..errors.ControlError`) naming the URL for an unknown scheme, a
    missing ``redis`` package, or a Redis that does not answer.
    """
    from ..errors import ControlError

    if url is None or url == "memory://":
        return MemoryStore()
    if not isinstance(url, str) or not url.startswith(_REDIS_SCHEMES):
        raise ControlError(f"unknown store {url!r}: use memory:// or redis://host:port/db "
                           "(also rediss:// and unix:///path/to/redis.sock)")
    if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
        raise ControlError(f"a store's key prefix is a non-empty word without spaces, not {prefix!r}")
    try:
        import redis  # noqa: F401
    except ImportError:
        raise ControlError(f"the store {url} needs the redis package: pip install 'target-profile-mock[redis]'") \
            from None
    from .redis import RedisStore

    return RedisStore(url, prefix=prefix)
