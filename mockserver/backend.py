"""The fake's whole state behind one object, with its Python control API.

Everything hangs off a :class:`MockBackend`: tenants, clock, journal, settings. There are no
module-level singletons, so two backends never share anything (unless built on one shared store, see
docs/stores.md) and ``reset`` clears everything. The HTTP control API under ``/_mock/`` and the pytest
plugin both call these methods.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from target_profile_mock.contracts.batch import BatchFile
from target_profile_mock.contracts.delivery import DeliveryRequest, delivery_response
from target_profile_mock.contracts.rules import LIMITS, Violation, rule
from target_profile_mock.contracts.xmlbodies import BatchStatusToken

from .clock import Clock
from .config import TENANT_KEYS, MockConfig
from .errors import ControlError, unknown_keys
from .lifecycle import Lifecycle
from .models.batches import Batch
from .models.faults import FaultInjector
from .models.journal import JournalEntry
from .models.profiles import ID_KINDS, IdKind, id_key
from .models.tenant import PendingLogin, PendingUpdate, Tenant, Token
from .snapshot import apply_state, export_state, import_state, read_file
from .snapshot import save as save_state
from .store import MemoryStore, Store

__all__ = ["CapacityError", "ControlError", "MockBackend"]

BatchState = BatchStatusToken


class CapacityError(ControlError):
    """A call the fake refuses because one of its own memory bounds is reached (HTTP 503)."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message, 503)
        self.retry_after = retry_after


#: Memory a batch file takes once parsed, per byte of the file (rows, ids and their objects; measured on
#: the documented 7-column shape): what a submission reserves before it is read.
BATCH_MEMORY_FACTOR = 2.5


def _lifecycle(spec: str | Lifecycle) -> Lifecycle:
    if isinstance(spec, Lifecycle):
        return spec
    if not isinstance(spec, str):
        raise ControlError(f"a lifecycle is a spec string such as 'polls=2' or 'seconds=5,stuck', got {spec!r}")
    return Lifecycle.parse(spec)


_COUNT_SETTINGS = ("bulk_calls_per_minute", "single_updates_per_day", "batch_retention_count", "journal_size",
                   "journal_bytes", "batch_retention_bytes", "max_tenants")
#: Whole numbers that must be given (never null), with their least value.
_SIZE_SETTINGS = {"batch_max_bytes": 1, "batch_max_rows": 1, "keep_rows_max": 0}
_SECONDS_SETTINGS = ("update_delay", "batch_retention", "token_ttl", "profile_lifetime", "login_sync_delay")
#: The largest count or size: 2**53, the largest whole number every JSON reader keeps exactly.
MAX_COUNT = 2**53
#: The longest delay, retention or token lifetime: a century, as the clock's longest advance; beyond it
#: the instants they lead to could not be rendered.
MAX_SETTING_SECONDS = 100 * 365 * 86_400.0
_CHOICE_SETTINGS = {"v2_profile_rows": ("failed", "all", "none"), "status_path": ("v1", "versioned")}
_BOOL_SETTINGS = ("auth", "rate_limit_status_polls", "random_tokens")
#: Statuses the fake may answer refusals with: real client and server error statuses.
_ERROR_STATUSES = ("auth_failure_status", "single_rate_status")
#: What a host[:port] in a URL may hold (letters, digits, ``.-_``, an IPv6 literal in brackets, a port).
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def _check_setting(name: str, value: Any) -> None:
    """Refuse a value of the wrong type or range now, not with a 500 at the first request that reads it."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    whole = number and isinstance(value, int)
    if name in _COUNT_SETTINGS:
        ok = value is None or (whole and 0 <= value <= MAX_COUNT)
        what = f"a whole number from 0 to {MAX_COUNT}, or null"
    elif name in _SIZE_SETTINGS:
        least = _SIZE_SETTINGS[name]
        ok, what = whole and least <= value <= MAX_COUNT, f"a whole number from {least} to {MAX_COUNT}"
    elif name in _SECONDS_SETTINGS:
        ok = value is None or (number and 0 <= value <= MAX_SETTING_SECONDS)  # also refuses NaN and Infinity
        what = f"a number of seconds from 0 to {MAX_SETTING_SECONDS:.0f} (a century), or null"
    elif name in _CHOICE_SETTINGS:
        ok, what = isinstance(value, str) and value in _CHOICE_SETTINGS[name], f"one of {list(_CHOICE_SETTINGS[name])}"
    elif name == "location_hint":
        ok, what = isinstance(value, str) and re.fullmatch(r"[0-9]{1,3}_[0-9]{1,3}", value) is not None, \
            "a location hint such as '28_0' (<cluster>_<node>)"
    elif name == "auth":
        ok, what = isinstance(value, bool) or value is None, "true or false"
    elif name in _BOOL_SETTINGS:
        ok, what = isinstance(value, bool), "true or false"
    elif name in _ERROR_STATUSES:
        ok, what = whole and 400 <= value <= 599, "an HTTP error status from 400 to 599"
    elif name == "seed":
        ok, what = whole, "a whole number"
    elif name == "client_code":
        ok, what = isinstance(value, str) and bool(value) and value.isprintable() and "/" not in value, \
            "a client code (non-empty text without '/' or control characters)"
    elif name == "status_host":
        ok, what = value is None or (isinstance(value, str) and bool(_HOST_RE.match(value))), \
            "a host or host:port (e.g. mboxedge45.tt.omtrdc.net), or null"
    elif name == "control_token":
        ok, what = value is None or (isinstance(value, str) and bool(value)), "a non-empty string, or null"
    else:
        return
    if not ok:
        raise ControlError(f"{name} takes {what}; got {shown(value)}")


def shown(value: Any) -> str:
    """A value for an error message, as JSON writes it and cut short, whatever was sent."""
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _over_limit(profile: Any) -> int | None:
    """The profile's attribute data size when it is over the documented 64 KB, else None."""
    if profile is None:
        return None
    # a UTF-8 character is at most 4 bytes: most profiles are far under the limit by their length alone
    if 4 * sum(len(name) + len(value) for name, (value, _) in profile.attrs.items()) <= LIMITS.profile_data_bytes:
        return None
    size = profile.data_bytes()
    return size if size > LIMITS.profile_data_bytes else None


