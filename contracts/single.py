"""Single profile update: parse and build ``/m2/<client>/profile/update`` requests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal
from urllib.parse import quote, unquote, urlencode

from .ids import check_third_party_id, check_tnt_id
from .rules import LIMITS, Judged, Violation, rule

__all__ = ["IdParam", "SingleUpdate", "SingleUpdateRequest", "build_single_update", "parse_single_update",
           "query_pairs", "single_update_request"]

#: The parameter that names a single update's profile (its tntId or thirdPartyId).
IdParam = Literal["mboxPC", "mbox3rdPartyId"]
PROFILE_PREFIX = "profile."
FORM = "application/x-www-form-urlencoded"
#: The headers of a POST single update (read-only: requests built with them share it)
FORM_HEADERS: Mapping[str, str] = MappingProxyType({"Content-Type": FORM})
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(slots=True)
class SingleUpdate(Judged):
    """A parsed single update: which profile, which attributes, and what broke the contract."""

    id_kind: IdParam | None
    profile_id: str | None
    attributes: dict[str, str]  #: names without the ``profile.`` prefix; empty values left out
    violations: list[Violation] = field(default_factory=list)
    other_id: tuple[IdParam, str] | None = None  #: the second identifier, when both were sent


def query_pairs(text: str, *, errors: str = "replace") -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True)``, unquoting only the parts that need it: most
    parameters carry no ``%`` or ``+``, and the per-part calls were most of the parse. ``errors`` is
    the codec error handler for escapes that do not decode as UTF-8."""
    pairs = []
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in part:
            name, value = name.replace("+", " "), value.replace("+", " ")
        if "%" in part:
            name, value = unquote(name, errors=errors), unquote(value, errors=errors)
        pairs.append((name, value))
    return pairs


def _json_params(body: bytes) -> list[tuple[str, str]] | None:
    try:
        data = json.loads(body.decode("utf-8"))
        if not isinstance(data, dict):
            return None
        out = []
        for k, v in data.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif v is None:
                v = ""
            elif not isinstance(v, str):
                v = json.dumps(v) if isinstance(v, (dict, list)) else str(v)
            out.append((str(k), v))
        return out
    # RecursionError: nesting deeper than the interpreter's stack (60 KB of brackets is enough)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def parse_single_update(
    method: str,
    query: str,
    *,
    content_type: str = "",
    body: bytes = b"",
    target_length: int | None = None,
) -> SingleUpdate:
    """Parse a single update from its method, raw query string and body.

    ``target_length`` is the byte length of the request target (path and query) that a GET is
    measured by; it defaults to the query's length.
    """
    violations: list[Violation] = []
    method = method.upper()
    if method not in ("GET", "POST"):
        v = Violation(rule("single.method"), f"{method} is not allowed; use GET or POST", "method")
        return SingleUpdate(None, None, {}, [v])
    if method == "GET":
        size = target_length if target_length is not None else len(query.encode())
        if size > LIMITS.single_get_bytes:
            violations.append(Violation(rule("single.get-too-large"),
                                        f"the GET request is {size} bytes; the limit is "
                                        f"{LIMITS.single_get_bytes} bytes (8 KB)", "request"))
    else:
        size = len(query.encode()) + len(body)
        if size > LIMITS.single_post_bytes:
            violations.append(Violation(rule("single.post-too-large"),
                                        f"the POST request carries {size} bytes of parameters; the limit is "
                                        f"{LIMITS.single_post_bytes} bytes (60 KB)", "request"))
    if violations:  # too large to read further: Adobe's front end refuses it as it is
        return SingleUpdate(None, None, {}, violations)

    params = query_pairs(query)
    if method == "POST" and body:
        ctype = content_type.split(";", 1)[0].strip().lower()
        if ctype == FORM or ctype == "":
            try:
                params += query_pairs(body.decode("utf-8"))
            except UnicodeDecodeError:
                violations.append(Violation(rule("single.unknown-body"),
                                            "the form body is not UTF-8 text", "body"))
        elif ctype.endswith("json"):
            parsed = _json_params(body)
            if parsed is None:
                violations.append(Violation(rule("single.unknown-body"),
                                            "the JSON body is not a flat JSON object", "body"))
            else:
                params += parsed
                violations.append(Violation(rule("single.json-body"),
                                            "the parameters were sent as a JSON body", "body"))
        else:
            violations.append(Violation(rule("single.unknown-body"),
                                        f"a {ctype} body is not a form; send the parameters as "
                                        f"{FORM}", "body"))
    return _interpret(params, violations)


