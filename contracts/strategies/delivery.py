"""Delivery API requests: valid visits (:func:`delivery_requests`) and ones that break exactly one error
rule each, tagged with the outcome the fake gives them (:func:`invalid_delivery_requests`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ..delivery import RESERVED_MBOX_PARAMETERS
from ..rules import LIMITS, RULES, Severity
from ._http import HttpRequest
from .building import attribute_names, attribute_values, third_party_ids, tnt_ids
from .invalid import ExpectedOutcome, InvalidCall
from .valid import _check_client

__all__ = ["DELIVERY_RULES", "DeliveryCall", "delivery_requests", "invalid_delivery_requests"]

PATH = "/rest/v1/delivery"
JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class DeliveryCall:
    """A valid visit and what it says about the visitor."""

    request: HttpRequest
    tnt_id: str | None
    third_party_id: str | None
    profile_parameters: Mapping[str, str]
    mboxes: tuple[str, ...]
    body: Mapping[str, Any]


_SESSION_IDS = st.text("abcdef0123456789-", min_size=1, max_size=40)
_PARAM_NAMES = attribute_names(max_size=40)
_PARAM_VALUES = attribute_values(max_size=LIMITS.profile_parameter_value_chars).filter(
    lambda v: len(v) <= LIMITS.profile_parameter_value_chars)
_MBOX_NAMES = st.text("abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=30)


def _request(client: str, body: Any, *, session: str | None = "s-1", raw: bytes | None = None,
             method: str = "POST", headers: Mapping[str, str] = JSON_HEADERS) -> HttpRequest:
    query = urlencode({"client": client, **({"sessionId": session} if session is not None else {})})
    data = raw if raw is not None else json.dumps(body).encode()
    return HttpRequest(method, PATH, query, data, headers)


@st.composite
def _valid(draw: st.DrawFn, client: str, new_visitors: bool) -> DeliveryCall:
    tnt = None if new_visitors else draw(st.one_of(st.none(), tnt_ids()))
    third = None if new_visitors else draw(st.one_of(st.none(), third_party_ids(max_size=64)))
    params = draw(st.dictionaries(_PARAM_NAMES, _PARAM_VALUES, max_size=5))
    mboxes = tuple(draw(st.lists(_MBOX_NAMES, max_size=3, unique=True)))
    section = draw(st.sampled_from(("execute", "prefetch")))
    body: dict[str, Any] = {"context": {"channel": draw(st.sampled_from(("web", "mobile")))}}
    ids = {k: v for k, v in (("tntId", tnt), ("thirdPartyId", third)) if v is not None}
    if ids:
        body["id"] = ids
    part: dict[str, Any] = {}
    if mboxes:
        part["mboxes"] = [{"index": i, "name": name} for i, name in enumerate(mboxes, 1)]
        if params:
            part["mboxes"][0]["profileParameters"] = params
    elif params or draw(st.booleans()):
        part["pageLoad"] = {"profileParameters": params} if params else {}
    body[section] = part
    request = _request(client, body, session=draw(_SESSION_IDS))
    return DeliveryCall(request, tnt, third, params, mboxes, body)


def delivery_requests(*, client: str = "demo", new_visitors: bool = False) -> st.SearchStrategy[DeliveryCall]:
    """Valid Delivery API calls (no rule broken, no deviation): a context, perhaps a tntId and a
    thirdPartyId, mboxes or a page load under ``execute`` or ``prefetch``, up to 5 profile parameters.
    ``new_visitors=True`` sends no ids, so every call starts a profile."""
    _check_client(client)
    return _valid(client, new_visitors)


# --- invalid --------------------------------------------------------------------------------------
Maker = Callable[[str], st.SearchStrategy[HttpRequest]]
_MAKERS: dict[str, Maker] = {}
_CONTEXT = {"context": {"channel": "web"}}


def _breaks(rule_id: str) -> Callable[[Maker], Maker]:
    def deco(fn: Maker) -> Maker:
        assert RULES[rule_id].severity is Severity.ERROR, rule_id
        _MAKERS[rule_id] = fn
        return fn
    return deco


def _with_params(client: str, params: st.SearchStrategy[dict[str, Any]], key: str = "profileParameters"
                 ) -> st.SearchStrategy[HttpRequest]:
    return params.map(lambda p: _request(client, {**_CONTEXT, "execute": {"mboxes": [{"index": 1, "name": "m",
                                                                                      key: p}]}}))


@_breaks("delivery.session-id")
def _session(client: str) -> st.SearchStrategy[HttpRequest]:
    bad = st.one_of(st.just(None), st.just(""), st.text("ab?/ ", min_size=1, max_size=8).filter(
        lambda s: any(c in " ?/" for c in s)), st.text("a", min_size=129, max_size=130))
    return bad.map(lambda s: _request(client, _CONTEXT, session=s))


@_breaks("delivery.json-body")
def _json_body(client: str) -> st.SearchStrategy[HttpRequest]:
    raw = st.sampled_from((b"", b"{", b"[]", b"null", b"\"context\"", b"\xff\xfe"))
    return raw.map(lambda r: _request(client, None, raw=r))


@_breaks("delivery.method")
def _method(client: str) -> st.SearchStrategy[HttpRequest]:
    return st.sampled_from(("GET", "PUT", "PATCH", "DELETE")).map(lambda m: _request(client, _CONTEXT, method=m))


@_breaks("delivery.context")
def _context(client: str) -> st.SearchStrategy[HttpRequest]:
    return st.sampled_from(({}, {"context": None}, {"context": {}}, {"context": {"browser": {"host": "x"}}})).map(
        lambda b: _request(client, b))


@_breaks("delivery.channel")
def _channel(client: str) -> st.SearchStrategy[HttpRequest]:
    return st.sampled_from(("WEB", "tv", "", "iot")).map(lambda c: _request(client, {"context": {"channel": c}}))


@_breaks("delivery.field")
def _field(client: str) -> st.SearchStrategy[HttpRequest]:
    bodies = st.sampled_from(({**_CONTEXT, "execute": []}, {**_CONTEXT, "id": "x"}, {**_CONTEXT, "requestId": 1},
                              {**_CONTEXT, "prefetch": {"mboxes": {}}}, {**_CONTEXT, "id": {"tntId": 5}}))
    return bodies.map(lambda b: _request(client, b))


@_breaks("delivery.id-length")
def _id_length(client: str) -> st.SearchStrategy[HttpRequest]:
    return st.tuples(st.sampled_from(("tntId", "marketingCloudVisitorId")), st.integers(129, 300)).map(
        lambda kn: _request(client, {**_CONTEXT, "id": {kn[0]: "1" * kn[1]}}))


@_breaks("delivery.customer-id")
def _customer_id(client: str) -> st.SearchStrategy[HttpRequest]:
    entries = st.sampled_from(({"id": "1"}, {"id": "1", "integrationCode": "crm"},
                               {"id": "1", "integrationCode": "crm", "authenticatedState": "yes"},
                               {"id": "", "integrationCode": "crm", "authenticatedState": "unknown"},
                               {"id": "1", "integrationCode": "c" * 51, "authenticatedState": "unknown"}))
    return entries.map(lambda e: _request(client, {**_CONTEXT, "id": {"marketingCloudVisitorId": "123",
                                                                       "customerIds": [e]}}))


@_breaks("delivery.customer-ids-without-ecid")
def _customer_ids_without_ecid(client: str) -> st.SearchStrategy[HttpRequest]:
    return st.just(_request(client, {**_CONTEXT, "id": {"customerIds": [
        {"id": "1", "integrationCode": "crm", "authenticatedState": "authenticated"}]}}))


@_breaks("delivery.mbox-name")
def _mbox_name(client: str) -> st.SearchStrategy[HttpRequest]:
    return st.sampled_from(({"index": 1}, {"index": 1, "name": ""}, {"name": " "}, {"name": 3})).map(
        lambda m: _request(client, {**_CONTEXT, "execute": {"mboxes": [m]}}))


@_breaks("delivery.parameter-count")
def _parameter_count(client: str) -> st.SearchStrategy[HttpRequest]:
    return _with_params(client, st.integers(51, 60).map(lambda n: {f"p{i}": "v" for i in range(n)}))


@_breaks("delivery.parameter-name")
def _parameter_name(client: str) -> st.SearchStrategy[HttpRequest]:
    names = st.one_of(st.sampled_from(("", " ", "\t")), st.integers(129, 200).map(lambda n: "n" * n))
    return _with_params(client, names.map(lambda n: {n: "v"}))


@_breaks("delivery.profile-prefix")
def _profile_prefix(client: str) -> st.SearchStrategy[HttpRequest]:
    return _with_params(client, _PARAM_NAMES.map(lambda n: {"profile." + n: "v"}))


@_breaks("delivery.reserved-parameter")
def _reserved(client: str) -> st.SearchStrategy[HttpRequest]:
    return _with_params(client, st.sampled_from(RESERVED_MBOX_PARAMETERS).map(lambda n: {n: "1"}), "parameters")


@_breaks("delivery.parameter-value")
def _parameter_value(client: str) -> st.SearchStrategy[HttpRequest]:
    return st.one_of(_with_params(client, st.sampled_from((None, [], {})).map(lambda v: {"tier": v})),
                     _with_params(client, st.just({"x": "v" * (LIMITS.mbox_parameter_value_chars + 1)}),
                                  "parameters"))


@_breaks("delivery.profile-value-length")
def _profile_value_length(client: str) -> st.SearchStrategy[HttpRequest]:
    sizes = st.integers(LIMITS.profile_parameter_value_chars + 1, LIMITS.profile_parameter_value_chars + 50)
    return _with_params(client, sizes.map(lambda n: {"tier": "v" * n}))


@_breaks("delivery.too-large")
def _too_large(client: str) -> st.SearchStrategy[HttpRequest]:
    filler = {**_CONTEXT, "requestId": "r", "padding": "x" * (1024 * 1024)}
    return st.just(_request(client, filler))


#: The Delivery API error rules, each with its own strategy.
DELIVERY_RULES: tuple[str, ...] = tuple(_MAKERS)


def invalid_delivery_requests(rule_id: str | None = None, *, client: str = "demo") -> st.SearchStrategy[InvalidCall]:
    """Delivery API calls that break the error rule ``rule_id`` (one of :data:`DELIVERY_RULES`), or any of
    them; each is tagged with the fake's answer: the rule's status and a ``[rule-id]`` message."""
    _check_client(client)
    if rule_id is not None and rule_id not in _MAKERS:
        raise InvalidArgument(f"no delivery strategy for {rule_id!r}; rules: {', '.join(DELIVERY_RULES)}")
    chosen = (rule_id,) if rule_id is not None else DELIVERY_RULES

    def tagged(r: str) -> st.SearchStrategy[InvalidCall]:
        rule = RULES[r]
        return _MAKERS[r](client).map(
            lambda req: InvalidCall(req, rule, ExpectedOutcome.refusal(rule), "delivery"))

    return st.one_of(*(tagged(r) for r in chosen))
