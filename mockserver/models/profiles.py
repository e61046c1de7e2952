"""Profiles of one tenant, reachable by tntId, thirdPartyId or ECID."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from target_profile_mock.contracts.batch import decode_row
from target_profile_mock.contracts.ids import ID_KINDS, IdKind, location_hint, tnt_id_key
from target_profile_mock.contracts.profile_json import format_timestamp


def id_key(kind: IdKind, value: str) -> str:
    """The index key of an id: a tntId without its location hint (any hint names the same visitor)."""
    return value.partition(".")[0] if kind == "tntId" else value


#: A batch row as a batch file holds it: the decoded cells, or the encoded line (see ``decode_row``).
RawRow = tuple[str, ...] | str


class Profile:
    """One visitor profile: its ids and its attributes, each ``(value, modified epoch ms)``.

    A profile that a batch row created holds just that row and the batch's shared ``(names, ts)``
    until it is first read or written: half a million profiles then cost little more than the file.
    """

    __slots__ = ("_attrs", "_base", "_row", "active_ms", "created_ms", "ecid", "third_party_id", "tnt_id")

    def __init__(self, tnt_id: str | None = None, third_party_id: str | None = None,
                 ecid: str | None = None, *, created_ms: int = 0) -> None:
        self.tnt_id = tnt_id
        self.third_party_id = third_party_id
        self.ecid = ecid
        self.created_ms = created_ms  #: when it was seeded or a batch row created it (epoch ms)
        self.active_ms = created_ms  #: its last activity (a visit or an update): the lifetime counts from it
        self._attrs: dict[str, tuple[str, int]] | None = None
        self._row: RawRow | None = None
        self._base: tuple[tuple[str, ...], int] | None = None

    @property
    def attrs(self) -> dict[str, tuple[str, int]]:
        """Attribute name -> ``(value, modified epoch ms)``."""
        if self._row is not None:
            self._unpack_row()
        if self._attrs is None:
            self._attrs = {}
        return self._attrs

    @attrs.setter
    def attrs(self, value: dict[str, tuple[str, int]]) -> None:
        self._attrs, self._row, self._base = value, None, None

    def _unpack_row(self) -> None:
        row, base = self._row, self._base
        self._row = self._base = None
        assert row is not None and base is not None
        names, ts_ms = base
        cells = decode_row(row) if isinstance(row, str) else row
        attrs = self._attrs if self._attrs is not None else {}
        for j in range(1, len(cells)):
            value = cells[j]
            if value and names[j - 1]:
                attrs[names[j - 1]] = (value, ts_ms)
        self._attrs = attrs

    def update(self, values: Mapping[str, str], ts_ms: int) -> None:
        """Last write wins per attribute; empty values never set or clear anything."""
        attrs = self.attrs
        for name, value in values.items():
            if value != "":
                attrs[name] = (value, ts_ms)
        self.touch(ts_ms)

    def touch(self, ts_ms: int) -> None:
        """Record activity at ``ts_ms``: the profile's lifetime starts again from there."""
        if ts_ms > self.active_ms:
            self.active_ms = ts_ms

    def apply_row(self, names: tuple[str, ...], row: RawRow, ts_ms: int) -> None:
        """Apply one batch row (``row[0]`` is the id; cells line up with ``names``)."""
        self.touch(ts_ms)
        if self._row is None and not self._attrs:
            self._row, self._base = row, (names, ts_ms)
            return
        self.attrs  # noqa: B018 - settles a pending row first, so this one lands after it
        self._row, self._base = row, (names, ts_ms)
        self._unpack_row()

    def data_bytes(self) -> int:
        """The UTF-8 size of its attribute names and values (what the 64 KB profile data limit counts)."""
        return sum(len(name.encode()) + len(value.encode()) for name, (value, _) in self.attrs.items())

    def values(self) -> dict[str, str]:
        return {k: v for k, (v, _) in self.attrs.items()}

    @property
    def modified_ms(self) -> int:
        """When it last changed: its latest attribute write, or its creation if it has no attributes."""
        return max((ts for _, ts in self.attrs.values()), default=self.created_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tntId": self.tnt_id,
            "lastActivityAt": format_timestamp(self.active_ms),
            "thirdPartyId": self.third_party_id,
            "marketingCloudVisitorId": self.ecid,
            "attributes": self.values(),
            "modifiedAt": {k: format_timestamp(ts) for k, (_, ts) in self.attrs.items()},
        }


