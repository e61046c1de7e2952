"""One tenant (client code): its profiles, batches, token, limits and pending updates."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..config import MockConfig, TenantSettings
from .batches import Batch
from .profiles import IdKind, Profile, ProfileStore
from .ratelimit import BucketWindow, SlidingWindow


@dataclass(slots=True)
class Token:
    """A profile API authentication token."""

    value: str
    issued_ms: int
    ttl: float | None

    def expires_in(self, now_ms: int) -> int:
        """Whole seconds left, rounded up: a token read in the same response that issued it shows its
        full lifetime even when the clock ticks a millisecond in between, and a valid token never
        shows 0."""
        if self.ttl is None:
            return 2**31 - 1
        return max(0, math.ceil(self.ttl - (now_ms - self.issued_ms) / 1000))

    def valid(self, now_ms: int) -> bool:
        # compare in milliseconds, not through expires_in's whole seconds
        return self.ttl is None or now_ms - self.issued_ms < self.ttl * 1000


@dataclass(slots=True)
class PendingUpdate:
    """A single update waiting for its visibility delay to pass."""

    visible_ms: int
    kind: IdKind
    profile_id: str
    fallback: tuple[IdKind, str] | None
    attributes: dict[str, str]


@dataclass(slots=True)
class PendingLogin:
    """A login (a visit bringing a thirdPartyId with a tntId) waiting for the profile sync delay."""

    visible_ms: int
    tnt_id: str
    third_party_id: str


class Tenant:
    """The state of one client code. Tenants never see each other's data."""

    def __init__(self, code: str, config: MockConfig) -> None:
        self.code = code
        self.settings = TenantSettings()
        self.profiles = ProfileStore()
        self.batches: deque[Batch] = deque()  # oldest first, for retention
        self._by_id: dict[str, Batch] = {}
        self._open: list[Batch] = []  # still incomplete: the only ones settle() has to look at
        self.token: Token | None = None
        self.pending: list[PendingUpdate] = []
        self.logins: list[PendingLogin] = []
        self.offers: dict[str, dict[str, Any]] = {}  #: mbox name -> {type, content} the Delivery API answers
        self._config = config
        self.bulk_window = SlidingWindow(None, 60.0)
        self.single_window = BucketWindow(None)
        self.refresh_limits()

    def setting(self, name: str) -> Any:
        return self.settings.resolve(name, self._config)

    def refresh_limits(self) -> None:
        self.bulk_window.limit = self.setting("bulk_calls_per_minute")
        self.single_window.limit = self.setting("single_updates_per_day")

    # --- lazy evaluation ----------------------------------------------------------------------
    def at(self, now_ms: int) -> ProfileStore:
        """The profiles as of ``now_ms``: those idle for the profile lifetime are gone."""
        store = self.profiles
        store.now_ms = now_ms
        lifetime = self.setting("profile_lifetime")
        store.lifetime_ms = None if lifetime is None else int(lifetime * 1000)
        return store

    def settle(self, now_ms: int) -> None:
        """Apply what time alone has made due: delayed single updates and time-based batches.

        Poll-counted lifecycles move only on status polls, never here. Also sets the time against
        which profiles' lifetimes are judged.
        """
        self.at(now_ms)
        if self.logins:
            due = [p for p in self.logins if p.visible_ms <= now_ms]
            if due:
                self.logins = [p for p in self.logins if p.visible_ms > now_ms]
                for login in due:
                    self.connect(login.tnt_id, login.third_party_id, login.visible_ms)
        if self.pending:
            due = [p for p in self.pending if p.visible_ms <= now_ms]
            if due:
                self.pending = [p for p in self.pending if p.visible_ms > now_ms]
                for p in due:
                    self.apply_update(p.kind, p.profile_id, p.fallback, p.attributes, p.visible_ms)
        if self._open:
            due = [b for b in self._open if b.state == "incomplete" and b.lifecycle.mode in ("immediate", "seconds")
                   and b.due(now_ms, poll=False)]
            # in the order they ended, so a later write wins even when a later batch ended first
            for batch in sorted(due, key=lambda b: self._end_ms(b, now_ms)):
                batch.end(batch.lifecycle.outcome, self.profiles, self._end_ms(batch, now_ms))
            self._open = [b for b in self._open if b.state == "incomplete"]

    @staticmethod
    def _end_ms(batch: Batch, now_ms: int) -> int:
        if batch.lifecycle.mode == "seconds":
            return min(now_ms, batch.submitted_ms + int(batch.lifecycle.seconds * 1000))
        return now_ms

    def poll(self, batch: Batch, now_ms: int, *, count: bool = True) -> None:
        """A status poll: counts toward poll-based lifecycles and may end the batch."""
        self.settle(now_ms)
        if batch.state != "incomplete":
            return
        if batch.due(now_ms, poll=count):
            batch.end(batch.lifecycle.outcome, self.profiles, self._end_ms(batch, now_ms))
        if count:
            batch.polls += 1

    def apply_update(self, kind: IdKind, profile_id: str, fallback: tuple[IdKind, str] | None,
                     attributes: dict[str, str], ts_ms: int) -> Profile | None:
        """Update an existing profile and return it; an unknown id changes nothing (updates never create)."""
        profile = self.profiles.find(kind, profile_id)
        if profile is None and fallback is not None:
            profile = self.profiles.find(*fallback)
        if profile is None:
            return None
        profile.update(attributes, ts_ms)
        return profile

    def connect(self, tnt_id: str, third_party_id: str, ts_ms: int) -> Profile | None:
        """A login: the visitor of ``tnt_id`` is the customer ``third_party_id``. Their profiles become
        one; where both have an attribute, the thirdPartyId profile's value wins. Returns that profile."""
        store = self.profiles
        device = store.find("tntId", tnt_id)
        customer = store.find("thirdPartyId", third_party_id)
        if customer is None:
            if device is None:
                return None
            store.link(device, "thirdPartyId", third_party_id)
            device.touch(ts_ms)
            return device
        if device is not None and device is not customer:
            store.merge(customer, device)
        store.link(customer, "tntId", tnt_id)
        customer.touch(ts_ms)
        return customer

    def add_batch(self, batch: Batch) -> None:
        self.batches.append(batch)
        self._by_id[batch.batch_id] = batch
        self._open.append(batch)

    def expire_batches(self, now_ms: int, retention: float | None, keep: int | None) -> None:
        batches = self.batches
        while batches and (
                (retention is not None and now_ms - batches[0].submitted_ms > retention * 1000)
                or (keep is not None and len(batches) > keep)):
            gone = batches.popleft()
            self._by_id.pop(gone.batch_id, None)
            if gone.state == "incomplete":
                self._open.remove(gone)

    def find_batch(self, batch_id: str) -> Batch | None:
        return self._by_id.get(batch_id)
