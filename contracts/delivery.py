"""The Delivery API's profile-relevant part: parse ``POST /rest/v1/delivery`` and build its answer.

Request and response shapes follow Adobe's Delivery API description (``DeliveryRequest``,
``VisitorId``, ``ExecuteRequest``, ``PrefetchRequest``, ``MboxRequest``, ``RequestDetails``;
``DeliveryResponse``); each check names a rule of :mod:`.rules`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from .ids import check_third_party_id, check_tnt_id
from .rules import LIMITS, Judged, Violation, rule

__all__ = ["CHANNELS", "DeliveryRequest", "MboxRequest", "delivery_response", "parse_delivery"]

CHANNELS = ("web", "mobile")
AUTHENTICATED_STATES = ("unknown", "authenticated", "logged_out")
#: names the description does not allow as mbox parameters (they belong to ``order``/``product``)
RESERVED_MBOX_PARAMETERS = ("orderId", "orderTotal", "productPurchasedIds")
_SESSION_FORBIDDEN = frozenset(" ?/")


@dataclass(slots=True)
class MboxRequest:
    """One requested mbox (or the page load, or a view: ``kind`` says which)."""

    kind: str  #: ``mbox``, ``pageLoad`` or ``view``
    section: str  #: ``execute`` or ``prefetch``
    index: int | None = None
    name: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    profile_parameters: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class DeliveryRequest(Judged):
    """A parsed Delivery API call: its identity, what it asks for, and every rule it breaks."""

    violations: list[Violation] = field(default_factory=list)
    client: str | None = None  #: ``?client=``
    session_id: str | None = None
    version: str | None = None
    ims_org_id: str | None = None
    request_id: str | None = None
    channel: str | None = None
    tnt_id: str | None = None
    third_party_id: str | None = None
    marketing_cloud_visitor_id: str | None = None
    customer_ids: list[dict[str, Any]] = field(default_factory=list)
    requested: list[MboxRequest] = field(default_factory=list)
    sections: tuple[str, ...] = ()  #: ``execute`` / ``prefetch``, as sent

    @property
    def profile_parameters(self) -> dict[str, str]:
        """Every ``profileParameters`` entry of the request, later ones winning, in request order."""
        out: dict[str, str] = {}
        for m in self.requested:
            out.update(m.profile_parameters)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"client": self.client, "sessionId": self.session_id, "tntId": self.tnt_id,
                "thirdPartyId": self.third_party_id, "marketingCloudVisitorId": self.marketing_cloud_visitor_id,
                "mboxes": [m.name for m in self.requested if m.kind == "mbox"],
                "profileParameters": self.profile_parameters}


def _v(rule_id: str, detail: str, where: str) -> Violation:
    return Violation(rule(rule_id), detail, where)


def _objects(value: Any, where: str, rule_id: str, out: list[Violation]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The objects of the JSON list ``value``, each with where it stands (``where[i]``); what is not a list,
    or an item that is not an object, is a ``rule_id`` violation instead."""
    if not isinstance(value, list):
        out.append(_v(rule_id, f"{where} must be a list", where))
        return
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if isinstance(item, dict):
            yield at, item
        else:
            out.append(_v(rule_id, f"{at} must be an object", at))


def parse_delivery(query: str | Mapping[str, str], body: bytes, *, content_type: str = "application/json"
                   ) -> DeliveryRequest:
    """Parse and judge a Delivery API call (query string or mapping of its parameters, JSON body)."""
    args = dict(parse_qsl(query, keep_blank_values=True)) if isinstance(query, str) else dict(query)
    req = DeliveryRequest(client=args.get("client") or None, session_id=args.get("sessionId"),
                          version=args.get("version"), ims_org_id=args.get("imsOrgId"))
    out = req.violations
    sid = req.session_id
    if not sid:
        out.append(_v("delivery.session-id", "the URL has no sessionId parameter", "sessionId"))
    elif len(sid) > 128 or any(c in _SESSION_FORBIDDEN or not c.isprintable() for c in sid):
        out.append(_v("delivery.session-id", f"sessionId {sid!r} is not 1 to 128 printable characters without "
                      "space, ? or /", "sessionId"))
    mimetype = content_type.split(";", 1)[0].strip().lower()
    try:
        doc = json.loads(body.decode("utf-8")) if body.strip() else None
    except (UnicodeDecodeError, ValueError) as exc:
        out.append(_v("delivery.json-body", f"the body is not JSON ({exc})", "body"))
        return req
    except RecursionError:  # nesting deeper than the interpreter's stack
        out.append(_v("delivery.json-body", "the body nests JSON arrays or objects too deeply to read", "body"))
        return req
    if not isinstance(doc, dict):
        out.append(_v("delivery.json-body", "the body is not a JSON object" if doc is not None else
                      "the body is empty", "body"))
        return req
    if mimetype != "application/json":
        out.append(_v("delivery.content-type", f"the body was sent with Content-Type {mimetype or '(none)'}",
                      "Content-Type"))
    rid = doc.get("requestId")
    if rid is not None:
        if not isinstance(rid, str) or len(rid) > 128:
            out.append(_v("delivery.field", "requestId must be a string of at most 128 characters", "requestId"))
        else:
            req.request_id = rid
    _context(doc.get("context"), req)
    _identity(doc.get("id"), req)
    for section in ("execute", "prefetch"):
        if section in doc and doc[section] is not None:
            req.sections += (section,)
            _section(doc[section], section, req)
    return req


