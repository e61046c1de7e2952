"""A pure model of Adobe's documented profile semantics, for checking an endpoint's state.

What it encodes (sources in docs/fidelity.md):

* a single update never creates a profile; it changes an existing one (EL-SINGLE);
* a v1 batch never creates one and counts the rows it cannot place as ``profilesNotFound``; a v2
  batch creates missing profiles (EL-BULK);
* empty values never set or clear an attribute, and a batch whose cells are all empty is skipped
  (EL-BULK 2025-10-28);
* the last write wins, attribute by attribute (rows in file order; later calls over earlier ones);
* a batch's rows are applied when the batch completes, not when it is submitted; a stuck batch
  applies none;
* a tntId names the same profile with any location hint or none;
* a visit (Delivery API call) finds or starts the visitor's profile and writes its profile
  parameters; a visit bringing a thirdPartyId with a tntId (a login) makes one profile, the
  thirdPartyId profile's values winning (3RDPARTY);
* a profile idle for the lifetime (14 days by default, LIFETIME) is gone; visits, applied updates
  and seeding are activity, fetches are not.

The model holds no HTTP: callers tell it what happened, in order, and how far the clock moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .ids import IdKind
from .xmlbodies import BatchStatusToken

__all__ = ["ModelBatch", "ModelProfile", "ProfileModel"]

#: Identifier names of the single update API and of batch files, mapped to the profile's id kinds.
ID_KIND_OF: dict[str, IdKind] = {"mboxPC": "tntId", "mbox3rdPartyId": "thirdPartyId", "pcId": "tntId",
                                 "thirdPartyId": "thirdPartyId", "tntId": "tntId",
                                 "marketingCloudVisitorId": "marketingCloudVisitorId"}


@dataclass
class ModelProfile:
    """A profile: its ids by kind and its attribute values."""

    ids: dict[IdKind, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    active: float = 0.0  #: the model clock's time of its last activity

    def write(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            if value != "":
                self.attributes[name] = value


def _key(kind: IdKind, profile_id: str) -> tuple[IdKind, str]:
    # a tntId's location hint only routes; the visitor is the part before the dot
    return (kind, profile_id.partition(".")[0] if kind == "tntId" else profile_id)


@dataclass
class ModelBatch:
    """A submitted batch waiting to be applied."""

    batch_id: str
    version: int
    key: IdKind
    attributes: tuple[str, ...]
    rows: list[tuple[str, tuple[str, ...]]]
    state: BatchStatusToken = "incomplete"
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.rows)


class ProfileModel:
    """Profiles of one client, reachable by any of their ids, and the batches submitted to it."""

    def __init__(self, *, lifetime: float | None = 14 * 86_400.0) -> None:
        self._index: dict[tuple[IdKind, str], ModelProfile] = {}
        self.batches: dict[str, ModelBatch] = {}
        self.now = 0.0  #: seconds on the model's clock (moved by :meth:`advance`)
        self.lifetime = lifetime  #: seconds a profile lives without activity (None: forever)

    # --- reading ---------------------------------------------------------------------------------
    def find(self, kind: str, profile_id: str) -> ModelProfile | None:
        """The profile with this id (``kind`` may be any id name: ``mboxPC``, ``pcId``, ``tntId``...)."""
        return self._index.get(_key(ID_KIND_OF[kind], profile_id))

    def fetch(self, kind: str, profile_id: str) -> dict[str, str] | None:
        """What a profile fetch returns: the attribute values, or None for 404."""
        p = self.find(kind, profile_id)
        return None if p is None else dict(p.attributes)

    def profiles(self) -> list[ModelProfile]:
        seen: dict[int, ModelProfile] = {}
        for p in self._index.values():
            seen[id(p)] = p
        return list(seen.values())

    # --- writing ---------------------------------------------------------------------------------
    def seed(self, ids: Mapping[str, str], attributes: Mapping[str, str] | None = None) -> ModelProfile:
        """A profile Target has already seen (created by a visit, not by the Profile APIs)."""
        kinds = {ID_KIND_OF[k]: v for k, v in ids.items()}
        found = {id(p): p for k, v in kinds.items() if (p := self._index.get(_key(k, v))) is not None}
        if len(found) > 1:
            raise ValueError(f"the ids {dict(ids)} name different profiles")
        profile = next(iter(found.values())) if found else ModelProfile(active=self.now)
        for kind, value in kinds.items():
            self._link(profile, kind, value)
        profile.write(attributes or {})
        profile.active = self.now
        return profile

    def _link(self, profile: ModelProfile, kind: IdKind, value: str) -> None:
        old = profile.ids.get(kind)
        if old is not None and self._index.get(_key(kind, old)) is profile:
            del self._index[_key(kind, old)]
        self._index[_key(kind, value)] = profile
        if kind == "tntId" and old is not None and _key(kind, old) == _key(kind, value) and "." not in value:
            return  # an id without a hint keeps the hint the profile has
        profile.ids[kind] = value

    def _drop(self, profile: ModelProfile) -> None:
        for kind, value in profile.ids.items():
            if self._index.get(_key(kind, value)) is profile:
                del self._index[_key(kind, value)]

    def single_update(self, id_kind: str, profile_id: str, attributes: Mapping[str, str]) -> bool:
        """Apply a single update; False (and no change) when no such profile exists."""
        p = self.find(id_kind, profile_id)
        if p is None:
            return False
        p.write(attributes)
        p.active = self.now
        return True

    def advance(self, seconds: float) -> None:
        """Move the clock; profiles idle for the whole lifetime are gone."""
        self.now += seconds
        if self.lifetime is None:
            return
        for p in self.profiles():
            if self.now - p.active >= self.lifetime:
                self._drop(p)

    def visit(self, tnt_id: str | None, third_party_id: str | None, parameters: Mapping[str, str],
              issued_tnt_id: str) -> ModelProfile:
        """A Delivery API visit. ``issued_tnt_id`` is the tntId the endpoint answered with (what it
        issues to a new visitor cannot be predicted). Returns the visitor's profile."""
        profile = None
        if tnt_id is not None and third_party_id is not None:  # a login
            device, customer = self.find("tntId", tnt_id), self.find("thirdPartyId", third_party_id)
            if customer is None and device is not None:
                self._link(device, "thirdPartyId", third_party_id)
                profile = device
            elif customer is not None:
                if device is not None and device is not customer:
                    for name, value in device.attributes.items():
                        customer.attributes.setdefault(name, value)
                    self._drop(device)
                    for kind, value in device.ids.items():
                        if kind not in customer.ids:
                            self._link(customer, kind, value)
                self._link(customer, "tntId", tnt_id)
                profile = customer
        if profile is None and tnt_id is not None:
            profile = self.find("tntId", tnt_id)
        if profile is None and third_party_id is not None:
            profile = self.find("thirdPartyId", third_party_id)
        if profile is None:
            profile = ModelProfile(active=self.now)
            self._link(profile, "tntId", issued_tnt_id)
            if third_party_id is not None:
                self._link(profile, "thirdPartyId", third_party_id)
        elif "tntId" not in profile.ids:
            self._link(profile, "tntId", issued_tnt_id)
        profile.write(parameters)
        profile.active = self.now
        return profile

    def submit_batch(self, batch_id: str, version: int, key: str, attributes: Iterable[str],
                     rows: Iterable[tuple[str, Iterable[str]]]) -> ModelBatch:
        """Record a submitted batch; nothing changes until :meth:`complete_batch`."""
        batch = ModelBatch(batch_id, version, ID_KIND_OF[key], tuple(attributes),
                           [(rid, tuple(cells)) for rid, cells in rows])
        self.batches[batch_id] = batch
        return batch

    def complete_batch(self, batch_id: str, *, failed: Iterable[int] = ()) -> dict[str, int]:
        """Apply a batch's rows (except the rows at the ``failed`` indices); returns its counters."""
        b = self.batches[batch_id]
        if b.state != "incomplete":
            return b.counters
        b.state = "complete"
        failed_rows = set(failed)
        skipped = not any(any(cells) for _, cells in b.rows)
        ok = not_found = 0
        for i, (rid, cells) in enumerate(b.rows):
            if i in failed_rows:
                continue
            if skipped:
                ok += 1
                continue
            p = self._index.get(_key(b.key, rid))
            if p is None:
                if b.version != 2:
                    not_found += 1
                    continue
                p = self.seed({b.key: rid})
            p.write({b.attributes[j]: v for j, v in enumerate(cells) if j < len(b.attributes)})
            p.active = self.now
            ok += 1
        n = b.size
        b.counters = {"batchSize": n, "consumedCount": n, "successfulUpdates": ok, "profilesNotFound": not_found,
                      "failedUpdates": len(failed_rows)}
        return b.counters

    def stick_batch(self, batch_id: str) -> None:
        """A batch that ended ``stuck``: none of its rows is applied."""
        b = self.batches[batch_id]
        if b.state == "incomplete":
            b.state = "stuck"
            b.counters = {"batchSize": b.size, "consumedCount": 0, "successfulUpdates": 0, "profilesNotFound": 0,
                          "failedUpdates": 0}
