"""Rate limits over the fake's clock: a sliding window for bulk calls, minute buckets for a day."""

from __future__ import annotations

from collections import deque


class SlidingWindow:
    """At most ``limit`` events in any ``window`` seconds (exact, for small limits such as 50/minute)."""

    def __init__(self, limit: int | None, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: deque[float] = deque()

    def try_acquire(self, now: float) -> float | None:
        """Record an event and return None, or return the seconds until one is allowed."""
        if self.limit is None:
            return None
        events = self._events
        while events and events[0] <= now - self.window:
            events.popleft()
        # calls "after" now (the clock was frozen at an earlier instant) are not in the window ending now
        while events and events[-1] > now:
            events.pop()
        if len(events) >= self.limit:
            # a limit of 0 refuses every call with nothing in the window to wait for
            return max(0.0, events[0] + self.window - now) if events else self.window
        events.append(now)
        return None

    def count(self, now: float) -> int:
        """Events in the window ending at ``now`` (a read: nothing is recorded or dropped)."""
        return sum(1 for t in self._events if t > now - self.window)


class BucketWindow:
    """At most ``limit`` events in a rolling ``window``, counted in ``bucket``-second buckets.

    Memory stays bounded (one counter a bucket) even for 1,000,000 events a day.
    """

    def __init__(self, limit: int | None, window: float = 86_400, bucket: float = 60) -> None:
        self.limit = limit
        self.window = window
        self.bucket = bucket
        self._buckets: deque[list[float]] = deque()  # [bucket start, count]
        self._total = 0

    def try_acquire(self, now: float) -> float | None:
        if self.limit is None:
            return None
        buckets = self._buckets
        while buckets and buckets[0][0] <= now - self.window:
            self._total -= int(buckets.popleft()[1])
        # buckets that start after now (the clock was frozen at an earlier instant) are not in the window
        while buckets and buckets[-1][0] > now:
            self._total -= int(buckets.pop()[1])
        if self._total >= self.limit:
            # a limit of 0 refuses every call with nothing in the window to wait for
            return max(0.0, buckets[0][0] + self.window - now) if buckets else self.window
        start = now - (now % self.bucket)
        if buckets and buckets[-1][0] == start:
            buckets[-1][1] += 1
        else:
            buckets.append([start, 1])
        self._total += 1
        return None

    @property
    def used(self) -> int:
        return self._total

    def count(self, now: float) -> int:
        """Events in the window ending at ``now`` (a read: nothing is recorded or dropped)."""
        return sum(int(c) for start, c in self._buckets if start > now - self.window)
