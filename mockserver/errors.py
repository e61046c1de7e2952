"""The error every control call raises, shared by the model and the HTTP layer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["ControlError", "StaleState", "StoreUnavailable", "unknown_keys"]


class ControlError(ValueError):
    """A control call that cannot be done; the message says why and what would work."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class StoreUnavailable(ControlError):
    """The store failed mid-call (a shared store unreachable, timed out, or its lock lost): HTTP 503,
    with ``retry_after`` seconds; nothing of the call was written."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message, 503)
        self.retry_after = retry_after


class StaleState(Exception):
    """Raised inside an optimistic request (``Store.optimistic``) when another process changed the state
    since this one last read it: nothing of the request was written, and the server runs it again on
    the fresh state. Never reaches a client."""

    def __init__(self, message: str = "another process changed the state since this request read it") -> None:
        super().__init__(message)


def unknown_keys(given: Iterable[str], allowed: Sequence[str], what: str) -> str | None:
    """What to say when ``what`` has keys outside ``allowed`` (naming them and what is taken); None if none."""
    extra = set(given) - set(allowed)
    return f"{what} has unknown keys {sorted(extra)}; use {', '.join(allowed)}" if extra else None
