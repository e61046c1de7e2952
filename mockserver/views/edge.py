"""Adobe's edge routes: single update, bulk update, batch status and profile fetch."""

from __future__ import annotations

import io
from typing import Literal
from urllib.parse import quote

from flask import Blueprint, Request, Response, after_this_request, request
from target_profile_mock.contracts.batch import Transport, parse_batch
from target_profile_mock.contracts.ids import IdKind, client_code_from_host
from target_profile_mock.contracts.profile_json import not_found_json, profile_body
from target_profile_mock.contracts.rules import LIMITS, Violation, rule
from target_profile_mock.contracts.single import parse_single_update
from target_profile_mock.contracts.xmlbodies import batch_status, batch_submitted, update_success
from werkzeug.exceptions import RequestEntityTooLarge

from ..backend import CapacityError, MockBackend
from ..faults import intercept
from ..models.journal import BODY_KEEP
from ..surfaces import JSON, Surface, by_operation
from .common import (
    TeeStream,
    admit_tenant,
    allow,
    backend,
    bulk_limit_reached,
    check_auth,
    error_response,
    finish,
    flask_dispatched,
    json_response,
    m2_tenant,
    over_capacity,
    refuse,
    retry_after,
    serve,
    start_entry,
    xml_response,
)

bp = Blueprint("edge", __name__)
SINGLE = by_operation("single-update")
SUBMIT = by_operation("batch-submit")
STATUS = by_operation("batch-status")
FETCH = by_operation("fetch")


def _joined(errors: list[Violation]) -> str:
    return "; ".join(v.message for v in errors)


def _fault(surface: Surface, tenant: str, be: MockBackend | None = None, req: Request | None = None) -> Response | None:
    injector = (be or backend()).faults
    # an empty queue is the usual case: skip the injector's lock and scan
    if not len(injector):
        return None
    if req is not None and not flask_dispatched(req):
        # the lean dispatch serves a request only when the queue is empty as it comes in: a rule added
        # since then is for later requests, as if added just after this one
        return None
    return intercept(injector, surface.operation, tenant)


# --- single update -------------------------------------------------------------------------------
def single_update(be: MockBackend, req: Request, client: str) -> Response:
    """``/m2/<client>/profile/update`` for ``req``, on ``be`` (with or without Flask's request context)."""
    entry = start_entry(SINGLE.operation, be, req)
    tenant = entry.tenant = m2_tenant(client, entry, be, req)
    denied = check_auth(tenant, entry, SINGLE, be, req)
    if denied is not None:
        return finish(denied, be, entry)
    method = req.method
    body = b""
    environ = req.environ
    # a POST that announces an empty body (requests.post(url)) has nothing to read: skip building the stream
    if method == "POST" and not (environ.get("CONTENT_LENGTH") == "0" and "HTTP_TRANSFER_ENCODING" not in environ):
        # read at most one byte past the limit: an oversized body is refused without buffering it
        body = req.stream.read(LIMITS.single_post_bytes + 1)
        entry.body = body[:BODY_KEEP]
        entry.body_size = max(entry.body_size, len(body))
    raw_query = req.query_string
    target_length = len(req.path.encode()) + 1 + len(raw_query)
    try:
        query = raw_query.decode("utf-8")
    except UnicodeDecodeError:  # raw bytes that are not UTF-8: keep each byte as one character
        query = raw_query.decode("latin-1")
    # the query is parsed here only: the journal entry parses it again only if someone reads entry.query
    update = parse_single_update(method, query, content_type=environ.get("CONTENT_TYPE", ""), body=body,
                                 target_length=target_length)
    entry.violations += update.violations
    entry.parsed = {"idKind": update.id_kind, "id": update.profile_id, "attributes": update.attributes}
    if update.errors:
        status = update.errors[0].rule.status
        return finish(error_response(SINGLE, status, _joined(update.errors), allow(SINGLE) if status == 405 else None,
                                     be=be), be, entry)
    full = admit_tenant(tenant, entry, SINGLE, be)
    if full is not None:
        return finish(full, be, entry)
    assert update.id_kind is not None and update.profile_id is not None
    kind: Literal["tntId", "thirdPartyId"] = "thirdPartyId" if update.id_kind == "mbox3rdPartyId" else "tntId"
    fallback = ("tntId", update.other_id[1]) if update.other_id else None
    success = xml_response(update_success())
    shared = be.store.shared
    if shared:  # the entry as finish() closes it on success: the store may journal it with the update
        entry.status = success.status_code
        entry.record_response(success.get_data())
    # only a shared store has a one-step update; in memory the two calls below are already one lock each
    at_once = be.single_update_at_once(tenant, kind, update.profile_id, fallback, update.attributes,  # type: ignore[arg-type]
                                       entry) if shared else None
    if at_once is not None and at_once[2]:
        return success
    if shared:  # not journaled: as it was, for whichever answer closes it (a streamed one records no body)
        entry.status = 0
        entry.record_response(b"")
    wait, over = (be.acquire_rate(tenant, "single"), None) if at_once is None else at_once[:2]
    if wait is not None:
        limit = be.rate_limit(tenant, "single")
        v = Violation(rule("rate.single"), f"client {tenant} has sent {limit:,} single updates in the last 24 hours"
                      if limit else f"client {tenant}'s single update limit is 0 a day: every single update is "
                      "refused", "rate")
        entry.violations.append(v)
        resp = refuse(SINGLE, v, be.config.single_rate_status, be=be)
        resp.headers["Retry-After"] = retry_after(wait)
        return finish(resp, be, entry)
    if at_once is None:
        faulted = _fault(SINGLE, tenant, be, req)
        if faulted is not None:
            return finish(faulted, be, entry)
        over = be.single_update(tenant, kind, update.profile_id, fallback, update.attributes)  # type: ignore[arg-type]
    if over is not None:
        entry.violations.append(Violation(rule("profile.size"), f"the profile now holds {over:,} bytes of attribute "
                                          f"data; the limit is {LIMITS.profile_data_bytes:,}", "profile"))
    return finish(success, be, entry)


