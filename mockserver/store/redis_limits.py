"""A tenant's rate-limit windows in Redis, counted by one script a call: exact across processes, and
no operation's lock is taken for them.

The scripts are :class:`~..models.ratelimit.SlidingWindow` and :class:`~..models.ratelimit.BucketWindow`
written in Lua, rule for rule: the bulk window is a sorted set of call times, the single-update window
a hash of minute buckets.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ..models.ratelimit import BucketWindow, SlidingWindow

if TYPE_CHECKING:
    from .redis import RedisStore

__all__ = ["BUCKET", "BUCKET_FN", "CLOCK_SKEW", "SLIDING", "RedisBucketWindow", "RedisSlidingWindow"]

#: How far ahead of a caller's clock reading another process's call may be timed and still count as
#: made (seconds). Processes read the shared clock before their script runs, so a call counted a moment
#: ago may carry a later time than the one being counted now; only times further ahead than this come
#: from a clock moved back, and leave the window, as in one process.
CLOCK_SKEW = 1.0

# KEYS[1]: the sorted set; ARGV: now, window, limit, a unique member, the clock skew. Answers nil
# (counted) or the seconds to wait, as text (a Lua number would come back cut to a whole one).
SLIDING = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', now - window))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '(' .. string.format('%.17g', now + tonumber(ARGV[5])), '+inf')
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then
  if n == 0 then return string.format('%.17g', window) end
  local first = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
  return string.format('%.17g', math.max(0, first + window - now))
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
return false
"""

# The single-update window as a Lua function, so another script (the one-script single update) counts
# with it too. Answers nil (counted) or the seconds to wait, as text.
BUCKET_FN = """
local function count_bucket(key, now, window, limit, bucket, skew)
  local ahead = now + skew
  local all, total, first = redis.call('HGETALL', key), 0, nil
  for i = 1, #all, 2 do
    local start = tonumber(all[i])
    if start <= now - window or start > ahead then
      redis.call('HDEL', key, all[i])
    else
      total = total + tonumber(all[i + 1])
      if first == nil or start < first then first = start end
    end
  end
  if total >= limit then
    if first == nil then return string.format('%.17g', window) end
    return string.format('%.17g', math.max(0, first + window - now))
  end
  redis.call('HINCRBY', key, string.format('%.17g', now - (now % bucket)), 1)
  return false
end
"""

# KEYS[1]: the hash bucket start -> count; ARGV: now, window, limit, bucket seconds, the clock skew.
BUCKET = BUCKET_FN + """
return count_bucket(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
                    tonumber(ARGV[5]))
"""


def _seconds(answer: bytes | None) -> float | None:
    return None if answer is None else float(answer)


class RedisSlidingWindow(SlidingWindow):
    """The bulk window of one tenant, kept in Redis (``_events`` reads it, for snapshots)."""

    def __init__(self, store: RedisStore, key: str, limit: int | None, window: float) -> None:
        super().__init__(limit, window)
        self._store = store
        self.key = key
        self._n = 0

    def try_acquire(self, now: float) -> float | None:
        if self.limit is None:
            return None
        self._n += 1
        member = f"{now!r}:{id(self):x}:{self._n}:{self._store.process}"
        return _seconds(self._store._call(self._store._sliding, [self.key],
                                          [repr(now), repr(self.window), self.limit, member, CLOCK_SKEW]))

    def count(self, now: float) -> int:
        return int(self._store._redis.zcount(self.key, f"({now - self.window!r}", "+inf"))

    @property  # type: ignore[override]
    def _events(self) -> deque[float]:
        return deque(score for _, score in self._store._redis.zrange(self.key, 0, -1, withscores=True))

    @_events.setter
    def _events(self, value: deque[float]) -> None:
        pass  # the base class starts with an empty deque; the events live in Redis


class RedisBucketWindow(BucketWindow):
    """The single-update window of one tenant, kept in Redis (``_buckets`` reads it, for snapshots)."""

    def __init__(self, store: RedisStore, key: str, limit: int | None) -> None:
        super().__init__(limit)
        self._store = store
        self.key = key

    def try_acquire(self, now: float) -> float | None:
        if self.limit is None:
            return None
        return _seconds(self._store._call(self._store._bucket, [self.key],
                                          [repr(now), repr(self.window), self.limit, repr(self.bucket), CLOCK_SKEW]))

    def count(self, now: float) -> int:
        return sum(n for start, n in self._buckets if start > now - self.window)

    @property  # type: ignore[override]
    def _buckets(self) -> deque[list[float]]:
        held = self._store._redis.hgetall(self.key)
        return deque(sorted([float(start), int(n)] for start, n in held.items()))

    @_buckets.setter
    def _buckets(self, value: deque[list[float]]) -> None:
        pass  # the base class starts with an empty deque; the buckets live in Redis
