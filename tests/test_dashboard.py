"""The dashboard's server side (``/_mock/ui/``): its pages, its token gate, and the rule that its pages
change state only through documented control routes. Browser tests: tests/test_dashboard_browser.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app
from test_control_reads import TOKEN, submit

UI = Path(__file__).resolve().parent.parent / "mockserver" / "ui"


# --- the token gate ---------------------------------------------------------------------------------------------
@pytest.fixture
def locked():
    return create_app(MockBackend(MockConfig(control_token=TOKEN))).test_client()


def test_without_a_control_token_the_pages_are_open(client):
    assert client.get("/_mock/ui/overview").headers["Location"].endswith("/_mock/ui/")
    for page in ("", "requests", "profiles?id=1-1", "batches", "faults"):
        r = client.get(f"/_mock/ui/{page}")
        assert r.status_code == 200 and r.mimetype == "text/html", page
        assert r.headers["Cache-Control"] == "no-store" and b'name="mock-token"' not in r.data
    r = client.get("/_mock/ui/elsewhere")
    assert r.status_code == 404 and "overview, requests" in r.get_json()["error"]


def test_with_a_control_token_the_pages_refuse_and_offer_the_form(locked):
    for headers in ({}, {"X-Mock-Token": "wrong"}):
        r = locked.get("/_mock/ui/batches?tenant=acme", headers=headers)
        assert r.status_code == 401 and b"control API is locked" in r.data
        assert b'name="next" value="/_mock/ui/batches?tenant=acme"' in r.data and TOKEN.encode() not in r.data
    locked.set_cookie(key="target_profile_mock_token", value="wrong", path="/_mock/ui")
    assert locked.get("/_mock/ui/").status_code == 401
    r = locked.get("/_mock/ui/", headers={"X-Mock-Token": TOKEN})
    assert r.status_code == 200 and f'<meta name="mock-token" content="{TOKEN}">'.encode() in r.data
    # the script and stylesheet hold no state: served without the token
    assert locked.get("/_mock/ui/static/ui.js").status_code == 200


def test_the_login_form_sets_a_cookie_scoped_to_the_dashboard(locked):
    r = locked.post("/_mock/ui/login", data={"token": "wrong", "next": "/_mock/ui/faults"})
    assert r.status_code == 401 and b"not the server&#39;s control token" in r.data
    r = locked.post("/_mock/ui/login", data={"token": TOKEN, "next": "/_mock/ui/faults"})
    assert r.status_code == 303 and r.headers["Location"] == "/_mock/ui/faults"
    cookie = r.headers["Set-Cookie"]
    assert "Path=/_mock/ui" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert locked.get("/_mock/ui/faults").status_code == 200
    # the cookie is the dashboard's, not a control API credential: the API still wants the header
    assert locked.post("/_mock/reset").status_code == 401
    r = locked.post("/_mock/ui/logout")
    assert r.status_code == 303 and locked.get("/_mock/ui/faults").status_code == 401
    # next never leads out of the dashboard
    r = locked.post("/_mock/ui/login", data={"token": TOKEN, "next": "https://evil.example/"})
    assert r.headers["Location"] == "/_mock/ui/"


def test_a_token_in_the_link_is_kept_and_dropped_from_the_address(locked):
    r = locked.get(f"/_mock/ui/requests?tenant=acme&token={TOKEN}")
    assert r.status_code == 303 and r.headers["Location"] == "/_mock/ui/requests?tenant=acme"
    assert locked.get("/_mock/ui/requests?tenant=acme").status_code == 200
    other = create_app(MockBackend(MockConfig(control_token=TOKEN))).test_client()
    r = other.get("/_mock/ui/requests?tenant=acme&token=wrong")
    assert r.status_code == 401 and b'name="next" value="/_mock/ui/requests?tenant=acme"' in r.data


# --- what the pages are made of ------------------------------------------------------------------------------
def _page_sources() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(UI.rglob("*")) if p.suffix in
                     (".html", ".js", ".css"))


def test_the_dashboard_fetches_nothing_from_elsewhere():
    text = _page_sources()
    assert not re.search(r"""(?:src|href|action)\s*=\s*["'](?:https?:)?//""", text)
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", text)
    assert not re.search(r"fetch\(\s*[`'\"](?:https?:)?//", text)


def test_every_change_a_page_makes_is_a_documented_control_route(app):
    """Pages change state only through ``data-api="METHOD /_mock/..."`` elements (and the clock route for
    the advance-to buttons), each naming a control API route; the dashboard's own routes are reads
    and the token form."""
    text = _page_sources()
    calls = set(re.findall(r'data-api="([A-Z]+) (/_mock/[^"]*)"', text))
    calls |= set(re.findall(r'run\("([A-Z]+) (/_mock/[^"]*)"', text))
    assert len(calls) >= 7
    adapter = app.url_map.bind("localhost")
    for method, path in calls:
        concrete = re.sub(r"\{\{[^}]*\}\}", "1", path)
        endpoint, _ = adapter.match(concrete, method=method)
        assert endpoint.startswith("control."), (method, path, endpoint)
    ui_changes = {(r.rule, m) for r in app.url_map.iter_rules() if r.endpoint.startswith("ui.")
                  for m in r.methods - {"GET", "HEAD", "OPTIONS"}}
    assert ui_changes == {("/_mock/ui/login", "POST"), ("/_mock/ui/logout", "POST")}


def test_pages_show_the_state(client, backend):
    backend.configure(lifecycle=Lifecycle.parse("polls=5,failed=1"))
    batch_id = submit(client)
    backend.force_batch(batch_id, "complete")
    backend.faults.add("latency", latency=0.5, operation="fetch", times=3)
    assert b"acme" in client.get("/_mock/ui/").data
    page = client.get("/_mock/ui/batches").get_data(as_text=True)
    assert batch_id in page and "failedUpdates 1" in page and "Failed:" in page
    page = client.get("/_mock/ui/faults").get_data(as_text=True)
    assert "latency=0.5" in page and "fetch" in page
    written = next(pid for pid in ("1700000000000-1.01_00", "1700000000000-2")
                   if pid not in backend.batch(batch_id)["failedIds"])
    page = client.get(f"/_mock/ui/profiles?kind=tntId&id={written}").get_data(as_text=True)
    assert written in page and f"batch <code>{batch_id}</code>" in page