serve(bp, SINGLE.operation, single_update, direct=True)


# --- bulk update ---------------------------------------------------------------------------------
def _transport(max_bytes: int) -> tuple[Transport, io.BufferedIOBase | TeeStream]:
    ctype = (request.mimetype or "").lower()
    if ctype.startswith("multipart/"):
        # a batch form field may be as large as a batch file; Flask caps fields at 500 kB by default
        request.max_form_memory_size = max_bytes
        field = request.form.get("batch")
        if field is not None:
            data = field.encode()
            return "multipart", io.BytesIO(data if data.startswith(b"batch=") else b"batch=" + data)
        upload = next(iter(request.files.values()), None)
        return "multipart", (upload.stream if upload is not None else io.BytesIO(b""))  # type: ignore[return-value]
    if ctype in ("text/csv", "text/plain"):
        return "csv", TeeStream(request.stream)
    return "form", TeeStream(request.stream)


def _status_url(tenant: str, version: int, batch_id: str) -> str:
    cfg = backend().config
    host = cfg.status_host or request.host
    if not host:  # werkzeug drops a Host header that is no host (spaces, '/', ...): use the server's own
        env = request.environ
        name, port = env.get("SERVER_NAME", "localhost"), env.get("SERVER_PORT", "")
        host = f"[{name}]" if ":" in name else name
        if port and port != {"http": "80", "https": "443"}.get(request.scheme):
            host += f":{port}"
    path_v = "/v2" if version == 2 and backend().tenant(tenant).setting("status_path") == "versioned" else ""
    # percent-encoded: a client code is text from the path, and must not add a query or fragment to the URL
    return (f"{request.scheme}://{host}/m2/{quote(tenant, safe='')}{path_v}/profile/batchStatus"
            f"?batchId={quote(batch_id, safe='')}")


