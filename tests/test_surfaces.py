"""The surface registry (``mockserver/surfaces.py``) is the one route table: the Flask app, the lean front,
the OpenAPI description, the journal, the fault queue and the plugin all agree with it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import pytest
from flask import Flask, has_request_context
from flask.signals import request_started
from target_profile_mock.contracts.rules import RULES
from target_profile_mock.contracts.xmlbodies import parse_response
from target_profile_mock.mockserver import MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.app import SERVED_METHODS, HotRoutes
from target_profile_mock.mockserver.models import faults as fault_queue
from target_profile_mock.mockserver.surfaces import OPERATIONS, ROUTE_METHODS, SURFACES, Surface, by_operation
from target_profile_mock.mockserver.views.common import DIRECT_VIEWS
from target_profile_mock.plugin import handle

FORM = "application/x-www-form-urlencoded"
_ARG = re.compile(r"<([A-Za-z_]+)>")


def _sample(rule: str) -> str:
    """A path the rule matches: each argument a distinct plain value."""
    return _ARG.sub(lambda m: f"v-{m.group(1)}", rule)


ROUTES = [(s, r) for s in SURFACES for r in s.routes]


def _ids(item: Any) -> str:
    return item.rule if hasattr(item, "rule") else item.operation if isinstance(item, Surface) else str(item)


# --- one route table ----------------------------------------------------------------------------
@pytest.mark.parametrize(("surface", "route"), ROUTES, ids=_ids)
def test_every_route_reaches_its_view_through_flask_and_the_lean_front_alike(surface: Surface, route: Any) -> None:
    app = create_app(MockBackend())
    adapter = app.url_map.bind("localhost")
    path = _sample(route.rule)
    for method in ROUTE_METHODS:
        rule, values = adapter.match(path, method=method, return_rule=True)
        assert rule.endpoint == route.endpoint, (path, method)
    match = HotRoutes().match(path)
    if surface.hot:
        assert match is not None, f"{route.rule} is hot but the lean front does not take it"
        operation, args, endpoint = match
        assert (operation, args, endpoint) == (surface.operation, values, route.endpoint)
    else:
        assert match is None, f"{route.rule} is not hot but the lean front takes it"


@pytest.mark.parametrize("path", ["/m2/demo/profile/update/", "/rest/v1/profiles/a/b/c", "/rest/v1/delivery/x",
                                  "/m2//profile/update", "/rest/v1/profiles/", "/m2/a/b/profile/update"])
def test_the_lean_front_takes_no_path_flask_would_route_elsewhere(path: str) -> None:
    app = create_app(MockBackend())
    try:
        endpoint = app.url_map.bind("localhost").match(path, method="GET", return_rule=True)[0].endpoint
    except Exception:  # a 404 or a redirect: Flask's to answer
        endpoint = None
    match = HotRoutes().match(path)
    assert match is None or match[2] == endpoint


@pytest.mark.parametrize("surface", [s for s in SURFACES if s.hot], ids=_ids)
def test_the_hot_surfaces_are_served_by_the_lean_front(surface: Surface, monkeypatch: pytest.MonkeyPatch) -> None:
    # the views see no Flask request context when the lean front serves them
    seen: list[bool] = []
    view = DIRECT_VIEWS[surface.operation]
    monkeypatch.setitem(DIRECT_VIEWS, surface.operation,
                        lambda *a, **k: seen.append(has_request_context()) or view(*a, **k))
    client = create_app(MockBackend()).test_client()
    # Flask's own requests first (the control API, a 404, a batch): they leave nothing that sends hot ones to Flask
    client.get("/_mock/health")
    client.get("/nowhere")
    client.post("/m2/demo/v2/profile/batchUpdate", data=b"batch=thirdPartyId,a\nc1,x\n", content_type=FORM)
    for route in surface.routes:
        client.open(_sample(route.rule), method=surface.served[0])
    assert seen == [False] * len(surface.routes)


def _before(app: Flask, calls: list[str]) -> None:
    app.before_request(lambda: calls.append("before") and None)


def _after(app: Flask, calls: list[str]) -> None:
    app.after_request(lambda response: (calls.append("after") and None) or response)


def _teardown(app: Flask, calls: list[str]) -> None:
    app.teardown_request(lambda exc: calls.append("teardown"))


def _blueprint_before(app: Flask, calls: list[str]) -> None:
    # what a blueprint's before_request adds: Flask runs it for that blueprint's routes only
    app.before_request_funcs.setdefault("edge", []).append(lambda: calls.append("edge") and None)


def _signal(app: Flask, calls: list[str]) -> None:
    def receiver(sender: Flask, **extra: Any) -> None:
        calls.append("signal")
    request_started.connect(receiver, app)
    app.extensions["_test_receiver"] = receiver  # kept alive: blinker holds receivers weakly


@pytest.mark.parametrize("hook", [_before, _after, _teardown, _blueprint_before, _signal])
@pytest.mark.parametrize("path", ["/m2/demo/profile/update?mbox3rdPartyId=c1&profile.a=1",
                                  "/rest/v1/profiles/thirdPartyId/c1?client=demo"])
def test_a_request_hook_added_to_the_app_runs_on_the_hot_routes_too(
        hook: Callable[[Flask, list[str]], None], path: str) -> None:
    app = create_app(MockBackend())
    client = app.test_client()
    calls: list[str] = []
    hook(app, calls)
    try:
        assert client.get(path).status_code in (200, 404)
        assert calls, f"{hook.__name__} did not run on {path}"
    finally:
        receiver = app.extensions.pop("_test_receiver", None)
        if receiver is not None:
            request_started.disconnect(receiver, app)


# --- the OpenAPI description --------------------------------------------------------------------
def _spec_paths() -> dict[str, dict[str, Any]]:
    text = files("target_profile_mock.mockserver").joinpath("openapi.json").read_text(encoding="utf-8")
    return json.loads(text)["paths"]


def _described(rule: str) -> str:
    path = re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", rule)
    return path.replace("{profile_id}", "{profileId}").replace("{batch_id}", "{batchId}")


def test_every_described_route_and_method_is_served_and_every_served_one_described() -> None:
    app = create_app(MockBackend())
    served: dict[str, set[str]] = {}
    for r in app.url_map.iter_rules():
        methods = set(SERVED_METHODS.get(r.endpoint, (r.methods or set()) - {"HEAD", "OPTIONS"}))
        served.setdefault(_described(r.rule), set()).update(methods)
    described = {path: {m.upper() for m in item if m.upper() in {*ROUTE_METHODS, "HEAD", "OPTIONS"}}
                 for path, item in _spec_paths().items()}
    assert described == served


@pytest.mark.parametrize(("surface", "route"), ROUTES, ids=_ids)
def test_each_surface_route_is_described_with_the_methods_it_serves(surface: Surface, route: Any) -> None:
    item = _spec_paths()[_described(route.rule)]
    assert {m.upper() for m in item if m != "parameters"} == set(surface.served)


# --- operation names: journal, faults, plugin ---------------------------------------------------
def test_one_list_of_operation_names() -> None:
    assert tuple(s.operation for s in SURFACES) == OPERATIONS
    assert len(set(OPERATIONS)) == len(OPERATIONS)
    assert fault_queue.OPERATIONS is OPERATIONS and handle.OPERATIONS is OPERATIONS


def _call(client: Any, backend: MockBackend, surface: Surface, fault: dict[str, Any] | None = None) -> Any:
    """One call each surface answers with success when nothing is in its way; ``fault``, when given, is
    added just before it."""
    backend.seed_profile("demo", third_party_id="c1")
    op = surface.operation
    path = None
    if op == "batch-status":
        r = client.post("/m2/demo/v2/profile/batchUpdate", data=b"batch=thirdPartyId,a\nc1,x\n", content_type=FORM)
        url = parse_response(r.data)["batchStatus"]
        path = url[url.index("/m2/"):]
    if fault is not None:
        backend.faults.add(**fault, operation=op)
    if op == "single-update":
        return client.get("/m2/demo/profile/update?mbox3rdPartyId=c1&profile.a=1")
    if op == "batch-submit":
        return client.post("/m2/demo/v2/profile/batchUpdate", data=b"batch=thirdPartyId,a\nc1,x\n", content_type=FORM)
    if op == "batch-status":
        return client.get(path)
    if op == "fetch":
        return client.get("/rest/v1/profiles/thirdPartyId/c1?client=demo")
    if op == "token":
        return client.get("/demo/target/authentication/token?authorizationScope=profile_api")
    assert op == "delivery", f"no sample call for surface {op}: add one"
    return client.post("/rest/v1/delivery?client=demo&sessionId=s1",
                       json={"context": {"channel": "web"}, "id": {"thirdPartyId": "c1"}})


@pytest.mark.parametrize("surface", SURFACES, ids=_ids)
def test_each_surface_journals_its_operation_and_answers_its_own_calls(surface: Surface) -> None:
    backend = MockBackend()
    r = _call(create_app(backend).test_client(), backend, surface)
    assert r.status_code == 200, r.data
    assert r.headers["Content-Type"] == surface.media
    assert backend.journal.entries()[-1].operation == surface.operation


@pytest.mark.parametrize("surface", SURFACES, ids=_ids)
def test_a_fault_answers_in_the_surface_error_shape(surface: Surface) -> None:
    backend = MockBackend()
    backend.clock.freeze(1_800_000_000)
    r = _call(create_app(backend).test_client(), backend, surface, {"kind": 503, "message": "injected"})
    assert r.status_code == 503
    assert r.headers["Content-Type"] == surface.error.media
    expected = surface.error.render(503, "injected", None, backend.now_ms())
    if surface.error.name == "admin-json":  # a fresh requestId on every answer
        got, want = json.loads(r.data), json.loads(expected)
        assert got.pop("requestId") != want.pop("requestId") and got == want
        assert got["errors"][0]["errorCode"] == "ServiceUnavailable"
    else:
        assert r.data == expected
    entry = backend.journal.entries()[-1]
    assert (entry.operation, entry.status) == (surface.operation, 503) and entry.fault


def test_an_unknown_operation_is_refused_by_the_fault_queue_and_the_plugin() -> None:
    with pytest.raises(Exception, match="single-update"):
        MockBackend().faults.add(503, operation="single-updates")
    with pytest.raises(ValueError, match=", ".join(OPERATIONS)):
        handle._check_operation("unknown")


# --- rules --------------------------------------------------------------------------------------
def test_every_rule_belongs_to_a_surface_and_every_declared_rule_exists() -> None:
    ids = list(RULES)
    assert [i for i in ids if not any(s.judged_by(i) for s in SURFACES)] == []
    for s in SURFACES:
        for declared in s.rules:
            assert any(i == declared or (declared.endswith(".") and i.startswith(declared)) for i in ids), \
                f"{s.operation} declares {declared!r}, which names no rule"


@pytest.mark.parametrize("auth", [False, True])
def test_the_violations_journaled_for_a_call_are_its_surfaces(auth: bool) -> None:
    backend = MockBackend(MockConfig(auth=auth))
    client = create_app(backend).test_client()
    for method, path, kw in [
        ("GET", "/m2/client/profile/update?mbox3rdPartyId=a/b&profile.x=1&color=red", {}),
        ("PUT", "/m2/demo/profile/update", {}),
        ("POST", "/m2/demo/v2/profile/batchUpdate", {"data": b"thirdPartyId,a\nc 1,x\n", "content_type": "text/csv"}),
        ("GET", "/m2/demo/profile/batchStatus", {}),
        ("GET", "/m2/demo/profile/batchStatus?batchId=nope", {}),
        ("GET", "/rest/v1/profiles/thirdPartyId/c1", {"headers": {"access_token": "x"}}),
        ("DELETE", "/rest/v1/profiles/c1?client=demo", {}),
        ("GET", "/demo/target/authentication/token?scope=profile_api", {}),
        ("PUT", "/demo/target/authentication/token", {}),
        ("POST", "/rest/v1/delivery", {"data": b"{", "content_type": "application/json"}),
        ("GET", "/rest/v1/delivery", {}),
    ]:
        client.open(path, method=method, **kw)
    entries = backend.journal.entries()
    assert {e.operation for e in entries} == set(OPERATIONS)
    stray = [(e.operation, v.rule_id) for e in entries for v in e.violations
             if not by_operation(e.operation).judged_by(v.rule_id)]
    assert sum(len(e.violations) for e in entries) > 10 and stray == []


def test_every_surface_route_answers_over_a_real_socket_in_its_surface_shape() -> None:
    # waitress, the lean front and Flask's router together: each route reaches its surface's view
    import requests
    from target_profile_mock.mockserver.server import LiveServer

    backend = MockBackend()
    with LiveServer(create_app(backend)) as server, requests.Session() as http:
        for surface, route in ROUTES:
            for method in ROUTE_METHODS:
                r = http.request(method, server.url + _sample(route.rule), timeout=10)
                entry = backend.journal.entries()[-1]
                assert (entry.operation, entry.method, entry.status) == (surface.operation, method, r.status_code)
                media = surface.media if r.status_code < 400 else surface.error.media
                assert r.headers["Content-Type"] == media, (method, route.rule, r.status_code)
                if method not in surface.served:
                    assert r.status_code == 405
                    assert r.headers["Allow"] == ", ".join((*surface.served, "OPTIONS"))


@pytest.mark.parametrize(("path", "shape"), [("/rest/v1/profiles/c1?client=demo", "rest-json"),
                                             ("/m2/demo/profile/batchStatus?batchId=b1", "status-xml")])
def test_a_bound_hit_past_the_views_checks_is_answered_in_the_shape_of_the_api_aimed_at(
        path: str, shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from target_profile_mock.mockserver.backend import CapacityError
    from target_profile_mock.mockserver.surfaces import PATH_SHAPES

    def full(*args: Any, **kwargs: Any) -> None:
        raise CapacityError("the fake is full", retry_after=3)

    backend = MockBackend()
    monkeypatch.setattr(backend, "fetch", full)  # the lean front's route
    monkeypatch.setattr(backend, "has_batch", full)  # a Flask route
    r = create_app(backend).test_client().get(path)
    error = dict(PATH_SHAPES)[path[:path.index("/", 1) + 1]]
    assert error.name == shape
    assert (r.status_code, r.headers["Retry-After"], r.headers["Content-Type"]) == (503, "3", error.media)
    assert r.data == error.render(503, "the fake is full", None, 0)
