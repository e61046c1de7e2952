"""Adobe's Delivery API, the part that touches profiles: ``POST /rest/v1/delivery``."""

from __future__ import annotations

from flask import Blueprint, Response, request
from target_profile_mock.contracts.delivery import parse_delivery
from target_profile_mock.contracts.ids import client_code_from_host
from target_profile_mock.contracts.rules import Violation, rule

from .common import backend, finish, json_response, start_entry

bp = Blueprint("delivery", __name__)

#: the Delivery API's bodies are small JSON documents; anything larger is refused before it is read
MAX_BODY = 1024 * 1024


def _refuse(status: int, message: str) -> Response:
    return json_response({"status": status, "message": message}, status)


@bp.route("/rest/v1/delivery", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def delivery() -> Response:
    be = backend()
    entry = start_entry("delivery")
    tenant = request.args.get("client", "")
    if not tenant:
        tenant = client_code_from_host(request.host) or be.config.client_code
        if not request.args.get("imsOrgId"):  # Adobe's SDKs name the organisation instead: not a deviation
            entry.violations.append(Violation(rule("delivery.missing-client"), "the URL has no ?client=; the fake "
                                              f"used client code {tenant!r}", "client"))
    entry.tenant = tenant
    if request.method != "POST":
        v = Violation(rule("delivery.method"), f"{request.method} is not allowed; POST the DeliveryRequest",
                      "method")
        entry.violations.append(v)
        return finish(_refuse(405, v.message))
    length = request.content_length
    if length is not None and length > MAX_BODY:
        v = Violation(rule("delivery.too-large"), f"the body is {length:,} bytes; the fake reads at most "
                      f"{MAX_BODY:,}", "body")
        entry.violations.append(v)
        return finish(_refuse(413, v.message))
    body = request.stream.read(MAX_BODY + 1)
    entry.body = body[:65536]
    entry.body_size = max(entry.body_size, len(body))
    parsed = parse_delivery(request.args, body, content_type=request.headers.get("Content-Type", ""))
    entry.violations += parsed.violations
    entry.parsed = parsed.to_dict()
    if parsed.errors:
        first = parsed.errors[0]
        return finish(_refuse(first.rule.status, "; ".join(v.message for v in parsed.errors)))
    injector = be.faults
    if injector is not None and len(injector):
        faulted = injector.intercept("delivery", tenant)
        if faulted is not None:
            return finish(faulted)
    answer = be.visit(tenant, parsed)
    entry.parsed["tntId"] = answer["id"]["tntId"]
    return finish(json_response(answer))
