"""The fake's whole state as one JSON document, and the state file that keeps it across restarts.

:func:`export_state` turns a :class:`~.backend.MockBackend` into a plain JSON value (format
:data:`FORMAT`, version :data:`VERSION`, documented in docs/snapshot.md); :func:`import_state` reads
one back into a complete replacement state, checking every field first, so a snapshot that is
malformed anywhere changes nothing. :func:`write_file` replaces a state file atomically: the new
text goes to a temporary file in the same folder, is flushed to disk, then renamed over the old
file, so a crash at any moment leaves either the old file or the new one, never a mix.

This module knows nothing of Flask: the control API and the command line call it.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import tempfile
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from target_profile_mock.contracts.batch import BatchFile, BatchRows
from target_profile_mock.contracts.rules import Violation, rule

from .clock import MAX_EPOCH
from .config import TENANT_KEYS, MockConfig, TenantSettings
from .errors import ControlError
from .lifecycle import Lifecycle, LifecycleError
from .models.batches import Batch, _text_bytes
from .models.faults import FaultRule, _scope, make_fault
from .models.journal import Journal, JournalEntry
from .models.profiles import ID_KINDS, Profile
from .models.tenant import PendingLogin, PendingUpdate, Tenant, Token

if TYPE_CHECKING:
    from .backend import MockBackend

__all__ = ["FORMAT", "VERSION", "SnapshotError", "State", "apply_meta", "apply_state", "batch_body_out", "batch_in",
           "batch_out", "export_state", "import_state", "meta_in", "meta_out", "profile_in", "profile_out",
           "read_file", "save", "tenant_in", "tenant_out", "write_file"]

#: The ``format`` field every snapshot carries.
FORMAT = "target-profile-mock/snapshot"
#: The snapshot format version this code writes, and the newest it reads.
VERSION = 1

#: Settings a snapshot does not carry: they guard the server that holds the state (the control token,
#: and tokens drawn at random on a server others can reach), so they come from that server's command
#: line, not from the state.
_NOT_SAVED = ("control_token", "random_tokens")

T = TypeVar("T")


class SnapshotError(ControlError):
    """A snapshot that cannot be restored; the message names the field and what it should hold."""


# --- export --------------------------------------------------------------------------------------
def _lifecycle_out(lc: Lifecycle) -> dict[str, Any]:
    # the fields, not the spec string: a spec prints seconds with 6 significant digits
    return {"mode": lc.mode, "polls": lc.polls, "seconds": lc.seconds, "outcome": lc.outcome,
            "failed": lc.failed, "lost": lc.lost}


def _settings_out(config: MockConfig) -> dict[str, Any]:
    return {k: (_lifecycle_out(v) if isinstance(v, Lifecycle) else v) for k, v in vars(config).items()
            if k not in _NOT_SAVED}


def profile_out(p: Profile) -> dict[str, Any]:
    """One profile as a snapshot holds it (a shared store's profile record)."""
    return {"tntId": p.tnt_id, "thirdPartyId": p.third_party_id, "marketingCloudVisitorId": p.ecid,
            "createdMs": p.created_ms, "activeMs": p.active_ms,
            "attributes": {k: [v, ts] for k, (v, ts) in p.attrs.items()}}


def _violation_out(v: Violation) -> dict[str, str]:
    return {"rule": v.rule.id, "detail": v.detail, "where": v.where}


def batch_out(b: Batch, *, body: bool = True) -> dict[str, Any]:
    """One batch as a snapshot holds it; without its body (rows and row ids), a shared store's batch
    record (the store keeps the body apart, :func:`batch_body_out`, written once)."""
    kept = body and (bool(b.file.rows) or not b.size)
    return {
        "batchId": b.batch_id, "version": b.version, "submittedMs": b.submitted_ms,
        "lifecycle": _lifecycle_out(b.lifecycle), "statusUrl": b.status_url, "seed": b.seed,
        "polls": b.polls, "state": b.state, "endedMs": b.ended_ms, "forced": b.forced,
        "counters": dict(b.counters), "failedIds": list(b.failed_ids), "lostIds": list(b.lost_ids),
        "skipped": b.skipped, "keepRows": b.keep_rows, "size": b.size, "ids": list(b.ids) if body else [],
        "detailsDropped": b.details_dropped, "rowsBytes": b.rows_bytes,
        "file": {"key": b.file.key, "attributes": list(b.file.attributes), "bytes": b.file.size,
                 "rows": [list(r) for r in b.file.rows] if kept else None,
                 "violations": [_violation_out(v) for v in b.file.violations]},
    }


def batch_body_out(b: Batch) -> dict[str, Any]:
    """A batch's rows as it holds them (encoded lines, or lists of cells) and its row ids."""
    rows = b.file.rows
    raw = rows.raw() if isinstance(rows, BatchRows) else rows
    return {"rows": [r if isinstance(r, str) else list(r) for r in raw], "ids": b.ids}


def tenant_out(t: Tenant, *, whole: bool = True) -> dict[str, Any]:
    """One tenant as a snapshot holds it; not ``whole``, without its profiles, batches and rate-limit
    windows: a shared store's tenant record (the store keeps those apart)."""
    return {
        "settings": t.settings.to_dict() | ({"lifecycle": _lifecycle_out(t.settings.lifecycle)}
                                            if t.settings.lifecycle is not None else {}),
        "profiles": [profile_out(p) for p in t.profiles] if whole else [],
        "pendingUpdates": [{"visibleMs": u.visible_ms, "kind": u.kind, "id": u.profile_id,
                            "fallback": list(u.fallback) if u.fallback else None,
                            "attributes": dict(u.attributes)} for u in t.pending],
        "pendingLogins": [{"visibleMs": x.visible_ms, "tntId": x.tnt_id, "thirdPartyId": x.third_party_id}
                          for x in t.logins],
        "offers": {mbox: dict(offer) for mbox, offer in t.offers.items()},
        "batches": [batch_out(b) for b in t.batches] if whole else [],
        "token": None if t.token is None else {"value": t.token.value, "issuedMs": t.token.issued_ms,
                                               "ttl": t.token.ttl},
        "rateLimits": {"bulk": list(t.bulk_window._events) if whole else [],
                       "single": [[start, int(n)] for start, n in t.single_window._buckets] if whole else []},
    }


def _rng_out(rng: random.Random | None) -> list[Any] | None:
    if rng is None:
        return None
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rule_out(r: FaultRule) -> dict[str, Any]:
    out = r.to_dict()
    out["rng"] = _rng_out(r.rng)
    return out


def _entry_out(e: JournalEntry) -> dict[str, Any]:
    return {"seq": e.seq, "timeMs": e.time_ms, "operation": e.operation, "tenant": e.tenant,
            "method": e.method, "url": e.url, "path": e.path, "query": [list(q) for q in e.query],
            "headers": e.headers, "body": base64.b64encode(e.body).decode("ascii"), "bodySize": e.body_size,
            "bodySha256": e.body_sha256, "status": e.status,
            "responseBody": base64.b64encode(e.response_body).decode("ascii"), "responseSize": e.response_size,
            "responseSha256": e.response_sha256,
            "violations": [_violation_out(v) for v in e.violations], "parsed": e.parsed, "fault": e.fault}


def meta_out(backend: MockBackend) -> dict[str, Any]:
    """The backend's small shared state: clock, settings, generator state and fault queue (the fields
    of a snapshot beside its tenants; a shared store's meta record)."""
    faults = backend.faults
    with faults._lock:
        fault_state = {"seed": faults.seed, "nextId": faults._next_id, "rules": [_rule_out(r) for r in faults._rules]}
    offset, frozen = backend.clock.snapshot()
    return {"clock": {"offset": offset, "frozenAt": frozen}, "settings": _settings_out(backend.config),
            "rng": _rng_out(backend._rng_state), "faults": fault_state}


def export_state(backend: MockBackend, *, journal: bool = False) -> dict[str, Any]:
    """The backend's whole state as a JSON value (see docs/snapshot.md); the journal only if asked.

    Taking it changes nothing the fake answers: no poll is counted and no limit is used.
    """
    with backend.lock:
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION, **meta_out(backend),
                               "tenants": {code: tenant_out(t) for code, t in sorted(backend._tenants.items())}}
        if journal:
            out["journal"] = [_entry_out(e) for e in backend.journal]
        return out


