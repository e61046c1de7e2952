"""Adobe's API surfaces, each declared once: its operation name, routes, served methods, error shape
and rules.

Everything else reads this table: the views register their routes from it, the lean front in
``app.py`` builds its route matcher from the ``hot`` surfaces, the fault queue checks operation names
against it and a fault answers in the surface's error shape, the journal names each entry by its
surface's operation, the pytest plugin takes its operation names from it, and the tests hold
``openapi.json`` to it. The fake's own control API (``/_mock/``) is no surface: it is not Adobe's, meets
no faults and is not journaled; its routes are declared where they are served (``views/control.py``).

No Flask here: the model imports this module, so an error shape renders bytes, and the HTTP layer
wraps them in a response (``views.common.error_response``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from target_profile_mock.contracts.profile_json import format_timestamp
from target_profile_mock.contracts.xmlbodies import batch_refused, status_failure, update_failure

__all__ = ["ADMIN_MEDIA", "JSON", "OPERATIONS", "PATH_SHAPES", "ROUTE_METHODS", "SURFACES", "XML", "ErrorShape",
           "Route", "Surface", "by_operation", "route_pattern", "shape_of_path"]

XML = "application/xml;charset=UTF-8"
JSON = "application/json;charset=UTF-8"
#: The Admin API's media type.
ADMIN_MEDIA = "application/vnd.adobe.target.v1+json"

#: The methods every Adobe route takes to its view, which refuses those the API does not serve in the
#: API's own words (HEAD and OPTIONS are Flask's: OPTIONS is answered for every route, HEAD refused).
ROUTE_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True, slots=True)
class ErrorShape:
    """How one API words a refusal: ``render(status, message, code, now_ms)`` gives the body, of type
    ``media``. ``code`` is the Admin API's ``errorCode`` (derived from the status when None); ``now_ms``
    is the fake's clock, read only for a shape that is ``timed``."""

    name: str
    media: str
    render: Callable[[int, str, str | None, int], bytes]
    timed: bool = False


def _rest_error(status: int, message: str, code: str | None, now_ms: int) -> bytes:
    return json.dumps({"status": status, "message": message}).encode()


def _admin_error(status: int, message: str, code: str | None, now_ms: int) -> bytes:
    if code is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        code = "".join(w.capitalize() for w in phrase.replace("-", " ").split())
    # the Admin API's documented ErrorResponse (ADMIN-OAS)
    return json.dumps({"httpStatus": status, "requestId": str(uuid.uuid4()), "requestTime": format_timestamp(now_ms),
                       "errors": [{"errorCode": code, "message": message, "meta": {}}]}).encode()


UPDATE_XML = ErrorShape("update-xml", XML, lambda status, message, code, now_ms: update_failure(message))
BATCH_XML = ErrorShape("batch-xml", XML, lambda status, message, code, now_ms: batch_refused(message))
STATUS_XML = ErrorShape("status-xml", XML, lambda status, message, code, now_ms: status_failure(message))
REST_JSON = ErrorShape("rest-json", JSON, _rest_error)
ADMIN_JSON = ErrorShape("admin-json", ADMIN_MEDIA, _admin_error, timed=True)


@dataclass(frozen=True, slots=True)
class Route:
    """One route: a Werkzeug rule (plain ``<name>`` parts only), its Flask endpoint (``blueprint.name``),
    and the arguments the route adds to the view's (``(("version", 2),)``)."""

    rule: str
    endpoint: str
    args: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True, slots=True)
class Surface:
    """One API surface of Adobe's that the fake serves."""

    operation: str  #: its name in the journal, the fault queue and the plugin
    routes: tuple[Route, ...]
    served: tuple[str, ...]  #: the methods the API serves (``Allow``); the routes take ROUTE_METHODS
    error: ErrorShape  #: how it refuses a call (and how an injected fault answers)
    media: str  #: the media type of its answers (a damaged answer without one keeps it)
    rules: tuple[str, ...]  #: the rules its calls are judged by: ids, or prefixes ending in "."
    hot: bool = False  #: served by the lean front (``app.py``) without Flask's per-request machinery

    def judged_by(self, rule_id: str) -> bool:
        """Whether a violation of ``rule_id`` can come from a call to this surface."""
        return any(rule_id == r or (r.endswith(".") and rule_id.startswith(r)) for r in self.rules)


