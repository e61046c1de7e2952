"""Profiles of one tenant, reachable by tntId, thirdPartyId or ECID."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from target_profile_mock.contracts.batch import decode_row
from target_profile_mock.contracts.profile_json import format_timestamp

IdKind = Literal["tntId", "thirdPartyId", "marketingCloudVisitorId"]
ID_KINDS: tuple[IdKind, ...] = ("tntId", "thirdPartyId", "marketingCloudVisitorId")


#: A batch row as a batch file holds it: the decoded cells, or the encoded line (see ``decode_row``).
RawRow = tuple[str, ...] | str


class Profile:
    """One visitor profile: its ids and its attributes, each ``(value, modified epoch ms)``.

    A profile that a batch row created holds just that row and the batch's shared ``(names, ts)``
    until it is first read or written: half a million profiles then cost little more than the file.
    """

    __slots__ = ("_attrs", "_base", "_row", "created_ms", "ecid", "third_party_id", "tnt_id")

    def __init__(self, tnt_id: str | None = None, third_party_id: str | None = None,
                 ecid: str | None = None, *, created_ms: int = 0) -> None:
        self.tnt_id = tnt_id
        self.third_party_id = third_party_id
        self.ecid = ecid
        self.created_ms = created_ms  #: when it was seeded or a batch row created it (epoch ms)
        self._attrs: dict[str, tuple[str, int]] | None = None
        self._row: RawRow | None = None
        self._base: tuple[tuple[str, ...], int] | None = None

    @property
    def attrs(self) -> dict[str, tuple[str, int]]:
        """Attribute name -> ``(value, modified epoch ms)``."""
        if self._row is not None:
            self._settle()
        if self._attrs is None:
            self._attrs = {}
        return self._attrs

    @attrs.setter
    def attrs(self, value: dict[str, tuple[str, int]]) -> None:
        self._attrs, self._row, self._base = value, None, None

    def _settle(self) -> None:
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

    def apply_row(self, names: tuple[str, ...], row: RawRow, ts_ms: int) -> None:
        """Apply one batch row (``row[0]`` is the id; cells line up with ``names``)."""
        if self._row is None and not self._attrs:
            self._row, self._base = row, (names, ts_ms)
            return
        self.attrs  # noqa: B018 - settles a pending row first, so this one lands after it
        self._row, self._base = row, (names, ts_ms)
        self._settle()

    def values(self) -> dict[str, str]:
        return {k: v for k, (v, _) in self.attrs.items()}

    @property
    def modified_ms(self) -> int:
        """When it last changed: its latest attribute write, or its creation if it has no attributes."""
        return max((ts for _, ts in self.attrs.values()), default=self.created_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tntId": self.tnt_id,
            "thirdPartyId": self.third_party_id,
            "marketingCloudVisitorId": self.ecid,
            "attributes": self.values(),
            "modifiedAt": {k: format_timestamp(ts) for k, (_, ts) in self.attrs.items()},
        }


class ProfileStore:
    """The profiles of one tenant with one index per kind of id.

    Profiles that a batch creates wait as plain ``id -> row`` entries of that batch until one is first
    looked up: accepting a 500,000-row file then builds one dict, not half a million objects.
    """

    def __init__(self) -> None:
        self._index: dict[IdKind, dict[str, Profile]] = {k: {} for k in ID_KINDS}
        #: (kind, (names, ts_ms), {id: row}) per batch whose new profiles were not looked at yet
        self._pending: list[tuple[IdKind, tuple[tuple[str, ...], int], dict[str, RawRow]]] = []

    def __len__(self) -> int:
        return len(self._all(settle=False)) + sum(len(rows) for _, _, rows in self._pending)

    def _all(self, *, settle: bool = True) -> dict[int, Profile]:
        if settle:
            self._settle_pending()
        out: dict[int, Profile] = {}
        for index in self._index.values():
            for p in index.values():
                out[id(p)] = p
        return out

    def __iter__(self) -> Iterator[Profile]:
        return iter(self._all().values())

    def find(self, kind: IdKind, profile_id: str) -> Profile | None:
        p = self._index[kind].get(profile_id)
        if p is None and self._pending:
            p = self._claim(kind, profile_id)
        return p

    def _claim(self, kind: IdKind, profile_id: str) -> Profile | None:
        """Turn a pending batch-created profile into a real one (None when there is none)."""
        for i, (k, base, rows) in enumerate(self._pending):
            if k == kind and profile_id in rows:
                row = rows.pop(profile_id)
                if not rows:
                    del self._pending[i]
                return self._adopt(kind, profile_id, row, base)
        return None

    def _adopt(self, kind: IdKind, profile_id: str, row: RawRow, base: tuple[tuple[str, ...], int]) -> Profile:
        p = Profile(profile_id, created_ms=base[1]) if kind == "tntId" else \
            Profile(None, profile_id, created_ms=base[1])
        p._row, p._base = row, base
        self._index[kind][profile_id] = p
        return p

    def _settle_pending(self) -> None:
        pending, self._pending = self._pending, []
        for kind, base, rows in pending:
            for pid, row in rows.items():
                self._adopt(kind, pid, row, base)

    def create(self, kind: IdKind, profile_id: str, ts_ms: int) -> Profile:
        p = Profile(created_ms=ts_ms)
        self.link(p, kind, profile_id)
        return p

    def link(self, profile: Profile, kind: IdKind, profile_id: str) -> None:
        """Give ``profile`` an id of ``kind`` (replacing its previous one of that kind)."""
        if self._pending:
            self.find(kind, profile_id)  # a pending profile with this id is displaced like any other
        index = self._index[kind]
        old = {"tntId": profile.tnt_id, "thirdPartyId": profile.third_party_id,
               "marketingCloudVisitorId": profile.ecid}[kind]
        if old is not None and index.get(old) is profile:
            del index[old]
        index[profile_id] = profile
        if kind == "tntId":
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
        if create and kind != "marketingCloudVisitorId":
            # every id new and none repeated (the usual first load): the batch's rows become its
            # profiles in one step, each made a Profile when first looked up
            fresh = dict(zip(ids, rows, strict=True))
            if len(fresh) == len(ids) and index.keys().isdisjoint(fresh) \
                    and all(k != kind or r.keys().isdisjoint(fresh) for k, _, r in self._pending):
                if fresh:
                    self._pending.append((kind, base, fresh))
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
            else:
                p.apply_row(names, row, ts_ms)
            applied += 1
        return applied, missing

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
        return profile
