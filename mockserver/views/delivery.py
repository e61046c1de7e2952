"""Adobe's Delivery API, the part that touches profiles: ``POST /rest/v1/delivery``."""

from __future__ import annotations

from flask import Blueprint, Request, Response
from target_profile_mock.contracts.delivery import parse_delivery
from target_profile_mock.contracts.ids import client_code_from_host
from target_profile_mock.contracts.rules import Violation, rule
from werkzeug.wsgi import get_input_stream

from ..backend import MockBackend
from ..models.journal import BODY_KEEP
from ..surfaces import by_operation
from .common import allow, error_response, finish, json_response, serve, start_entry
from .edge import _fault

bp = Blueprint("delivery", __name__)
DELIVERY = by_operation("delivery")

#: the Delivery API's bodies are small JSON documents; anything larger is refused before it is read
MAX_BODY = 1024 * 1024


def _refuse(status: int, message: str) -> Response:
    return error_response(DELIVERY, status, message, allow(DELIVERY) if status == 405 else None)


def delivery(be: MockBackend, req: Request) -> Response:
    """``POST /rest/v1/delivery`` for ``req``, on ``be`` (with or without Flask's request context)."""
    entry = start_entry(DELIVERY.operation, be, req)
    args = req.args.to_dict()  # a plain dict: MultiDict.get raises (and catches) for every absent key
    environ = req.environ
    tenant = args.get("client", "")
    if not tenant:
        tenant = client_code_from_host(req.host) or be.config.client_code
        if not args.get("imsOrgId"):  # Adobe's SDKs name the organisation instead: not a deviation
            entry.violations.append(Violation(rule("delivery.missing-client"), "the URL has no ?client=; the fake "
                                              f"used client code {tenant!r}", "client"))
    entry.tenant = tenant
    if req.method != "POST":
        v = Violation(rule("delivery.method"), f"{req.method} is not allowed; POST the DeliveryRequest", "method")
        entry.violations.append(v)
        return finish(_refuse(405, v.message), be, entry)
    length = environ.get("CONTENT_LENGTH")
    if length and length.isdigit() and int(length) > MAX_BODY:
        v = Violation(rule("delivery.too-large"), f"the body is {int(length):,} bytes; the fake reads at most "
                      f"{MAX_BODY:,}", "body")
        entry.violations.append(v)
        return finish(_refuse(413, v.message), be, entry)
    if length and length.isdigit():
        body = environ["wsgi.input"].read(int(length))
    else:
        body = get_input_stream(environ).read(MAX_BODY + 1)
    entry.body = body[:BODY_KEEP]
    entry.body_size = max(entry.body_size, len(body))
    if len(body) > MAX_BODY:  # a chunked body announces no length
        v = Violation(rule("delivery.too-large"), f"the body is over {MAX_BODY:,} bytes", "body")
        entry.violations.append(v)
        return finish(_refuse(413, v.message), be, entry)
    parsed = parse_delivery(args, body, content_type=environ.get("CONTENT_TYPE", ""))
    entry.violations += parsed.violations
    entry.parsed = parsed.to_dict()
    if parsed.errors:
        first = parsed.errors[0]
        return finish(_refuse(first.rule.status, "; ".join(v.message for v in parsed.errors)), be, entry)
    faulted = _fault(DELIVERY, tenant, be, req)
    if faulted is not None:
        return finish(faulted, be, entry)
    known = len(parsed.violations)
    answer = be.visit(tenant, parsed)
    entry.violations += parsed.violations[known:]  # what applying it found (the profile data limit)
    entry.parsed["tntId"] = answer["id"]["tntId"]
    return finish(json_response(answer), be, entry)


serve(bp, DELIVERY.operation, delivery, direct=True)
