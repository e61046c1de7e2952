"""The fake's own control API under ``/_mock/`` (documented in docs/control-api.md).

Every operation is a thin wrapper over a :class:`~target_profile_mock.mockserver.backend.MockBackend` method, so the
Python API and the HTTP API cannot drift apart. Reads never count as polls.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from ..backend import ControlError, shown
from ..errors import StoreUnavailable
from ..lifecycle import LifecycleError
from ..models.journal import JournalEntry
from ..models.profiles import ID_KINDS
from .common import JSON, backend, json_response

bp = Blueprint("control", __name__, url_prefix="/_mock")


@bp.before_request
def _guard() -> Response | None:
    token = backend().config.control_token
    if token and not hmac.compare_digest(request.headers.get("X-Mock-Token", ""), token):
        return json_response({"error": "the control API is locked: send the X-Mock-Token header given to "
                                       "the server with --control-token"}, 401)
    return None


@bp.errorhandler(ControlError)
def _control_error(exc: ControlError) -> Response:
    response = json_response({"error": str(exc)}, exc.status)
    if isinstance(exc, StoreUnavailable):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.errorhandler(LifecycleError)
def _lifecycle_error(exc: LifecycleError) -> Response:
    return json_response({"error": str(exc)}, 400)


#: How deep a control body may nest arrays and objects. The deepest documented body (a fault profile
#: with a sequence of fault objects) nests 4 levels; the bound keeps a hostile body from reaching the
#: interpreter's recursion limit in the parser or in an error message that shows the value.
MAX_JSON_DEPTH = 32


def _depth_exceeds(data: Any, limit: int) -> bool:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return False


def _json() -> Any:
    """The body as JSON whatever its Content-Type (``curl -d`` sends form encoding); None when empty."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None
    too_deep = ControlError(f"the body nests JSON arrays or objects more than {MAX_JSON_DEPTH} levels deep; "
                            "no control body needs more than 4")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise too_deep from None
    except ValueError:
        raise ControlError("the body is not valid JSON") from None
    if _depth_exceeds(data, MAX_JSON_DEPTH):
        raise too_deep
    return data


def _body() -> dict[str, Any]:
    data = _json()
    if data is None and not request.get_data(cache=True).strip():
        return {}  # an empty body; a JSON null is no object
    if not isinstance(data, dict):
        raise ControlError("the body must be a JSON object")
    return data


def _tenant(value: Any) -> str | None:
    """A tenant from a body or query: a client code, or None when not given."""
    if value is not None and (not isinstance(value, str) or not value):
        raise ControlError(f"tenant must be a client code (a non-empty string), got {shown(value)}")
    return value


