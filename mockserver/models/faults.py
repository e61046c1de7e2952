"""The fault queue: which calls meet which injected fault, decided without any HTTP.

A :class:`FaultInjector` hangs off every :class:`~target_profile_mock.mockserver.backend.MockBackend`
as ``backend.faults``. It holds an ordered queue of rules; each rule pairs a :class:`Fault` (what
happens) with a scope (operations, tenant, how many times, with what probability). ``take`` decides
whether a call meets a fault: the first rule in the queue that matches and fires wins, and a rule
with ``times`` is dropped once used up. What the client then receives is rendered by the HTTP layer
(:mod:`target_profile_mock.mockserver.faults`).
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

from ..errors import ControlError
from ..surfaces import OPERATIONS

__all__ = ["DEFAULT_RETRY_AFTER", "KINDS", "MAX_LATENCY", "OPERATIONS", "Fault", "FaultInjector", "FaultRule",
           "Injection", "make_fault"]

FaultKind = Literal["latency", "status", "throttle", "rate-limit", "reset", "disconnect", "empty", "truncated",
                    "malformed", "pass"]

KINDS: tuple[str, ...] = ("latency", "status", "throttle", "rate-limit", "reset", "disconnect", "empty",
                          "truncated", "malformed", "pass")

#: Options each kind takes besides ``latency`` (which every kind takes).
_OPTIONS: dict[str, tuple[str, ...]] = {
    "latency": (),
    "status": ("status", "message", "body", "retry_after", "applied"),
    "throttle": ("message", "body", "retry_after", "applied"),
    "rate-limit": ("message", "body", "retry_after", "applied"),
    "reset": ("applied",),
    "disconnect": ("applied",),
    "empty": ("status",),
    "truncated": ("keep",),
    "malformed": ("status", "body"),
    "pass": (),
}
_SCOPE_KEYS = ("operation", "tenant", "times", "probability", "seed")
_BODY_KINDS = ("empty", "truncated", "malformed")
_CONNECTION_KINDS = ("reset", "disconnect")
#: Retry-After (seconds) on throttle and rate-limit faults unless told otherwise; short, so a client
#: that honours it does not stall a test suite.
DEFAULT_RETRY_AFTER = 1
#: The longest latency a fault may take, in seconds: ten minutes, beyond any client timeout worth testing.
MAX_LATENCY = 600.0


# --- what happens --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: its kind and options (see the README's fault table for what each kind does)."""

    kind: FaultKind
    status: int | None = None  #: status / empty / malformed: the HTTP status to answer with
    message: str | None = None  #: status / throttle / rate-limit: the message in the error body
    body: str | None = None  #: status / throttle / rate-limit / malformed: the exact body to send
    retry_after: int | None = None  #: seconds in a Retry-After header (throttle/rate-limit default 1)
    latency: float | tuple[float, float] | None = None  #: seconds, or a (min, max) range drawn per call
    keep: int | None = None  #: truncated: bytes sent before the connection closes (default: half)
    applied: bool = False  #: status-like and connection faults: apply the operation first

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "kind" and value is not None and not (f.name == "applied" and not value):
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True, slots=True)
class Injection:
    """A rule firing on one call: the fault, the latency drawn for it, and the rule's id."""

    fault: Fault
    latency: float
    rule_id: int

    @property
    def applied(self) -> bool:
        return self.fault.kind in _BODY_KINDS or self.fault.applied

    def describe(self) -> str:
        """The short text the journal records as ``JournalEntry.fault``."""
        f = self.fault
        parts = [f"latency {self.latency:.3f}s"] if self.latency else []
        if f.kind == "status":
            parts.append(f"status {f.status}")
        elif f.kind == "throttle":
            parts.append(f"throttle 429 (Retry-After: {_retry_after(f)})")
        elif f.kind == "rate-limit":
            parts.append(f"rate-limit 503 (Retry-After: {_retry_after(f)})")
        elif f.kind in _CONNECTION_KINDS:
            parts.append("connection reset" if f.kind == "reset" else "disconnect without a response")
        elif f.kind in _BODY_KINDS:
            parts.append(f"{f.kind} body")
        if f.applied and f.kind not in _BODY_KINDS:
            parts[-1] += " after applying the request"
        return ", ".join(parts) or "pass"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _retry_after(f: Fault) -> int:
    return DEFAULT_RETRY_AFTER if f.retry_after is None else f.retry_after


