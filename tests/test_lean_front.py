"""The lean front that serves the hot edge routes must answer exactly as the Flask routes do."""

from __future__ import annotations

import types

import pytest
from flask import Flask, has_request_context
from hypothesis import given, settings
from hypothesis import strategies as st
from target_profile_mock.mockserver import Lifecycle, MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.app import _LeanRequest, _Request
from target_profile_mock.mockserver.views.common import DIRECT_VIEWS

REQUESTS: list[tuple[str, str, dict]] = [
    ("GET", "/m2/demo/profile/update?mbox3rdPartyId=c1&profile.tier=gold", {}),
    ("POST", "/m2/demo/profile/update", {"data": "mbox3rdPartyId=c1&profile.city=Paris",
                                          "content_type": "application/x-www-form-urlencoded"}),
    ("POST", "/m2/demo/profile/update", {"json": {"mbox3rdPartyId": "c1", "profile.x": 1}}),
    ("POST", "/m2/demo/profile/update?mboxPC=1-2", {"data": b"\x00", "content_type": "image/png"}),
    ("GET", "/m2/client/profile/update?mbox3rdPartyId=c1&profile.a=1", {"headers": {"Host": "acme.tt.omtrdc.net"}}),
    ("GET", "/m2/demo/profile/update?mbox3rdPartyId=a/b&profile.x=1", {}),
    ("GET", "/m2/demo/profile/update?profile.x=1", {}),
    ("GET", "/m2/demo/profile/update?mbox3rdPartyId=c1&color=red&profile.x=%FF", {}),
    ("GET", "/m2/demo/profile/update?mboxPC=1-2&profile.x=" + "y" * 9000, {}),
    ("DELETE", "/m2/demo/profile/update?mbox3rdPartyId=c1&profile.x=1", {}),
    ("GET", "/rest/v1/profiles/thirdPartyId/c1?client=demo", {}),
    ("GET", "/rest/v1/profiles/thirdPartyId/nobody?client=demo", {}),
    ("GET", "/rest/v1/profiles/1368007744041-575948.01_00?client=demo", {}),
    ("GET", "/rest/v1/profiles/marketingCloudVisitorId/ecid-9?client=demo", {}),
    ("GET", "/rest/v1/profiles/thirdPartyId?client=demo", {}),
    ("GET", "/rest/v1/profiles/thirdPartyId/c1", {"headers": {"Host": "demo.tt.omtrdc.net"}}),
    ("POST", "/rest/v1/profiles/thirdPartyId/c1?client=demo", {}),
    ("POST", "/rest/v1/delivery?client=demo&sessionId=s1", {"json": {
        "context": {"channel": "web"}, "id": {"tntId": "1368007744041-575948", "thirdPartyId": "c2"},
        "execute": {"mboxes": [{"index": 1, "name": "home", "profileParameters": {"tier": "gold"}}]}}}),
    ("POST", "/rest/v1/delivery?sessionId=s1", {"json": {"context": {"channel": "web"}},
                                                 "headers": {"Host": "demo.tt.omtrdc.net"}}),
    ("POST", "/rest/v1/delivery?client=demo", {"json": {}}),
    ("GET", "/rest/v1/delivery?client=demo&sessionId=s1", {}),
]


def _app(lean: bool, auth: bool) -> tuple[Flask, MockBackend]:
    backend = MockBackend(MockConfig(lifecycle=Lifecycle.parse("polls=1"), auth=auth))
    backend.clock.freeze(1_800_000_000)
    backend.seed_profile("demo", third_party_id="c1", tnt_id="1368007744041-575948.01_00",
                         attributes={"tier": "silver"})
    app = create_app(backend)
    if not lean:  # Flask's own dispatch, without the front create_app installs
        app.wsgi_app = types.MethodType(Flask.wsgi_app, app)  # type: ignore[method-assign]
    return app, backend


@pytest.mark.parametrize("auth", [False, True])
def test_the_lean_front_answers_and_journals_as_flask_does(auth: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    in_flask: list[bool] = []  # proves both paths ran: the front calls the views outside Flask's context
    for operation in ("single-update", "fetch"):
        view = DIRECT_VIEWS[operation]
        monkeypatch.setitem(DIRECT_VIEWS, operation, lambda *a, _v=view, **k: in_flask.append(has_request_context())
                            or _v(*a, **k))
    lean, lean_be = _app(True, auth)
    plain, plain_be = _app(False, auth)
    headers = {}
    if auth:
        token = lean_be.issue_token("demo").value
        assert plain_be.issue_token("demo").value == token  # same seed, same token
        headers = {"Authorization": f"Bearer {token}"}
    for method, url, kwargs in REQUESTS:
        kw = {**kwargs, "headers": {**headers, **kwargs.get("headers", {})}}
        a = lean.test_client().open(url, method=method, **kw)
        b = plain.test_client().open(url, method=method, **kw)
        answers = [(r.status, r.headers.to_wsgi_list(), r.data) for r in (a, b)]
        assert answers[0] == answers[1], (method, url)
    for be in (lean_be, plain_be):  # a refusal with a header of its own (Retry-After)
        be.configure(None, single_updates_per_day=1)
    url = "/m2/demo/profile/update?mbox3rdPartyId=c1&profile.x=2"
    a, b = lean.test_client().get(url, headers=headers), plain.test_client().get(url, headers=headers)
    assert a.status_code != 200 and "Retry-After" in a.headers
    assert (a.status, a.headers.to_wsgi_list(), a.data) == (b.status, b.headers.to_wsgi_list(), b.data)
    assert [(e.operation, e.status, [v.rule_id for v in e.violations], e.parsed) for e in lean_be.journal] == \
        [(e.operation, e.status, [v.rule_id for v in e.violations], e.parsed) for e in plain_be.journal]
    assert lean_be.profiles("demo") == plain_be.profiles("demo")
    assert in_flask.count(False) >= 10 and in_flask.count(True) >= 10


@settings(max_examples=200, deadline=None)
@given(path=st.text(st.characters(max_codepoint=255)), query=st.text(st.characters(max_codepoint=255)),
       method=st.sampled_from(["GET", "post", "Delete", ""]))
def test_the_lean_request_reads_as_werkzeugs(path: str, query: str, method: str) -> None:
    # WSGI carries the path and query as latin-1 text; the lean request decodes them as werkzeug does
    environ = {"PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "demo.tt.omtrdc.net", "SERVER_PORT": "443",
               "wsgi.url_scheme": "https", "HTTP_HOST": "demo.tt.omtrdc.net", "SCRIPT_NAME": ""}
    if method:
        environ["REQUEST_METHOD"] = method
    lean, full = _LeanRequest(dict(environ)), _Request(dict(environ))
    assert (lean.method, lean.path, lean.query_string) == (full.method, full.path, full.query_string)
    assert list(lean.args.items(multi=True)) == list(full.args.items(multi=True))
    assert lean.host == full.host  # anything else comes from werkzeug's own request
