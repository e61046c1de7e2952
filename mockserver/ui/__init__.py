"""The dashboard at ``/_mock/ui/``: the fake's state and the journal's verdicts, in a browser.

Pages are rendered from the same :class:`~target_profile_mock.mockserver.backend.MockBackend` reads the
control API serves; every change a person makes on a page is a call of the page's JavaScript to a
documented ``/_mock/`` route, so the dashboard adds no second way to change state. When the server has
a control token, the pages ask for it once (a form, or ``?token=`` in a link) and keep it in a cookie
scoped to ``/_mock/ui``; the scripts send it as ``X-Mock-Token`` like any other control client.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, make_response, redirect, render_template, request, url_for

from ..faults import KINDS
from ..models.profiles import ID_KINDS
from ..surfaces import OPERATIONS
from ..views.common import backend

bp = Blueprint("ui", __name__, url_prefix="/_mock/ui", template_folder="templates", static_folder="static")

COOKIE = "target_profile_mock_token"
PAGES = ("overview", "requests", "profiles", "batches", "faults")


def _token() -> str | None:
    return backend().config.control_token


def _unlocked(*presented: str | None) -> bool:
    """Whether there is no token to present, or one of ``presented`` is it (compared in constant time)."""
    token = _token()
    return not token or any(p is not None and hmac.compare_digest(p.encode(), token.encode()) for p in presented)


def _no_store(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.before_request
def _guard() -> Response | None:
    if request.endpoint in ("ui.static", "ui.login", "ui.logout"):
        return None
    given = request.args.get("token")
    if given is not None:  # a link with ?token=: keep it in the cookie, then drop it from the address bar
        if not _unlocked(given):
            return _login_page("That is not the server's control token.", 401)
        resp = redirect(_here(), 303)
        _remember(resp, given)
        return resp
    if not _unlocked(request.cookies.get(COOKIE), request.headers.get("X-Mock-Token")):
        return _login_page(None, 401)
    return None


def _remember(resp: Response, token: str) -> None:
    resp.set_cookie(COOKIE, token, path="/_mock/ui", httponly=True, samesite="Strict")


def _here() -> str:
    """This page's path and query, without a ``token`` parameter."""
    query = urlencode([(k, v) for k, v in request.args.items(multi=True) if k != "token"])
    return request.path + (f"?{query}" if query else "")


def _login_page(error: str | None, status: int) -> Response:
    nxt = _here() if request.method == "GET" else url_for("ui.page")
    return _no_store(make_response(render_template("login.html", error=error, next=nxt), status))


@bp.post("/login")
def login() -> Response:
    given = request.form.get("token", "")
    nxt = request.form.get("next", "")
    if not nxt.startswith("/_mock/ui"):  # only ever back into the dashboard
        nxt = url_for("ui.page")
    if not _unlocked(given):
        return _no_store(make_response(render_template("login.html", error="That is not the server's control "
                                                       "token.", next=nxt), 401))
    resp = redirect(nxt, 303)
    _remember(resp, given)
    return resp


@bp.post("/logout")
def logout() -> Response:
    resp = redirect(url_for("ui.page"), 303)
    resp.delete_cookie(COOKIE, path="/_mock/ui")
    return resp


@bp.get("/", defaults={"page": "overview"})
@bp.get("/<page>")
def page(page: str) -> Response:
    context = _CONTEXTS.get(page)
    if context is None:
        abort(404, f"the dashboard's pages are {', '.join(PAGES)}")
    html = render_template(f"{page}.html", page=page, pages=PAGES, token=_token(), clock=backend().clock.to_dict(),
                           **context())
    return _no_store(make_response(html))


def _overview() -> dict[str, Any]:
    be = backend()
    return {"tenants": [be.tenant_summary(t) for t in be.tenants()], "settings": be.settings(),
            "journal_size": len(be.journal), "faults": len(be.faults)}


def _requests() -> dict[str, Any]:
    return {"tenants": backend().tenants(), "operations": OPERATIONS}


def _profiles() -> dict[str, Any]:
    be = backend()
    kind = request.args.get("kind", "tntId")
    if kind not in ID_KINDS:
        kind = "tntId"
    query = request.args.get("id", "").strip()
    tenant = request.args.get("tenant", "")
    found: list[dict[str, Any]] = []
    if query:
        for t in [tenant] if tenant else be.tenants():
            found += [{**p, "tenant": t} for p in be.find_profiles(t, kind, query)]  # type: ignore[arg-type]
    return {"tenants": be.tenants(), "kinds": ID_KINDS, "kind": kind, "query": query, "tenant": tenant,
            "found": found}


def _batches() -> dict[str, Any]:
    be = backend()
    by_tenant: dict[str, list[dict[str, Any]]] = {t: [] for t in be.tenants()}
    for b in be.batches():
        by_tenant.setdefault(b["tenant"], []).append(b)
    due = [b["dueAt"] for bs in by_tenant.values() for b in bs if b["dueAt"] is not None]
    return {"by_tenant": by_tenant, "next_due": min(due, default=None)}


def _faults() -> dict[str, Any]:
    return {"faults": backend().faults.list(), "kinds": KINDS, "operations": OPERATIONS,
            "tenants": backend().tenants()}


_CONTEXTS: dict[str, Callable[[], dict[str, Any]]] = {
    "overview": _overview, "requests": _requests, "profiles": _profiles, "batches": _batches, "faults": _faults}


@bp.app_template_filter("when")
def _when(ms: int | None) -> str:
    """Epoch milliseconds as a UTC time of day, with the date when it is not the fake's today."""
    if ms is None:
        return "–"
    now = backend().now_ms()
    fmt = "%H:%M:%S" if time.gmtime(ms / 1000)[:3] == time.gmtime(now / 1000)[:3] else "%Y-%m-%d %H:%M:%S"
    return time.strftime(fmt, time.gmtime(ms / 1000)) + f".{ms % 1000:03d}"


@bp.app_template_filter("pretty")
def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
