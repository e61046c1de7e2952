"""The Flask application: one app serves the edge routes, the Admin token routes and ``/_mock/``."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, cast

from flask import Flask, Request, Response, request
from flask.signals import got_request_exception, request_finished, request_started, request_tearing_down
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.utils import cached_property

from . import ui
from .backend import CapacityError, MockBackend
from .config import MockConfig
from .errors import StaleState
from .models.journal import query_args
from .store import Store
from .surfaces import REST_JSON, ROUTE_METHODS, SURFACES, route_pattern, shape_of_path
from .views import admin, control, delivery, edge
from .views.common import DIRECT_VIEWS, capacity_refusal, error_response, json_response

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

log = logging.getLogger("target_profile_mock")


class _Request(Request):
    @cached_property
    def args(self) -> MultiDict[str, str]:  # type: ignore[override]
        # not Werkzeug's: it raises (a 500) on query bytes that are not UTF-8; see query_args
        return query_args(self.query_string)


class _LeanRequest:
    """The request the lean front hands to the hot views: what they read on every call, straight from
    the environ; anything else comes from a werkzeug request built on first use, so every attribute
    reads exactly as werkzeug's (``tests/test_lean_front.py`` checks the ones taken here)."""

    __slots__ = ("_args", "_full", "environ", "method", "path")

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET").upper()
        # werkzeug's own decoding of PATH_INFO (latin-1 text of UTF-8 bytes)
        self.path = "/" + (environ.get("PATH_INFO") or "").encode("latin1").decode(errors="replace").lstrip("/")
        self._args: MultiDict[str, str] | None = None
        self._full: _Request | None = None

    @property
    def query_string(self) -> bytes:
        return self.environ.get("QUERY_STRING", "").encode("latin1")

    @property
    def args(self) -> MultiDict[str, str]:
        if self._args is None:
            self._args = query_args(self.query_string)
        return self._args

    def __getattr__(self, name: str) -> Any:
        # only for what the slots and properties above do not have (host, stream, headers, ...)
        full = self._full
        if full is None:
            full = self._full = _Request(self.environ)
        return getattr(full, name)


#: What each Adobe route serves, by endpoint; control routes serve what they declare (GET routes HEAD too).
SERVED_METHODS: dict[str, tuple[str, ...]] = {r.endpoint: s.served for s in SURFACES for r in s.routes}


def allowed_methods(app: Flask, path: str, declared: Iterable[str] | None) -> list[str]:
    """The methods a path is served with, for ``Allow``: OPTIONS and, on Adobe's routes, only what the view
    serves (the routes take more methods to refuse them in the API's own words)."""
    try:
        rule, _ = app.url_map.bind("localhost").match(path, method="OPTIONS", return_rule=True)
    except HTTPException:
        rule = None
    if rule is not None and rule.endpoint in SERVED_METHODS:
        return [*SERVED_METHODS[rule.endpoint], "OPTIONS"]
    methods = set(declared or (rule.methods if rule is not None else ()) or ())
    return sorted(methods | {"OPTIONS"}) if methods else []


class _App(Flask):
    def make_default_options_response(self) -> Response:
        """OPTIONS advertises only the methods that are served (not those a route takes to refuse)."""
        response = super().make_default_options_response()
        methods = allowed_methods(self, request.path, list(response.allow))
        response.allow.clear()
        response.allow.update(methods)
        return response