# --- import: every field checked before anything is replaced ------------------------------------
class _Reader:
    """Reads one JSON value at a path, raising :class:`SnapshotError` that names the path."""

    def __init__(self, value: Any, path: str = "snapshot") -> None:
        self.value = value
        self.path = path

    def fail(self, what: str) -> SnapshotError:
        return SnapshotError(f"{self.path}: expected {what}, got {_short(self.value)}")

    def at(self, key: str | int) -> _Reader:
        if isinstance(key, int):
            return _Reader(self.value[key], f"{self.path}[{key}]")
        obj = self.obj()
        if key not in obj:
            raise SnapshotError(f"{self.path}: the field {key!r} is missing")
        return _Reader(obj[key], f"{self.path}.{key}")

    def get(self, key: str) -> _Reader:
        """The field, or a reader of None when it is absent."""
        return _Reader(self.obj().get(key), f"{self.path}.{key}")

    def obj(self) -> dict[str, Any]:
        if not isinstance(self.value, dict):
            raise self.fail("an object")
        return self.value

    def items(self) -> list[_Reader]:
        if not isinstance(self.value, list):
            raise self.fail("a list")
        return [_Reader(v, f"{self.path}[{i}]") for i, v in enumerate(self.value)]

    def str(self, *, empty: bool = False) -> str:
        if not isinstance(self.value, str) or (not empty and not self.value):
            raise self.fail("a string" if empty else "a non-empty string")
        return self.value

    def int(self, least: int = 0) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < least:
            raise self.fail(f"a whole number >= {least}")
        return self.value

    def num(self, least: float = 0.0) -> float:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < least:
            raise self.fail(f"a number >= {least:g}")
        return float(v)

    def bool(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail("true or false")
        return self.value

    def opt(self, read: Callable[[_Reader], T]) -> T | None:
        return None if self.value is None else read(self)

    def choice(self, options: tuple[str, ...]) -> str:
        if self.value not in options:
            raise self.fail(f"one of {list(options)}")
        return self.value  # type: ignore[no-any-return]


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (bytes, bytearray)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _lifecycle_in(r: _Reader) -> Lifecycle:
    def amount(a: _Reader) -> int | float:
        if isinstance(a.value, float):
            if not 0 <= a.value <= 1:
                raise a.fail("a share from 0 to 1, or a whole number of rows")
            return a.value
        return a.int()
    try:
        lc = Lifecycle(mode=r.at("mode").choice(("immediate", "polls", "seconds", "manual")),  # type: ignore[arg-type]
                       polls=r.at("polls").int(), seconds=r.at("seconds").num(),
                       outcome=r.at("outcome").choice(("complete", "stuck")),  # type: ignore[arg-type]
                       failed=amount(r.at("failed")), lost=amount(r.at("lost")))
        lc.validate()
    except LifecycleError as exc:
        raise SnapshotError(f"{r.path}: {exc}") from None
    return lc


def _config_in(r: _Reader, keep: MockConfig, check: Callable[[str, Any], None]) -> MockConfig:
    obj = r.obj()
    names = [k for k in vars(keep) if k not in _NOT_SAVED]
    unknown = sorted(set(obj) - set(names))
    if unknown:
        raise SnapshotError(f"{r.path}: unknown setting(s) {unknown}")
    values: dict[str, Any] = {}
    for name in names:
        if name not in obj:
            continue  # absent: the current value stays
        if name == "lifecycle":
            values[name] = _lifecycle_in(r.at(name))
            continue
        value = obj[name]
        try:
            check(name, value)
        except ControlError as exc:
            raise SnapshotError(f"{r.path}: {exc}") from None
        values[name] = value
    return keep.copy(**values)


def _tenant_settings_in(r: _Reader, check: Callable[[str, Any], None]) -> TenantSettings:
    obj = r.obj()
    unknown = sorted(set(obj) - set(TENANT_KEYS))
    if unknown:
        raise SnapshotError(f"{r.path}: unknown per-tenant setting(s) {unknown}; per-tenant settings: "
                            f"{list(TENANT_KEYS)}")
    s = TenantSettings()
    for name, value in obj.items():
        if name == "lifecycle":
            s.lifecycle = _lifecycle_in(r.at(name))
            continue
        try:
            check(name, value)
        except ControlError as exc:
            raise SnapshotError(f"{r.path}: {exc}") from None
        if value is None and name in ("bulk_calls_per_minute", "single_updates_per_day"):
            s.unlimited.add(name)
        else:
            setattr(s, name, value)
    return s


def _attributes_in(r: _Reader) -> dict[str, tuple[str, int]]:
    out = {}
    for name, item in r.obj().items():
        pair = _Reader(item, f"{r.path}.{name}")
        if not isinstance(item, list) or len(item) != 2:
            raise pair.fail("a [value, modified epoch ms] pair")
        out[name] = (pair.at(0).str(empty=True), pair.at(1).int())
    return out


def _profile_in(pr: _Reader) -> Profile:
    ids = [pr.get(kind).opt(lambda x: x.str()) for kind in ID_KINDS]
    if not any(ids):
        raise SnapshotError(f"{pr.path}: a profile needs at least one of {list(ID_KINDS)}")
    p = Profile(*ids, created_ms=pr.at("createdMs").int())
    p.attrs = _attributes_in(pr.at("attributes"))
    p.active_ms = pr.get("activeMs").opt(lambda x: x.int()) or p.created_ms
    return p


def profile_in(data: Any) -> Profile:
    """A store's profile record (a snapshot's profile) read back, with its ids (not indexed anywhere)."""
    return _profile_in(_Reader(data, "profile"))


def _profiles_in(r: _Reader, t: Tenant) -> None:
    store = t.profiles
    for pr in r.items():
        p = _profile_in(pr)
        for kind, value in zip(ID_KINDS, (p.tnt_id, p.third_party_id, p.ecid), strict=True):
            if value is None:
                continue
            if store.find(kind, value) is not None:
                raise SnapshotError(f"{pr.path}: {kind} {value!r} already names an earlier profile")
            store.link(p, kind, value)


def _strings(r: _Reader) -> list[str]:
    return [x.str(empty=True) for x in r.items()]


def _violations_in(r: _Reader) -> list[Violation]:
    out = []
    for v in r.items():
        rule_id = v.at("rule").str()
        try:
            found = rule(rule_id)
        except KeyError:
            raise SnapshotError(f"{v.path}.rule: no rule {rule_id!r} in this version of the fake") from None
        out.append(Violation(found, v.at("detail").str(empty=True), v.get("where").opt(lambda x: x.str(empty=True))
                             or ""))
    return out


def _batch_in(r: _Reader, tenant: str, body: tuple[list[Any], list[str]] | None = None) -> Batch:
    f = r.at("file")
    held = BatchRows()
    if body is None:
        rows_r = f.at("rows")
        rows: list[Any] | None = None if rows_r.value is None else [tuple(_strings(row)) for row in rows_r.items()]
        held = BatchRows(rows or ())
    else:  # a store's body: the rows as the batch held them
        rows = [x if isinstance(x, str) else tuple(x) for x in body[0]] or None
        if rows:
            held.raw().extend(rows)
            held.ids.extend(body[1])
    file = BatchFile(key=f.at("key").opt(lambda x: x.choice(("pcId", "thirdPartyId"))),  # type: ignore[arg-type]
                     attributes=tuple(_strings(f.at("attributes"))), rows=held,
                     violations=_violations_in(f.at("violations")), size=f.at("bytes").int())
    state = r.at("state").choice(("incomplete", "complete", "stuck"))
    b = Batch(r.at("batchId").str(), tenant, r.at("version").int(1), file, r.at("submittedMs").int(),
              _lifecycle_in(r.at("lifecycle")), r.at("statusUrl").str(empty=True), r.at("seed").int(),
              polls=r.at("polls").int(), state=state, ended_ms=r.at("endedMs").opt(lambda x: x.int()),  # type: ignore[arg-type]
              forced=r.at("forced").bool(), skipped=r.at("skipped").bool(), keep_rows=r.at("keepRows").bool())
    if b.version not in (1, 2):
        raise r.at("version").fail("1 or 2")
    counters = r.at("counters")
    b.counters = {k: _Reader(v, f"{counters.path}.{k}").int() for k, v in counters.obj().items()}
    b.failed_ids = _strings(r.at("failedIds"))
    b.lost_ids = _strings(r.at("lostIds"))
    b.size = r.at("size").int()
    b.ids = _strings(r.at("ids")) if body is None else list(body[1])
    b.details_dropped = r.get("detailsDropped").opt(lambda x: x.bool()) or False
    if b.details_dropped and (state == "incomplete" or b.ids or rows):
        raise SnapshotError(f"{r.path}: only an ended batch drops its details, and then it has no ids and no rows")
    if not b.details_dropped and (len(b.ids) != b.size or (rows is not None and len(rows) != b.size)):
        raise SnapshotError(f"{r.path}: size, ids and file.rows disagree on the number of rows")
    b.ids_bytes = _text_bytes(b.ids)
    # the rows' memory as the batch counted it when parsed (held as encoded lines then, as tuples now)
    b.rows_bytes = r.get("rowsBytes").opt(lambda x: x.int()) or b.rows_bytes
    if rows is None and state == "incomplete":
        raise SnapshotError(f"{r.path}: an incomplete batch needs its file.rows (they are applied when it ends)")
    return b


def _fault_rule_in(r: _Reader, injector_seed: int) -> FaultRule:
    obj = dict(r.obj())
    scope_keys = ("operation", "tenant", "times", "probability", "seed")
    try:
        rule_id = r.at("id").int(1)
        hits = r.at("hits").int()
        scope = _scope(**{k: obj[k] for k in scope_keys if k in obj})
        options = {k: v for k, v in obj.items() if k not in (*scope_keys, "id", "hits", "rng", "kind")}
        fault = make_fault(r.at("kind").str(), **options)
    except SnapshotError:
        raise
    except ControlError as exc:
        raise SnapshotError(f"{r.path}: {exc}") from None
    rng = _rng_in(r.get("rng"))
    if rng is None:
        rng = random.Random(scope.seed if scope.seed is not None else f"{injector_seed}:{rule_id}")
    return FaultRule(rule_id, fault, scope.operations, scope.tenant, scope.times, scope.probability, scope.seed,
                     hits=hits, rng=rng)


def _rng_in(r: _Reader) -> random.Random | None:
    if r.value is None:
        return None
    items = r.items()
    if len(items) != 3:
        raise r.fail("a [version, state, gauss] generator state")
    internal = tuple(x.int() for x in items[1].items())
    gauss = items[2].opt(lambda x: x.num(-math.inf))
    rng = random.Random()
    try:
        rng.setstate((items[0].int(), internal, gauss))
    except (ValueError, TypeError):
        raise r.fail("a generator state written by random.Random.getstate()") from None
    return rng


def _entry_in(r: _Reader) -> JournalEntry:
    def b64(x: _Reader) -> bytes:
        try:
            return base64.b64decode(x.str(empty=True), validate=True)
        except ValueError:
            raise x.fail("base64 text") from None
    headers = r.at("headers")
    query = [tuple(_strings(q)) for q in r.at("query").items()]
    if any(len(q) != 2 for q in query):
        raise r.at("query").fail("a list of [name, value] pairs")
    parsed = r.at("parsed").obj()
    entry = JournalEntry(r.at("seq").int(), r.at("timeMs").int(), r.at("operation").str(),
                        r.get("tenant").opt(lambda x: x.str()), r.at("method").str(), r.at("url").str(),
                        r.at("path").str(empty=True), query,  # type: ignore[arg-type]
                        {k: _Reader(v, f"{headers.path}.{k}").str(empty=True) for k, v in headers.obj().items()},
                        b64(r.at("body")), r.at("bodySize").int(), r.at("status").int(), b64(r.at("responseBody")),
                        _violations_in(r.at("violations")), parsed, r.get("fault").opt(lambda x: x.str()))
    # what a cut-short body or answer was in full, as the journal recorded it
    entry.body_sha256 = r.get("bodySha256").opt(lambda x: x.str())
    entry.response_size = r.get("responseSize").opt(lambda x: x.int()) or len(entry.response_body)
    entry.response_sha256 = r.get("responseSha256").opt(lambda x: x.str())
    return entry


def _tenant_in(tr: _Reader, code: str, config: MockConfig, check: Callable[[str, Any], None],
               seen_batches: set[str]) -> Tenant:
    """One tenant of a snapshot, checked whole (``seen_batches``: batch ids of tenants read before)."""
    if not code:
        raise SnapshotError("snapshot.tenants: a tenant's client code cannot be empty")
    t = Tenant(code, config)
    t.settings = _tenant_settings_in(tr.at("settings"), check)
    _profiles_in(tr.at("profiles"), t)
    for u in tr.at("pendingUpdates").items():
        fb = u.at("fallback")
        fallback = None if fb.value is None else tuple(_strings(fb))
        if fallback is not None and (len(fallback) != 2 or fallback[0] not in ID_KINDS):
            raise fb.fail("null or a [kind, id] pair")
        attrs = u.at("attributes")
        t.pending.append(PendingUpdate(u.at("visibleMs").int(), u.at("kind").choice(ID_KINDS),  # type: ignore[arg-type]
                                       u.at("id").str(), fallback,  # type: ignore[arg-type]
                                       {k: _Reader(v, f"{attrs.path}.{k}").str(empty=True)
                                        for k, v in attrs.obj().items()}))
    for lr in tr.get("pendingLogins").opt(lambda x: x.items()) or []:
        t.logins.append(PendingLogin(lr.at("visibleMs").int(), lr.at("tntId").str(), lr.at("thirdPartyId").str()))
    offers = tr.get("offers")
    for mbox, offer in (offers.opt(lambda x: x.obj()) or {}).items():
        o = _Reader(offer, f"{offers.path}.{mbox}")
        o.at("type").str()
        t.offers[mbox] = dict(o.obj())
    for br in tr.at("batches").items():
        b = _batch_in(br, code)
        if b.batch_id in seen_batches:
            raise br.at("batchId").fail("a batch id not used by an earlier batch")
        seen_batches.add(b.batch_id)
        t.add_batch(b)
    t._open = [b for b in t.batches if b.state == "incomplete"]
    tok = tr.at("token")
    if tok.value is not None:
        t.token = Token(tok.at("value").str(), tok.at("issuedMs").int(), tok.at("ttl").opt(lambda x: x.num()))
    limits = tr.at("rateLimits")
    t.bulk_window._events = deque(x.num(-math.inf) for x in limits.at("bulk").items())
    buckets = []
    for pair in limits.at("single").items():
        if not isinstance(pair.value, list) or len(pair.value) != 2:
            raise pair.fail("a [bucket start, count] pair")
        buckets.append([pair.at(0).num(-math.inf), pair.at(1).int()])
    t.single_window._buckets = deque(buckets)
    t.single_window._total = sum(int(n) for _, n in buckets)
    t.refresh_limits()
    return t


@dataclass
class State:
    """A fully checked snapshot, ready to replace a backend's state in one step."""

    config: MockConfig
    clock: tuple[float, float | None]
    rng: random.Random | None
    fault_seed: int
    fault_next_id: int
    fault_rules: list[FaultRule]
    tenants: dict[str, Tenant]
    journal: list[JournalEntry] | None


def import_state(data: Any, current: MockConfig, check: Callable[[str, Any], None]) -> State:
    """Check a snapshot from end to end and build the state it describes, touching no backend.

    Raises :class:`SnapshotError` naming the first field that is wrong, or saying the snapshot is from a
    newer version. Settings it does not carry keep their ``current`` values; ``check(name, value)`` raises
    :class:`ControlError` for a setting value the backend would refuse.
    """
    r = _Reader(data)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SnapshotError(f"this is not a target-profile-mock snapshot (its \"format\" field is not {FORMAT!r})")
    version = r.at("version").int(1)
    if version > VERSION:
        from .. import __version__

        raise SnapshotError(f"this snapshot is format version {version}, written by a newer target-profile-mock; "
                            f"this one ({__version__}) reads versions up to {VERSION}: upgrade it to load "
                            "the snapshot")
    unknown = sorted(set(data) - {"format", "version", "clock", "settings", "rng", "faults", "tenants", "journal"})
    if unknown:
        raise SnapshotError(f"snapshot: unknown field(s) {unknown}")
    state = _meta_in(r, current, check)
    config, tenants = state.config, state.tenants
    seen_batches: set[str] = set()
    for code, tv in r.at("tenants").obj().items():
        tenants[code] = _tenant_in(_Reader(tv, f"snapshot.tenants.{code}"), code, config, check, seen_batches)
    if config.max_tenants is not None and len(tenants) > config.max_tenants:
        raise SnapshotError(f"snapshot.tenants: {len(tenants):,} client codes, more than its settings' max_tenants "
                            f"({config.max_tenants:,})")
    if data.get("journal") is not None:
        state.journal = [_entry_in(e) for e in r.at("journal").items()]
    return state


def _meta_in(r: _Reader, current: MockConfig, check: Callable[[str, Any], None]) -> State:
    """The settings, clock, generator state and fault queue of a snapshot (or a store's meta record), as
    a state with no tenants and no journal."""
    config = _config_in(r.at("settings"), current, check)
    clock = r.at("clock")
    offset = clock.at("offset").num(-math.inf)
    frozen = clock.at("frozenAt").opt(lambda x: x.num())
    if frozen is not None and frozen > MAX_EPOCH:
        raise clock.at("frozenAt").fail(f"epoch seconds up to {MAX_EPOCH:.0f}")
    faults = r.at("faults")
    fault_seed = faults.at("seed").int(-(2**63))
    rules = [_fault_rule_in(x, fault_seed) for x in faults.at("rules").items()]
    next_id = faults.at("nextId").int(1)
    if rules and next_id <= max(x.id for x in rules):
        raise faults.at("nextId").fail("a number above every rule's id")
    return State(config, (offset, frozen), _rng_in(r.get("rng")), fault_seed, next_id, rules, {}, None)


def meta_in(data: Any, current: MockConfig, check: Callable[[str, Any], None]) -> State:
    """A store's meta record (:func:`meta_out`) read back, checked like a snapshot's fields."""
    return _meta_in(_Reader(data, "meta"), current, check)


def batch_in(data: Any, tenant: str, body: tuple[list[Any], list[str]]) -> Batch:
    """A store's batch record (:func:`batch_out` without the body) and its body read back."""
    return _batch_in(_Reader(data, f"batch of {tenant}"), tenant, body)


def tenant_in(data: Any, code: str, config: MockConfig, check: Callable[[str, Any], None]) -> Tenant:
    """A store's tenant record (:func:`tenant_out`) read back, checked like a snapshot's tenant."""
    return _tenant_in(_Reader(data, f"tenant {code}"), code, config, check, set())


def apply_state(backend: MockBackend, state: State) -> None:
    """Replace the backend's state with a checked one, in one step under its lock."""
    with backend.lock:
        apply_meta(backend, state)
        for t in state.tenants.values():
            t._config = backend.config
        backend._tenants = state.tenants
        if (backend.journal.maxlen, backend.journal.max_bytes) != (backend.config.journal_size,
                                                                   backend.config.journal_bytes):
            backend.journal = Journal(backend.config.journal_size, backend.config.journal_bytes)
        if state.journal is not None:
            backend.journal.restore(state.journal)


def apply_meta(backend: MockBackend, state: State) -> None:
    """Replace the backend's settings, clock, generator state and fault queue (not its tenants)."""
    with backend.lock:
        backend.config.__dict__.update(vars(state.config))
        backend.clock.restore(state.clock)
        backend._rng_state = state.rng
        faults = backend.faults
        with faults._lock:
            faults.seed = state.fault_seed
            faults._next_id = state.fault_next_id
            faults._rules = state.fault_rules


# --- files ---------------------------------------------------------------------------------------
def dumps(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def write_file(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Replace the file at ``path`` with ``data`` atomically: the old file stays whole until the new one is
    complete on disk."""
    _write_bytes(path, dumps(data))


def _write_bytes(path: str | os.PathLike[str], text: bytes) -> None:
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise
    # the rename itself is durable only once the folder is flushed (POSIX; Windows cannot open folders)
    if hasattr(os, "O_DIRECTORY"):
        with _suppress():
            dfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


def _suppress() -> Any:
    import contextlib

    return contextlib.suppress(OSError)


def read_file(path: str | os.PathLike[str]) -> Any:
    """The JSON value in a state file; :class:`SnapshotError` says why one cannot be read."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SnapshotError(f"cannot read the state file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise SnapshotError(f"the state file {str(path)!r} is not valid JSON (truncated or damaged?): {exc}") from None


def save(backend: MockBackend, path: str | os.PathLike[str], *, journal: bool = False) -> int:
    """Write the backend's state to ``path`` atomically; returns the bytes written."""
    data = dumps(export_state(backend, journal=journal))
    _write_bytes(path, data)
    return len(data)
