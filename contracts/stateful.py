"""A Hypothesis state machine that checks an endpoint against :class:`target_profile_mock.contracts.model.ProfileModel`.

The machine talks HTTP through a small driver: anything with ``send(HttpRequest) -> HttpResponse``.
Drivers that can also control the endpoint (reset it, seed profiles, set how batches progress,
move its clock) let the machine check more: against the fake every status and every value is
predicted exactly; against an endpoint without control only what the model can know is checked.

Run it against the standalone fake::

    from target_profile_mock.contracts.stateful import MockServerDriver, profile_machine
    TestProfiles = profile_machine(lambda: MockServerDriver("http://127.0.0.1:8080")).TestCase
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import quote

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

from .batch import batch_update_path, encode_batch
from .model import ProfileModel
from .single import FORM_HEADERS, IdParam, build_single_update
from .strategies import HttpRequest, HttpResponse
from .strategies._http import as_http
from .strategies.building import attribute_values
from .xmlbodies import parse_batch_status, parse_response

__all__ = ["ControlOverHttp", "Driver", "MockServerDriver", "RequestsDriver", "profile_machine"]


@runtime_checkable
class Driver(Protocol):
    """Sends one HTTP request to the endpoint under test."""

    def send(self, request: HttpRequest) -> HttpResponse: ...


@runtime_checkable
class ControlDriver(Driver, Protocol):
    """A driver that can also control the endpoint (the fake's ``/_mock/`` API does all of this)."""

    def reset(self) -> None: ...
    def seed_profile(self, kind: str, profile_id: str, attributes: Mapping[str, str]) -> None: ...
    def set_lifecycle(self, spec: str) -> None: ...
    def advance(self, seconds: float) -> None: ...


class RequestsDriver:
    """A driver over ``requests`` and a base URL (``http://127.0.0.1:8080``, or a real edge host)."""

    def __init__(self, base_url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 30.0,
                 session: Any = None) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.session = session if session is not None else requests.Session()

    def send(self, request: HttpRequest) -> HttpResponse:
        resp = self.session.request(request.method, request.url(self.base_url), data=request.body or None,
                                    headers={**self.headers, **request.headers}, timeout=self.timeout,
                                    allow_redirects=False)
        return HttpResponse(resp.status_code, dict(resp.headers), resp.content)


class ControlOverHttp:
    """Control operations over the fake's ``/_mock/`` HTTP API, for any class with ``send`` and ``client``."""

    client: str = "demo"

    def send(self, request: HttpRequest) -> HttpResponse:  # pragma: no cover - provided by the driver
        raise NotImplementedError

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        data = b"" if body is None else json.dumps(body).encode()
        resp = self.send(HttpRequest(method, "/_mock" + path, "", data, {"Content-Type": "application/json"}))
        if resp.status >= 400:
            raise RuntimeError(f"control call {method} /_mock{path} failed: {resp.status} {resp.body[:300]!r}")
        return json.loads(resp.body or b"null")

    def reset(self) -> None:
        self._control("POST", "/reset", {"tenant": self.client})
        self._control("POST", "/clock", {"freeze": True})

    def seed_profile(self, kind: str, profile_id: str, attributes: Mapping[str, str]) -> None:
        self._control("POST", f"/tenants/{self.client}/profiles", {kind: profile_id, "attributes": dict(attributes)})

    def set_lifecycle(self, spec: str) -> None:
        self._control("PUT", "/lifecycle", {"lifecycle": spec, "tenant": self.client})

    def advance(self, seconds: float) -> None:
        self._control("POST", "/clock", {"advance": seconds})


class MockServerDriver(RequestsDriver, ControlOverHttp):
    """A driver for the standalone fake: HTTP through ``requests`` plus its ``/_mock/`` control API."""

    def __init__(self, base_url: str, *, client: str = "demo", **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.client = client


# --- the machine -----------------------------------------------------------------------------------
_TNT_POOL = (*(f"{1_600_000_000_000 + i}-{100_000 + i}.{i:02d}_00" for i in range(6)),
             # the same visitors with another location hint, or none
             "1600000000000-100000", "1600000000001-100001.28_0")
_THIRD_POOL = ("cust-1", "cust-2", "ünïcode-3", "a b&c=4", "e%25f,5", "x" * 40)
_NAMES = ("tier", "city", "points", "a.b", "x-y")
_values = attribute_values(max_size=12)
#: ``(kind, id)`` from the pools: the machine keeps meeting the same visitors
_pool_ids = st.one_of(st.tuples(st.just("tntId"), st.sampled_from(_TNT_POOL)),
                      st.tuples(st.just("thirdPartyId"), st.sampled_from(_THIRD_POOL)))


def _fetch_request(client: str, kind: str, profile_id: str) -> HttpRequest:
    pid = quote(profile_id, safe="")
    path = f"/rest/v1/profiles/thirdPartyId/{pid}" if kind == "thirdPartyId" else f"/rest/v1/profiles/{pid}"
    return HttpRequest("GET", path, f"client={quote(client, safe='')}")


def _delivery_request(client: str, tnt_id: str | None, third_party_id: str | None,
                      parameters: Mapping[str, str]) -> HttpRequest:
    body: dict[str, Any] = {"context": {"channel": "web"}}
    ids = {k: v for k, v in (("tntId", tnt_id), ("thirdPartyId", third_party_id)) if v is not None}
    if ids:
        body["id"] = ids
    body["execute"] = {"mboxes": [{"index": 1, "name": "home", "profileParameters": dict(parameters)}]}
    return HttpRequest("POST", "/rest/v1/delivery", f"client={quote(client, safe='')}&sessionId=machine",
                       json.dumps(body).encode(), {"Content-Type": "application/json"})


_DAY = 86_400
#: how long batch statuses stay readable on the fake (its default ``batch_retention``)
_RETENTION = _DAY


def profile_machine(driver_factory: Callable[[], Driver], *, client: str = "demo",
                    polls_to_complete: int = 1) -> type[RuleBasedStateMachine]:
    """A state machine class over a fresh driver per run; use its ``TestCase`` as a test.

    With a :class:`ControlDriver` the endpoint is reset and frozen, profiles are seeded, and every
    batch answers ``incomplete`` to exactly ``polls_to_complete`` polls before it completes.
    """
    if not isinstance(polls_to_complete, int) or polls_to_complete < 0:
        raise ValueError(f"polls_to_complete={polls_to_complete!r} must be an integer >= 0")

    class ProfileMachine(RuleBasedStateMachine):
        ids = Bundle("ids")
        batches = Bundle("batches")

        def __init__(self) -> None:
            super().__init__()
            self.driver = driver_factory()
            self.control = isinstance(self.driver, ControlDriver)
            self.model = ProfileModel()
            self.polls: dict[str, int] = {}
            self.status_urls: dict[str, str] = {}
            self.submitted: dict[str, float] = {}
            if self.control:
                self.driver.reset()  # type: ignore[attr-defined]
                self.driver.set_lifecycle(f"polls={polls_to_complete}")  # type: ignore[attr-defined]

        @initialize(target=ids, kind_id=_pool_ids)
        def first_id(self, kind_id: tuple[str, str]) -> tuple[str, str]:
            return kind_id

        @rule(target=ids, kind_id=_pool_ids)
        def another_id(self, kind_id: tuple[str, str]) -> tuple[str, str]:
            return kind_id

        @precondition(lambda self: self.control)
        @rule(kind_id=ids, attrs=st.dictionaries(st.sampled_from(_NAMES), _values, max_size=3))
        def seed(self, kind_id: tuple[str, str], attrs: dict[str, str]) -> None:
            kind, pid = kind_id
            self.driver.seed_profile(kind, pid, attrs)  # type: ignore[attr-defined]
            self.model.seed({kind: pid}, attrs)

        @rule(kind_id=ids, attrs=st.dictionaries(st.sampled_from(_NAMES), _values, min_size=1, max_size=3),
              method=st.sampled_from(("GET", "POST")))
        def update(self, kind_id: tuple[str, str], attrs: dict[str, str], method: Literal["GET", "POST"]) -> None:
            kind, pid = kind_id
            id_kind: IdParam = "mboxPC" if kind == "tntId" else "mbox3rdPartyId"
            request = build_single_update(pid, attrs, id_kind=id_kind, method=method, client=client)
            resp = self.driver.send(as_http(request))
            assert resp.status == 200, (resp.status, resp.body)
            assert parse_response(resp.body).get("success") == "true", resp.body
            self.model.single_update(id_kind, pid, attrs)

        @rule(target=batches, version=st.sampled_from((1, 2)), key=st.sampled_from(("tntId", "thirdPartyId")),
              rows=st.lists(st.tuples(st.integers(0, 5), st.lists(_values, max_size=3)), min_size=1, max_size=4))
        def submit(self, version: int, key: str, rows: list[tuple[int, list[str]]]) -> str:
            pool = _TNT_POOL if key == "tntId" else _THIRD_POOL
            header = "pcId" if key == "tntId" else "thirdPartyId"
            names = _NAMES[:3]
            model_rows = [(pool[i], tuple(cells)) for i, cells in rows]
            body = encode_batch(header, names, model_rows)  # type: ignore[arg-type]
            resp = self.driver.send(HttpRequest("POST", batch_update_path(client, version), "", body, FORM_HEADERS))
            assert resp.status == 200, (resp.status, resp.body)
            fields = parse_response(resp.body)
            assert fields.get("success") == "true", resp.body
            url = fields["batchStatus"]
            batch_id = url.split("batchId=", 1)[1].split("&", 1)[0]
            self.model.submit_batch(batch_id, version, header, names, model_rows)
            self.polls[batch_id] = 0
            self.status_urls[batch_id] = url
            self.submitted[batch_id] = self.model.now
            return batch_id

        @rule(batch_id=batches, details=st.booleans())
        def poll(self, batch_id: str, details: bool) -> None:
            url = self.status_urls[batch_id] + ("&showDetails=true" if details else "")
            resp = self.driver.send(HttpRequest.from_url("GET", url))
            if self.control and self.model.now - self.submitted[batch_id] > _RETENTION:
                assert resp.status == 404, (resp.status, resp.body)  # past its retention: gone, never applied
                return
            assert resp.status == 200, (resp.status, resp.body)
            body = parse_batch_status(resp.body)
            assert body.batch_id == batch_id
            mb = self.model.batches[batch_id]
            assert body.batch_size == mb.size
            self.polls[batch_id] += 1
            if self.control:
                expected = "complete" if self.polls[batch_id] > polls_to_complete or mb.state == "complete" \
                    else "incomplete"
                assert body.status == expected, (body.status, expected, self.polls[batch_id])
            assert body.status in ("incomplete", "complete"), body.status
            if mb.state == "complete":
                assert body.status == "complete", "a completed batch went back to incomplete"
            if body.status == "complete":
                counters = self.model.complete_batch(batch_id)
                if details:
                    assert body.counters == counters, (body.counters, counters)

        @rule(kind_id=ids)
        def fetch(self, kind_id: tuple[str, str]) -> None:
            kind, pid = kind_id
            resp = self.driver.send(_fetch_request(client, kind, pid))
            expected = self.model.fetch(kind, pid)
            if expected is None:
                assert resp.status == 404, (resp.status, resp.body)
                return
            assert resp.status == 200, (resp.status, resp.body)
            got = json.loads(resp.body)["profileAttributes"]
            values = {name.removeprefix("profile."): v["value"] for name, v in got.items()}
            # an endpoint may hold attributes of its own; compare the ones this machine writes
            values = {k: v for k, v in values.items() if k in _NAMES}
            assert values == expected, (values, expected)

        @rule(target=ids, kind_id=st.one_of(st.none(), ids), third=st.one_of(st.none(), st.sampled_from(_THIRD_POOL)),
              attrs=st.dictionaries(st.sampled_from(_NAMES), _values, max_size=3))
        def visit(self, kind_id: tuple[str, str] | None, third: str | None, attrs: dict[str, str]) -> tuple[str, str]:
            """A Delivery API visit: as a new visitor, or by a tntId or thirdPartyId; both is a login."""
            tnt = kind_id[1] if kind_id is not None and kind_id[0] == "tntId" else None
            if kind_id is not None and kind_id[0] == "thirdPartyId":
                third = kind_id[1]
            resp = self.driver.send(_delivery_request(client, tnt, third, attrs))
            assert resp.status == 200, (resp.status, resp.body)
            answer = json.loads(resp.body)
            issued = answer["id"]["tntId"]
            if tnt is not None:
                assert issued.partition(".")[0] == tnt.partition(".")[0], (issued, tnt)
            assert "." in issued, f"the answer's tntId {issued!r} carries no location hint"
            if third is not None:
                assert answer["id"].get("thirdPartyId") == third, answer["id"]
            profile = self.model.visit(tnt, third, attrs, issued)
            assert issued.partition(".")[0] == profile.ids["tntId"].partition(".")[0], (issued, profile.ids)
            return ("tntId", issued)

        @precondition(lambda self: self.control)
        @rule(seconds=st.sampled_from((1, 60, 600, 13 * _DAY, 14 * _DAY)))
        def advance(self, seconds: int) -> None:
            self.driver.advance(seconds)  # type: ignore[attr-defined]
            self.model.advance(seconds)

        @invariant()
        def batches_never_regress(self) -> None:
            for b in self.model.batches.values():
                assert b.state in ("incomplete", "complete")

    ProfileMachine.__name__ = ProfileMachine.__qualname__ = "ProfileMachine"
    return ProfileMachine
