"""A bounded fuzz of every route: hostile bytes in the path, query, headers and body never get a 5xx (other
than an injected fault or the documented bulk-limit 503), every refusal is in its API's own shape, and the
fake is healthy afterwards. Derandomized, with a fixed number of examples, so it runs the same every time."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from target_profile_mock.contracts.xmlbodies import parse_response
from target_profile_mock.mockserver import MockBackend, MockConfig, create_app
from target_profile_mock.mockserver.faults import ConnectionFault
from werkzeug.test import EnvironBuilder, run_wsgi_app

APP = create_app(MockBackend())
#: Every route, with its parameters as format fields, and the methods it declares.
ROUTES = sorted((re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", r.rule),
                 tuple(sorted(set(r.methods or ()) - {"HEAD", "OPTIONS"}))) for r in APP.url_map.iter_rules())
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PROPFIND"]

NASTY_TEXT = ["", "client", "demo", "a/b", "a?b=c#d", "%", "%zz", "%00", "%ff%fe", "..", "../../etc/passwd",
              "\x00", "\r\n", "é", "\u202e", "😀", "a" * 5000, "-1", "0", "1e308", "NaN", "null", "[]", "{}",
              "<x>&amp;", "'\"", "\\", "+", " ", "batch="]
text = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=40))
raw = st.one_of(st.binary(max_size=200), text.map(lambda t: t.encode("utf-8", "surrogatepass")))


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | text,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                           max_leaves=8)
CONTROL_KEYS = ["tenant", "freeze", "at", "advance", "kind", "status", "latency", "times", "operation", "sequence",
                "faults", "lifecycle", "enabled", "bulkCallsPerMinute", "singleUpdatesPerDay", "thirdPartyId",
                "tntId", "attributes", "batch_max_bytes", "journal_size", "seed", "auth_failure_status",
                "status_host", "update_delay", "control_token", "client_code", "keep_rows_max", "probability"]
json_bodies = st.one_of(
    st.dictionaries(st.sampled_from(CONTROL_KEYS) | text, json_values, max_size=4),
    json_values,
).map(lambda v: json.dumps(v).encode())
bodies = st.one_of(
    raw, json_bodies,
    st.sampled_from([_deep(3000), b'{"a":' + _deep(3000) + b"}", b'{"faults": [' + _deep(990) + b"]}", b"[" * 50000]),
    st.sampled_from([b'{"tenant": 0}',
                     b"thirdPartyId,a\r\nc1,x\ry\r\n", b"batch=thirdPartyId,a\nc1,x\n",
                     b"batch=pcId,a\r\n1-2,%zz\r\n\xff\xfe,\"q\n", b"batch=" + b"x," * 3000,
                     b'{"kind": "latency", "latency": 1e308}', b'{"freeze": "AAA"}', b"Infinity", b"-0"]),
    st.builds(lambda head, rows: b"batch=" + head + b"\n" + rows, raw, raw),
)
CONTENT_TYPES = ["application/x-www-form-urlencoded", "application/json", "text/csv", "text/plain",
                 "multipart/form-data; boundary=x", "multipart/form-data", "application/xml", "", "\x00/\x00",
                 "text/csv; charset=latin-1"]
headers = st.fixed_dictionaries({}, optional={
    "Content-Type": st.sampled_from(CONTENT_TYPES) | text,
    "Authorization": st.sampled_from(["Bearer ", "Bearer x", "Basic Zm9v", "bearer  "]) | text,
    "Access-Token": text,
    "Host": st.sampled_from(["demo.tt.omtrdc.net", "mboxedge45.tt.omtrdc.net", "[::1]:80", "a b", "x/y?z",
                             "é.tt.omtrdc.net", ""]) | text,
    "X-Mock-Token": text,
    "Transfer-Encoding": st.just("chunked"),
})


@st.composite
def requests_(draw: st.DrawFn) -> dict[str, Any]:
    route, declared = draw(st.sampled_from(ROUTES))
    params = {name: draw(st.sampled_from(["demo", "acme", "client"]) | text)
              for name in re.findall(r"{(\w+)}", route)}
    path = route
    for name, value in params.items():
        # raw bytes in the path as a WSGI server hands them over (latin-1 text of the bytes)
        path = path.replace("{" + name + "}", value.encode("utf-8", "surrogatepass").decode("latin-1"))
    query = draw(st.one_of(raw, st.sampled_from([
        b"mbox3rdPartyId=c1&profile.a=1", b"mboxPC=1-2&profile.a=%ff", b"batchId=demo-1-12345678&showDetails=true",
        b"client=demo", b"authorizationScope=profile_api", b"scope=profile_api", b"tenant=", b"operation=fetch",
        b"mbox3rdPartyId=" + b"a" * 9000])))
    # mostly a method the route takes, so the hostile parts reach its view
    method = draw(st.one_of(st.sampled_from(declared), st.sampled_from(declared), st.sampled_from(METHODS)))
    return {"method": method, "path": path, "query": query.decode("latin-1"),
            "headers": draw(headers), "body": draw(bodies)}


def _send(app: Any, req: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    environ = EnvironBuilder(method=req["method"], data=req["body"]).get_environ()
    environ["PATH_INFO"] = req["path"]
    environ["QUERY_STRING"] = req["query"]
    for name, value in req["headers"].items():
        # as a WSGI server hands them over: latin-1 text of the bytes; no line breaks (HTTP parsers refuse them)
        value = value.encode("utf-8", "surrogatepass").decode("latin-1").replace("\r", "").replace("\n", "")
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    app_iter, status, response_headers = run_wsgi_app(app.wsgi_app, environ, buffered=True)
    return int(status.split()[0]), dict(response_headers), b"".join(app_iter)


def _check_shape(path: str, status: int, headers: dict[str, str], body: bytes, method: str) -> None:
    if method == "HEAD" or status < 400 or not body:
        return
    ctype = headers.get("Content-Type", "")
    if path.startswith("/m2/"):
        assert ctype.startswith("application/xml"), (status, ctype, body[:200])
        assert parse_response(body)["success"] == "false", body[:200]
    else:
        assert "json" in ctype, (status, ctype, body[:200])
        json.loads(body)


@settings(max_examples=400, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(st.lists(requests_(), min_size=1, max_size=3))
def test_hostile_requests_never_get_a_server_error_and_leave_the_fake_healthy(calls: list[dict[str, Any]]) -> None:
    backend = MockBackend(MockConfig())
    app = APP  # building an app costs more than the calls: a fresh backend for each example instead
    app.config["BACKEND"] = backend
    for req in calls:
        faults_queued = len(backend.faults) > 0
        try:
            status, headers, body = _send(app, req)
        except ConnectionFault:
            assert faults_queued, req  # a connection fault someone queued, in process: raised as documented
            continue
        injected = backend.journal.entries()[-1].fault if len(backend.journal) else None
        if status >= 500:
            assert injected or b"[rate.bulk]" in body, (req, status, body[:300])
        if not injected:
            _check_shape(req["path"], status, headers, body, req["method"])
    backend.faults.clear()
    health = app.test_client().get("/_mock/health")
    assert health.status_code == 200 and health.get_json()["status"] == "ok"
    r = app.test_client().get("/m2/fuzz/profile/update?mbox3rdPartyId=c1&profile.a=1")
    assert r.status_code in (200, 401, 429), r.data  # auth or a limit a hostile call may have set
