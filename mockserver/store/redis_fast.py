"""The single update on Redis in one script, without the transaction lock, where the common case allows.

The script gives up (and the caller takes the transaction) when the lock is held, when something of the
tenant is due to settle or its settings make the update more than a write (the ``<prefix>:due`` marker
the transactions keep), or when the profile is still a pending batch row. Otherwise it counts the call
against the single-update limit and writes the attributes into the profile's record, all in one atomic
step: a transaction that holds the lock never sees it half done, and one that takes the lock later reads
what it wrote. docs/stores.md explains why that is safe.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import StaleState
from ..models.journal import JournalEntry
from ..models.profiles import IdKind, Profile, id_key
from ..models.tenant import Tenant
from ..snapshot import profile_in
from .redis_limits import BUCKET_FN, CLOCK_SKEW
from .redis_profiles import profile_keys

if TYPE_CHECKING:
    from .redis import RedisStore

__all__ = ["FAST_SINGLE", "JOURNAL_FN", "STALE_FN", "due_marker", "fast_single_update"]

#: The due marker of a tenant whose single updates always take the transaction.
ALWAYS_SLOW = "0"
#: Nothing due, or no lifetime, in a due marker.
NOTHING = "-"

# Number and append one journal entry ("<seq> <cost> <json>"), then drop the oldest beyond the bounds
# (maxlen entries, maxbytes bytes; -1: no bound). Answers the entry's number.
JOURNAL_FN = """
local function journal_add(list, seq_key, bytes_key, data, cost, maxlen, maxbytes)
  local seq = redis.call('INCR', seq_key)
  redis.call('RPUSH', list, seq .. ' ' .. cost .. ' ' .. data)
  local bytes = redis.call('INCRBY', bytes_key, cost)
  maxlen, maxbytes = tonumber(maxlen), tonumber(maxbytes)
  while (maxlen >= 0 and redis.call('LLEN', list) > maxlen) or (maxbytes >= 0 and bytes > maxbytes) do
    local old = redis.call('LPOP', list)
    if not old then break end
    bytes = redis.call('DECRBY', bytes_key, tonumber(string.match(old, '^%d+ (%d+) ')))
  end
  return seq
end
"""

# Whether the generation (its key) is no longer the one a caller read its state at ('': not checked).
STALE_FN = """
local function stale(key, read_at)
  return read_at ~= '' and (redis.call('GET', key) or '0') ~= read_at
end
"""

# KEYS: lock, due hash, single-update window, ids hash of the id's kind, of the fallback's kind, profiles,
# pending rows, the journal's list, sequence and size, the generation.
# ARGV: tenant, now ms, now s, window s, limit (-1: none), bucket s, index key, pending field, fallback
# index key ('': none), fallback pending field, profile data limit, the rate limit's clock skew, the call's
# journal entry as a success ('': none), its cost and the journal's bounds, the generation the caller read
# its state at ('': not checked), then (JSON key, JSON entry) pairs. Answers {'stale'} (the generation
# moved on), {'busy'}, {'slow'}, {'limited', seconds} or {'done', record, seq}: the record when it may be
# over the profile data limit (then the entry is not journaled: it gets a note), else ''; the entry's
# number when journaled, else 0.
FAST_SINGLE = BUCKET_FN + JOURNAL_FN + STALE_FN + """
if stale(KEYS[11], ARGV[17]) then return {'stale'} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'busy'} end
local marker = redis.call('HGET', KEYS[2], ARGV[1])
if not marker or marker == '0' then return {'slow'} end
local due, lifetime = string.match(marker, '^([^,]+),(.+)$')
if due ~= '-' and tonumber(due) <= tonumber(ARGV[2]) then return {'slow'} end
local uid = redis.call('HGET', KEYS[4], ARGV[7])
if not uid then
  if redis.call('HEXISTS', KEYS[7], ARGV[8]) == 1 then return {'slow'} end
  if ARGV[9] ~= '' then
    uid = redis.call('HGET', KEYS[5], ARGV[9])
    if not uid and redis.call('HEXISTS', KEYS[7], ARGV[10]) == 1 then return {'slow'} end
  end
end
local record = uid and redis.call('HGET', KEYS[6], uid)
if uid and not record then return {'slow'} end
local a, b, active = nil, nil, nil
if record then
  a, b, active = string.find(record, ',"activeMs":(%d+)', 1)
  if not a then return {'slow'} end
  -- a profile idle for its lifetime is gone: the transaction removes it
  if lifetime ~= '-' and tonumber(ARGV[2]) - tonumber(active) >= tonumber(lifetime) then return {'slow'} end
end
if tonumber(ARGV[5]) >= 0 then
  local wait = count_bucket(KEYS[3], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
                            tonumber(ARGV[12]))
  if wait then return {'limited', wait} end
