"""The Flask application: one app serves the edge routes, the Admin token routes and ``/_mock/``."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, cast

from flask import Flask, Request, Response, request
from target_profile_mock.contracts.xmlbodies import status_failure
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.utils import cached_property

from . import ui
from .backend import CapacityError, MockBackend
from .config import MockConfig
from .models.journal import query_args
from .views import admin, control, delivery, edge
from .views.common import json_response, xml_response

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


#: What each Adobe route serves; control routes serve what they declare (GET routes HEAD too).
SERVED_METHODS: dict[str, tuple[str, ...]] = {**edge.SERVED_METHODS, **admin.SERVED_METHODS}


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


def create_app(backend: MockBackend | None = None, *, config: MockConfig | None = None) -> Flask:
    """A Flask app over ``backend`` (a new one built from ``config`` when not given)."""
    # no static folder: Flask's default /static/<path> would serve files from the working directory
    app = _App("target_profile_mock", static_folder=None)
    app.request_class = _Request
    app.config["BACKEND"] = backend if backend is not None else MockBackend(config)
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
        return unexpected_error_response(request, exc)

    # Flask's documented way to wrap the app: every caller (WSGI server, test client, in-process bridge) gets it
    app.wsgi_app = _lean_front(app, app.wsgi_app)  # type: ignore[method-assign]
    return app


def http_error_response(req: Request, exc: HTTPException) -> Response:
    """An HTTP error (unknown route or method) in the shape of the API it was aimed at."""
    code = exc.code or 500
    message = f"{req.method} {req.path}: {exc.description}"
    if req.path.startswith("/m2/"):
        return xml_response(status_failure(message), code)
    if req.path.startswith("/rest/"):
        return json_response({"status": code, "message": message}, code)
    return json_response({"error": message}, code)


def capacity_response(req: Request, exc: CapacityError) -> Response:
    """A call refused by one of the fake's own bounds (a race past the views' own checks): a 503 in the
    shape of the API it was aimed at."""
    message = str(exc)
    if req.path.startswith("/m2/"):
        response = xml_response(status_failure(message), 503)
    elif req.path.startswith("/rest/"):
        response = json_response({"status": 503, "message": message}, 503)
    else:
        response = json_response({"error": message}, 503)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def unexpected_error_response(req: Request, exc: Exception) -> Response:
    """A bug in the fake: logged, and answered with a 500 in the API's shape rather than a traceback."""
    log.exception("unexpected error in the fake")
    message = f"internal error in target-profile-mock ({type(exc).__name__}); please report it"
    if req.path.startswith("/m2/"):
        return xml_response(status_failure(message), 500)
    return json_response({"status": 500, "message": message}, 500)


#: The edge routes a test suite calls most, as Flask's router matches them (``strict_slashes`` aside:
#: a trailing slash, like any other path, goes through Flask).
_HOT_PATH = re.compile(r"/(?:m2/([^/]+)/profile/update"
                       r"|rest/v1/profiles/(?:(thirdPartyId|marketingCloudVisitorId)/)?([^/]+)"
                       r"|rest/v1/(delivery))\Z")
#: The methods those routes declare; Flask answers HEAD and OPTIONS for them itself.
_HOT_METHODS = frozenset(("GET", "POST", "PUT", "PATCH", "DELETE"))


def _lean_front(app: Flask, flask_wsgi: WsgiApp) -> WsgiApp:
    """Serve the single update, the profile fetches and the Delivery API without Flask's per-request machinery.

    Flask's request and app contexts, routing, signals and hooks cost more per call than these views'
    own work. The views take the backend and the request explicitly, so this front calls the same
    functions the Flask routes do. Everything else goes to Flask: other paths and methods, requests
    while the fault injector holds rules (faults hook into Flask's request context), and test clients
    that keep the request context for inspection.
    """
    config = app.config

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in _HOT_METHODS or "werkzeug.debug.preserve_context" in environ:
            return flask_wsgi(environ, start_response)
        be: MockBackend = config["BACKEND"]
        if be.faults is not None and len(be.faults):
            return flask_wsgi(environ, start_response)
        lean = _LeanRequest(environ)
        match = _HOT_PATH.match(lean.path)
        if match is None:
            return flask_wsgi(environ, start_response)
        req = cast(Request, lean)  # the views read only what it serves as werkzeug does
        client, kind, profile_id, visit = match.groups()
        try:
            if client is not None:
                response = edge.single_update(be, req, client)
            elif visit is not None:
                response = delivery.delivery(be, req)
            else:
                response = edge.fetch(be, req, kind or "tntId", profile_id)  # type: ignore[arg-type]
        except HTTPException as exc:
            response = http_error_response(req, exc)
        except CapacityError as exc:
            response = capacity_response(req, exc)
        except Exception as exc:  # as Flask's handler above: never a traceback to the client
            response = unexpected_error_response(req, exc)
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