def batch_update(client: str, version: int) -> Response:
    """``/m2/<client>/profile/batchUpdate`` (``version`` 1) and ``/m2/<client>/v2/profile/batchUpdate``."""
    entry = start_entry(SUBMIT.operation)
    tenant = entry.tenant = m2_tenant(client, entry)
    entry.parsed = {"version": version}
    denied = check_auth(tenant, entry, SUBMIT)
    if denied is not None:
        return finish(denied)
    be = backend()
    if request.method != "POST":
        v = Violation(rule("batch.method"), f"{request.method} is not allowed; submit the batch with POST", "method")
        entry.violations.append(v)
        return finish(refuse(SUBMIT, v, None, allow(SUBMIT)))
    full = admit_tenant(tenant, entry, SUBMIT, be)
    if full is not None:
        return finish(full)
    wait = be.acquire_rate(tenant, "bulk")
    if wait is not None:
        v = bulk_limit_reached(tenant, be.rate_limit(tenant, "bulk"))
        entry.violations.append(v)
        resp = refuse(SUBMIT, v)
        resp.headers["Retry-After"] = retry_after(wait)
        return finish(resp)
    cfg = be.config
    length = request.content_length
    if length is not None and length > cfg.batch_max_bytes:
        v = Violation(rule("batch.too-large"), f"the file is {length:,} bytes; the limit is "
                      f"{cfg.batch_max_bytes:,} bytes (50 MB)", "body")
        entry.violations.append(v)
        return finish(refuse(SUBMIT, v))
    try:
        # room for the file once parsed, reserved before it is read, so concurrent uploads are bounded too
        reserved = be.reserve_batch(length or 0)
    except CapacityError as exc:
        return finish(over_capacity(exc, entry, SUBMIT))
    after_this_request(lambda response: (be.release_batch(reserved), response)[1])
    try:
        transport, stream = _transport(cfg.batch_max_bytes)
    except RequestEntityTooLarge:
        v = Violation(rule("batch.too-large"), f"the multipart batch field is over {cfg.batch_max_bytes:,} bytes; "
                      f"the limit is {cfg.batch_max_bytes:,} bytes (50 MB)", "body")
        entry.violations.append(v)
        return finish(refuse(SUBMIT, v))
    file = parse_batch(stream, transport=transport, max_bytes=cfg.batch_max_bytes,  # type: ignore[arg-type]
                       max_rows=cfg.batch_max_rows)
    mimetype = (request.mimetype or "").lower()
    if transport == "form" and mimetype != "application/x-www-form-urlencoded":
        # curl --data-binary sends form encoding; a body without it may never reach Adobe's form reader
        file.violations.insert(0, Violation(rule("batch.content-type"), "the batch was sent with Content-Type "
                                            f"{mimetype or '(none)'}", "Content-Type"))
    if isinstance(stream, TeeStream):
        entry.body = bytes(stream.head)
        entry.body_size = max(entry.body_size, stream.total)
        if stream.total == entry.body_size > len(entry.body):  # cut short, and read whole: its digest says which
            entry.body_sha256 = stream.sha256()
    entry.violations += file.violations
    entry.parsed.update({"key": file.key, "attributes": list(file.attributes), "rows": file.row_count})
    if file.errors:
        first = file.errors[0]
        return finish(error_response(SUBMIT, first.rule.status, _joined(file.errors)))
    # after the contract checks, as for every operation: a refused file never uses up a fault
    faulted = _fault(SUBMIT, tenant)
    if faulted is not None:
        return finish(faulted)
    batch_id = be.new_batch_id(tenant)
    batch = be.submit_batch(tenant, version, file, batch_id, _status_url(tenant, version, batch_id))
    entry.parsed["batchId"] = batch.batch_id
    return finish(xml_response(batch_submitted(batch.status_url)))


serve(bp, SUBMIT.operation, batch_update)


