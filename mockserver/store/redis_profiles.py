"""One tenant's profiles in Redis, read as an operation reaches them and written back when it ends.

Keys, under ``<prefix>:tenant:<code>``: ``:profiles`` (a hash, profile uid -> the snapshot's profile
JSON), ``:ids:<kind>`` (a hash per kind of id, index key -> uid), ``:pending`` (rows a v2 batch created
profiles from, not looked at yet: ``<kind>:<key>`` -> chunk, hinted id and row) and
``:bases`` (chunk -> the batch's attribute names and time). A lookup is one round trip; within a
transaction each profile is one object (an identity map), so ``is`` keeps working; nothing is kept
once the transaction ends.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..models.profiles import ID_KINDS, IdKind, Profile, ProfileStore, RawRow, id_key
from ..snapshot import dumps, profile_in, profile_out

if TYPE_CHECKING:
    from .redis import RedisStore

__all__ = ["FIND", "FIND_MANY", "RedisProfiles", "profile_keys"]

#: Rows per command when many profiles are read or pending rows written at once.
CHUNK = 10_000

# KEYS: ids hash, profiles hash, pending hash, bases hash; ARGV: index key, pending field.
FIND = """
local uid = redis.call('HGET', KEYS[1], ARGV[1])
if uid then return {1, uid, redis.call('HGET', KEYS[2], uid)} end
local row = redis.call('HGET', KEYS[3], ARGV[2])
if row then return {2, row, redis.call('HGET', KEYS[4], string.match(row, '^(%d+)\\31'))} end
return {0}
"""

# The same for many index keys (ARGV[1], a JSON list) at once; answers only what it found:
# {{position, 1, uid, profile JSON | "", position, 2, pending row, ""...}, {chunk, base, ...}}.
FIND_MANY = """
local found, bases, seen = {}, {}, {}
for i, key in ipairs(cjson.decode(ARGV[1])) do
  local uid = redis.call('HGET', KEYS[1], key)
  if uid then
    found[#found + 1] = i; found[#found + 1] = 1; found[#found + 1] = uid
    found[#found + 1] = redis.call('HGET', KEYS[2], uid) or ''
  else
    local row = redis.call('HGET', KEYS[3], ARGV[2] .. key)
    if row then
      found[#found + 1] = i; found[#found + 1] = 2; found[#found + 1] = row; found[#found + 1] = ''
      local chunk = string.match(row, '^(%d+)\\31')
      if not seen[chunk] then
        seen[chunk] = true
        bases[#bases + 1] = chunk; bases[#bases + 1] = redis.call('HGET', KEYS[4], chunk) or '{}'
      end
    end
  end
end
return {found, bases}
"""


def profile_keys(base: str) -> dict[str, str]:
    """The Redis keys of one tenant's profiles (``base``: ``<prefix>:tenant:<code>``)."""
    return {"profiles": f"{base}:profiles", "pending": f"{base}:pending", "bases": f"{base}:bases",
            **{kind: f"{base}:ids:{kind}" for kind in ID_KINDS}}


def _pending_out(chunk: str, hinted: str | None, row: RawRow) -> str:
    """A pending row as Redis holds it: ``<chunk> US <hinted id> US <row>``, the row as its encoded line
    or (after RS) as a JSON list of cells; plain text, so storing half a million costs no encoding."""
    return f"{chunk}\x1f{hinted or ''}\x1f{row if isinstance(row, str) else chr(30) + json.dumps(row)}"


def _pending_in(raw: bytes) -> tuple[str, str | None, RawRow]:
    chunk, hinted, row = raw.decode().split("\x1f", 2)
    return chunk, hinted or None, tuple(json.loads(row[1:])) if row.startswith("\x1e") else row


def _ids(p: Profile) -> list[tuple[IdKind, str]]:
    return [(k, v) for k, v in zip(ID_KINDS, (p.tnt_id, p.third_party_id, p.ecid), strict=True) if v is not None]


class RedisProfiles(ProfileStore):
    """A :class:`ProfileStore` whose profiles live in Redis; the base class's index is this transaction's
    identity map."""

    def __init__(self, store: RedisStore, base: str) -> None:
        super().__init__()
        self._store = store
        self.keys = profile_keys(base)
        self.forget()

    def forget(self) -> None:
        """Drop what this transaction read: the next one starts from Redis."""
        self._index = {k: {} for k in ID_KINDS}
        self._pending = []
        self._uid: dict[int, str] = {}  # id(profile) -> uid
        self._loaded: dict[str, Profile] = {}  # uid -> profile (keeps it alive, so id() stays unique)
        self._seen: dict[str, bytes | None] = {}  # uid -> its JSON as read (None: new in this transaction)
        self._local: set[tuple[IdKind, str]] = set()  # index keys Redis need not be asked about again
        self._touched: set[tuple[IdKind, str]] = set()  # index keys this transaction changed
        self._claimed: list[str] = []  # pending fields turned into profiles
        self._bases: dict[str, tuple[tuple[str, ...], int]] = {}
        self._all_loaded = False
        self._empty: set[IdKind] = set()  # kinds of which Redis held no id nor pending row when asked

    # --- reading --------------------------------------------------------------------------------------
    def _miss(self, kind: IdKind, key: str) -> Profile | None:
        p = None
        if (kind, key) not in self._local and not self._all_loaded and kind not in self._empty:
            p = self._fetch(kind, key)
        return p if p is not None else super()._miss(kind, key)

    def _fetch(self, kind: IdKind, key: str) -> Profile | None:
        k = self.keys
        got = self._store._call(self._store._find, [k[kind], k["profiles"], k["pending"], k["bases"]],
                                [key, f"{kind}:{key}"])
        self._local.add((kind, key))
        if got[0] == 1:
            return self._found(kind, key, got[1].decode(), got[2])
        if got[0] == 2:
            return self._from_pending(kind, key, got[1], got[2])
        return None

    def _found(self, kind: IdKind, key: str, uid: str, data: bytes | None) -> Profile | None:
        p = self._loaded.get(uid)
        if p is None:
            if data is None:  # an index entry whose profile is gone (cannot happen through the fake)
                return None
            p = profile_in(json.loads(data))
            self._register(uid, p, data)
        self._index[kind][key] = p
        return p

    def _from_pending(self, kind: IdKind, key: str, raw: bytes, base: bytes | None) -> Profile:
        chunk, hinted, row = _pending_in(raw)
        names = self._bases.get(chunk)
        if names is None:
            b = json.loads(base or b"{}")
            names = self._bases[chunk] = (tuple(b.get("names", ())), int(b.get("ts", 0)))
        self._claimed.append(f"{kind}:{key}")
        return self._adopt(kind, hinted or key, row if isinstance(row, str) else tuple(row), names)

    def _register(self, uid: str, p: Profile, data: bytes | None) -> None:
        self._uid[id(p)] = uid
        self._loaded[uid] = p
        self._seen[uid] = data

    def _new(self, p: Profile) -> None:
        if id(p) not in self._uid:
            self._register(secrets.token_hex(8), p, None)

    def _ensure(self, p: Profile) -> None:
        """Read every index entry of ``p``'s ids, so changing them here keeps Redis's index exact."""
        for kind, value in _ids(p):
            key = id_key(kind, value)
            if key not in self._index[kind] and (kind, key) not in self._local and not self._all_loaded \
                    and kind not in self._empty:
                self._fetch(kind, key)

    def _all(self, *, settle: bool = True) -> dict[int, Profile]:
        if settle and not self._all_loaded:
            self._load_all()
        return super()._all(settle=settle)

    def _load_all(self) -> None:
        r = self._store._redis
        k = self.keys
        pipe = r.pipeline(transaction=False)
        for kind in ID_KINDS:
            pipe.hgetall(k[kind])
        pipe.hgetall(k["profiles"])
        pipe.hgetall(k["pending"])
        pipe.hgetall(k["bases"])
        *indexes, profiles, pending, bases = self._store._run(pipe)
        for kind, index in zip(ID_KINDS, indexes, strict=True):
            for key, uid in index.items():
                key_s = key.decode()
                if key_s not in self._index[kind] and (kind, key_s) not in self._local:
                    self._found(kind, key_s, uid.decode(), profiles.get(uid))
        for field, raw in pending.items():
            kind_s, _, key_s = field.decode().partition(":")
            kind: IdKind = kind_s  # type: ignore[assignment]
            if key_s not in self._index[kind] and (kind, key_s) not in self._local:
                self._from_pending(kind, key_s, raw, bases.get(raw.partition(b"\x1f")[0]))
        self._all_loaded = True

    def __len__(self) -> int:
        if self._all_loaded:
            return super().__len__()
        r = self._store._redis
        pipe = r.pipeline(transaction=False)
        pipe.hlen(self.keys["profiles"])
        pipe.hlen(self.keys["pending"])
        held, pending = self._store._run(pipe)
        live = self._live()
        new = sum(1 for uid in live if self._seen[uid] is None)
        gone = sum(1 for uid, data in self._seen.items() if data is not None and uid not in live)
        return held + new - gone + pending - len(self._claimed) + sum(len(rows) for _, _, rows, _ in self._pending)

    def _live(self) -> set[str]:
        """The uids of loaded profiles still indexed under one of their ids."""
        return {uid for index in self._index.values() for p in index.values()
                if (uid := self._uid.get(id(p))) is not None}

    # --- changing -------------------------------------------------------------------------------------
    def _adopt(self, kind: IdKind, profile_id: str, row: RawRow, base: tuple[tuple[str, ...], int]) -> Profile:
        p = super()._adopt(kind, profile_id, row, base)
        self._new(p)
        self._touched.add((kind, id_key(kind, profile_id)))
        return p

    def link(self, profile: Profile, kind: IdKind, profile_id: str) -> None:
        self._new(profile)
        self._ensure(profile)
        key = id_key(kind, profile_id)
        current = self.find(kind, profile_id)
        if current is not None and current is not profile:
            self._ensure(current)  # it keeps its other ids
        old = {"tntId": profile.tnt_id, "thirdPartyId": profile.third_party_id,
               "marketingCloudVisitorId": profile.ecid}[kind]
        if old is not None:
            self._touched.add((kind, id_key(kind, old)))
        self._touched.add((kind, key))
        super().link(profile, kind, profile_id)

    def remove(self, profile: Profile) -> None:
        self._ensure(profile)
        for kind, value in _ids(profile):
            self._touched.add((kind, id_key(kind, value)))
        super().remove(profile)

    def apply_rows(self, kind: IdKind, names: tuple[str, ...], rows: Sequence[RawRow], ids: Sequence[str],
                   ts_ms: int, *, create: bool) -> tuple[int, int]:
        self._prefetch(kind, [pid.partition(".")[0] if kind == "tntId" else pid for pid in ids])
        return super().apply_rows(kind, names, rows, ids, ts_ms, create=create)

    def _prefetch(self, kind: IdKind, keys: Sequence[str]) -> None:
        """Read the profiles (and pending rows) a batch names, a chunk of ids per round trip, so applying
        it asks Redis nothing more; ids found nowhere are then known to be new."""
        if self._all_loaded:
            return
        k = self.keys
        if kind not in self._empty:
            pipe = self._store._redis.pipeline(transaction=False)
            pipe.hlen(k[kind])
            pipe.hlen(k["pending"])
            if not any(self._store._run(pipe)):  # the usual first load: Redis holds none of them
                self._empty.add(kind)
        if kind in self._empty:
            return
        wanted = list(dict.fromkeys(k for k in keys if k not in self._index[kind] and (kind, k) not in self._local))
        for start in range(0, len(wanted), CHUNK):
            part = wanted[start:start + CHUNK]
            found, bases = self._store._call(self._store._find_many, [k[kind], k["profiles"], k["pending"], k["bases"]],
                                             [dumps(part), f"{kind}:"])
            base_of = {bases[i].decode(): bases[i + 1] for i in range(0, len(bases), 2)}
            for i in range(0, len(found), 4):
                key = part[found[i] - 1]
                if found[i + 1] == 1:
                    self._found(kind, key, found[i + 2].decode(), found[i + 3] or None)
                elif key not in self._index[kind]:
                    row = found[i + 2]
                    self._from_pending(kind, key, row, base_of.get(row.partition(b"\x1f")[0].decode()))
            self._local.update((kind, key) for key in part)

    # --- writing back ---------------------------------------------------------------------------------
    def ops(self) -> list[Any]:
        """What this transaction changed, as the commit script's operations (see ``RedisStore``)."""
        k = self.keys
        out: list[Any] = []
        live = self._live()
        for uid, p in self._loaded.items():
            seen = self._seen[uid]
            if uid in live:
                data = dumps(profile_out(p))
                if data != seen:
                    out += ["H", k["profiles"], uid, data]
            elif seen is not None:
                out += ["D", k["profiles"], uid, ""]
        for kind, key in self._touched:
            p = self._index[kind].get(key)
            uid = None if p is None else self._uid.get(id(p))
            out += ["D", k[kind], key, ""] if uid is None else ["H", k[kind], key, uid]
        for field in self._claimed:
            out += ["D", k["pending"], field, ""]
        return out + self._pending_ops(self._pending)

    def _pending_ops(self, pending: list[Any]) -> list[Any]:
        """A batch's rows not yet made profiles, as pending rows in Redis (one chunk per batch)."""
        k = self.keys
        out: list[Any] = []
        for kind, base, rows, hinted in pending:
            chunk = str(secrets.randbits(52))
            out += ["H", k["bases"], chunk, dumps({"names": list(base[0]), "ts": base[1]})]
            items = list(rows.items())
            for start in range(0, len(items), CHUNK * 5):  # one JSON object a chunk, stored field by field
                out += ["P", k["pending"], dumps({f"{kind}:{key}": _pending_out(chunk, hinted.get(key), row)
                                                  for key, row in items[start:start + CHUNK * 5]}), ""]
        return out

    def replace_ops(self, profiles: ProfileStore) -> list[Any]:
        """Operations that make Redis hold exactly ``profiles`` (a tenant restored or created here)."""
        k = self.keys
        out: list[Any] = [op for key in k.values() for op in ("X", key, "", "")]
        uids: dict[int, str] = {}
        for p in profiles._all(settle=False).values():
            uid = uids[id(p)] = secrets.token_hex(8)
            out += ["H", k["profiles"], uid, dumps(profile_out(p))]
        for kind, index in profiles._index.items():
            for key, p in index.items():
                out += ["H", k[kind], key, uids[id(p)]]
        return out + self._pending_ops(profiles._pending)
