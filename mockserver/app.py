"""The Flask application: one app serves the edge routes, the Admin token routes and ``/_mock/``."""

from __future__ import annotations

import logging

from flask import Flask, Request, Response, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.utils import cached_property

from contracts.xmlbodies import status_failure

from .backend import MockBackend
from .config import MockConfig
from .models.journal import query_args
from .views import admin, control, edge
from .views.common import json_response, xml_response

log = logging.getLogger("target_profile_mock")


class _Request(Request):
    @cached_property
    def args(self) -> MultiDict[str, str]:  # type: ignore[override]
        # not Werkzeug's: it raises (a 500) on query bytes that are not UTF-8; see query_args
        return query_args(self.query_string)


def create_app(backend: MockBackend | None = None, *, config: MockConfig | None = None) -> Flask:
    """A Flask app over ``backend`` (a new one built from ``config`` when not given)."""
    app = Flask("target_profile_mock")
    app.request_class = _Request
    app.config["BACKEND"] = backend if backend is not None else MockBackend(config)
    app.url_map.strict_slashes = False
    app.register_blueprint(control.bp)
    app.register_blueprint(edge.bp)
    app.register_blueprint(admin.bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        # Unknown routes and methods answer in the shape of the API they were aimed at.
        code = exc.code or 500
        message = f"{request.method} {request.path}: {exc.description}"
        if request.path.startswith("/m2/"):
            return xml_response(status_failure(message), code)
        if request.path.startswith("/rest/"):
            return json_response({"status": code, "message": message}, code)
        return json_response({"error": message}, code)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error in the fake")
        message = f"internal error in target-profile-mock ({type(exc).__name__}); please report it"
        if request.path.startswith("/m2/"):
            return xml_response(status_failure(message), 500)
        return json_response({"status": 500, "message": message}, 500)

    return app
