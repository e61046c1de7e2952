"""The object both fixtures hand to a test: control the fake, read its state, check what was sent."""

from __future__ import annotations

import difflib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from target_profile_mock.contracts.delivery import parse_delivery
from target_profile_mock.contracts.rules import RULES, Severity, Violation, rule
from target_profile_mock.mockserver.backend import BatchState, ControlError, MockBackend
from target_profile_mock.mockserver.lifecycle import Lifecycle
from target_profile_mock.mockserver.models.journal import Journal, JournalEntry
from target_profile_mock.mockserver.surfaces import OPERATIONS

from . import matchers as m
from .options import Settings, Strict, parse_strict
from .report import contract_report
from .wsgi import WsgiBridge

if TYPE_CHECKING:
    import httpx
    import responses
    from flask import Flask

__all__ = ["OPERATIONS", "BatchNotFoundError", "ProfileNotFoundError", "TargetProfiles"]

_MISSING: Any = object()
#: A single update's identifier parameter -> the kind of id it names.
_ID_KINDS = {"mbox3rdPartyId": "thirdPartyId", "mboxPC": "tntId"}
_SEED_ARG = {"thirdPartyId": "{!r}", "tntId": "tnt_id={!r}", "marketingCloudVisitorId": "ecid={!r}"}


class ProfileNotFoundError(LookupError):
    """``profile()`` found no such profile; the message says why, and how a profile comes to exist."""


