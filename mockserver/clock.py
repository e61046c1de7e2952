"""The controllable clock every time-based behaviour reads (lifecycles, rate limits, tokens)."""

from __future__ import annotations

import threading
import time


class Clock:
    """Real time shifted by an offset, or frozen at an instant; ``advance`` moves either.

    Nothing in the fake sleeps or runs on a timer: states are computed from this clock when read.
    """

    def __init__(self, *, frozen_at: float | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen: float | None = frozen_at

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
        """Move time forward (never backward); returns the new now."""
        if seconds < 0:
            raise ValueError(f"the clock only moves forward; got advance({seconds})")
        with self._lock:
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds
            return self.now()

    def freeze(self, at: float | None = None) -> float:
        """Stop time at ``at`` (default: now); it then moves only by ``advance``."""
        with self._lock:
            self._frozen = self.now() if at is None else float(at)
            return self._frozen

    def unfreeze(self) -> float:
        """Let time run again from where it stands."""
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - time.time()
                self._frozen = None
            return self.now()

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
            if self._frozen is not None:
                self._frozen = time.time()

    def to_dict(self) -> dict[str, object]:
        return {"now": self.now(), "nowMs": self.now_ms(), "frozen": self.frozen}