#: What every call to an ``/m2/`` route can break besides its own rules: auth, the client code, the
#: fake's tenant bound.
_M2_RULES = ("auth.", "tenant.")

SURFACES: tuple[Surface, ...] = (
    Surface("single-update", hot=True,
            routes=(Route("/m2/<client>/profile/update", "edge.profile_update"),),
            served=("GET", "POST"), error=UPDATE_XML, media=XML,
            rules=("single.", "id.", "rate.single", "profile.size", *_M2_RULES)),
    Surface("batch-submit",
            routes=(Route("/m2/<client>/profile/batchUpdate", "edge.batch_update_v1", (("version", 1),)),
                    Route("/m2/<client>/v2/profile/batchUpdate", "edge.batch_update_v2", (("version", 2),))),
            served=("POST",), error=BATCH_XML, media=XML,
            rules=("batch.", "id.", "rate.bulk", "profile.size", *_M2_RULES)),
    Surface("batch-status",
            routes=(Route("/m2/<client>/profile/batchStatus", "edge.batch_status_v1"),
                    Route("/m2/<client>/v2/profile/batchStatus", "edge.batch_status_v2")),
            served=("GET",), error=STATUS_XML, media=XML,
            rules=("status.", "rate.bulk", *_M2_RULES)),
    Surface("fetch", hot=True,
            routes=(Route("/rest/v1/profiles/thirdPartyId/<profile_id>", "edge.fetch_third_party",
                          (("kind", "thirdPartyId"),)),
                    Route("/rest/v1/profiles/marketingCloudVisitorId/<profile_id>", "edge.fetch_ecid",
                          (("kind", "marketingCloudVisitorId"),)),
                    Route("/rest/v1/profiles/<profile_id>", "edge.fetch_tnt", (("kind", "tntId"),))),
            served=("GET",), error=REST_JSON, media=JSON,
            rules=("fetch.", "auth.", "tenant.unknown")),
    Surface("token",
            routes=(Route("/<tenant>/target/authentication/token", "admin.token"),),
            served=("GET", "POST"), error=ADMIN_JSON, media=ADMIN_MEDIA,
            rules=("token.", "tenant.unknown")),
    Surface("delivery", hot=True,
            routes=(Route("/rest/v1/delivery", "delivery.delivery_route"),),
            served=("POST",), error=REST_JSON, media=JSON,
            rules=("delivery.", "profile.size", "tenant.unknown")),
)

#: Every operation name, in the table's order.
OPERATIONS: tuple[str, ...] = tuple(s.operation for s in SURFACES)
_BY_OPERATION = {s.operation: s for s in SURFACES}
_PART = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")


def by_operation(operation: str) -> Surface:
    """The surface of ``operation`` (a KeyError names the known ones)."""
    try:
        return _BY_OPERATION[operation]
    except KeyError:
        raise KeyError(f"no surface {operation!r}; surfaces: {', '.join(OPERATIONS)}") from None


def route_pattern(rule: str) -> tuple[str, tuple[str, ...]]:
    """A rule as a regular expression matching what Flask's router matches (each ``<name>`` one path
    segment, as Werkzeug's default converter), and its argument names in order."""
    names = tuple(_PART.findall(rule))
    pattern = "".join(re.escape(part) if i % 2 == 0 else "([^/]+)" for i, part in enumerate(_PART.split(rule)))
    return pattern, names


#: The error shape of a call no surface route took (an unknown route or method, a bug), by the API its
#: path aims at: ``/m2/`` Adobe's edge XML, ``/rest/`` its JSON; anything else is the fake's own.
PATH_SHAPES: tuple[tuple[str, ErrorShape], ...] = (("/m2/", STATUS_XML), ("/rest/", REST_JSON))


def shape_of_path(path: str) -> ErrorShape | None:
    """The error shape of the API ``path`` aims at, or None for the fake's own routes."""
    for prefix, shape in PATH_SHAPES:
        if path.startswith(prefix):
            return shape
    return None
