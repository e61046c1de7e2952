"""Server-behaviour scenarios: how a batch progresses and what limits apply, drawn for resilience tests.

A :class:`Scenario` is plain data (a lifecycle spec and settings) plus what a well-behaved client will
see. ``apply`` sets it on a ``MockBackend`` (or anything with ``set_lifecycle`` and ``configure``);
``control_requests`` gives the same as ``/_mock/`` HTTP calls for a standalone server. New kinds
(faults, for example) join through :func:`register_scenario_kind`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ..rules import RULES
from ._http import HttpRequest

__all__ = ["SCENARIO_KINDS", "Scenario", "register_scenario_kind", "scenarios"]


@dataclass(frozen=True)
class Scenario:
    """A server behaviour and what a client following the contract will observe.

    ``polls_until_end`` is how many status polls answer ``incomplete`` before the batch ends (None
    when it ends by time, after ``seconds``); ``outcome`` is how it ends; ``failed_rows`` how many rows
    fail (see :meth:`failed_updates`); ``bulk_calls_per_minute`` the bulk limit in force (calls past
    it get HTTP 503, rule ``rate.bulk``).
    """

    kind: str
    lifecycle: str  #: a lifecycle spec, e.g. ``polls=2,stuck`` (see ``target_profile_mock.mockserver.Lifecycle``)
    outcome: Literal["complete", "stuck"] = "complete"
    polls_until_end: int | None = 0
    seconds: float = 0.0
    failed_rows: int = 0
    bulk_calls_per_minute: int | None = None
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  #: extra tenant settings

    def failed_updates(self, rows: int) -> int:
        """The ``failedUpdates`` a batch of ``rows`` rows reports once it ends."""
        return 0 if self.outcome == "stuck" else min(rows, self.failed_rows)

    @property
    def rate_limit_status(self) -> int:
        return RULES["rate.bulk"].status

    def apply(self, backend: Any, *, tenant: str = "demo") -> None:
        """Set this scenario on a ``MockBackend`` for one tenant."""
        backend.set_lifecycle(self.lifecycle, tenant=tenant)
        settings = dict(self.settings)
        if self.bulk_calls_per_minute is not None:
            settings["bulk_calls_per_minute"] = self.bulk_calls_per_minute
        if settings:
            backend.configure(tenant, **settings)

    def control_requests(self, *, tenant: str = "demo") -> list[HttpRequest]:
        """The same as ``/_mock/`` HTTP calls, for a standalone server."""
        headers = {"Content-Type": "application/json"}
        out = [HttpRequest("PUT", "/_mock/lifecycle", "",
                           json.dumps({"lifecycle": self.lifecycle, "tenant": tenant}).encode(), headers)]
        settings = dict(self.settings)
        if self.bulk_calls_per_minute is not None:
            settings["bulk_calls_per_minute"] = self.bulk_calls_per_minute
        if settings:
            out.append(HttpRequest("PUT", "/_mock/settings", "", json.dumps({"tenant": tenant, **settings}).encode(),
                                   headers))
        return out


ScenarioFactory = Callable[[int], st.SearchStrategy[Scenario]]
#: Registered scenario kinds: name -> factory taking ``max_polls``.
SCENARIO_KINDS: dict[str, ScenarioFactory] = {}


def register_scenario_kind(name: str, factory: ScenarioFactory) -> None:
    """Add a scenario kind: ``factory(max_polls)`` returns a strategy of :class:`Scenario`."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"a scenario kind needs a name, got {name!r}")
    if not callable(factory):
        raise InvalidArgument(f"factory={factory!r} must be callable")
    SCENARIO_KINDS[name] = factory


def _completes(max_polls: int) -> st.SearchStrategy[Scenario]:
    return st.integers(0, max_polls).map(lambda k: Scenario("completes", f"polls={k}", polls_until_end=k))


def _stuck(max_polls: int) -> st.SearchStrategy[Scenario]:
    return st.integers(0, max_polls).map(lambda k: Scenario("stuck", f"polls={k},stuck", "stuck", polls_until_end=k))


def _rows_failed(max_polls: int) -> st.SearchStrategy[Scenario]:
    return st.builds(lambda k, n: Scenario("rows-failed", f"polls={k},failed={n}", polls_until_end=k,
                                           failed_rows=n), st.integers(0, max_polls), st.integers(1, 5))


def _by_time(max_polls: int) -> st.SearchStrategy[Scenario]:
    return st.sampled_from((1, 2, 5, 10)).map(
        lambda s: Scenario("by-time", f"seconds={s}", polls_until_end=None, seconds=float(s)))


def _rate_limited(max_polls: int) -> st.SearchStrategy[Scenario]:
    return st.builds(lambda k, n: Scenario("rate-limited", f"polls={k}", polls_until_end=k, bulk_calls_per_minute=n),
                     st.integers(0, max_polls), st.integers(1, 3))


for _name, _factory in (("completes", _completes), ("stuck", _stuck), ("rows-failed", _rows_failed),
                        ("by-time", _by_time), ("rate-limited", _rate_limited)):
    register_scenario_kind(_name, _factory)


def scenarios(*, kinds: tuple[str, ...] | None = None, max_polls: int = 5) -> st.SearchStrategy[Scenario]:
    """Scenarios of the registered kinds (all by default): ``completes`` after k polls, ends ``stuck``,
    ``rows-failed``, ends ``by-time``, ``rate-limited`` (a bulk limit of 1-3 calls a minute)."""
    if not isinstance(max_polls, int) or max_polls < 0:
        raise InvalidArgument(f"max_polls={max_polls!r} must be an integer >= 0")
    names = tuple(SCENARIO_KINDS) if kinds is None else kinds
    unknown = [k for k in names if k not in SCENARIO_KINDS]
    if unknown or not names:
        raise InvalidArgument(f"unknown scenario kinds {unknown}; known: {sorted(SCENARIO_KINDS)}")
    return st.one_of(*(SCENARIO_KINDS[k](max_polls) for k in names))