def create_app(backend: MockBackend | None = None, *, config: MockConfig | None = None,
               store: Store | None = None) -> Flask:
    """A Flask app over ``backend`` (a new one built from ``config`` on ``store`` when not given)."""
    # no static folder: Flask's default /static/<path> would serve files from the working directory
    app = _App("target_profile_mock", static_folder=None)
    app.request_class = _Request
    if backend is not None and store is not None and backend.store is not store:
        raise ValueError("give create_app a backend or a store to build one on, not both")
    app.config["BACKEND"] = backend if backend is not None else MockBackend(config, store=store)
    app.url_map.strict_slashes = False
    app.register_blueprint(control.bp)
    app.register_blueprint(edge.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(delivery.bp)
    app.register_blueprint(ui.bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        response = http_error_response(request, exc)
        if isinstance(exc, MethodNotAllowed):
            methods = allowed_methods(app, request.path, exc.valid_methods)
            if methods:
                response.headers["Allow"] = ", ".join(methods)
        return response

    @app.errorhandler(CapacityError)
    def _over_capacity(exc: CapacityError) -> Response:
        return capacity_response(request, exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        return unexpected_error_response(request, exc, app.config["BACKEND"])

    # Flask's documented way to wrap the app: every caller (WSGI server, test client, in-process bridge) gets it
    app.wsgi_app = _lean_front(app, app.wsgi_app)  # type: ignore[method-assign]
    return app


def http_error_response(req: Request, exc: HTTPException) -> Response:
    """An HTTP error (unknown route or method) in the shape of the API it was aimed at."""
    code = exc.code or 500
    message = f"{req.method} {req.path}: {exc.description}"
    shape = shape_of_path(req.path)
    return json_response({"error": message}, code) if shape is None else error_response(shape, code, message)


def capacity_response(req: Request, exc: CapacityError) -> Response:
    """A call refused by one of the fake's own bounds (a race past the views' own checks): a 503 in the
    shape of the API it was aimed at."""
    return capacity_refusal(exc, shape_of_path(req.path))


def unexpected_error_response(req: Request, exc: Exception, be: MockBackend | None = None) -> Response:
    """A bug in the fake: logged, and answered with a 500 in the API's shape rather than a traceback.
    The store failing (Redis unreachable) is no bug: a 503 in the API's shape, with ``Retry-After``."""
    down = None if be is None else be.store.unavailable(exc)
    if down is not None:
        log.warning("%s", down)
        return capacity_refusal(down, shape_of_path(req.path))
    log.exception("unexpected error in the fake")
    message = f"internal error in target-profile-mock ({type(exc).__name__}); please report it"
    return error_response(shape_of_path(req.path) or REST_JSON, 500, message)


class HotRoutes:
    """The routes of the ``hot`` surfaces as one regular expression, built from ``surfaces.py``: what
    Flask's router matches on them (``strict_slashes`` aside: a trailing slash, like any other path, goes
    through Flask)."""

    def __init__(self) -> None:
        parts: list[str] = []
        #: by the number of a route's own group (the outermost, so ``lastindex`` of a match): its operation,
        #: (argument name, group number) pairs, the route's own arguments, and its endpoint
        self.routes: dict[int, tuple[str, tuple[tuple[str, int], ...], dict[str, object], str]] = {}
        group = 1
        for surface in SURFACES:
            if not surface.hot:
                continue
            if surface.operation not in DIRECT_VIEWS:
                raise RuntimeError(f"surface {surface.operation} is hot but its view is not registered with "
                                   "serve(..., direct=True)")
            for route in surface.routes:
                pattern, names = route_pattern(route.rule)
                parts.append(f"({pattern})")
                pairs = tuple((name, group + 1 + i) for i, name in enumerate(names))
                self.routes[group] = (surface.operation, pairs, dict(route.args), route.endpoint)
                group += 1 + len(names)
        self.pattern = re.compile(f"(?:{'|'.join(parts)})\\Z")

    def match(self, path: str) -> tuple[str, dict[str, object], str] | None:
        """The operation, the view's arguments and the endpoint for ``path``, or None when no hot route
        takes it."""
        m = self.pattern.match(path)
        if m is None:
            return None
        operation, pairs, args, endpoint = self.routes[m.lastindex]  # type: ignore[index]
        kwargs = args.copy()
        for name, i in pairs:
            kwargs[name] = m.group(i)
        return operation, kwargs, endpoint


#: The hooks Flask runs around a request: while any is set for the whole app or for a hot route's
#: blueprint, the lean front hands every request to Flask, so the hook runs on the hot routes too.
_HOOK_TABLES = ("before_request_funcs", "after_request_funcs", "teardown_request_funcs", "url_value_preprocessors")
_SIGNALS = (request_started, request_finished, got_request_exception, request_tearing_down)


def flask_hooks(app: Flask) -> Callable[[], bool]:
    """A check, cheap enough for every request, of whether ``app`` has a request hook that Flask would run on
    a hot route (an app-level or blueprint ``before_request``, ``after_request``, ``teardown_request``,
    ``url_value_preprocessor``, ``teardown_appcontext``, or a receiver of a request signal)."""
    # a scope present in a table counts, even with no function in it: then Flask serves, only slower
    scopes = frozenset({None, *(r.endpoint.partition(".")[0] for s in SURFACES if s.hot for r in s.routes)})
    before, after, teardown, url_values = (getattr(app, name) for name in _HOOK_TABLES)
    teardown_app = app.teardown_appcontext_funcs
    started, finished, exception, tearing_down = _SIGNALS

    def any_hook() -> bool:
        return not (scopes.isdisjoint(before) and scopes.isdisjoint(after) and scopes.isdisjoint(teardown)
                    and scopes.isdisjoint(url_values)) or bool(
            teardown_app or started.receivers or finished.receivers or exception.receivers or tearing_down.receivers)

    return any_hook


#: The methods the hot routes take; Flask answers HEAD and OPTIONS for them itself.
_HOT_METHODS = frozenset(ROUTE_METHODS)


def _lean_front(app: Flask, flask_wsgi: WsgiApp) -> WsgiApp:
    """Serve the routes of the ``hot`` surfaces (single update, profile fetch, Delivery API) without Flask's
    per-request machinery.

    Flask's request and app contexts, routing, signals and hooks cost more per call than these views'
    own work. The views take the backend and the request explicitly, so this front calls the same
    functions the Flask routes do, matched by the same route table (``surfaces.py``). Everything else
    goes to Flask: other paths and methods, requests while the fault injector holds rules (faults hook
    into Flask's request context), test clients that keep the request context for inspection, and every
    request while a request hook or signal receiver is set that Flask would run on a hot route
    (:func:`flask_hooks`). Error handlers are not Flask's: an error is answered as ``create_app``'s own
    handlers answer it.
    """
    config = app.config
    hot = HotRoutes()
    hooked = flask_hooks(app)

    def to_flask(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # an optimistic request (Store.optimistic) is checked now: Flask's hooks read state before the view
        config["BACKEND"].store.confirm()
        return flask_wsgi(environ, start_response)

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if (environ.get("REQUEST_METHOD") not in _HOT_METHODS or "werkzeug.debug.preserve_context" in environ
                or hooked()):
            return to_flask(environ, start_response)
        be: MockBackend = config["BACKEND"]
        if len(be.faults):
            return to_flask(environ, start_response)
        lean = _LeanRequest(environ)
        match = hot.match(lean.path)
        if match is None:
            return to_flask(environ, start_response)
        req = cast(Request, lean)  # the views read only what it serves as werkzeug does
        operation, args, _ = match
        try:
            response = DIRECT_VIEWS[operation](be, req, **args)
        except StaleState:
            raise  # for the server to run the request again (server.SharedState)
        except HTTPException as exc:
            response = http_error_response(req, exc)
        except CapacityError as exc:
            response = capacity_response(req, exc)
        except Exception as exc:  # as Flask's handler above: never a traceback to the client
            response = unexpected_error_response(req, exc, be)
        body = response.response
        code = response.status_code
        if (body.__class__ is list and response.__class__ is Response and not 100 <= code < 200
                and code not in (204, 304) and "Location" not in response.headers
                and "Content-Location" not in response.headers):
            # What Response.__call__ would send for a body built in one piece (its Content-Length
            # set, no redirect, a status with a body), without its header copy and closing wrapper:
            # those cost more than the rest of the answer.
            start_response(response.status, response.headers.to_wsgi_list())
            return body  # type: ignore[return-value]
        return response(environ, start_response)

    return wsgi