def _context(ctx: Any, req: DeliveryRequest) -> None:
    if ctx is None:
        req.violations.append(_v("delivery.context", "the request has no context object", "context"))
        return
    if not isinstance(ctx, dict):
        req.violations.append(_v("delivery.context", "context must be an object", "context"))
        return
    channel = ctx.get("channel")
    if channel is None:
        req.violations.append(_v("delivery.context", "context has no channel", "context.channel"))
    elif channel not in CHANNELS:
        req.violations.append(_v("delivery.channel", f"context.channel {channel!r} is not web or mobile",
                                 "context.channel"))
    else:
        req.channel = channel


def _identity(ids: Any, req: DeliveryRequest) -> None:
    out = req.violations
    if ids is None:
        return
    if not isinstance(ids, dict):
        out.append(_v("delivery.field", "id must be an object", "id"))
        return
    for key in ("tntId", "thirdPartyId", "marketingCloudVisitorId"):
        value = ids.get(key)
        if value is None:
            continue
        where = f"id.{key}"
        if not isinstance(value, str):
            out.append(_v("delivery.field", f"{where} must be a string", where))
            continue
        if key == "thirdPartyId":
            out += check_third_party_id(value, where)
        elif value == "":
            out.append(_v("id.empty", f"{where} is empty", where))
        elif len(value) > 128:
            out.append(_v("delivery.id-length", f"{where} is {len(value)} characters; the limit is 128", where))
        elif key == "tntId":
            out += check_tnt_id(value, where)
        if not any(v.where == where and v.rule.is_error for v in out):
            setattr(req, {"tntId": "tnt_id", "thirdPartyId": "third_party_id",
                          "marketingCloudVisitorId": "marketing_cloud_visitor_id"}[key], value)
    customers = ids.get("customerIds")
    if customers is None:
        return
    for where, c in _objects(customers, "id.customerIds", "delivery.customer-id", out):
        cid, code, state = c.get("id"), c.get("integrationCode"), c.get("authenticatedState")
        problems = []
        if not isinstance(cid, str) or not cid or len(cid) > 128:
            problems.append("id (1 to 128 characters)")
        if not isinstance(code, str) or not code or len(code) > 50:
            problems.append("integrationCode (1 to 50 characters)")
        if state not in AUTHENTICATED_STATES:
            problems.append("authenticatedState (unknown, authenticated or logged_out)")
        if problems:
            out.append(_v("delivery.customer-id", f"{where} needs {', '.join(problems)}", where))
        else:
            req.customer_ids.append({"id": cid, "integrationCode": code, "authenticatedState": state})
    if isinstance(customers, list) and customers and req.marketing_cloud_visitor_id is None:
        out.append(_v("delivery.customer-ids-without-ecid", "id.customerIds is sent without "
                      "id.marketingCloudVisitorId", "id.customerIds"))


def _section(sec: Any, name: str, req: DeliveryRequest) -> None:
    out = req.violations
    if not isinstance(sec, dict):
        out.append(_v("delivery.field", f"{name} must be an object", name))
        return
    page = sec.get("pageLoad")
    if page is not None:
        m = MboxRequest("pageLoad", name)
        if _details(page, m, f"{name}.pageLoad", req):
            req.requested.append(m)
    mboxes = sec.get("mboxes")
    if mboxes is not None:
        seen: set[int] = set()
        for where, mbox in _objects(mboxes, f"{name}.mboxes", "delivery.field", out):
            mname = mbox.get("name")
            if not isinstance(mname, str) or not mname.strip():
                out.append(_v("delivery.mbox-name", f"{where} has no name", where))
                continue
            index = mbox.get("index")
            if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
                out.append(_v("delivery.field", f"{where}.index must be an integer", where))
                index = None
            if index is not None:
                if index in seen:
                    out.append(_v("delivery.mbox-index", f"{where} repeats index {index}", where))
                seen.add(index)
            m = MboxRequest("mbox", name, index, mname)
            if _details(mbox, m, where, req):
                req.requested.append(m)
    if name == "prefetch" and sec.get("views") is not None:
        for where, view in _objects(sec["views"], "prefetch.views", "delivery.field", out):
            vname = view.get("name")
            if vname is not None and (not isinstance(vname, str) or len(vname) > 128):
                out.append(_v("delivery.field", f"{where}.name must be a string of at most 128 characters", where))
                continue
            m = MboxRequest("view", name, None, vname)
            if _details(view, m, where, req):
                req.requested.append(m)