def _interpret(params: list[tuple[str, str]], violations: list[Violation]) -> SingleUpdate:
    ids: dict[str, str] = {}
    attributes: dict[str, str] = {}
    saw_profile_param = False
    for name, value in params:
        if name in ("mboxPC", "mbox3rdPartyId"):
            ids[name] = value
        elif name.startswith(PROFILE_PREFIX) and len(name) > len(PROFILE_PREFIX):
            saw_profile_param = True
            attr = name[len(PROFILE_PREFIX):]
            if value == "":
                attributes.pop(attr, None)
                violations.append(Violation(rule("single.empty-value"),
                                            f"{name} is empty; empty values never clear an attribute", name))
            else:
                attributes[attr] = value
        elif name in ("mboxMCGVID", "marketingCloudVisitorId", "customerIds", "tntId", "thirdPartyId"):
            violations.append(Violation(rule("single.unsupported-identifier"),
                                        f"{name} is not an identifier of the single update API", name))
        else:
            violations.append(Violation(rule("single.prefixless-parameter"),
                                        f"parameter {name!r} is not an attribute (attributes are sent as "
                                        f"profile.<name>); it is ignored", name))
    id_kind: IdParam | None = None
    other: tuple[IdParam, str] | None = None
    if "mbox3rdPartyId" in ids:
        id_kind = "mbox3rdPartyId"
        violations += check_third_party_id(ids["mbox3rdPartyId"], "mbox3rdPartyId")
        if "mboxPC" in ids:
            other = ("mboxPC", ids["mboxPC"])
            violations.append(Violation(rule("single.both-identifiers"),
                                        "both mboxPC and mbox3rdPartyId were sent; the fake updates the "
                                        "profile found by mbox3rdPartyId, else by mboxPC", "mboxPC"))
    elif "mboxPC" in ids:
        id_kind = "mboxPC"
        violations += check_tnt_id(ids["mboxPC"], "mboxPC")
    else:
        violations.append(Violation(rule("single.identifier-missing"),
                                    "the request has neither mboxPC nor mbox3rdPartyId", "identifier"))
    if not saw_profile_param:
        violations.append(Violation(rule("single.no-attributes"),
                                    "the request has no profile.<name>=<value> parameter", "attributes"))
    profile_id = ids.get(id_kind) if id_kind else None
    return SingleUpdate(id_kind, profile_id, attributes, violations, other)


@dataclass(frozen=True, slots=True)
class SingleUpdateRequest:
    """A ready-to-send single update: ``requests.request(r.method, base + r.path, ...)``."""

    method: Literal["GET", "POST"]
    path: str
    query: str  #: the encoded query string (without ``?``)
    body: bytes | None
    headers: Mapping[str, str]

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


def build_single_update(
    profile_id: str,
    attributes: Mapping[str, str],
    *,
    id_kind: IdParam = "mbox3rdPartyId",
    method: Literal["GET", "POST"] = "GET",
    client: str = "client",
) -> SingleUpdateRequest:
    """Serialise a single update the documented way: UTF-8, percent-encoded, ``profile.<name>``.

    GET puts everything in the query string; POST sends it as a form body.
    """
    pairs = [(id_kind, profile_id), *((PROFILE_PREFIX + k, v) for k, v in attributes.items())]
    return single_update_request(pairs, method=method, client=client)


def single_update_request(
    pairs: Iterable[tuple[str, str]],
    *,
    method: Literal["GET", "POST"] = "GET",
    client: str = "client",
) -> SingleUpdateRequest:
    """Serialise any parameters as a single update, in order and unchecked (so also ones that break a
    rule): each name and value percent-encoded as UTF-8, in the query string (GET) or a form body (POST)."""
    encoded = urlencode(list(pairs), quote_via=quote, safe="")
    path = f"/m2/{client}/profile/update"
    if method == "GET":
        return SingleUpdateRequest("GET", path, encoded, None, _NO_HEADERS)
    return SingleUpdateRequest("POST", path, "", encoded.encode("ascii"), FORM_HEADERS)