# --- batch status --------------------------------------------------------------------------------
def batch_status_view(client: str) -> Response:
    """``/m2/<client>/profile/batchStatus`` and ``/m2/<client>/v2/profile/batchStatus``."""
    entry = start_entry(STATUS.operation)
    tenant = entry.tenant = m2_tenant(client, entry)
    denied = check_auth(tenant, entry, STATUS)
    if denied is not None:
        return finish(denied)
    if request.method != "GET":  # HEAD too: a HEAD must not count as a poll
        v = Violation(rule("status.method"), f"{request.method} is not allowed; poll the batch status with GET",
                      "method")
        entry.violations.append(v)
        return finish(refuse(STATUS, v, None, allow(STATUS)))
    be = backend()
    if be.config.rate_limit_status_polls and be.acquire_rate(tenant, "bulk", create=False) is not None:
        v = bulk_limit_reached(tenant, be.rate_limit(tenant, "bulk"))
        entry.violations.append(v)
        return finish(refuse(STATUS, v))
    batch_id = request.args.get("batchId", "")
    entry.parsed = {"batchId": batch_id}
    if not batch_id:
        v = Violation(rule("status.missing-batch-id"), "the request has no batchId parameter", "batchId")
        entry.violations.append(v)
        return finish(refuse(STATUS, v))
    unknown = Violation(rule("status.unknown-batch"), f"No batch found for client {tenant} with batchId={batch_id} "
                        "(unknown, of another client, or past its retention)", "batchId")
    # the unknown-batch refusal comes before the faults (a refused call never uses one up) and the
    # look does not count as a poll: a faulted call never moves the batch
    if not be.has_batch(tenant, batch_id):
        entry.violations.append(unknown)
        return finish(refuse(STATUS, unknown))
    faulted = _fault(STATUS, tenant)
    if faulted is not None:
        return finish(faulted)
    batch = be.poll_batch(tenant, batch_id)
    if batch is None:  # expired in between
        entry.violations.append(unknown)
        return finish(refuse(STATUS, unknown))
    with be.lock:
        show = request.args.get("showDetails", "").lower() == "true"
        counters = None
        if show:
            counters = dict(batch.counters) if batch.state != "incomplete" else {
                "batchSize": batch.size, "consumedCount": 0, "successfulUpdates": 0,
                "profilesNotFound": 0, "failedUpdates": 0}
        shape = be.tenant(tenant).setting("v2_profile_rows")
        if batch.details_dropped and shape == "all" and batch.version == 2:
            # the list of every row cannot be given truthfully any more: say so rather than list fewer
            v = Violation(rule("status.unknown-batch"), f"batch {batch_id} of client {tenant} ended {batch.state}, "
                          "but the fake has dropped its per-row statuses to stay under its batch_retention_bytes; "
                          "poll without v2_profile_rows='all', poll sooner after the batch ends, or raise the "
                          "bound", "batchId")
            entry.violations.append(v)
            return finish(refuse(STATUS, v))
        body = batch_status(batch.batch_id, batch.state, batch.size, counters, batch.row_statuses(shape))
        entry.parsed["status"] = batch.state
    return finish(xml_response(body))


serve(bp, STATUS.operation, batch_status_view)


# --- fetch ---------------------------------------------------------------------------------------
def fetch(be: MockBackend, req: Request, kind: IdKind, profile_id: str) -> Response:
    """A ``/rest/v1/profiles/`` fetch for ``req``, on ``be`` (with or without Flask's request context)."""
    entry = start_entry(FETCH.operation, be, req)
    tenant = req.args.get("client", "")
    if not tenant:
        tenant = client_code_from_host(req.host) or be.config.client_code
        entry.violations.append(Violation(rule("fetch.missing-client"),
                                          f"the URL has no ?client=; the fake used client code {tenant!r}",
                                          "client"))
    entry.tenant = tenant
    entry.parsed = {"idKind": kind, "id": profile_id}

    denied = check_auth(tenant, entry, FETCH, be, req)
    if denied is not None:
        return finish(denied, be, entry)
    if req.method != "GET":
        v = Violation(rule("fetch.method"), f"{req.method} is not allowed; fetch profiles with GET", "method")
        entry.violations.append(v)
        return finish(refuse(FETCH, v, 405, allow(FETCH), be), be, entry)
    faulted = _fault(FETCH, tenant, be, req)
    if faulted is not None:
        return finish(faulted, be, entry)
    found = be.fetch(tenant, "marketingCloudVisitorId" if kind == "marketingCloudVisitorId" else kind, profile_id)
    if found is None:
        return finish(Response(not_found_json(tenant, kind, profile_id), status=404, content_type=JSON), be, entry)
    attrs, modified_ms = found
    return finish(json_response(profile_body(tenant, profile_id, attrs, modified_ms)), be, entry)


serve(bp, FETCH.operation, fetch, direct=True)