def _details(obj: Any, m: MboxRequest, where: str, req: DeliveryRequest) -> bool:
    """Read ``parameters`` and ``profileParameters`` of a RequestDetails object into ``m``."""
    if not isinstance(obj, dict):
        req.violations.append(_v("delivery.field", f"{where} must be an object", where))
        return False
    ok = True
    for key, target, profile in (("parameters", m.parameters, False), ("profileParameters", m.profile_parameters,
                                                                        True)):
        params = obj.get(key)
        if params is None:
            continue
        if not isinstance(params, dict):
            req.violations.append(_v("delivery.field", f"{where}.{key} must be an object of strings",
                                     f"{where}.{key}"))
            ok = False
            continue
        ok = _parameters(params, target, f"{where}.{key}", profile, m.kind == "mbox", req) and ok
    return ok


def _parameters(params: dict[str, Any], target: dict[str, str], where: str, profile: bool, mbox: bool,
                req: DeliveryRequest) -> bool:
    out = req.violations
    before = len([v for v in out if v.rule.is_error])
    if len(params) > LIMITS.delivery_parameters_max:
        out.append(_v("delivery.parameter-count", f"{where} has {len(params)} entries; the limit is "
                      f"{LIMITS.delivery_parameters_max}", where))
    value_max = LIMITS.profile_parameter_value_chars if profile else LIMITS.mbox_parameter_value_chars
    for name, value in params.items():
        at = f"{where}.{name}"
        if not name.strip():
            out.append(_v("delivery.parameter-name", f"{where} has a blank name", where))
            continue
        if len(name) > LIMITS.parameter_name_chars:
            out.append(_v("delivery.parameter-name", f"{where} name {name[:40]!r}... is {len(name)} characters; "
                          f"the limit is {LIMITS.parameter_name_chars}", at))
            continue
        if name.startswith("profile."):
            out.append(_v("delivery.profile-prefix", f"{where} name {name!r} starts with profile.", at))
            continue
        if mbox and not profile and name in RESERVED_MBOX_PARAMETERS:
            out.append(_v("delivery.reserved-parameter", f"{at}: {name} goes in the order or product object, "
                          "not in mbox parameters", at))
            continue
        if value is None:
            out.append(_v("delivery.parameter-value", f"{at} is null", at))
            continue
        if not isinstance(value, str):
            if isinstance(value, (dict, list)):
                out.append(_v("delivery.parameter-value", f"{at} is a JSON {type(value).__name__}, not a string",
                              at))
                continue
            out.append(_v("delivery.parameter-type", f"{at} is the JSON value {json.dumps(value)}, not a string; "
                          "the fake stored its text", at))
            value = "true" if value is True else "false" if value is False else json.dumps(value)
        if len(value) > value_max:
            out.append(_v("delivery.profile-value-length" if profile else "delivery.parameter-value",
                          f"{at} is {len(value)} characters; the limit is {value_max}", at))
            continue
        target[name] = value
    return len([v for v in out if v.rule.is_error]) == before


def delivery_response(req: DeliveryRequest, *, client: str, request_id: str, tnt_id: str, edge_host: str,
                      offers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The answer to an accepted call: ``status``, ``requestId``, ``client``, ``id`` (the sent ids and
    the visitor's tntId with its location hint), ``edgeHost``, then ``execute`` / ``prefetch`` with one
    entry per requested mbox. Mboxes without an offer come back without ``options``."""
    ids: dict[str, Any] = {"tntId": tnt_id}
    if req.third_party_id is not None:
        ids["thirdPartyId"] = req.third_party_id
    if req.marketing_cloud_visitor_id is not None:
        ids["marketingCloudVisitorId"] = req.marketing_cloud_visitor_id
    if req.customer_ids:
        ids["customerIds"] = req.customer_ids
    body: dict[str, Any] = {"status": 200, "requestId": request_id, "client": client, "id": ids,
                            "edgeHost": edge_host}
    offers = offers or {}
    for section in req.sections:
        part: dict[str, Any] = {}
        for m in req.requested:
            if m.section != section:
                continue
            if m.kind == "pageLoad":
                part["pageLoad"] = {}
            elif m.kind == "view":
                part.setdefault("views", []).append({"name": m.name} if m.name is not None else {})
            else:
                entry: dict[str, Any] = {"index": m.index, "name": m.name} if m.index is not None else {"name": m.name}
                offer = offers.get(m.name or "")
                if offer is not None:
                    entry["options"] = [{"type": offer["type"], "content": offer["content"]}]
                part.setdefault("mboxes", []).append(entry)
        body[section] = part
    return body