class MockBackend:
    """The state of one fake Adobe Target: tenants, batches, tokens, clock and journal."""

    #: raises ControlError for a setting value of the wrong type or range (stores check what they read)
    check_setting = staticmethod(_check_setting)

    def __init__(self, config: MockConfig | None = None, *, clock: Clock | None = None,
                 store: Store | None = None) -> None:
        self.config = config or MockConfig()
        self.clock = clock or Clock()
        #: where the state is kept (docs/stores.md): this process's memory, or a store several share
        self.store: Store = store if store is not None else MemoryStore()
        #: the store's transaction: every model operation runs inside it (reentrant per thread)
        self.lock = self.store.lock
        self.journal = self.store.journal(self.config.journal_size, self.config.journal_bytes)
        self._tenants: dict[str, Tenant] = {}
        self._rng_state: random.Random | None = None
        self._reserved = 0  # batch bytes reserved by submissions being read and parsed
        #: injected faults (see .faults)
        self.faults: FaultInjector = FaultInjector(self.config.seed, lock=self.store.fault_lock())
        #: where ``POST /_mock/snapshot`` (and the standalone server, on shutdown) writes the state
        self.state_file: str | None = None
        self.store.attach(self)

    # --- tenants ---------------------------------------------------------------------------------
    def tenant(self, code: str) -> Tenant:
        """The tenant with this client code, created on first use.

        Raises :class:`CapacityError` when creating it would pass ``max_tenants``.
        """
        with self.lock:
            t = self._tenants.get(code)
            if t is None:
                refusal = self.tenant_refusal(code)
                if refusal is not None:
                    raise CapacityError(refusal)
                t = self._tenants[code] = Tenant(code, self.config)
            return t

    def tenant_refusal(self, code: str) -> str | None:
        """None when the tenant exists or may be created; else why the fake refuses to create it."""
        limit = self.config.max_tenants
        if limit is None or code in self._tenants or len(self._tenants) < limit:
            return None
        return (f"the fake already holds {len(self._tenants):,} client codes, its max_tenants, and does not "
                f"create client code {code!r}; reset it (POST /_mock/reset), or raise the bound "
                "(--max-tenants, PUT /_mock/settings {\"max_tenants\": ...})")

    def tenants(self) -> list[str]:
        with self.lock:
            return sorted(self._tenants)

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def tenant_summary(self, tenant: str) -> dict[str, Any]:
        """What the fake holds for one tenant, in counts: profiles, batches by state, journaled requests,
        delayed updates, the next time-based change, auth and the rate-limit windows. A read: it settles
        what the clock made due and creates nothing."""
        with self.lock:
            t = self._tenants.get(tenant)
            if t is None:
                raise ControlError(f"no tenant {tenant!r}; GET /_mock/tenants lists them", 404)
            now = self.now_ms()
            t.settle(now)
            states = {"incomplete": 0, "complete": 0, "stuck": 0}
            for b in t.batches:
                states[b.state] += 1
            due = [d for b in t.batches if (d := b.due_ms()) is not None] + [p.visible_ms for p in t.pending]
            token = t.token if t.token is not None and t.token.valid(now) else None
            seconds = now / 1000
            return {
                "tenant": tenant,
                "profiles": len(t.profiles),
                "batches": states,
                "requests": sum(1 for e in self.journal if e.tenant == tenant),
                "pendingUpdates": len(t.pending),
                "nextChangeAt": min(due, default=None),
                "auth": {"enabled": bool(t.setting("auth")), "tokenIssued": token is not None,
                         "tokenExpiresIn": None if token is None or token.ttl is None else token.expires_in(now)},
                "rateLimits": {
                    "bulk": {"limit": t.bulk_window.limit, "windowSeconds": t.bulk_window.window,
                             "used": t.bulk_window.count(seconds)},
                    "single": {"limit": t.single_window.limit, "windowSeconds": t.single_window.window,
                               "used": t.single_window.count(seconds)},
                },
            }

    @property
    def _rng(self) -> random.Random:
        # seeded on first use after a reset: most tests never draw, and seeding costs a reset ~6 us
        rng = self._rng_state
        if rng is None:
            rng = self._rng_state = random.Random(self.config.seed)
        return rng

    # --- reset -----------------------------------------------------------------------------------
    def reset(self, tenant: str | None = None) -> None:
        """Forget everything (or one tenant's profiles, batches, token, limits and settings)."""
        with self.lock:
            if tenant is None:
                self._tenants.clear()
                self._reserved = 0
                self.journal.clear()
                self._rng_state = None
                # ids restart too: an unseeded rule's stream derives from its id, so a reset fake
                # must meet the same faults as a fresh one
                self.faults.reset(self.config.seed)
            else:
                self._tenants.pop(tenant, None)
                self.faults.clear(tenant)

    # --- snapshots -------------------------------------------------------------------------------
    def snapshot(self, *, journal: bool = False) -> dict[str, Any]:
        """The whole state as a JSON value (docs/snapshot.md): profiles with their timestamps, batches
        where they stand in their lifecycle, tokens, rate-limit windows, settings, clock and faults,
        and the journal if ``journal`` is true. Taking it counts no poll and uses no limit."""
        return export_state(self, journal=journal)

    def save(self, path: str | None = None, *, journal: bool = False) -> int:
        """Write :meth:`snapshot` to ``path`` (default: ``state_file``) atomically: a crash while
        writing leaves the previous file whole. Returns the bytes written."""
        target = path or self.state_file
        if target is None:
            raise ControlError("no state file: give a path, or start the server with --state-file PATH", 409)
        try:
            return save_state(self, target, journal=journal)
        except OSError as exc:
            raise ControlError(f"cannot write the state file {target!r}: {exc.strerror or exc}", 500) from None

    def load(self, path: str) -> None:
        """:meth:`restore` the snapshot in a state file; the state is unchanged if it cannot be read."""
        self.restore(read_file(path))

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the whole state with a :meth:`snapshot` (the journal too, if it holds one).

        The snapshot is checked from end to end first: :class:`ControlError` names the first field that
        is wrong (or says it comes from a newer version) and the state is left as it was.
        """
        with self.lock:
            apply_state(self, import_state(snapshot, self.config, _check_setting))

    # --- settings --------------------------------------------------------------------------------
    def configure(self, tenant: str | None = None, **settings: Any) -> None:
        """Change settings server-wide, or for one tenant (only the keys in ``TENANT_KEYS``).

        ``lifecycle`` takes a :class:`Lifecycle` or a spec such as ``"polls=2"``; for a tenant, a
        limit of None switches that limit off.
        """
        with self.lock:
            if "lifecycle" in settings and settings["lifecycle"] is not None:
                settings["lifecycle"] = _lifecycle(settings["lifecycle"])
            for name, value in settings.items():
                _check_setting(name, value)
            if tenant is None:
                unknown = [k for k in settings if not hasattr(self.config, k)]
                if unknown:
                    raise ControlError(f"unknown setting(s) {unknown}; known: "
                                       f"{sorted(vars(self.config))}")
                for k, v in settings.items():
                    setattr(self.config, k, v)
                if "journal_size" in settings or "journal_bytes" in settings:
                    self.journal = self.store.journal(self.config.journal_size, self.config.journal_bytes)
                for t in self._tenants.values():
                    t.refresh_limits()
                return
            unknown = [k for k in settings if k not in TENANT_KEYS]
            if unknown:
                raise ControlError(f"setting(s) {unknown} cannot be set per tenant; per-tenant settings: "
                                   f"{list(TENANT_KEYS)}")
            t = self.tenant(tenant)
            for k, v in settings.items():
                if v is None and k in ("bulk_calls_per_minute", "single_updates_per_day"):
                    t.settings.unlimited.add(k)
                else:
                    t.settings.unlimited.discard(k)
                    setattr(t.settings, k, v)
            t.refresh_limits()

    def set_lifecycle(self, spec: str | Lifecycle, *, tenant: str | None = None,
                      batch_id: str | None = None) -> None:
        """Set how batches progress: server-wide, for a tenant, or for one submitted batch."""
        lc = _lifecycle(spec)
        with self.lock:
            if batch_id is not None:
                batch = self._batch(batch_id)
                if batch.state != "incomplete":
                    raise ControlError(f"batch {batch_id} has already ended {batch.state}", 409)
                batch.lifecycle = lc
            else:
                self.configure(tenant, lifecycle=lc)

    def settings(self, tenant: str | None = None) -> dict[str, Any]:
        with self.lock:
            out = {k: (v.spec() if isinstance(v, Lifecycle) else v) for k, v in vars(self.config).items()
                   if k != "control_token"}
            if tenant is not None:
                t = self._tenants.get(tenant) or Tenant(tenant, self.config)  # reading creates nothing
                out.update({k: (t.setting(k).spec() if k == "lifecycle" else t.setting(k)) for k in TENANT_KEYS})
            return out

    # --- clock -----------------------------------------------------------------------------------
    def advance(self, seconds: float) -> float:
        """Move the fake's clock forward; time-based batches and delayed updates settle on next read.

        Raises ``ValueError`` (:class:`~.clock.ClockRangeError`) for a move that would take the
        clock, in total, past 9000-01-01 (:data:`~target_profile_mock.mockserver.clock.MAX_EPOCH`); the clock stays put.
        """
        return self.clock.advance(seconds)

    # --- profiles --------------------------------------------------------------------------------
    def seed_profile(self, tenant: str, *, tnt_id: str | None = None, third_party_id: str | None = None,
                     ecid: str | None = None, attributes: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Create (or merge into) a profile, as if Target had already seen the visitor."""
        ids: dict[IdKind, str] = {}
        for kind, value in (("tntId", tnt_id), ("thirdPartyId", third_party_id), ("marketingCloudVisitorId", ecid)):
            if value is not None:
                if not isinstance(value, str) or not value:
                    raise ControlError(f"{kind} must be a non-empty string, got {value!r}")
                ids[kind] = value  # type: ignore[index]
        # booleans as the wire writes them ("false", not Python's "False"), as the JSON update body does
        attrs = {str(k): ("true" if v is True else "false" if v is False else str(v))
                 for k, v in (attributes or {}).items()}
        with self.lock:
            t = self.tenant(tenant)  # outside the try: a CapacityError is a ValueError too, with its own status
            t.settle(self.now_ms())
            try:
                p = t.profiles.seed(ids, attrs, self.now_ms())
            except ValueError as exc:
                raise ControlError(str(exc)) from None
            return p.to_dict()

    def seed_profiles(self, tenant: str, profiles: Iterable[Mapping[str, Any]]) -> int:
        """Seed several profiles given as dicts with ``tntId``/``thirdPartyId``/``marketingCloudVisitorId``
        and ``attributes``; nothing is seeded if any is malformed."""
        items = list(profiles)
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ControlError(f"profile {i} is not an object")
            if unknown := unknown_keys(item, (*ID_KINDS, "attributes"), f"profile {i}"):
                raise ControlError(unknown)
            if not any(item.get(k) for k in ID_KINDS):
                raise ControlError(f"profile {i} has no tntId, thirdPartyId or marketingCloudVisitorId")
            for kind in ID_KINDS:
                if item.get(kind) is not None and not isinstance(item[kind], str):
                    raise ControlError(f"profile {i}: {kind} must be a string, got {item[kind]!r}")
            if not isinstance(item.get("attributes", {}), Mapping):
                raise ControlError(f"profile {i}: attributes must be an object")
        with self.lock:
            self._check_seed_conflicts(tenant, items)
            for item in items:
                self.seed_profile(tenant, tnt_id=item.get("tntId"), third_party_id=item.get("thirdPartyId"),
                                  ecid=item.get("marketingCloudVisitorId"), attributes=item.get("attributes"))
        return len(items)

    def _check_seed_conflicts(self, tenant: str, items: list[Mapping[str, Any]]) -> None:
        """Refuse the whole seeding before any of it is applied if one item's ids would name two
        different profiles (existing ones, or ones created by earlier items)."""
        t = self._tenants.get(tenant)
        if t is not None:
            t.settle(self.now_ms())
        overlay: dict[tuple[str, str], int] = {}
        for i, item in enumerate(items):
            found: set[int] = set()
            for kind in ID_KINDS:
                value = item.get(kind)
                if not value:
                    continue
                if (kind, id_key(kind, value)) in overlay:
                    found.add(overlay[(kind, id_key(kind, value))])
                elif t is not None and (p := t.profiles.find(kind, value)) is not None:
                    found.add(id(p))
            if len(found) > 1:
                raise ControlError(f"profile {i}: its ids name different profiles; nothing was seeded")
            target = found.pop() if found else -(i + 1)
            for kind in ID_KINDS:
                if item.get(kind):
                    overlay[(kind, id_key(kind, item[kind]))] = target

    def seed_profiles_csv(self, tenant: str, text: str) -> int:
        """Seed from CSV: id columns ``tntId``, ``thirdPartyId``, ``marketingCloudVisitorId``
        (any of them), every other column an attribute; empty cells are left out."""
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
        items = []
        try:
            if not reader.fieldnames or not set(reader.fieldnames) & set(ID_KINDS):
                raise ControlError("the CSV header needs at least one of tntId, thirdPartyId, "
                                   "marketingCloudVisitorId")
            for row in reader:
                ids = {k: row[k] for k in ID_KINDS if row.get(k)}
                attrs = {k: v for k, v in row.items() if k not in ID_KINDS and k is not None and v}
                items.append({**ids, "attributes": attrs})
        except csv.Error as exc:
            line = reader.line_num + 1  # csv counts the lines it finished; this one failed
            if "new-line" in str(exc):
                problem = ("a carriage return (CR) that does not end the line; end lines with LF or CRLF, "
                           "and quote a cell that holds a line break")
            else:
                problem = str(exc)
            raise ControlError(f"the CSV cannot be read at line {line}: {problem}; nothing was seeded") from None
        return self.seed_profiles(tenant, items)

    def get_profile(self, tenant: str, kind: IdKind, profile_id: str) -> dict[str, Any] | None:
        """A profile as the fake holds it now, without counting as a poll or a request."""
        with self.lock:
            t = self._tenants.get(tenant)  # a read never creates a tenant
            if t is None:
                return None
            t.settle(self.now_ms())
            p = t.profiles.find(kind, profile_id)
            return None if p is None else p.to_dict()

    def expire_profile(self, tenant: str, kind: IdKind, profile_id: str) -> dict[str, Any]:
        """End a profile's life now, as if it had been idle for the whole profile lifetime: it is gone
        (fetch answers 404, updates find nothing, a later visit starts a new profile). Returns it as it
        was; ``ControlError`` (404) when there is none."""
        return self.delete_profile(tenant, kind, profile_id)

    def delete_profile(self, tenant: str, kind: IdKind, profile_id: str) -> dict[str, Any]:
        """Forget a profile under all its ids now. Returns it as it was; ``ControlError`` (404) when
        there is none."""
        if kind not in ID_KINDS:
            raise ControlError(f"unknown id kind {kind!r}; use one of {list(ID_KINDS)}", 404)
        with self.lock:
            t = self._tenants.get(tenant)
            if t is not None:
                t.settle(self.now_ms())
            p = None if t is None else t.profiles.find(kind, profile_id)
            if t is None or p is None:
                raise ControlError(f"client {tenant} has no profile with {kind} {profile_id!r}", 404)
            t.profiles.remove(p)
            return p.to_dict()

    def find_profiles(self, tenant: str, kind: IdKind, profile_id: str) -> list[dict[str, Any]]:
        """Profiles named by an id, each with ``writtenBy``: per attribute, the journaled single updates
        (``{"request": seq}``) and applied batches (``{"batch": id}``) that wrote it, oldest first. A tntId
        matches with or without its location hint (``1700000000000-1`` finds ``1700000000000-1.01_00``)."""
        if kind not in ID_KINDS:
            raise ControlError(f"unknown id kind {kind!r}; use one of {list(ID_KINDS)}", 404)
        with self.lock:
            t = self._tenants.get(tenant)
            if t is None:
                return []
            t.settle(self.now_ms())
            # the store's own look-up: a tntId finds its profile with or without the location hint
            found = [p] if (p := t.profiles.find(kind, profile_id)) is not None else []
            out = []
            for p in found:
                d = p.to_dict()
                d["writtenBy"] = self._writers(t.code, d)
                out.append(d)
            return out

    def _writers(self, tenant: str, profile: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        ids = {(k, profile[k]) for k in ID_KINDS if profile.get(k)}
        # the single update's parameter names for the same ids
        ids |= {({"tntId": "mboxPC", "thirdPartyId": "mbox3rdPartyId"}.get(k, k), v) for k, v in ids}
        writers: list[tuple[int, dict[str, Any], list[str]]] = []
        for e in self.journal:
            if e.operation == "single-update" and e.tenant == tenant and e.status == 200 and e.parsed \
                    and (e.parsed.get("idKind"), e.parsed.get("id")) in ids:
                writers.append((e.time_ms, {"request": e.seq}, list(e.parsed.get("attributes") or ())))
        t = self._tenants[tenant]
        for b in t.batches:
            kind = "tntId" if b.file.key == "pcId" else "thirdPartyId"
            pid = profile.get(kind)
            if b.state != "complete" or not pid or b.rows() is None or pid in b.failed_ids or pid in b.lost_ids:
                continue
            names = [n for rid, attrs in b.file.records() if rid == pid for n in attrs]
            if names:
                writers.append((b.ended_ms or b.submitted_ms, {"batch": b.batch_id}, names))
        writers.sort(key=lambda w: w[0])
        out: dict[str, list[dict[str, Any]]] = {name: [] for name in profile["attributes"]}
        for _, who, names in writers:
            for n in names:
                if n in out and who not in out[n]:
                    out[n].append(who)
        return out

    def profiles(self, tenant: str) -> list[dict[str, Any]]:
        with self.lock:
            t = self._tenants.get(tenant)
            if t is None:
                return []
            t.settle(self.now_ms())
            return [p.to_dict() for p in t.profiles]

    # --- batches ---------------------------------------------------------------------------------
    def _batch(self, batch_id: str) -> Batch:
        for t in self._tenants.values():
            b = t.find_batch(batch_id)
            if b is not None:
                return b
        raise ControlError(f"no batch {batch_id!r}", 404)

    def batch(self, batch_id: str) -> dict[str, Any]:
        """A batch's state without polling it (its poll count and lifecycle do not move)."""
        with self.lock:
            b = self._batch(batch_id)
            self.tenant(b.tenant).settle(self.now_ms())
            d = b.to_dict()
            d["rows"] = b.rows()
            return d

    def batches(self, tenant: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            now = self.now_ms()
            out = []
            chosen = [self._tenants[tenant]] if tenant in self._tenants else []
            for t in (chosen if tenant else list(self._tenants.values())):
                t.settle(now)
                out += [b.to_dict() for b in t.batches]
            return out

    def force_batch(self, batch_id: str, state: BatchState) -> dict[str, Any]:
        """Put a batch into a state now: ``complete`` applies its rows, ``stuck`` applies none,
        ``incomplete`` holds it there until forced again."""
        if state not in ("incomplete", "complete", "stuck"):
            raise ControlError(f"a batch can be forced to incomplete, complete or stuck, not {state!r}")
        with self.lock:
            b = self._batch(batch_id)
            if b.state != "incomplete" and b.state != state:
                raise ControlError(f"batch {batch_id} has already ended {b.state}; it cannot become {state}", 409)
            t = self.tenant(b.tenant)
            t.at(self.now_ms())
            if state == "incomplete":
                b.forced = True
            else:
                b.forced = False
                b.end(state, t.profiles, self.now_ms())
            return b.to_dict()

    # --- auth ------------------------------------------------------------------------------------
    def set_auth(self, tenant: str | None, enabled: bool) -> None:
        """Switch profile API authentication on or off (server-wide when ``tenant`` is None)."""
        self.configure(tenant, auth=bool(enabled))

    def auth_enabled(self, tenant: str) -> bool:
        t = self._tenants.get(tenant)  # asking creates nothing: an unknown tenant has the server's setting
        return bool(self.config.auth if t is None else t.setting("auth"))

    def issue_token(self, tenant: str) -> Token:
        """A new profile API token for the tenant; the previous one stops working."""
        with self.lock:
            t = self.tenant(tenant)
            # seeded tokens repeat run after run, which tests want and a server others can reach does not
            bits = secrets.randbits(128) if self.config.random_tokens else self._rng.getrandbits(128)
            value = str(uuid.UUID(int=bits, version=4))
            t.token = Token(value, self.now_ms(), self.config.token_ttl)
            return t.token

    def current_token(self, tenant: str) -> Token:
        """The tenant's valid token, issued now if it has none (or it expired)."""
        with self.lock:
            t = self.tenant(tenant)
            if t.token is None or not t.token.valid(self.now_ms()):
                return self.issue_token(tenant)
            return t.token

    def check_token(self, tenant: str, presented: str | None) -> Violation | None:
        """None when the call may go on; else the auth violation to refuse it with."""
        with self.store.read():
            if not self.auth_enabled(tenant):
                return None
            if not presented:
                return Violation(rule("auth.missing-token"),
                                 f"authentication is on for client {tenant} and the request has no "
                                 "Authorization: Bearer <token> header", "Authorization")
            t = self._tenants.get(tenant)
            if t is None or t.token is None:
                return Violation(rule("auth.invalid-token"),
                                 f"no profile API token has been issued for client {tenant}; get one from "
                                 f"/{tenant}/target/authentication/token?authorizationScope=profile_api",
                                 "Authorization")
            if presented != t.token.value:
                return Violation(rule("auth.invalid-token"),
                                 f"the token is not client {tenant}'s current profile API token "
                                 "(issuing a new token invalidates the old one)", "Authorization")
            if not t.token.valid(self.now_ms()):
                return Violation(rule("auth.invalid-token"), f"client {tenant}'s profile API token has expired",
                                 "Authorization")
            return None

    # --- edge operations (called by the HTTP layer) ----------------------------------------------
    def single_update(self, tenant: str, kind: IdKind, profile_id: str, fallback: tuple[IdKind, str] | None,
                      attributes: dict[str, str]) -> int | None:
        """Apply (or, with an update delay, queue) a single update. Returns the profile's attribute data
        size when the update left it over the 64 KB profile data limit, else None."""
        with self.lock:
            t = self.tenant(tenant)
            now = self.now_ms()
            t.settle(now)
            delay = t.setting("update_delay") or 0
            if delay:
                t.pending.append(PendingUpdate(now + int(delay * 1000), kind, profile_id, fallback, attributes))
                return None
            profile = t.apply_update(kind, profile_id, fallback, attributes, now)
            return _over_limit(profile)

    def single_update_at_once(self, tenant: str, kind: IdKind, profile_id: str, fallback: tuple[IdKind, str] | None,
                              attributes: dict[str, str], entry: JournalEntry | None = None,
                              ) -> tuple[float | None, int | None, bool] | None:
        """:meth:`acquire_rate` (single) and :meth:`single_update` in one step, where the store has one and
        nothing else is to happen (no fault queued): ``(seconds to wait, None, False)`` when over the
        limit, else ``(None, the profile's size when over the limit, journaled)``: ``entry``, the call's
        journal entry recorded as a success, journaled in the same step. None: call those two."""
        if len(self.faults):
            return None
        got = self.store.single_update(self, tenant, kind, profile_id, fallback, attributes, LIMITS.profile_data_bytes,
                                       entry)
        if got is None:
            return None
        outcome, wait, profile, journaled = got
        return (wait, None, False) if outcome == "limited" else (None, _over_limit(profile), journaled)

    def visit(self, tenant: str, req: DeliveryRequest) -> dict[str, Any]:
        """A Delivery API call that passed the contract checks: find or start the visitor's profile,
        connect a thirdPartyId sent with a tntId (a login), write the profileParameters, and build the
        answer (with the visitor's tntId, carrying its location hint)."""
        with self.lock:
            t = self.tenant(tenant)
            now = self.now_ms()
            t.settle(now)
            store = t.profiles
            hint = self.config.location_hint
            delay = self.config.login_sync_delay or 0
            profile = None
            if req.tnt_id is not None and req.third_party_id is not None:
                if delay:
                    # until the sync, the device's profile answers and the customer's stays apart
                    t.logins.append(PendingLogin(now + int(delay * 1000), req.tnt_id, req.third_party_id))
                else:
                    profile = t.connect(req.tnt_id, req.third_party_id, now)
            if profile is None and req.tnt_id is not None:
                profile = store.find("tntId", req.tnt_id)
            if profile is None and req.third_party_id is not None and not (req.tnt_id is not None and delay):
                profile = store.find("thirdPartyId", req.third_party_id)
            if profile is None and req.marketing_cloud_visitor_id is not None:
                profile = store.find("marketingCloudVisitorId", req.marketing_cloud_visitor_id)
            if profile is None:
                # a new visitor: the tntId it sent (unknown or expired) or a new one
                tnt = req.tnt_id if req.tnt_id is not None else f"{self._rng.getrandbits(128):032x}"
                profile = store.create("tntId", tnt if "." in tnt else f"{tnt}.{hint}", now)
                if req.third_party_id is not None and not (req.tnt_id is not None and delay):
                    store.link(profile, "thirdPartyId", req.third_party_id)
            elif profile.tnt_id is None:
                tnt = req.tnt_id if req.tnt_id is not None else f"{self._rng.getrandbits(128):032x}"
                store.link(profile, "tntId", tnt if "." in tnt else f"{tnt}.{hint}")
            elif "." not in profile.tnt_id:
                # a profile seeded without a hint: a visit's answer always carries one, and keeps it from then on
                store.link(profile, "tntId", f"{profile.tnt_id}.{hint}")
            ecid = req.marketing_cloud_visitor_id
            if ecid is not None:
                other = store.find("marketingCloudVisitorId", ecid)
                if other is not None and other is not profile:
                    store.merge(profile, other)
                store.link(profile, "marketingCloudVisitorId", ecid)
            profile.update(req.profile_parameters, now)
            profile.touch(now)
            over = _over_limit(profile) if req.profile_parameters else None
            if over is not None:
                req.violations.append(Violation(rule("profile.size"), f"the visitor's profile now holds {over:,} "
                                                f"bytes of attribute data; the limit is {LIMITS.profile_data_bytes:,}",
                                                "profileParameters"))
            tnt_id = profile.tnt_id or ""
            cluster = tnt_id.partition(".")[2].partition("_")[0] or hint.partition("_")[0]
            request_id = req.request_id or str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            return delivery_response(req, client=tenant, request_id=request_id, tnt_id=tnt_id,
                                     edge_host=f"mboxedge{cluster}.tt.omtrdc.net", offers=t.offers)

    def set_offer(self, tenant: str, mbox: str, content: Any, *, offer_type: str = "json") -> None:
        """Answer mbox ``mbox`` of the Delivery API with one option of ``content`` (``json`` or
        ``html``); ``content=None`` removes the offer. Without offers, mboxes come back with no options."""
        if offer_type not in ("json", "html"):
            raise ControlError(f"an offer's type is json or html, not {offer_type!r}")
        if not isinstance(mbox, str) or not mbox:
            raise ControlError("an offer needs a non-empty mbox name")
        with self.lock:
            offers = self.tenant(tenant).offers
            if content is None:
                offers.pop(mbox, None)
            else:
                offers[mbox] = {"type": offer_type, "content": content}

    def offers(self, tenant: str) -> dict[str, dict[str, Any]]:
        with self.lock:
            t = self._tenants.get(tenant)
            return {} if t is None else {k: dict(v) for k, v in t.offers.items()}

    def new_batch_id(self, tenant: str) -> str:
        with self.lock:
            return f"{tenant}-{self.now_ms()}-{self._rng.randrange(10_000_000, 100_000_000)}"

    # --- batch memory --------------------------------------------------------------------------------
    def batch_bytes(self) -> int:
        """Estimated bytes of batch data held across all tenants (see ``batch_retention_bytes``)."""
        with self.lock:
            return sum(b.held_bytes for t in self._tenants.values() for b in t.batches)

    def reserve_batch(self, file_bytes: int) -> int:
        """Make room for a batch file of ``file_bytes`` before it is read, and reserve it.

        Over ``batch_retention_bytes``, batches that time alone has ended are settled first, then ended
        batches' rows and row ids are dropped, oldest first. A batch is refused (:class:`CapacityError`)
        only when batches not yet applied hold the room; one is always taken when nothing else is held.
        Returns the bytes reserved, to hand back with :meth:`release_batch`.
        """
        budget = self.config.batch_retention_bytes
        need = int(file_bytes * BATCH_MEMORY_FACTOR)
        with self.lock:
            if budget is not None:
                held = self.batch_bytes() + self._reserved
                if held and held + need > budget:
                    now = self.now_ms()
                    for t in self._tenants.values():
                        t.settle(now)
                    held = self._drop_batch_details(budget - need) + self._reserved
                if held and held + need > budget:
                    raise CapacityError(self._batch_refusal(held, budget), self._retry_after())
            self._reserved += need
            return need

    def release_batch(self, reserved: int) -> None:
        """Hand back what :meth:`reserve_batch` reserved (the batch is stored, or was refused)."""
        with self.lock:
            self._reserved = max(0, self._reserved - reserved)

    def _drop_batch_details(self, target: int) -> int:
        """Drop ended batches' rows and row ids, oldest first, until at most ``target`` bytes are held."""
        held = self.batch_bytes()
        if held <= target:
            return held
        ended = sorted((b for t in self._tenants.values() for b in t.batches
                        if b.state != "incomplete" and not b.details_dropped), key=lambda b: b.submitted_ms)
        for b in ended:
            held -= b.drop_details()
            if held <= target:
                break
        return held

    def _batch_refusal(self, held: int, budget: int) -> str:
        mib = 1024 * 1024
        return (f"the fake holds {held / mib:,.0f} MiB of batches not yet applied, and this batch would take it "
                f"past its batch_retention_bytes ({budget / mib:,.0f} MiB); it takes the batch once earlier ones "
                "complete: poll or force them (POST /_mock/batches/<id>/force), or reset; or raise the bound "
                "(--batch-retention-bytes, PUT /_mock/settings {\"batch_retention_bytes\": ...})")

    def _retry_after(self) -> int | None:
        """Seconds until the first time-based batch not yet applied ends, if any."""
        now = self.now_ms()
        due = [b.submitted_ms + int(b.lifecycle.seconds * 1000) - now for t in self._tenants.values()
               for b in t.batches if b.state == "incomplete" and not b.forced and b.lifecycle.mode == "seconds"]
        due += [0 for t in self._tenants.values() for b in t.batches
                if b.state == "incomplete" and not b.forced and b.lifecycle.mode == "immediate"]
        return max(1, -(-min(due) // 1000)) if due else None

    def submit_batch(self, tenant: str, version: int, file: BatchFile, batch_id: str, status_url: str) -> Batch:
        with self.lock:
            t = self.tenant(tenant)
            now = self.now_ms()
            t.settle(now)
            t.expire_batches(now, self.config.batch_retention, None)
            batch = Batch(batch_id, tenant, version, file, now, t.setting("lifecycle"), status_url,
                          seed=self._rng.getrandbits(32), keep_rows=file.row_count <= self.config.keep_rows_max)
            t.add_batch(batch)
            t.expire_batches(now, None, self.config.batch_retention_count)
            t.settle(now)
            budget = self.config.batch_retention_bytes
            if budget is not None:  # the file's reservation was an estimate: hold the bound with what it took
                self._drop_batch_details(budget)
            return batch

    def has_batch(self, tenant: str, batch_id: str) -> bool:
        """Whether the tenant holds this batch (within retention), without polling it or creating the tenant."""
        with self.lock:
            t = self._tenants.get(tenant)
            if t is None:
                return False
            t.expire_batches(self.now_ms(), self.config.batch_retention, self.config.batch_retention_count)
            return t.find_batch(batch_id) is not None

    def poll_batch(self, tenant: str, batch_id: str) -> Batch | None:
        with self.lock:
            t = self._tenants.get(tenant)  # a poll of an unknown tenant finds nothing and creates nothing
            if t is None:
                return None
            now = self.now_ms()
            t.expire_batches(now, self.config.batch_retention, self.config.batch_retention_count)
            b = t.find_batch(batch_id)
            if b is not None:
                t.poll(b, now)
            return b

    def fetch(self, tenant: str, kind: IdKind, profile_id: str) -> tuple[dict[str, tuple[str, int]], int] | None:
        """A profile as the fetch API shows it: ``(attributes, modified epoch ms)``, or None."""
        with self.lock:
            t = self._tenants.get(tenant)  # a fetch of an unknown tenant finds nothing and creates nothing
            if t is None:
                return None
            t.settle(self.now_ms())
            p = t.profiles.find(kind, profile_id)
            return None if p is None else (dict(p.attrs), p.modified_ms)

    def rate_limit(self, tenant: str, which: Literal["bulk", "single"]) -> int | None:
        """The limit in force for the tenant: bulk calls a minute or single updates a day (None: off).
        Asking creates nothing: an unknown tenant has the server's limit."""
        name = "bulk_calls_per_minute" if which == "bulk" else "single_updates_per_day"
        with self.store.read():
            t = self._tenants.get(tenant)
            return getattr(self.config, name) if t is None else t.setting(name)  # type: ignore[no-any-return]

    def acquire_rate(self, tenant: str, which: Literal["bulk", "single"], *, create: bool = True) -> float | None:
        """None when the call is within the limit, else seconds until the next call may pass.

        With ``create=False`` a call for an unknown tenant is not counted (a read creates no tenant).
        """
        # a shared store counts the call in one atomic step of its own: no operation's lock is needed
        with self.store.read():
            t = self._tenants.get(tenant)
            if t is not None or not create:
                return None if t is None else (t.bulk_window if which == "bulk" else t.single_window).try_acquire(
                    self.clock.now())
        with self.lock:
            t = self.tenant(tenant)
            window = t.bulk_window if which == "bulk" else t.single_window
            return window.try_acquire(self.clock.now())