@bp.get("/health")
def health() -> Response:
    from ... import __version__

    return json_response({"status": "ok", "version": __version__})


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of every route (read from package data, so installed copies serve it)."""
    from importlib.resources import files

    return Response(files("target_profile_mock.mockserver").joinpath("openapi.json").read_bytes(),
                    content_type="application/json")


@bp.post("/reset")
def reset() -> Response:
    body = _body()
    query_tenant = _tenant(request.args.get("tenant"))  # an empty ?tenant= is refused, as an empty body tenant
    if "tenant" in body:
        # only a client code narrows the reset: null, "", 0 or false must not wipe every tenant instead
        if not isinstance(body["tenant"], str) or not body["tenant"]:
            raise ControlError(f"tenant must be a client code (a non-empty string), got {shown(body['tenant'])}; "
                               "send {} to reset everything")
        tenant: str | None = body["tenant"]
    else:
        tenant = query_tenant
    backend().reset(tenant)
    return json_response({"reset": tenant or "all"})


@bp.get("/settings")
def get_settings() -> Response:
    return json_response(backend().settings(request.args.get("tenant")))


@bp.route("/settings", methods=["PUT", "PATCH"])
def put_settings() -> Response:
    body = _body()
    tenant = _tenant(body.pop("tenant", None))
    if "control_token" in body:
        # over HTTP anyone who reaches an unlocked server could lock its owner out (or unlock it)
        raise ControlError("control_token cannot be changed over HTTP; give it at start "
                           "(--control-token, MockConfig(control_token=...))")
    be = backend()
    be.configure(tenant, **body)
    return json_response(be.settings(tenant))


@bp.get("/clock")
def get_clock() -> Response:
    be = backend()
    with be.store.read():  # a shared store's latest clock, or its 503 when the store cannot be reached
        return json_response(be.clock.to_dict())


_MAX_ADVANCE = 100 * 365 * 86_400.0  # a century: far beyond any retention or token lifetime
_MAX_EPOCH = 221_845_392_000.0  # 9000-01-01: later instants overflow date rendering


@bp.post("/clock")
def post_clock() -> Response:
    body = _body()
    unknown = sorted(set(body) - {"freeze", "at", "advance"})
    if unknown:
        raise ControlError(f"unknown keys {unknown}; the clock takes freeze, at and advance")
    if "at" in body and body.get("freeze") is not True:
        raise ControlError('at goes with freeze: send {"freeze": true, "at": <epoch seconds>}')
    clock = backend().clock
    before = clock.snapshot()
    try:  # freeze and advance together, or not at all
        if "freeze" in body:
            if not isinstance(body["freeze"], bool):
                raise ControlError(f"freeze takes true or false, got {shown(body['freeze'])}")
            if body["freeze"]:
                at = body.get("at")
                if at is not None and (isinstance(at, bool) or not isinstance(at, (int, float))):
                    raise ControlError(f"at takes epoch seconds (a number), got {shown(at)}")
                if at is not None and not 0 <= at <= _MAX_EPOCH:
                    raise ControlError(f"at={shown(at)} is outside 0..{_MAX_EPOCH:g} (epoch seconds before year 9000)")
                clock.freeze(at)
            else:
                clock.unfreeze()
        if "advance" in body:
            try:
                if isinstance(body["advance"], (bool, str)) or not isinstance(body["advance"], (int, float)):
                    raise ValueError(f"got {shown(body['advance'])}")
                seconds = float(body["advance"])
                # a clock pushed past year 9999 breaks every timestamp the fake renders afterwards
                if not 0 <= seconds <= _MAX_ADVANCE:
                    raise ValueError(f"{seconds!r} is outside 0..{_MAX_ADVANCE:g}")
                clock.advance(seconds)
            except (TypeError, ValueError) as exc:
                raise ControlError(f"advance takes a number of seconds >= 0: {exc}") from None
    except ControlError:
        clock.restore(before)
        raise
    return json_response(clock.to_dict())


@bp.get("/tenants")
def tenants() -> Response:
    return json_response(backend().tenants())


@bp.get("/tenants/<tenant>/profiles")
def list_profiles(tenant: str) -> Response:
    wanted = [(k, request.args[k]) for k in ID_KINDS if k in request.args]
    if len(wanted) > 1:
        raise ControlError(f"search by one id at a time, got {[k for k, _ in wanted]}")
    if wanted:
        return json_response(backend().find_profiles(tenant, *wanted[0]))  # type: ignore[arg-type]
    return json_response(backend().profiles(tenant))


@bp.post("/tenants/<tenant>/profiles")
def seed_profiles(tenant: str) -> Response:
    be = backend()
    if (request.mimetype or "").lower() in ("text/csv", "text/plain"):
        n = be.seed_profiles_csv(tenant, request.get_data(as_text=True))
    else:
        data = _json()
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise ControlError("send a JSON profile object or list of them, or a text/csv body")
        n = be.seed_profiles(tenant, data)
    return json_response({"seeded": n}, 201)


@bp.get("/tenants/<tenant>/profiles/<kind>/<path:profile_id>")
def get_profile(tenant: str, kind: str, profile_id: str) -> Response:
    if kind not in ID_KINDS:
        raise ControlError(f"unknown id kind {kind!r}; use one of {list(ID_KINDS)}", 404)
    profile = backend().get_profile(tenant, kind, profile_id)  # type: ignore[arg-type]
    if profile is None:
        raise ControlError(f"client {tenant} has no profile with {kind} {profile_id!r}", 404)
    return json_response(profile)


@bp.delete("/tenants/<tenant>/profiles/<kind>/<path:profile_id>")
def delete_profile(tenant: str, kind: str, profile_id: str) -> Response:
    return json_response(backend().delete_profile(tenant, kind, profile_id))  # type: ignore[arg-type]


@bp.post("/tenants/<tenant>/expire/<kind>/<path:profile_id>")
def expire_profile(tenant: str, kind: str, profile_id: str) -> Response:
    return json_response(backend().expire_profile(tenant, kind, profile_id))  # type: ignore[arg-type]


@bp.get("/tenants/<tenant>/batches")
def tenant_batches(tenant: str) -> Response:
    return json_response(backend().batches(tenant))


@bp.get("/batches")
def all_batches() -> Response:
    return json_response(backend().batches())


@bp.get("/batches/<batch_id>")
def get_batch(batch_id: str) -> Response:
    return json_response(backend().batch(batch_id))


@bp.post("/batches/<batch_id>/force")
def force_batch(batch_id: str) -> Response:
    state = _body().get("status")
    return json_response(backend().force_batch(batch_id, state))  # type: ignore[arg-type]


@bp.put("/batches/<batch_id>/lifecycle")
def batch_lifecycle(batch_id: str) -> Response:
    spec = _body().get("lifecycle")
    if not isinstance(spec, str):
        raise ControlError('send {"lifecycle": "<spec>"}, e.g. "polls=2" or "seconds=5,stuck"')
    backend().set_lifecycle(spec, batch_id=batch_id)
    return json_response(backend().batch(batch_id))


@bp.put("/lifecycle")
def lifecycle() -> Response:
    body = _body()
    spec = body.get("lifecycle")
    if not isinstance(spec, str):
        raise ControlError('send {"lifecycle": "<spec>", "tenant": <optional>}')
    tenant = _tenant(body.get("tenant"))
    backend().set_lifecycle(spec, tenant=tenant)
    return json_response(backend().settings(tenant))


@bp.put("/tenants/<tenant>/auth")
def put_auth(tenant: str) -> Response:
    body = _body()
    if not isinstance(body.get("enabled"), bool):
        raise ControlError('send {"enabled": true} or {"enabled": false}')
    be = backend()
    be.set_auth(tenant, body["enabled"])
    out: dict[str, Any] = {"tenant": tenant, "enabled": body["enabled"]}
    if body["enabled"]:
        out["token"] = be.current_token(tenant).value
    return json_response(out)


@bp.post("/tenants/<tenant>/token")
def new_token(tenant: str) -> Response:
    tok = backend().issue_token(tenant)
    return json_response({"tenant": tenant, "token": tok.value}, 201)


@bp.put("/rate-limits")
def rate_limits() -> Response:
    body = _body()
    tenant = _tenant(body.pop("tenant", None))
    mapping = {"bulkCallsPerMinute": "bulk_calls_per_minute", "singleUpdatesPerDay": "single_updates_per_day"}
    unknown = set(body) - set(mapping)
    if unknown:
        raise ControlError(f"unknown keys {sorted(unknown)}; use {sorted(mapping)} (a number, or null for no limit)")
    be = backend()
    be.configure(tenant, **{mapping[k]: v for k, v in body.items()})
    return json_response(be.settings(tenant))


def _whole(name: str, default: int | None, least: int) -> int | None:
    text = request.args.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < least:
        raise ControlError(f"?{name}= takes a whole number >= {least}; got {text!r}")
    return int(text)


@bp.get("/journal")
def journal() -> Response:
    """The journal as a JSON array, written entry by entry (never built as one string), a page at a time
    with ``?limit=`` and ``?after=<seq>``; a cut page names the next one in a ``Link: rel="next"`` header."""
    op = request.args.get("operation")
    tenant = request.args.get("tenant")
    after = _whole("after", 0, 0) or 0
    limit = _whole("limit", None, 1)
    entries, more = backend().journal.page(
        lambda e: (op is None or e.operation == op) and (tenant is None or e.tenant == tenant),
        after=after, limit=limit)

    def chunks() -> Iterator[bytes]:
        yield b"["
        for i, e in enumerate(entries):
            yield (b"," if i else b"") + json.dumps(e.to_dict()).encode()
        yield b"]"

    headers = {}
    if more and entries:
        query = {k: v for k, v in request.args.items() if k != "after"}
        query["after"] = str(entries[-1].seq)
        headers["Link"] = f'<{request.path}?{urlencode(query)}>; rel="next"'
    return Response(chunks(), content_type=JSON, headers=headers)


@bp.delete("/journal")
def clear_journal() -> Response:
    backend().journal.clear()
    return json_response({"cleared": True})


# --- snapshots (target_profile_mock.mockserver.snapshot; the format is in docs/snapshot.md) ----------------
def _flag(name: str) -> bool:
    value = request.args.get(name, "").lower()
    if value not in ("", "0", "1", "true", "false"):
        raise ControlError(f"{name} takes 1/true or 0/false, got {value!r}")
    return value in ("1", "true")


@bp.get("/snapshot")
def get_snapshot() -> Response:
    return json_response(backend().snapshot(journal=_flag("journal")))


@bp.put("/snapshot")
def put_snapshot() -> Response:
    data = _json()
    if not isinstance(data, dict):
        raise ControlError("send a snapshot: the JSON object GET /_mock/snapshot returns")
    be = backend()
    be.restore(data)
    return json_response({"restored": True, "tenants": be.tenants(), "journal": "journal" in data})


@bp.post("/snapshot")
def post_snapshot() -> Response:
    be = backend()
    size = be.save(journal=_flag("journal"))
    return json_response({"written": be.state_file, "bytes": size})


# --- faults (target_profile_mock.mockserver.faults; the same calls as backend.faults) ---------------------------------
@bp.get("/faults")
def list_faults() -> Response:
    return json_response(backend().faults.list())


@bp.post("/faults")
def add_faults() -> Response:
    data = _json()
    if data is None:
        raise ControlError('send a fault, e.g. {"kind": "status", "status": 503, "operation": "batch-submit", '
                           '"times": 2}, a {"sequence": [...]}, or a list of them')
    return json_response(backend().faults.load(data), 201)


@bp.delete("/faults")
def clear_faults() -> Response:
    return json_response({"cleared": backend().faults.clear(request.args.get("tenant"))})


@bp.delete("/faults/<int:rule_id>")
def remove_fault(rule_id: int) -> Response:
    return json_response(backend().faults.remove(rule_id))


@bp.get("/tenants/<tenant>/offers")
def list_offers(tenant: str) -> Response:
    return json_response(backend().offers(tenant))


@bp.put("/tenants/<tenant>/offers/<path:mbox>")
def put_offer(tenant: str, mbox: str) -> Response:
    body = _body()
    unknown = set(body) - {"type", "content"}
    if unknown or "content" not in body:
        raise ControlError(f"send {{\"content\": <JSON or HTML text>, \"type\": \"json\"|\"html\"}}; got keys "
                           f"{sorted(body)}")
    backend().set_offer(tenant, mbox, body["content"], offer_type=body.get("type", "json"))
    return json_response(backend().offers(tenant))


@bp.delete("/tenants/<tenant>/offers/<path:mbox>")
def delete_offer(tenant: str, mbox: str) -> Response:
    backend().set_offer(tenant, mbox, None)
    return json_response(backend().offers(tenant))


# --- reads for the dashboard (and anyone else watching the fake) ------------------------------------------------
@bp.get("/tenants/<tenant>")
def tenant_summary(tenant: str) -> Response:
    return json_response(backend().tenant_summary(tenant))


def verdict(entry: JournalEntry) -> str:
    """``faulted``, ``error``, ``deviation`` or ``clean``: the worst thing about a journaled request."""
    if entry.fault:
        return "faulted"
    if entry.errors:
        return "error"
    return "deviation" if entry.violations else "clean"


def entry_summary(entry: JournalEntry) -> dict[str, Any]:
    """A journal entry without its bodies, headers and curl line: what a table row shows."""
    return {"seq": entry.seq, "time": entry.time_ms, "operation": entry.operation, "tenant": entry.tenant,
            "method": entry.method, "path": entry.path, "status": entry.status, "verdict": verdict(entry),
            "rules": [v.rule.id for v in entry.violations], "fault": entry.fault,
            "batchId": entry.parsed.get("batchId")}


def _whole_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ControlError(f"{name} takes a whole number >= 0, got {raw!r}") from None
    if value < 0:
        raise ControlError(f"{name} takes a whole number >= 0, got {raw!r}")
    return value


@bp.get("/journal/<int:seq>")
def journal_entry(seq: int) -> Response:
    found = backend().journal.entries(lambda e: e.seq == seq)
    if not found:
        raise ControlError(f"no journal entry {seq} (it never existed, was cleared, or the journal dropped it "
                           "when full)", 404)
    return json_response({**found[0].to_dict(), "verdict": verdict(found[0])})


#: Longest a stream stays open; clients reconnect with ``after`` (a browser's EventSource does so by itself).
_STREAM_MAX = 300
_STREAM_TICK = 0.05


@bp.get("/journal/stream")
def journal_stream() -> Response:
    after = _whole_arg("after", 0)
    wait = _whole_arg("wait", 30)
    if wait > _STREAM_MAX:
        raise ControlError(f"wait takes at most {_STREAM_MAX} seconds, got {wait}")
    op = request.args.get("operation")
    tenant = request.args.get("tenant")
    last_id = request.headers.get("Last-Event-ID", "")
    if last_id.isdigit():  # an EventSource reconnecting
        after = int(last_id)
    be = backend()

    def events() -> Iterator[str]:
        last = after
        journal = be.journal
        deadline = time.monotonic() + wait
        yield "retry: 1000\n\n"
        while True:
            if be.journal is not journal:  # a new journal_size started a new journal (and its numbering)
                journal, last = be.journal, 0
                yield "event: reset\ndata: {}\n\n"
            new = journal.entries(lambda e, seen=last: e.seq > seen)
            for e in new:
                last = e.seq
                if (op is None or e.operation == op) and (tenant is None or e.tenant == tenant):
                    yield f"id: {e.seq}\nevent: entry\ndata: {json.dumps(entry_summary(e))}\n\n"
            if new:  # under a burst of requests, one look at the journal per _STREAM_TICK, not one per request
                time.sleep(_STREAM_TICK)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            # wake at least once a second: writing the heartbeat is how a closed connection is noticed
            if not journal.wait_for(lambda es, seen=last: bool(es) and es[-1].seq > seen, min(left, 1.0)):
                yield ": heartbeat\n\n"

    return Response(events(), content_type="text/event-stream;charset=UTF-8",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
