"""Profiles of one tenant, reachable by tntId, thirdPartyId or ECID."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from contracts.profile_json import format_timestamp

IdKind = Literal["tntId", "thirdPartyId", "marketingCloudVisitorId"]
ID_KINDS: tuple[IdKind, ...] = ("tntId", "thirdPartyId", "marketingCloudVisitorId")


class Profile:
    """One visitor profile: its ids and its attributes, each ``(value, modified epoch ms)``."""

    __slots__ = ("attrs", "ecid", "third_party_id", "tnt_id")

    def __init__(self, tnt_id: str | None = None, third_party_id: str | None = None,
                 ecid: str | None = None) -> None:
        self.tnt_id = tnt_id
        self.third_party_id = third_party_id
        self.ecid = ecid
        self.attrs: dict[str, tuple[str, int]] = {}

    def update(self, values: Mapping[str, str], ts_ms: int) -> None:
        """Last write wins per attribute; empty values never set or clear anything."""
        attrs = self.attrs
        for name, value in values.items():
            if value != "":
                attrs[name] = (value, ts_ms)

    def apply_row(self, names: tuple[str, ...], row: tuple[str, ...], ts_ms: int) -> None:
        """Apply one batch row (``row[0]`` is the id; cells line up with ``names``)."""
        attrs = self.attrs
        for j in range(1, len(row)):
            value = row[j]
            if value and names[j - 1]:
                attrs[names[j - 1]] = (value, ts_ms)

    def values(self) -> dict[str, str]:
        return {k: v for k, (v, _) in self.attrs.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "tntId": self.tnt_id,
            "thirdPartyId": self.third_party_id,
            "marketingCloudVisitorId": self.ecid,
            "attributes": self.values(),
            "modifiedAt": {k: format_timestamp(ts) for k, (_, ts) in self.attrs.items()},
        }


class ProfileStore:
    """The profiles of one tenant with one index per kind of id."""

    def __init__(self) -> None:
        self._index: dict[IdKind, dict[str, Profile]] = {k: {} for k in ID_KINDS}

    def __len__(self) -> int:
        return len(self._all())

    def _all(self) -> dict[int, Profile]:
        out: dict[int, Profile] = {}
        for index in self._index.values():
            for p in index.values():
                out[id(p)] = p
        return out

    def __iter__(self) -> Iterator[Profile]:
        return iter(self._all().values())

    def find(self, kind: IdKind, profile_id: str) -> Profile | None:
        return self._index[kind].get(profile_id)

    def create(self, kind: IdKind, profile_id: str) -> Profile:
        p = Profile()
        self.link(p, kind, profile_id)
        return p

    def link(self, profile: Profile, kind: IdKind, profile_id: str) -> None:
        """Give ``profile`` an id of ``kind`` (replacing its previous one of that kind)."""
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

    def seed(self, ids: Mapping[IdKind, str], attributes: Mapping[str, str], ts_ms: int) -> Profile:
        """Create or merge the profile named by any of ``ids`` and set ``attributes``."""
        if not ids:
            raise ValueError("a seeded profile needs at least one of tntId, thirdPartyId, marketingCloudVisitorId")
        found = [p for k, v in ids.items() if (p := self.find(k, v)) is not None]
        if len({id(p) for p in found}) > 1:
            raise ValueError(f"the ids {dict(ids)} name different existing profiles")
        profile = found[0] if found else Profile()
        for kind, value in ids.items():
            self.link(profile, kind, value)
        profile.update(attributes, ts_ms)
        return profile