end
local function done(kept)
  if ARGV[13] == '' or kept ~= '' then return {'done', kept, 0} end
  return {'done', '', journal_add(KEYS[8], KEYS[9], KEYS[10], ARGV[13], ARGV[14], ARGV[15], ARGV[16])}
end
if not record then return done('') end
if tonumber(active) < tonumber(ARGV[2]) then
  record = string.sub(record, 1, a - 1) .. ',"activeMs":' .. ARGV[2] .. string.sub(record, b + 1)
end
local s, e = string.find(record, ',"attributes":{', 1, true)
if not s then return {'slow'} end
local open = e  -- the object's '{'
for i = 18, #ARGV, 2 do
  local key, entry = ARGV[i], ARGV[i + 1]
  local p = string.find(record, '{' .. key .. ':[', open, true)
  if not p then p = string.find(record, ',' .. key .. ':[', open, true) end
  if p then
    -- the entry is ["value",ms]: the value's closing quote is the first one not escaped
    local v = p + #key + 2
    local q = v + 1
    while true do
      q = string.find(record, '"', q + 1, true)
      local bs = 0
      while string.sub(record, q - 1 - bs, q - 1 - bs) == '\\\\' do bs = bs + 1 end
      if bs % 2 == 0 then break end
    end
    local _, last = string.find(record, '^,%d+%]', q + 1)
    record = string.sub(record, 1, v - 1) .. entry .. string.sub(record, last + 1)
  elseif string.sub(record, open + 1, open + 1) == '}' then
    record = string.sub(record, 1, open) .. key .. ':' .. entry .. string.sub(record, open + 1)
  else
    record = string.sub(record, 1, -3) .. ',' .. key .. ':' .. entry .. '}}'
  end
end
redis.call('HSET', KEYS[6], uid, record)
if #record > tonumber(ARGV[11]) then return done(record) end
return done('')
"""


def due_marker(t: Tenant) -> str:
    """What the fast single update needs to know of a tenant, as ``<due>,<lifetime>``: the earliest time
    something of it settles (a delayed update or login, a batch the clock ends; ``-``: none) and its
    profile lifetime in ms (``-``: none); or ``0``: its updates always take the transaction (a delay)."""
    if t.setting("update_delay"):
        return ALWAYS_SLOW
    due = [d for b in t._open if (d := b.due_ms()) is not None]
    due += [p.visible_ms for p in t.pending] + [p.visible_ms for p in t.logins]
    lifetime = t.setting("profile_lifetime")
    return f"{min(due) if due else NOTHING}," + (NOTHING if lifetime is None else str(int(lifetime * 1000)))


def _encoded(value: object) -> str:
    # as snapshot.dumps encodes it, so the record stays what the transaction would have written
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def fast_single_update(store: RedisStore, t: Tenant, now_ms: int, now: float, kind: IdKind, profile_id: str,
                       fallback: tuple[IdKind, str] | None, attributes: dict[str, str], size_limit: int,
                       journal: tuple[JournalEntry, list[str], list[Any]] | None = None,
                       ) -> tuple[str, float | None, Profile | None, bool] | None:
    """One script: ``("limited", seconds, None, False)``, ``("done", None, profile or None, journaled)``
    (the profile only when its record is large enough to be over ``size_limit``; ``journal``, the call's
    entry with the journal script's keys and arguments, journaled in the same step when it is then
    complete), or None (take the transaction). In an optimistic request it raises ``StaleState``,
    having done nothing, when the state it read is no longer current."""
    window = t.single_window
    limit = window.limit
    keys = profile_keys(store.key(f"tenant:{t.code}"))
    key = id_key(kind, profile_id)
    fb_kind, fb_key = (fallback[0], id_key(*fallback)) if fallback is not None else (kind, "")
    args: list[object] = [t.code, now_ms, repr(now), repr(window.window), -1 if limit is None else limit,
                          repr(window.bucket), key, f"{kind}:{key}", fb_key, f"{fb_kind}:{fb_key}", size_limit,
                          CLOCK_SKEW, *(journal[2] if journal is not None else ("", 0, -1, -1))]
    read_at = store._take_optimistic()
    args.append("" if read_at is None else read_at)
    for name, value in attributes.items():
        if value != "":
            args += [_encoded(name), _encoded([value, now_ms])]
    journal_keys = journal[1] if journal is not None else [store.key("journal")] * 3
    got = store._call(store._fast_single, [store.key("lock"), store.key("due"), window.key, keys[kind],
                                           keys[fb_kind], keys["profiles"], keys["pending"], *journal_keys,
                                           store.key("counter")], args)
    answer = got[0]
    if answer == b"stale":
        raise StaleState()
    if answer == b"limited":
        return "limited", float(got[1]), None, False
    if answer == b"done":
        seq = int(got[2])
        if seq and journal is not None:
            journal[0].seq = seq
        return "done", None, profile_in(json.loads(got[1])) if got[1] else None, bool(seq)
    return None