# --- where and when ------------------------------------------------------------------------------
@dataclass(slots=True)
class FaultRule:
    """A queued fault with its scope; ``times`` counts down as it fires (None: no end)."""

    id: int
    fault: Fault
    operations: tuple[str, ...] | None = None
    tenant: str | None = None
    times: int | None = None
    probability: float = 1.0
    seed: int | None = None
    hits: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def matches(self, operation: str, tenant: str | None) -> bool:
        return ((self.operations is None or operation in self.operations)
                and (self.tenant is None or self.tenant == tenant))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.fault.to_dict(),
                "operation": list(self.operations) if self.operations is not None else None,
                "tenant": self.tenant, "times": self.times, "probability": self.probability,
                "seed": self.seed, "hits": self.hits}


def _fail(message: str) -> ControlError:
    return ControlError(message)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(f"{name} takes a number, got {value!r}")
    return float(value)


def _whole(name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise _fail(f"{name} takes a whole number >= {least}, got {value!r}")
    return value


def _latency(value: Any) -> float | tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise _fail(f"latency takes seconds or a [min, max] pair of seconds, got {value!r}")
        lo, hi = _number("latency min", value[0]), _number("latency max", value[1])
        if not 0 <= lo <= hi:
            raise _fail(f"a latency range needs 0 <= min <= max, got {list(value)!r}")
        if hi > MAX_LATENCY:
            raise _fail(f"latency takes at most {MAX_LATENCY:g} seconds, got {list(value)!r}")
        return (lo, hi)
    seconds = _number("latency", value)
    if not 0 <= seconds <= MAX_LATENCY:
        raise _fail(f"latency takes seconds from 0 to {MAX_LATENCY:g}, got {value!r}")
    return seconds


def make_fault(kind: str | int | None = None, **options: Any) -> Fault:
    """A validated :class:`Fault` from a kind (an int means a ``status`` fault) and its options."""
    if isinstance(kind, str) and kind.isdigit():
        kind = int(kind)
    if isinstance(kind, int) and not isinstance(kind, bool):
        options.setdefault("status", kind)
        kind = "status"
    if kind is None:
        if "status" not in options:
            raise _fail(f"say which fault: kind is one of {list(KINDS)}")
        kind = "status"
    if kind not in KINDS:
        raise _fail(f"unknown fault kind {kind!r}; kinds: {list(KINDS)}")
    allowed = (*_OPTIONS[kind], "latency")
    wrong = sorted(set(options) - set(allowed))
    if wrong:
        raise _fail(f"{wrong} do(es) not apply to a {kind} fault; it takes {list(allowed)}")
    status = options.get("status")
    if kind == "status" and status is None:
        raise _fail("a status fault needs a status, e.g. 503")
    if status is not None and not 200 <= _whole("status", status, 0) <= 599:
        raise _fail(f"status takes an HTTP status from 200 to 599, got {status!r}")
    for name in ("message", "body"):
        if options.get(name) is not None and not isinstance(options[name], str):
            raise _fail(f"{name} takes a string, got {options[name]!r}")
    if options.get("retry_after") is not None:
        _whole("retry_after", options["retry_after"], 0)
    if options.get("keep") is not None:
        _whole("keep", options["keep"], 0)
    if not isinstance(options.get("applied", False), bool):
        raise _fail(f"applied takes true or false, got {options['applied']!r}")
    latency = _latency(options.get("latency"))
    if kind == "latency" and not latency:
        raise _fail("a latency fault needs latency: seconds, or a [min, max] pair of seconds")
    return Fault(kind, status=status, message=options.get("message"), body=options.get("body"),  # type: ignore[arg-type]
                 retry_after=options.get("retry_after"), latency=latency, keep=options.get("keep"),
                 applied=options.get("applied", False))


def _operations(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(o, str) for o in items):
        raise _fail(f"operation takes an operation name or a list of them, got {value!r}")
    unknown = [o for o in items if o not in OPERATIONS]
    if unknown:
        raise _fail(f"unknown operation(s) {unknown}; operations: {list(OPERATIONS)}")
    return tuple(items)


@dataclass(frozen=True, slots=True)
class _Scope:
    operations: tuple[str, ...] | None
    tenant: str | None
    times: int | None
    probability: float
    seed: int | None


def _scope(operation: Any = None, tenant: Any = None, times: Any = None, probability: Any = 1.0,
           seed: Any = None) -> _Scope:
    if tenant is not None and (not isinstance(tenant, str) or not tenant):
        raise _fail(f"tenant takes a client code, got {tenant!r}")
    if times is not None:
        _whole("times", times, 1)
    p = _number("probability", probability)
    if not 0 <= p <= 1:
        raise _fail(f"probability takes a number from 0 to 1, got {probability!r}")
    if seed is not None:
        _whole("seed", seed, -(2**63))
    return _Scope(_operations(operation), tenant, times, p, seed)


def _step(step: Any) -> Fault:
    if isinstance(step, Mapping):
        options = dict(step)
        scoped = sorted(set(options) & set(_SCOPE_KEYS))
        if scoped:
            raise _fail(f"a sequence step cannot carry {scoped}; give the scope once, for the whole sequence")
        return make_fault(options.pop("kind", None), **options)
    if isinstance(step, (str, int)) and not isinstance(step, bool):
        return make_fault(step)
    raise _fail(f"a sequence step is a status (503), a kind ('reset') or a fault object, got {step!r}")


# --- the injector --------------------------------------------------------------------------------
class FaultInjector:
    """The queue of fault rules of one backend, with its Python control API.

    ``add`` queues one rule, ``sequence`` a scripted run of one-shot rules, ``load`` a whole profile
    (the JSON the HTTP API and ``--fault-profile`` take); ``list``, ``remove`` and ``clear`` manage
    the queue. Decisions are reproducible: each rule draws from its own generator, seeded with its
    ``seed`` (or the backend's seed and the rule's id), so a sequential client meets the same faults
    on every run.
    """

    def __init__(self, seed: int = 0, *, lock: Any = None) -> None:
        # the rules' lock: a shared store passes its transaction, so hits and draws count across processes
        self._lock = threading.Lock() if lock is None else lock
        self._sleep_lock = threading.Lock()  # the sleepers are this process's threads
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self.seed = seed
        #: How many requests may sleep a fault's latency at once (None: no bound). A WSGI server with a
        #: fixed pool of threads sets it below the pool's size, so sleeping faults never take every
        #: thread and health, the control API and unfaulted calls go on answering.
        self.max_sleeping: int | None = None
        self._sleeping = 0

    # --- control ---------------------------------------------------------------------------------
    def add(self, kind: str | int | None = None, *, operation: str | Iterable[str] | None = None,
            tenant: str | None = None, times: int | None = None, probability: float = 1.0,
            seed: int | None = None, **options: Any) -> dict[str, Any]:
        """Queue a fault; returns the rule as ``list()`` shows it.

        ``add(503, operation="batch-submit", times=2)`` answers the next two batch submits with 503;
        ``add("latency", latency=(0.05, 0.2), probability=0.3, seed=7)`` slows 30% of all calls.
        """
        fault = make_fault(kind, **options)
        scope = _scope(list(operation) if operation is not None and not isinstance(operation, str) else operation,
                       tenant, times, probability, seed)
        return self._queue([(fault, scope)])[0]

    def sequence(self, steps: Iterable[str | int | Mapping[str, Any]], *,
                 operation: str | Iterable[str] | None = None, tenant: str | None = None) -> list[dict[str, Any]]:
        """Queue a scripted run: each step fires once, in order, then calls pass again.

        A step is a status (``503``), a kind (``"reset"``, ``"pass"`` to let one call through) or a
        fault object; ``sequence([503, 503], operation="batch-submit")`` is "503, 503, then pass".
        """
        faults = [_step(s) for s in steps]
        if not faults:
            raise _fail("a sequence needs at least one step")
        ops = list(operation) if operation is not None and not isinstance(operation, str) else operation
        scope = _scope(ops, tenant, times=1)
        return self._queue([(f, scope) for f in faults])

    def load(self, profile: Any) -> list[dict[str, Any]]:
        """Queue every rule of a fault profile; nothing is queued if any item is malformed.

        A profile is a fault object, a sequence object (``{"sequence": [...], "operation": ...}``),
        a list of those, or ``{"faults": [...]}``.
        """
        if isinstance(profile, Mapping) and set(profile) == {"faults"}:
            profile = profile["faults"]
        items = [profile] if isinstance(profile, Mapping) else profile
        if not isinstance(items, list):
            raise _fail("a fault profile is a fault object, a list of them, or {\"faults\": [...]}")
        parsed: list[tuple[Fault, _Scope]] = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise _fail(f"fault {i} is not an object")
            try:
                parsed += self._parse(item)
            except ControlError as exc:
                raise _fail(f"fault {i}: {exc}") from None
        return self._queue(parsed)

    def load_file(self, path: str | os.PathLike[str]) -> list[dict[str, Any]]:
        """Queue the rules of a JSON fault profile file (see :meth:`load`)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise _fail(f"cannot read the fault profile {str(path)!r}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise _fail(f"the fault profile {str(path)!r} is not valid JSON: {exc}") from None
        return self.load(data)

    def list(self) -> list[dict[str, Any]]:
        """The queued rules, in the order they are tried, with ``times`` left and ``hits`` so far."""
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def remove(self, rule_id: int) -> dict[str, Any]:
        """Drop one rule by id; returns it."""
        with self._lock:
            for i, rule in enumerate(self._rules):
                if rule.id == rule_id:
                    del self._rules[i]
                    return rule.to_dict()
        raise ControlError(f"no fault rule {rule_id}", 404)

    def clear(self, tenant: str | None = None) -> int:
        """Drop every rule (or only those scoped to ``tenant``); returns how many were dropped."""
        with self._lock:
            keep = [] if tenant is None else [r for r in self._rules if r.tenant != tenant]
            dropped = len(self._rules) - len(keep)
            self._rules = keep
            return dropped

    def reset(self, seed: int | None = None) -> None:
        """Back to the state of a new injector: no rules, ids from 1 again (so unseeded rules draw the
        same streams as after a fresh start), and ``seed`` if given."""
        with self._lock:
            self._rules = []
            self._next_id = 1
            if seed is not None:
                self.seed = seed

    def __len__(self) -> int:
        return len(self._rules)

    def sleep(self, seconds: float) -> bool:
        """Sleep ``seconds`` of wall-clock time in this thread (the fake's lock is not held here); False,
        without sleeping, when ``max_sleeping`` requests already are."""
        with self._sleep_lock:
            if self.max_sleeping is not None and self._sleeping >= self.max_sleeping:
                return False
            self._sleeping += 1
        try:
            time.sleep(seconds)
        finally:
            with self._sleep_lock:
                self._sleeping -= 1
        return True

    def _parse(self, item: Mapping[str, Any]) -> list[tuple[Fault, _Scope]]:
        options = dict(item)
        if "sequence" in options:
            steps = options.pop("sequence")
            extra = sorted(set(options) - {"operation", "tenant"})
            if extra:
                raise _fail(f"a sequence takes only operation and tenant besides its steps, not {extra}")
            if not isinstance(steps, list) or not steps:
                raise _fail("sequence takes a non-empty list of steps")
            scope = _scope(options.get("operation"), options.get("tenant"), times=1)
            return [(_step(s), scope) for s in steps]
        scope = _scope(**{k: options.pop(k) for k in _SCOPE_KEYS if k in options})
        return [(make_fault(options.pop("kind", None), **options), scope)]

    def _queue(self, parsed: list[tuple[Fault, _Scope]]) -> list[dict[str, Any]]:
        with self._lock:
            added = []
            for fault, scope in parsed:
                rule_id, self._next_id = self._next_id, self._next_id + 1
                # a rule without its own seed still gets a stream of its own, so two rules never
                # fire in lockstep
                rng = random.Random(scope.seed if scope.seed is not None else f"{self.seed}:{rule_id}")
                rule = FaultRule(rule_id, fault, scope.operations, scope.tenant, scope.times, scope.probability,
                                 scope.seed, rng=rng)
                self._rules.append(rule)
                added.append(rule.to_dict())
            return added

    # --- deciding --------------------------------------------------------------------------------
    def take(self, operation: str, tenant: str | None) -> Injection | None:
        """Decide whether this call meets a fault, consuming it; no side effect beyond the queue.

        The first rule in queue order whose scope matches and whose probability draw passes fires.
        """
        with self._lock:
            for i, rule in enumerate(self._rules):
                if not rule.matches(operation, tenant):
                    continue
                if rule.probability < 1 and rule.rng.random() >= rule.probability:
                    continue
                rule.hits += 1
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        del self._rules[i]
                lat = rule.fault.latency
                seconds = rule.rng.uniform(*lat) if isinstance(lat, tuple) else (lat or 0.0)
                return Injection(rule.fault, seconds, rule.id)
        return None
