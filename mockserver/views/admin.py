"""The Admin API's profile-token routes (``https://mc.adobe.io/<tenant>/target/authentication/token``).

Adobe IMS credentials are not checked: faking Adobe's identity service is out of scope.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from target_profile_mock.contracts.rules import Violation, rule

from ..faults import intercept
from ..surfaces import ADMIN_MEDIA, by_operation
from .common import admit_tenant, allow, backend, error_response, finish, json_response, serve, start_entry

bp = Blueprint("admin", __name__)
TOKEN = by_operation("token")
SCOPES = ("profile_api", "debug_tools")


def token(tenant: str) -> Response:
    """GET returns the current token (issuing one if none); POST issues a new one."""
    entry = start_entry(TOKEN.operation)
    entry.tenant = tenant
    if request.method not in TOKEN.served:  # HEAD too: a GET may issue a token
        v = Violation(rule("token.method"), f"{request.method} is not allowed; GET reads the token, POST issues one",
                      "method")
        entry.violations.append(v)
        response = error_response(TOKEN, 405, v.message)
        response.headers["Allow"] = allow(TOKEN)["Allow"]
        return finish(response)
    scope = request.args.get("authorizationScope")
    if scope is None and "scope" in request.args:
        scope = request.args["scope"]
        entry.violations.append(Violation(rule("token.scope-alias"), "the scope was sent as scope=", "scope"))
    if scope not in SCOPES:
        v = Violation(rule("token.scope"), f"authorizationScope is {scope!r}; use profile_api or debug_tools",
                      "authorizationScope")
        entry.violations.append(v)
        return finish(error_response(TOKEN, 400, v.message, code="InvalidParameter"))
    be = backend()
    faulted = intercept(be.faults, TOKEN.operation, tenant)
    if faulted is not None:
        return finish(faulted)
    full = admit_tenant(tenant, entry, TOKEN, be)
    if full is not None:
        return finish(full)
    tok = be.issue_token(tenant) if request.method == "POST" else be.current_token(tenant)
    body = {"accessToken": tok.value, "tokenType": "bearer", "scope": scope,
            "expiresIn": tok.expires_in(be.now_ms())}
    entry.parsed = {"scope": scope}
    return finish(json_response(body, 201 if request.method == "POST" else 200, ADMIN_MEDIA))


serve(bp, TOKEN.operation, token)
