"""The Admin API's profile-token routes (``https://mc.adobe.io/<tenant>/target/authentication/token``).

Adobe IMS credentials are not checked: faking Adobe's identity service is out of scope.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from target_profile_mock.contracts.rules import Violation, rule

from ..faults import intercept
from .common import ADMIN_MEDIA, admin_error, admit_tenant, backend, finish, json_response, start_entry

bp = Blueprint("admin", __name__)
MEDIA = ADMIN_MEDIA
SCOPES = ("profile_api", "debug_tools")


#: What the token route serves (``Allow`` on its 405s and OPTIONS).
SERVED_METHODS: dict[str, tuple[str, ...]] = {"admin.token": ("GET", "POST")}


_error = admin_error


@bp.route("/<tenant>/target/authentication/token", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def token(tenant: str) -> Response:
    """GET returns the current token (issuing one if none); POST issues a new one."""
    entry = start_entry("token")
    entry.tenant = tenant
    if request.method not in SERVED_METHODS["admin.token"]:  # HEAD too: a GET may issue a token
        v = Violation(rule("token.method"), f"{request.method} is not allowed; GET reads the token, POST issues one",
                      "method")
        entry.violations.append(v)
        response = _error(405, "MethodNotAllowed", v.message)
        response.headers["Allow"] = "GET, POST, OPTIONS"
        return finish(response)
    scope = request.args.get("authorizationScope")
    if scope is None and "scope" in request.args:
        scope = request.args["scope"]
        entry.violations.append(Violation(rule("token.scope-alias"), "the scope was sent as scope=", "scope"))
    if scope not in SCOPES:
        v = Violation(rule("token.scope"), f"authorizationScope is {scope!r}; use profile_api or debug_tools",
                      "authorizationScope")
        entry.violations.append(v)
        return finish(_error(400, "InvalidParameter", v.message))
    be = backend()
    faulted = intercept(be.faults, "token", tenant)
    if faulted is not None:
        return finish(faulted)
    full = admit_tenant(tenant, entry, lambda m: _error(503, "ServiceUnavailable", m), be)
    if full is not None:
        return finish(full)
    tok = be.issue_token(tenant) if request.method == "POST" else be.current_token(tenant)
    body = {"accessToken": tok.value, "tokenType": "bearer", "scope": scope,
            "expiresIn": tok.expires_in(be.now_ms())}
    entry.parsed = {"scope": scope}
    return finish(json_response(body, 201 if request.method == "POST" else 200, MEDIA))
