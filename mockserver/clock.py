"""The controllable clock every time-based behaviour reads (lifecycles, rate limits, tokens)."""

from __future__ import annotations

import threading
import time
from typing import Any

#: The latest instant the clock may reach: 9000-01-01T00:00:00Z. Every timestamp the fake renders goes
#: through ``datetime``, which stops at year 9999; the margin leaves room for any delay or retention
#: window added to "now".
MAX_EPOCH = 221_845_392_000.0


class ClockRangeError(ValueError):
    """A move that would take the clock before the epoch or past :data:`MAX_EPOCH`."""


def _check_instant(at: float, what: str) -> float:
    if not 0 <= at <= MAX_EPOCH:  # also refuses NaN
        raise ClockRangeError(f"{what} would put the clock at epoch {at!r} s, outside 0..{MAX_EPOCH:.0f} "
                              "(1970-01-01 to 9000-01-01, the range the fake can render)")
    return at


class Clock:
    """Real time shifted by an offset, or frozen at an instant; ``advance`` moves either.

    Nothing in the fake sleeps or runs on a timer: states are computed from this clock when read.
    """

    def __init__(self, *, frozen_at: float | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen: float | None = None if frozen_at is None else _check_instant(float(frozen_at), "frozen_at")

    def guard(self, lock: Any) -> None:
        """Make every change under ``lock`` (reentrant): a shared store's transaction, so a change is
        written to the store and seen by every process at its next request."""
        self._lock = lock

    def now(self) -> float:
        """Seconds since the epoch, as the fake sees it."""
        frozen = self._frozen
        return frozen if frozen is not None else time.time() + self._offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def advance(self, seconds: float) -> float:
        """Move time forward (never backward); returns the new now.

        Raises :class:`ClockRangeError` (a ``ValueError``) when the clock would pass :data:`MAX_EPOCH`,
        counting every earlier advance, and leaves the clock where it was.
        """
        if not seconds >= 0:  # also refuses NaN
            raise ValueError(f"the clock only moves forward; got advance({seconds})")
        with self._lock:
            _check_instant(self.now() + seconds, f"advance({seconds})")
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds
            return self.now()

    def freeze(self, at: float | None = None) -> float:
        """Stop time at ``at`` (default: now); it then moves only by ``advance``.

        Raises :class:`ClockRangeError` for an ``at`` outside 0..:data:`MAX_EPOCH`.
        """
        with self._lock:
            self._frozen = self.now() if at is None else _check_instant(float(at), f"freeze(at={at!r})")
            return self._frozen

    def unfreeze(self) -> float:
        """Let time run again from where it stands."""
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - time.time()
                self._frozen = None
            return self.now()

    def restart(self) -> None:
        """Back to real time with no offset, as a new clock."""
        with self._lock:
            self._offset = 0.0
            self._frozen = None

    def snapshot(self) -> tuple[float, float | None]:
        """The clock's whole state, for :meth:`restore` when a compound change fails half-way."""
        with self._lock:
            return self._offset, self._frozen

    def restore(self, state: tuple[float, float | None]) -> None:
        with self._lock:
            self._offset, self._frozen = state

    def to_dict(self) -> dict[str, object]:
        return {"now": self.now(), "nowMs": self.now_ms(), "frozen": self.frozen}