class ProfileStore:
    """The profiles of one tenant with one index per kind of id.

    tntIds are indexed without their location hint (:func:`id_key`), so a lookup costs one dict
    access whatever the hint and however many profiles there are.

    Profiles that a batch creates wait as plain ``id -> row`` entries of that batch until one is first
    looked up: accepting a 500,000-row file then builds one dict, not half a million objects.

    A profile idle for ``lifetime_ms`` (measured against ``now_ms``, which the tenant sets before every
    read) is gone: lookups drop it when they meet it, nothing sweeps in the background.
    """

    def __init__(self) -> None:
        self._index: dict[IdKind, dict[str, Profile]] = {k: {} for k in ID_KINDS}
        #: (kind, (names, ts_ms), {id key: row}, {id key: hinted id}) per batch whose new profiles were
        #: not looked at yet
        self._pending: list[tuple[IdKind, tuple[tuple[str, ...], int], dict[str, RawRow], dict[str, str]]] = []
        self.now_ms = 0
        self.lifetime_ms: int | None = None

    def __len__(self) -> int:
        return len(self._all(settle=False)) + sum(len(rows) for _, _, rows, _ in self._pending)

    def _all(self, *, settle: bool = True) -> dict[int, Profile]:
        if settle:
            self._adopt_pending()
        out: dict[int, Profile] = {}
        for index in self._index.values():
            for p in index.values():
                out[id(p)] = p
        if settle and self.lifetime_ms is not None:
            for key, p in list(out.items()):
                if self.expired(p):
                    self.remove(p)
                    del out[key]
        return out

    def __iter__(self) -> Iterator[Profile]:
        return iter(self._all().values())

    def expired(self, profile: Profile) -> bool:
        """True when the profile has been idle for its lifetime (as of ``now_ms``)."""
        return self.lifetime_ms is not None and self.now_ms - profile.active_ms >= self.lifetime_ms

    def find(self, kind: IdKind, profile_id: str) -> Profile | None:
        """The live profile with this id (a tntId with any location hint or none), or None."""
        key = profile_id.partition(".")[0] if kind == "tntId" else profile_id
        p = self._index[kind].get(key)
        if p is None:
            p = self._miss(kind, key)
        if p is not None and self.lifetime_ms is not None and self.now_ms - p.active_ms >= self.lifetime_ms:
            self.remove(p)
            return None
        return p

    def _miss(self, kind: IdKind, key: str) -> Profile | None:
        """The profile of an id key the index does not hold: a batch-created one, if any (a store that
        keeps profiles elsewhere looks there first)."""
        return self._claim(kind, key) if self._pending else None

    def remove(self, profile: Profile) -> None:
        """Forget a profile under all its ids."""
        for kind, value in (("tntId", profile.tnt_id), ("thirdPartyId", profile.third_party_id),
                            ("marketingCloudVisitorId", profile.ecid)):
            if value is not None:
                index = self._index[kind]  # type: ignore[index]
                key = id_key(kind, value)  # type: ignore[arg-type]
                if index.get(key) is profile:
                    del index[key]

    def _claim(self, kind: IdKind, key: str) -> Profile | None:
        """Turn a pending batch-created profile into a real one (None when there is none)."""
        for i, (k, base, rows, hinted) in enumerate(self._pending):
            if k == kind and key in rows:
                row = rows.pop(key)
                if not rows:
                    del self._pending[i]
                return self._adopt(kind, hinted.get(key, key), row, base)
        return None

    def _adopt(self, kind: IdKind, profile_id: str, row: RawRow, base: tuple[tuple[str, ...], int]) -> Profile:
        p = Profile(profile_id, created_ms=base[1]) if kind == "tntId" else \
            Profile(None, profile_id, created_ms=base[1])
        p._row, p._base = row, base
        self._index[kind][id_key(kind, profile_id)] = p
        return p

    def _adopt_pending(self) -> None:
        pending, self._pending = self._pending, []
        for kind, base, rows, hinted in pending:
            for key, row in rows.items():
                self._adopt(kind, hinted.get(key, key), row, base)

    def create(self, kind: IdKind, profile_id: str, ts_ms: int) -> Profile:
        p = Profile(created_ms=ts_ms)
        self.link(p, kind, profile_id)
        return p

    def link(self, profile: Profile, kind: IdKind, profile_id: str) -> None:
        """Give ``profile`` an id of ``kind`` (replacing its previous one of that kind).

        A tntId without a location hint does not erase the hint the profile already has for that id.
        """
        if self._pending:
            self.find(kind, profile_id)  # a pending profile with this id is displaced like any other
        index = self._index[kind]
        old = {"tntId": profile.tnt_id, "thirdPartyId": profile.third_party_id,
               "marketingCloudVisitorId": profile.ecid}[kind]
        key = id_key(kind, profile_id)
        if old is not None and index.get(id_key(kind, old)) is profile:
            del index[id_key(kind, old)]
        index[key] = profile
        if kind == "tntId":
            if old is not None and tnt_id_key(old) == key and location_hint(profile_id) is None:
                return
            profile.tnt_id = profile_id
        elif kind == "thirdPartyId":
            profile.third_party_id = profile_id
        else:
            profile.ecid = profile_id

    def apply_rows(self, kind: IdKind, names: tuple[str, ...], rows: Sequence[RawRow], ids: Sequence[str],
                   ts_ms: int, *, create: bool) -> tuple[int, int]:
        """Apply a batch's rows in order (ids line up with rows): ``(applied, not found)``.

        A profile the batch creates, or one without attributes yet, keeps the row as it is; all of them
        share one ``(names, ts)`` tuple.
        """
        if len(ids) != len(rows):
            raise ValueError(f"{len(ids)} ids for {len(rows)} rows")
        index = self._index[kind]
        base = (names, ts_ms)
        hinted: dict[str, str] = {}
        keys: Sequence[str] = ids
        if kind == "tntId" and any("." in pid for pid in ids):
            keys = [pid.partition(".")[0] for pid in ids]
            hinted = {k: pid for k, pid in zip(keys, ids, strict=True) if k != pid}
        if create and kind != "marketingCloudVisitorId":
            # every id new and none repeated (the usual first load): the batch's rows become its
            # profiles in one step, each made a Profile when first looked up
            fresh = dict(zip(keys, rows, strict=True))
            if len(fresh) == len(ids) and index.keys().isdisjoint(fresh) \
                    and all(k != kind or r.keys().isdisjoint(fresh) for k, _, r, _ in self._pending):
                if fresh:
                    self._pending.append((kind, base, fresh, hinted))
                return len(fresh), 0
            del fresh
        applied = missing = 0
        find = self.find
        for pid, row in zip(ids, rows, strict=True):
            p = find(kind, pid)
            if p is None:
                if not create:
                    missing += 1
                    continue
                p = self.create(kind, pid, ts_ms)
            if p._row is None and not p._attrs:
                p._row, p._base = row, base
                p.touch(ts_ms)
            else:
                p.apply_row(names, row, ts_ms)
            applied += 1
        return applied, missing

    def merge(self, into: Profile, other: Profile) -> None:
        """Fold ``other`` into ``into``: ``into``'s attributes win, ``other``'s fill the gaps and its ids
        that ``into`` lacks move over; ``other`` is gone afterwards."""
        if other is into:
            return
        attrs = into.attrs
        for name, value in other.attrs.items():
            if name not in attrs:
                attrs[name] = value
        self.remove(other)
        for kind, value in (("tntId", other.tnt_id), ("thirdPartyId", other.third_party_id),
                            ("marketingCloudVisitorId", other.ecid)):
            mine = {"tntId": into.tnt_id, "thirdPartyId": into.third_party_id,
                    "marketingCloudVisitorId": into.ecid}[kind]
            if value is not None and mine is None:
                self.link(into, kind, value)  # type: ignore[arg-type]
        into.created_ms = min(into.created_ms, other.created_ms)
        into.touch(other.active_ms)

    def seed(self, ids: Mapping[IdKind, str], attributes: Mapping[str, str], ts_ms: int) -> Profile:
        """Create or merge the profile named by any of ``ids`` and set ``attributes``."""
        if not ids:
            raise ValueError("a seeded profile needs at least one of tntId, thirdPartyId, marketingCloudVisitorId")
        found = [p for k, v in ids.items() if (p := self.find(k, v)) is not None]
        if len({id(p) for p in found}) > 1:
            raise ValueError(f"the ids {dict(ids)} name different existing profiles")
        profile = found[0] if found else Profile(created_ms=ts_ms)
        for kind, value in ids.items():
            self.link(profile, kind, value)
        profile.update(attributes, ts_ms)
        profile.touch(ts_ms)
        return profile