class BatchNotFoundError(ControlError, LookupError):
    """``batch()`` or ``force_batch()`` found no such batch; the message lists what the fake holds.
    Still a ``ControlError`` (as the backend raises), and a ``LookupError`` like ``ProfileNotFoundError``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 404)


def _fail(message: str, *, pytrace: bool = False) -> None:
    __tracebackhide__ = True
    # pytest's fail() when a pytest test is running; a plain AssertionError for unittest and scripts,
    # which need not have pytest imported (pytest sets PYTEST_CURRENT_TEST while it runs a test)
    pytest = sys.modules.get("pytest")
    if pytest is not None and "PYTEST_CURRENT_TEST" in os.environ:
        pytest.fail(message, pytrace=pytrace)
    raise AssertionError(message)


class TargetProfiles:
    """A fake Adobe Target for one test.

    State: ``seed_profile``, ``profile``, ``profiles``, ``batch``, ``batches`` (reads have no side
    effects: reading a batch is not a status poll; a missing profile or batch raises a ``LookupError``
    that says why). Property tests: ``with example():`` for each Hypothesis example. Time and modes:
    ``advance``, ``freeze_clock``, ``set_lifecycle``, ``force_batch``, ``set_auth``, ``configure``.
    What was sent: ``requests``, ``assert_called``, ``assert_updated``, ``assert_batch_submitted``,
    ``assert_contract``.
    Faults: ``add_fault``, ``fault_sequence``, ``load_faults``, ``faults``, ``remove_fault``,
    ``clear_faults`` (the same calls as ``backend.faults``, and the same effect in both fixtures).
    ``backend`` is the :class:`~target_profile_mock.mockserver.MockBackend` underneath, for anything not covered here.
    """

    def __init__(self, backend: MockBackend, app: Flask, settings: Settings, *, url: str | None = None,
                 bridge: WsgiBridge | None = None,
                 get_responses_mock: Callable[[], responses.RequestsMock] | None = None,
                 reset: Callable[[], None] | None = None) -> None:
        self.backend = backend
        self.app = app
        self.client_code = settings.client_code
        self._url = url
        self._bridge = bridge
        self._responses = get_responses_mock
        self._strict: Strict = settings.strict
        self._allowed: set[str] = set(settings.allow)
        self._block = settings.other_hosts == "block"
        self._cleanups: list[Callable[[], None]] = []
        self._reset = reset
        self.examples = 0  #: how many ``example()`` blocks have started
        self._tenants_set_up: set[str] = set()
        self._note_initial_tenants()

    def _note_initial_tenants(self) -> None:
        # the test's client code, and the tenants its marker's faults name
        self._tenants_set_up = {self.client_code}
        if len(self.backend.faults):
            self._tenants_set_up.update(r["tenant"] for r in self.backend.faults.list() if r.get("tenant"))

    # --- where it is ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL to send requests to: the live server's, or the client-code host in process."""
        return self._url or f"https://{self.client_code}.tt.omtrdc.net"

    @property
    def journal(self) -> Journal:
        return self.backend.journal

    @property
    def responses(self) -> responses.RequestsMock:
        """The in-process fixture's ``responses`` mock: add stubs for other hosts to it."""
        if self._responses is None:
            raise AttributeError("responses: only the in-process target_profiles fixture patches requests")
        return self._responses()

    def id(self, name: str) -> str:
        """The id ``name`` stands for: itself here; prefixed with the run's prefix in live mode, so a test
        written with it never writes to a real visitor."""
        return name

    def _tenant(self, tenant: str | None) -> str:
        code = tenant or self.client_code
        self._tenants_set_up.add(code)
        return code

    def _note(self, tenant: str | None) -> str | None:
        """Note a client code the test named through the handle: requests to it are expected."""
        if tenant:
            self._tenants_set_up.add(tenant)
        return tenant

    # --- property tests ---------------------------------------------------------------------------
    def example(self) -> _Example:
        """One example of a property test, as a ``with`` block: the fake starts as the test did (no
        profiles, batches, requests or faults; the marker's settings), and a request that breaks a rule
        fails this example when the block ends, so Hypothesis shrinks to the smallest failing input.
        With ``@given``, wrap the test's body in it and suppress Hypothesis' ``function_scoped_fixture``
        health check, which warns of exactly the shared state this resets."""
        if self._reset is None:
            raise RuntimeError("example() resets the fake a fixture set up: use the handle of the "
                               "target_profiles or target_profile_server fixture")
        return _Example(self)

    def _start_example(self) -> None:
        assert self._reset is not None
        self._reset()
        self._note_initial_tenants()
        self.examples += 1

    # --- settings and modes -----------------------------------------------------------------------
    def configure(self, tenant: str | None = None, **settings: Any) -> None:
        """Change the fake's settings (see ``MockConfig``) for every tenant, or for one."""
        self.backend.configure(self._note(tenant), **settings)

    def set_lifecycle(self, spec: str | Lifecycle, *, tenant: str | None = None, batch_id: str | None = None) -> None:
        """How batches progress, e.g. ``"immediate"``, ``"polls=3"``, ``"seconds=5,stuck"``, ``"manual"``:
        for every tenant, one tenant, or one submitted batch."""
        self.backend.set_lifecycle(spec, tenant=self._note(tenant), batch_id=batch_id)

    def set_auth(self, enabled: bool = True, *, tenant: str | None = None) -> str | None:
        """Switch profile API authentication on (returns the valid token) or off (returns None)."""
        self.backend.set_auth(self._note(tenant), enabled)
        return self.token(tenant) if enabled else None

    def token(self, tenant: str | None = None) -> str:
        """The tenant's current profile API token (one is issued if there is none)."""
        return self.backend.current_token(self._tenant(tenant)).value

    def headers(self, tenant: str | None = None) -> dict[str, str]:
        """What a client sends with each profile API call: the token while authentication is on."""
        if not self.backend.auth_enabled(self._tenant(tenant)):
            return {}
        return {"Authorization": f"Bearer {self.token(tenant)}"}

    def issue_token(self, tenant: str | None = None) -> str:
        """A new token, as the Admin API's POST would; the previous one stops working."""
        return self.backend.issue_token(self._tenant(tenant)).value

    # --- snapshots --------------------------------------------------------------------------------
    def snapshot(self, *, journal: bool = False) -> dict[str, Any]:
        """The fake's whole state as a JSON value (docs/snapshot.md), e.g. to set up once and restore
        in many tests, or to keep as a fixture file."""
        return self.backend.snapshot(journal=journal)

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the fake's whole state with a :meth:`snapshot`; a bad one fails the call and changes
        nothing."""
        self.backend.restore(snapshot)

    # --- clock ------------------------------------------------------------------------------------
    def advance(self, seconds: float) -> float:
        """Move the fake's clock forward; time-based batches and delayed updates settle on the next look."""
        return self.backend.advance(seconds)

    def freeze_clock(self, at: float | None = None) -> float:
        """Stop the fake's clock (at ``at``, default now); then only ``advance`` moves it."""
        return self.backend.clock.freeze(at)

    def unfreeze_clock(self) -> float:
        return self.backend.clock.unfreeze()

    def now(self) -> float:
        """The fake's time, in seconds since the epoch."""
        return self.backend.clock.now()

    def fake_sleep(self) -> None:
        """Until the end of the test, ``time.sleep(s)`` advances the fake's clock by ``s`` instead of
        sleeping, so polling loops finish at once (also with ``seconds=`` lifecycles)."""
        real = time.sleep
        if getattr(real, "_target_profiles", False):
            return

        def sleep(seconds: float) -> None:
            self.backend.advance(max(0.0, float(seconds)))

        sleep._target_profiles = True  # type: ignore[attr-defined]
        time.sleep = sleep  # type: ignore[assignment]
        self._cleanups.append(lambda: setattr(time, "sleep", real))

    # --- faults -----------------------------------------------------------------------------------
    # Thin wrappers over backend.faults (mockserver.faults.FaultInjector): the rules, their scope and
    # the journal marks are the fake's own, so both fixtures behave alike. ``tenant`` defaults to
    # every tenant here, as on the server, not to the handle's client code.
    def add_fault(self, kind: str | int | None = None, *, operation: str | Iterable[str] | None = None,
                  tenant: str | None = None, times: int | None = None, probability: float = 1.0,
                  seed: int | None = None, **options: Any) -> dict[str, Any]:
        """Queue a fault; returns the rule as ``faults()`` lists it.

        ``kind`` is a status (``add_fault(503, operation="batch-submit", times=2)``) or one of
        ``latency``, ``status``, ``throttle``, ``rate-limit``, ``reset``, ``disconnect``, ``empty``,
        ``truncated``, ``malformed``, ``pass``; ``options`` are the kind's (``latency``, ``status``,
        ``message``, ``body``, ``retry_after``, ``keep``, ``applied``). Bad input raises ``ControlError``.
        """
        return self.backend.faults.add(kind, operation=operation, tenant=self._note(tenant), times=times,
                                       probability=probability, seed=seed, **options)

    def fault_sequence(self, steps: Iterable[str | int | Mapping[str, Any]], *,
                       operation: str | Iterable[str] | None = None, tenant: str | None = None) -> list[dict[str, Any]]:
        """Script the next calls: each step (a status, a kind, or a fault dict) fires once, in order,
        then calls pass again. ``fault_sequence([503, 503], operation="batch-submit")``."""
        return self.backend.faults.sequence(steps, operation=operation, tenant=self._note(tenant))

    def load_faults(self, profile: Any) -> list[dict[str, Any]]:
        """Queue a fault profile: the JSON ``POST /_mock/faults`` and ``--fault-profile`` take (a fault
        object, a ``{"sequence": [...]}`` object, a list of those, or ``{"faults": [...]}``); all or nothing."""
        rules = self.backend.faults.load(profile)
        for r in rules:
            self._note(r.get("tenant"))
        return rules

    def faults(self) -> list[dict[str, Any]]:
        """The queued rules in the order they are tried, with ``times`` left and ``hits`` so far."""
        return self.backend.faults.list()

    def remove_fault(self, rule_id: int) -> dict[str, Any]:
        """Drop one rule by its id; returns it."""
        return self.backend.faults.remove(rule_id)

    def clear_faults(self, tenant: str | None = None) -> int:
        """Drop every rule (or those scoped to ``tenant``); returns how many. Each test starts with none."""
        return self.backend.faults.clear(self._note(tenant))

    # --- profiles ---------------------------------------------------------------------------------
    def seed_profile(self, third_party_id: str | None = None, *, tnt_id: str | None = None, ecid: str | None = None,
                     attributes: Mapping[str, Any] | None = None, tenant: str | None = None) -> dict[str, Any]:
        """Create (or merge into) a profile, as if Target had seen the visitor before."""
        return self.backend.seed_profile(self._tenant(tenant), tnt_id=tnt_id, third_party_id=third_party_id,
                                         ecid=ecid, attributes=attributes)

    def seed_profiles(self, profiles: Iterable[Mapping[str, Any]] | str, *, tenant: str | None = None) -> int:
        """Seed many: dicts with ``thirdPartyId``/``tntId``/``marketingCloudVisitorId`` and ``attributes``,
        or CSV text with those id columns and one column per attribute. All or nothing."""
        if isinstance(profiles, str):
            return self.backend.seed_profiles_csv(self._tenant(tenant), profiles)
        return self.backend.seed_profiles(self._tenant(tenant), profiles)

    def profile(self, third_party_id: str | None = None, *, tnt_id: str | None = None, ecid: str | None = None,
                tenant: str | None = None, default: Any = _MISSING) -> Any:
        """A profile as the fake holds it now, found by exactly one kind of id.

        A missing profile raises :class:`ProfileNotFoundError`, saying why (single updates never create
        profiles) and what the fake holds, unless ``default`` is given: ``profile("x", default=None)``.
        """
        given = [(k, v) for k, v in (("thirdPartyId", third_party_id), ("tntId", tnt_id),
                                     ("marketingCloudVisitorId", ecid)) if v is not None]
        if len(given) != 1:
            raise TypeError("profile() takes exactly one of third_party_id, tnt_id, ecid")
        kind, value = given[0]
        code = self._tenant(tenant)
        found = self.backend.get_profile(code, kind, value)  # type: ignore[arg-type]
        if found is not None:
            return found
        if default is not _MISSING:
            return default
        __tracebackhide__ = True
        raise ProfileNotFoundError(self._why_no_profile(code, kind, value))

    def _why_no_profile(self, code: str, kind: str, value: str) -> str:
        lines = [f"client {code} has no profile with {kind} {value!r}."]
        updates = [e for e in self.journal.entries()
                   if e.operation == "single-update" and e.tenant == code
                   and _ID_KINDS.get(e.parsed.get("idKind") or "") == kind and e.parsed.get("id") == value]
        if updates:
            lines.append(f"{len(updates)} single update(s) for it reached the fake, and single updates never "
                         "create profiles (Adobe: if nothing is found, a profile is not created):")
            lines += [f"  {e.method} {e.url} -> {e.status}" for e in updates[:3]]
        for b in self.backend.batches(code):
            rows = self._batch_rows(b)
            if not rows or b["key"] != {"thirdPartyId": "thirdPartyId", "tntId": "pcId"}.get(kind):
                continue
            if any(r.get(b["key"]) == value for r in rows):
                if b["status"] == "incomplete":
                    lines.append(f"Batch {b['batchId']} holds it and is still incomplete: poll it until it "
                                 "completes, or target_profiles.force_batch().")
                elif b["version"] == 1:
                    lines.append(f"Batch {b['batchId']} holds it, but v1 batches never create profiles; "
                                 "v2 batches do.")
                elif b["status"] == "stuck":
                    lines.append(f"Batch {b['batchId']} holds it, but it ended stuck and applied nothing.")
        elsewhere = [t for t in self.backend.tenants()
                     if t != code and self.backend.get_profile(t, kind, value) is not None]  # type: ignore[arg-type]
        if elsewhere:
            lines.append(f"Client {elsewhere[0]} has a profile with this id: pass tenant={elsewhere[0]!r}.")
        near = self._near_ids(code, kind, value)
        if near:
            lines.append(f"Client {code} holds similar ids: {', '.join(map(repr, near))}.")
        seed = _SEED_ARG[kind].format(value)
        lines.append(f"A profile exists once Target has seen the visitor: seed it first "
                     f"(target_profiles.seed_profile({seed}{'' if code == self.client_code else f', tenant={code!r}'}))"
                     " or create it with a v2 batch; single updates and v1 batches never create profiles. "
                     "To look up a profile that may be missing, pass default=None.")
        return "\n".join(lines)

    def _near_ids(self, code: str, kind: str, value: str, limit: int = 10_000) -> list[str]:
        if code not in self.backend.tenants():
            return []
        store = self.backend.tenant(code).profiles
        if len(store) > limit:  # a failure message is no reason to walk half a million profiles
            return []
        attr = {"thirdPartyId": "third_party_id", "tntId": "tnt_id", "marketingCloudVisitorId": "ecid"}[kind]
        ids = [i for i in (getattr(p, attr) for p in store) if i]
        return difflib.get_close_matches(value, ids, n=3, cutoff=0.75)

    def _batch_rows(self, summary: Mapping[str, Any]) -> list[dict[str, str]]:
        try:
            return self.backend.batch(summary["batchId"]).get("rows") or []
        except ControlError:
            return []

    def wait_for_profile(self, third_party_id: str | None = None, *, tnt_id: str | None = None,
                         attributes: Mapping[str, Any] | None = None, timeout: float | None = None,
                         tenant: str | None = None) -> dict[str, Any] | None:
        """The profile, failing the test unless it exists (with ``attributes``, when given). The fake shows
        a change at once (or on its clock); live mode polls the real fetch API here."""
        found = self.profile(third_party_id, tnt_id=tnt_id, tenant=tenant)
        want = {str(k): ("true" if v is True else "false" if v is False else str(v))
                for k, v in (attributes or {}).items()}
        if found is None or any(found["attributes"].get(k) != v for k, v in want.items()):
            _fail(f"no profile {third_party_id or tnt_id!r}" + (f" with {want}" if want else "")
                  + f" in the fake; it holds: {found}")
        return found

    def profiles(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Every profile of the tenant (default: the test's client code)."""
        return self.backend.profiles(self._tenant(tenant))

    def visit(self, tnt_id: str | None = None, *, third_party_id: str | None = None, ecid: str | None = None,
              mboxes: Sequence[str] = ("target-global-mbox",), profile_parameters: Mapping[str, Any] | None = None,
              tenant: str | None = None) -> dict[str, Any]:
        """A visitor seen by Target, as a Delivery API call would make it (not journaled): without a tntId
        it starts a profile and returns the answer, whose ``["id"]["tntId"]`` is the new visitor's id
        (with its location hint); with one it updates that visitor's profile. ``profile_parameters`` are
        written to the profile; a ``third_party_id`` with a ``tnt_id`` is a login (see :meth:`login`)."""
        body: dict[str, Any] = {"context": {"channel": "web"}}
        ids = {k: v for k, v in (("tntId", tnt_id), ("thirdPartyId", third_party_id),
                                 ("marketingCloudVisitorId", ecid)) if v is not None}
        if ids:
            body["id"] = ids
        params = {str(k): ("true" if v is True else "false" if v is False else str(v))
                  for k, v in (profile_parameters or {}).items()}
        body["execute"] = {"mboxes": [{"index": i, "name": name, **({"profileParameters": params} if i == 1 else {})}
                                      for i, name in enumerate(mboxes, 1)]}
        if not mboxes and params:
            body["execute"] = {"pageLoad": {"profileParameters": params}}
        req = parse_delivery({"sessionId": "target-profile-mock"}, json.dumps(body).encode())
        if req.errors:
            _fail("visit() would be refused by the Delivery API:\n" + "\n".join(v.explain() for v in req.errors))
        return self.backend.visit(self._tenant(tenant), req)

    def login(self, third_party_id: str, *, tnt_id: str, profile_parameters: Mapping[str, Any] | None = None,
              tenant: str | None = None) -> dict[str, Any]:
        """The visitor ``tnt_id`` logs in as customer ``third_party_id`` (a visit bringing both ids): the
        two profiles become one, the thirdPartyId profile's values winning; after that, updates and
        fetches by either id reach it (at once, or after ``login_sync_delay`` seconds when set)."""
        return self.visit(tnt_id, third_party_id=third_party_id, profile_parameters=profile_parameters,
                          tenant=tenant)

    def set_offer(self, mbox: str, content: Any, *, offer_type: str = "json", tenant: str | None = None) -> None:
        """Let the Delivery API answer ``mbox`` with one option (``json`` or ``html`` content); None removes it."""
        self.backend.set_offer(self._tenant(tenant), mbox, content, offer_type=offer_type)

    def expire_profile(self, third_party_id: str | None = None, *, tnt_id: str | None = None,
                       ecid: str | None = None, tenant: str | None = None) -> dict[str, Any]:
        """End a profile's life now, as 14 idle days would (fetch then answers 404); returns it as it was."""
        kind, value = _one_id(third_party_id, tnt_id, ecid, "expire_profile")
        return self.backend.expire_profile(self._tenant(tenant), kind, value)  # type: ignore[arg-type]

    def delete_profile(self, third_party_id: str | None = None, *, tnt_id: str | None = None,
                       ecid: str | None = None, tenant: str | None = None) -> dict[str, Any]:
        """Forget a profile under all its ids now; returns it as it was."""
        kind, value = _one_id(third_party_id, tnt_id, ecid, "delete_profile")
        return self.backend.delete_profile(self._tenant(tenant), kind, value)  # type: ignore[arg-type]

    # --- batches ----------------------------------------------------------------------------------
    def batches(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Every batch the tenant holds, oldest first; reading does not count as a status poll."""
        return self.backend.batches(self._tenant(tenant))

    def batch(self, batch_id: str | None = None) -> dict[str, Any]:
        """One batch with its rows (default: the last one submitted to any tenant), without polling it.
        An unknown batch raises :class:`BatchNotFoundError`, listing the batches the fake holds."""
        __tracebackhide__ = True
        batch_id = batch_id or self._last_batch_id()
        try:
            return self.backend.batch(batch_id)
        except ControlError as exc:
            if exc.status != 404:
                raise
            raise BatchNotFoundError(self._why_no_batch(batch_id)) from None

    def force_batch(self, batch_id: str | None = None, state: BatchState = "complete") -> dict[str, Any]:
        """Put a batch (default: the last one) into ``complete`` (rows applied), ``stuck`` (none applied)
        or ``incomplete`` (held there until forced again)."""
        __tracebackhide__ = True
        batch_id = batch_id or self._last_batch_id()
        try:
            return self.backend.force_batch(batch_id, state)
        except ControlError as exc:
            if exc.status != 404:
                raise
            raise BatchNotFoundError(self._why_no_batch(batch_id)) from None

    def _last_batch_id(self) -> str:
        __tracebackhide__ = True
        submitted = [e for e in self.journal.entries() if e.operation == "batch-submit" and e.parsed.get("batchId")]
        if submitted:
            return submitted[-1].parsed["batchId"]
        everything = self.backend.batches()
        if not everything:
            raise BatchNotFoundError("no batch has been submitted yet." + self._refused_submissions())
        return max(everything, key=lambda b: b["submittedAt"])["batchId"]

    def _why_no_batch(self, batch_id: str) -> str:
        text = f"the fake holds no batch {batch_id!r}."
        if "batchId=" in batch_id or batch_id.startswith(("http:", "https:")):
            text += " That is a status URL: pass the batchId it names."
        held = [b["batchId"] for b in self.backend.batches()]
        if held:
            shown = ", ".join(held[-5:]) + (f" (and {len(held) - 5} older)" if len(held) > 5 else "")
            text += f" It holds: {shown}."
        else:
            text += " It holds none."
        text += (" Statuses are kept for the fake's batch_retention (24 h of its clock by default); "
                 "batch() without an id gives the last one submitted.")
        return text + self._refused_submissions()

    def _refused_submissions(self) -> str:
        refused = [e for e in self.journal.entries() if e.operation == "batch-submit" and not e.parsed.get("batchId")]
        if not refused:
            return ""
        lines = [f"\n{len(refused)} batch submission(s) got no batch:"]
        for e in refused[-3:]:
            why = "; ".join(v.message for v in e.errors) or (f"fault: {e.fault}" if e.fault else "")
            lines.append(f"  {e.method} {e.url} -> {e.status}" + (f": {why}" if why else ""))
        return "\n".join(lines)

    # --- the journal ------------------------------------------------------------------------------
    def requests(self, operation: str | None = None, *, tenant: str | None = None) -> list[JournalEntry]:
        """The requests the fake answered, oldest first: all, or one operation's (``single-update``,
        ``batch-submit``, ``batch-status``, ``fetch``, ``token``, ``unknown``)."""
        _check_operation(operation)
        self._note(tenant)
        return self.journal.entries(lambda e: (operation is None or e.operation == operation)
                                    and (tenant is None or e.tenant == tenant))

    def last_request(self, operation: str | None = None) -> JournalEntry:
        found = self.requests(operation)
        if not found:
            _fail(f"no {operation or ''} request has been sent".replace("  ", " "))
        return found[-1]

    def wait_for_requests(self, count: int = 1, operation: str | None = None, *,
                          timeout: float = 5.0) -> list[JournalEntry]:
        """Block until ``count`` requests (of ``operation``) arrived, e.g. from a client in another thread."""
        _check_operation(operation)

        def enough(entries: list[JournalEntry]) -> bool:
            return sum(1 for e in entries if operation is None or e.operation == operation) >= count

        if not self.journal.wait_for(enough, timeout):
            got = len(self.requests(operation))
            _fail(f"waited {timeout:g}s for {count} {operation or ''} request(s); {got} arrived".replace("  ", " "))
        return self.requests(operation)

    def wait_for_batch(self, state: str = "submitted", *, batch_id: str | None = None, tenant: str | None = None,
                       timeout: float = 5.0) -> dict[str, Any]:
        """Block until a batch was submitted (``state="submitted"``) or reached ``complete``, ``stuck``
        or ``incomplete``; returns the batch. For clients running in other threads."""
        if state not in ("submitted", "incomplete", "complete", "stuck"):
            raise ValueError(f"state={state!r}: wait for 'submitted', 'incomplete', 'complete' or 'stuck'")
        self._note(tenant)
        deadline = time.monotonic() + timeout

        def look() -> dict[str, Any] | None:
            for b in reversed(self.backend.batches(tenant)):
                if (batch_id is None or b["batchId"] == batch_id) and state in ("submitted", b["status"]):
                    return b
            return None

        while True:
            seen = len(self.journal)
            found = look()  # outside the journal's lock: reading a batch takes the backend's
            if found is not None:
                return self.backend.batch(found["batchId"])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                have = [(b["batchId"], b["status"]) for b in self.backend.batches(tenant)]
                _fail(f"waited {timeout:g}s for a batch{' ' + batch_id if batch_id else ''} to be {state}; "
                      f"batches: {have or 'none submitted'}")
            # wake on the next request, or soon anyway: time-based lifecycles move without requests
            self.journal.wait_for(lambda entries, seen=seen: len(entries) != seen, min(remaining, 0.05))

    # --- contract verdicts ------------------------------------------------------------------------
    def allow(self, *rule_ids: str) -> None:
        """Let the strict check ignore these rules for the rest of the test (e.g. a test that sends
        a bad token on purpose allows ``auth.invalid-token``)."""
        unknown = [r for r in rule_ids if r not in RULES]
        if unknown:
            raise KeyError(f"no rule(s) {unknown}; known rules: {', '.join(sorted(RULES))}")
        self._allowed.update(rule_ids)

    @property
    def strict(self) -> Strict:
        """What fails the test when it ends: ``"errors"``, ``"deviations"`` (errors too) or ``"off"``."""
        return self._strict

    @strict.setter
    def strict(self, value: bool | str) -> None:
        self._strict = parse_strict(value)

    def violations(self, *, errors: bool = True, deviations: bool = True,
                   include_allowed: bool = False) -> list[tuple[JournalEntry, list[Violation]]]:
        """The requests that broke a rule, each with its violations (allowed rules left out): the fake's
        verdicts, and ``tenant.unknown`` for requests to a client code the test never set up."""
        out = []
        for e in self.journal.entries():
            found = e.violations
            stray = self._stray_tenant(e)
            if stray is not None:
                found = [*found, stray]
            vs = [v for v in found
                  if (errors if v.severity is Severity.ERROR else deviations)
                  and (include_allowed or v.rule_id not in self._allowed)]
            if vs:
                out.append((e, vs))
        return out

    def _stray_tenant(self, e: JournalEntry) -> Violation | None:
        """``tenant.unknown`` when ``e`` went to a client code the test never set up (e.g. a typo)."""
        code = e.tenant
        if code is None or code in self._tenants_set_up:
            return None
        known = sorted(self._tenants_set_up)
        near = difflib.get_close_matches(code, known, n=1, cutoff=0.6)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        return Violation(rule("tenant.unknown"),
                         f"client code {code!r} was never set up in this test (it set up {', '.join(known)}); "
                         f"the fake served it as a new, empty tenant.{hint}", "client code")

    def assert_contract(self, *, deviations: bool = False) -> None:
        """Fail if a request broke Adobe's documented contract (errors; deviations too if asked),
        listing each request, rule, what Adobe documents, the fix and a curl line."""
        __tracebackhide__ = True
        failing = self.violations(deviations=deviations)
        if failing:
            _fail(self._contract_message(failing, "that {break} Adobe Target's documented contract"))

    def _contract_message(self, failing: list[tuple[JournalEntry, list[Violation]]], headline: str) -> str:
        ids = {e.seq for e, _ in failing}
        noted = [(e, vs) for e, vs in self.violations(errors=False) if e.seq not in ids]
        n = len(failing)
        headline = headline.format(**{"break": "break" if n > 1 else "breaks"})
        text = f"The code under test sent {n} request{'s' if n > 1 else ''} {headline}:\n\n{contract_report(failing)}"
        if noted:
            text += ("\n\nAlso noted (deviations: accepted here, Adobe may refuse them):\n\n"
                     + contract_report(noted))
        return text

    def broke_any_rule(self) -> bool:
        """Whether any request so far has a verdict (error or deviation, allowed or not)."""
        known = self._tenants_set_up
        return any(e.violations or (e.tenant is not None and e.tenant not in known) for e in self.journal.entries())

    def strict_failure(self) -> str | None:
        """The message the strict check fails the test with, or None when the test may pass."""
        if self._strict == "off":
            return None
        failing = self.violations(deviations=self._strict == "deviations")
        if not failing:
            return None
        what = "that Adobe would refuse" if self._strict == "errors" else "that {break} Adobe Target's contract"
        return (self._contract_message(failing, what)
                + "\n\nThe target_profiles strict check fails a test whose code sent these. If the test sends them "
                  "on purpose, allow the rule (target_profiles.allow('rule.id') or "
                  "@pytest.mark.target_profiles(allow=[...])) or opt out with "
                  "@pytest.mark.target_profiles(strict=False).")

    # --- what was sent ----------------------------------------------------------------------------
    def assert_called(self, operation: str | None = None, times: int | None = None, *, tenant: str | None = None,
                      method: str | None = None) -> list[JournalEntry]:
        """Requests (of ``operation``, to ``tenant``, with ``method``) were sent: ``times`` exactly, or at
        least once when ``times`` is None. Returns them."""
        __tracebackhide__ = True
        _check_operation(operation)
        self._note(tenant)
        found = self.journal.entries(lambda e: (operation is None or e.operation == operation)
                                     and (tenant is None or e.tenant == tenant)
                                     and (method is None or e.method == method.upper()))
        if (times is None and found) or len(found) == times:
            return found
        what = " ".join(x for x in (method and method.upper(), operation or "", "request(s)",
                                    tenant and f"to client {tenant}") if x)
        want = "at least 1" if times is None else str(times)
        _fail(f"expected {want} {what}; {len(found)} were sent.\n{self._summary()}")
        return found

    def assert_not_called(self, operation: str | None = None, *, tenant: str | None = None) -> None:
        __tracebackhide__ = True
        self.assert_called(operation, 0, tenant=tenant)

    def assert_updated(self, third_party_id: str | None = None, *, tnt_id: str | None = None,
                       attributes: Mapping[str, Any] | None = None, exact: bool = False, tenant: str | None = None,
                       times: int | None = 1) -> list[JournalEntry]:
        """Single profile updates were sent for this profile with these attributes (all of them, and no
        others if ``exact``) and updated it: ``times`` exactly (None: at least once). An update the fake
        refused, or one that found no profile to update (single updates never create profiles), does
        not count, and the failure says which and why."""
        __tracebackhide__ = True
        if (third_party_id is None) == (tnt_id is None):
            raise TypeError("assert_updated() takes exactly one of third_party_id, tnt_id")
        self._note(tenant)
        checks: list[m.Matcher] = [m.identifier("mbox3rdPartyId", third_party_id, "third_party_id")
                                   if third_party_id is not None else m.identifier("mboxPC", tnt_id or "", "tnt_id")]
        if attributes is not None:
            checks.append(m.attributes(attributes, exact=exact))
        if tenant is not None:
            checks.append(m.tenant(tenant))
        desc = ", ".join(f"{k}={v!r}" for k, v in (("third_party_id", third_party_id), ("tnt_id", tnt_id),
                                                   ("attributes", attributes), ("tenant", tenant)) if v is not None)
        return self._expect("single update", m.operation("single-update"), checks, desc, times,
                            ineffective=self._update_missed)

    def _update_missed(self, e: JournalEntry) -> str | None:
        """Why the single update ``e`` changed no profile, or None when it updated one."""
        if not _applied(e):
            why = "; ".join(v.message for v in e.errors) or (f"fault: {e.fault}" if e.fault else "")
            return f"refused with HTTP {e.status}" + (f": {why}" if why else "")
        if any(v.rule_id == "single.both-identifiers" for v in e.violations):
            return None  # the fake fell back to the other id: no single id to look up
        kind = _ID_KINDS.get(e.parsed.get("idKind") or "")
        pid = e.parsed.get("id")
        if kind is None or not pid or e.tenant is None:
            return None
        seed = _SEED_ARG[kind].format(pid) + ("" if e.tenant == self.client_code else f", tenant={e.tenant!r}")
        never = (f"single updates never create profiles (Adobe: if nothing is found, a profile is not created); "
                 f"seed it first: target_profiles.seed_profile({seed})")
        with self.backend.lock:  # one look at the state, wherever the store keeps it
            tenant = self.backend.tenant(e.tenant) if e.tenant in self.backend.tenants() else None
            profile = tenant.profiles.find(kind, pid) if tenant is not None else None  # type: ignore[arg-type]
        if profile is None:
            return f"accepted (HTTP {e.status}), but client {e.tenant} has no profile with {kind} {pid!r}: {never}"
        if profile.created_ms > e.time_ms:
            return (f"accepted (HTTP {e.status}) before client {e.tenant} had a profile with {kind} {pid!r} "
                    f"(it was created later), so it changed nothing: {never}")
        return None

    def assert_batch_submitted(self, rows: Sequence[Mapping[str, Any]] | None = None, *, version: int | None = None,
                               key: str | None = None, attributes: Sequence[str] | None = None,
                               tenant: str | None = None, times: int | None = 1) -> dict[str, Any]:
        """Batches were submitted with these rows (dicts ``{"thirdPartyId": id, attr: value}`` in file
        order, empty cells left out), ``version``, ``key`` column and attribute columns: ``times``
        exactly (None: at least once). Returns the last matching batch."""
        __tracebackhide__ = True
        checks: list[m.Matcher] = []
        if version is not None:
            checks.append(m.parsed("version", version))
        if key is not None:
            checks.append(m.parsed("key", key, "key column"))
        if attributes is not None:
            checks.append(m.parsed("attributes", list(attributes), "attribute columns"))
        if tenant is not None:
            checks.append(m.tenant(tenant))
            self._note(tenant)
        if rows is not None:
            checks.append(m.rows(rows, self._rows_of))
        desc = ", ".join(f"{k}={v!r}" for k, v in (("version", version), ("key", key), ("attributes", attributes),
                                                   ("tenant", tenant), ("rows", rows)) if v is not None)
        found = self._expect("batch submission", m.operation("batch-submit"), checks, desc, times,
                             ineffective=self._submission_refused)
        if not found:
            return {}
        return self.backend.batch(found[-1].parsed["batchId"])

    @staticmethod
    def _submission_refused(e: JournalEntry) -> str | None:
        """Why the batch submission ``e`` made no batch (refused, or faulted before it was taken), or None."""
        if e.parsed.get("batchId"):
            return None
        why = "; ".join(v.message for v in e.errors) or (f"fault: {e.fault}" if e.fault else "")
        return f"refused with HTTP {e.status}" + (f": {why}" if why else "")

    def _rows_of(self, entry: JournalEntry) -> list[dict[str, str]] | None:
        batch_id = entry.parsed.get("batchId")
        if not batch_id:
            return None
        try:
            return self.backend.batch(batch_id)["rows"]
        except ControlError:  # past the fake's retention
            return None

    def _expect(self, what: str, kind: m.Matcher, checks: list[m.Matcher], desc: str,
                times: int | None, *, ineffective: Callable[[JournalEntry], str | None] | None = None
                ) -> list[JournalEntry]:
        """The requests matching ``checks`` (``times`` of them); ``ineffective`` says why a matching
        request does not count (refused, or it changed nothing), or None when it does."""
        __tracebackhide__ = True
        found = m.search(self.journal.entries(), kind, checks)
        matched, missed = found.matched, []
        if ineffective is not None:
            judged = [(e, ineffective(e)) for e in found.matched]
            matched = [e for e, why in judged if why is None]
            missed = [(e, why) for e, why in judged if why is not None]
        n = len(matched)
        if (times is None and n) or n == times:
            return matched
        want = "at least 1" if times is None else str(times)
        head = f"expected {want} {what}(s) matching {desc or 'anything'}; {n} matched"
        if missed:
            lines = [f"expected {want} {what}(s) matching {desc or 'anything'}; {len(found.matched)} such request(s) "
                     f"were sent, {len(missed)} of which changed nothing:"]
            lines += [f"  {e.method} {e.url} -> {e.status}" for e in matched]
            for e, why in missed:
                lines += [f"  {e.method} {e.url} -> {e.status}", f"    - {why}"]
            _fail("\n".join(lines))
        if n:
            sent = "\n".join(f"  {e.method} {e.url} -> {e.status}" for e in matched)
            _fail(f"{head}:\n{sent}")
        _fail(f"{head}.\n{found.describe_nearest()}")
        return matched

    def _summary(self) -> str:
        counts: dict[str, int] = {}
        for e in self.journal.entries():
            label = f"{e.method} {e.operation}" + (f" ({e.tenant})" if e.tenant else "")
            counts[label] = counts.get(label, 0) + 1
        if not counts:
            return "No request reached the fake."
        return "Sent: " + ", ".join(f"{label} x{n}" for label, n in counts.items())

    # --- httpx ------------------------------------------------------------------------------------
    def httpx_transport(self, **network_options: Any) -> httpx.BaseTransport:
        """An httpx transport answering Adobe's hosts from this fake (others go to the network, or are
        refused when other hosts are blocked): ``httpx.Client(transport=target_profiles.httpx_transport())``."""
        sync, _ = self._transports()
        return sync(**network_options)

    def async_httpx_transport(self, **network_options: Any) -> httpx.AsyncBaseTransport:
        """The same for ``httpx.AsyncClient(transport=...)``."""
        _, async_ = self._transports()
        return async_(**network_options)

    def _transports(self) -> tuple[type, type]:
        from .intercept import httpx_transports

        bridge = self._bridge or WsgiBridge(self.app)
        return httpx_transports(bridge, block=self._block)

    # --- lifecycle of the handle ------------------------------------------------------------------
    def close(self) -> None:
        """Undo what the handle changed (patched ``time.sleep``); the fixtures call it."""
        while self._cleanups:
            self._cleanups.pop()()

    def __repr__(self) -> str:
        return f"<TargetProfiles {self.url} client_code={self.client_code!r} requests={len(self.journal)}>"


def _one_id(third_party_id: str | None, tnt_id: str | None, ecid: str | None, method: str) -> tuple[str, str]:
    given = [(k, v) for k, v in (("thirdPartyId", third_party_id), ("tntId", tnt_id),
                                 ("marketingCloudVisitorId", ecid)) if v is not None]
    if len(given) != 1:
        raise TypeError(f"{method}() takes exactly one of third_party_id, tnt_id, ecid")
    return given[0]


class _Example:
    """``with target_profiles.example():`` (a class, not a generator: a failure raised in ``__exit__``
    shows the test's own ``with`` line, with Hypothesis' falsifying example under it)."""

    __slots__ = ("_handle",)

    def __init__(self, handle: TargetProfiles) -> None:
        self._handle = handle

    def __enter__(self) -> TargetProfiles:
        self._handle._start_example()
        return self._handle

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        __tracebackhide__ = True
        if exc_type is not None:
            return  # the example failed on its own; the test's failure report shows the contract report
        message = self._handle.strict_failure()
        if message is not None:
            # with the traceback: it shows the test's own ``with`` line and Hypothesis' falsifying example
            _fail(message, pytrace=True)


def _applied(e: JournalEntry) -> bool:
    """Whether the fake applied the request: answered 200, or failed it with a fault after applying."""
    return e.status == 200 or bool(e.fault and "after applying" in e.fault)


def _check_operation(operation: str | None) -> None:
    if operation is not None:
        m.operation(operation)  # refuses a name that is no surface's
