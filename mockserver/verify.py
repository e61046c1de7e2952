"""``target-profile-mock verify``: replay recorded exchanges against a fresh fake and report where it differs.

A cassette (``docs/cassettes.md``) is a JSON file: the fake's ``setup`` (settings, seeded profiles), then
the recorded ``exchanges`` in order. Each request is replayed in process against a new
:class:`~target_profile_mock.mockserver.MockBackend`; the fake's answer is compared with the recorded one:
status, the media type, and the body (JSON and XML structurally, other text modulo whitespace), modulo
what the server generates (ids, timestamps, edge hosts). Ids the recorded server issued are mapped to the
ones the fake issued, and later requests are rewritten to use the fake's, so a status poll follows the
fake's batch. Every difference names a rule; the report groups them by rule.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

from target_profile_mock.contracts.ids import client_code_from_host

from .app import create_app
from .backend import ControlError, MockBackend
from .config import MockConfig
from .errors import unknown_keys
from .lifecycle import Lifecycle, LifecycleError

__all__ = ["FORMAT", "RULES", "VERSION", "Cassette", "CassetteError", "Difference", "main", "replay",
           "report", "verify"]

FORMAT = "target-profile-mock cassette"
VERSION = 1
#: What the recorder writes in place of a secret; on replay the fake's own token takes its place.
REDACTED = "REDACTED"

#: The rules a difference can break, with what they mean (printed in the report).
RULES: dict[str, str] = {
    "status": "the HTTP status differs",
    "header.content-type": "the media type of the response differs (compared only where the cassette recorded one)",
    "body.format": "one answer is JSON or XML and the other is not",
    "body.missing": "the recorded answer has an element or key the fake's answer lacks",
    "body.extra": "the fake's answer has an element or key the recorded one lacks",
    "body.value": "a value differs",
    "body.shape": "a generated value (id, timestamp, URL) does not have the recorded one's shape",
    "body.text": "a non-JSON, non-XML body differs (whitespace aside)",
}

#: Keys (JSON) and element names (XML) whose values the server generates: compared by shape, not value.
TIMESTAMP_KEYS = frozenset({"modifiedAt", "requestTime"})
ID_KEYS = frozenset({"batchId", "tntId", "requestId", "sessionId"})
URL_KEYS = frozenset({"batchStatus"})
HOST_KEYS = frozenset({"edgeHost"})

_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?")
_BATCH_ID = re.compile(r"[^\s-]+(-\d+)+")


class CassetteError(ValueError):
    """A cassette that cannot be replayed; the message names the file and what is wrong."""


@dataclass
class Exchange:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: str
    at: float | None = None  #: seconds since the cassette's first request, when recorded
    note: str = ""


@dataclass
class Cassette:
    path: str
    name: str
    setup: dict[str, Any]
    exchanges: list[Exchange]
    source: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Difference:
    cassette: str
    index: int  #: 1-based number of the exchange in its cassette
    request: str  #: "METHOD path"
    rule: str
    where: str  #: "status", a header name, or a path into the body ($.a.b, /response/batchId)
    recorded: Any
    fake: Any

    def line(self) -> str:
        return (f"{self.cassette} #{self.index} {self.request}: {self.where}: "
                f"recorded {_show(self.recorded)}, fake {_show(self.fake)}")


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    text = value if isinstance(value, str) else json.dumps(value)
    text = text if len(text) <= 120 else text[:117] + "..."
    return repr(text) if isinstance(value, str) else text


# --- reading ----------------------------------------------------------------------------------------
def _need(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise CassetteError(f"{where}: '{key}' is missing")
    if not isinstance(obj[key], kind):
        raise CassetteError(f"{where}: '{key}' must be {_kind_name(kind)}, got {obj[key]!r}")
    return obj[key]


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "a whole number", dict: "an object", list: "a list", float: "a number"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _body(obj: Mapping[str, Any], where: str) -> bytes:
    body = obj.get("body", "")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise CassetteError(f"{where}: 'body' must be a string (use body_encoding 'base64' for bytes)")
    encoding = obj.get("body_encoding", "utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            raise CassetteError(f"{where}: 'body' is not valid base64") from None
    if encoding != "utf-8":
        raise CassetteError(f"{where}: body_encoding must be 'utf-8' or 'base64', got {encoding!r}")
    return body.encode()


def _headers(obj: Mapping[str, Any], where: str) -> dict[str, str]:
    headers = obj.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in headers.items()):
        raise CassetteError(f"{where}: 'headers' must be an object of strings")
    return dict(headers)


def load(path: str | Path) -> Cassette:
    """Read and check a cassette file."""
    name = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CassetteError(f"{name}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CassetteError(f"{name}: not a JSON file ({exc})") from None
    return parse(data, name)


def parse(data: Any, name: str = "<cassette>") -> Cassette:
    """A cassette from its decoded JSON."""
    if not isinstance(data, dict):
        raise CassetteError(f"{name}: a cassette is a JSON object")
    if data.get("format") != FORMAT:
        raise CassetteError(f"{name}: 'format' must be {FORMAT!r} (is this a cassette?)")
    version = data.get("version")
    if version != VERSION:
        raise CassetteError(f"{name}: cassette version {version!r} is not supported; this fake reads version "
                            f"{VERSION}")
    setup = data.get("setup", {})
    if not isinstance(setup, dict):
        raise CassetteError(f"{name}: 'setup' must be an object")
    if unknown := unknown_keys(setup, ("settings", "profiles", "offers", "client_code"), f"{name}: setup"):
        raise CassetteError(unknown)
    raw = _need(data, "exchanges", list, name)
    exchanges = []
    for i, item in enumerate(raw, 1):
        where = f"{name}: exchange #{i}"
        if not isinstance(item, dict):
            raise CassetteError(f"{where} must be an object with 'request' and 'response'")
        req = _need(item, "request", dict, where)
        res = _need(item, "response", dict, where)
        method = _need(req, "method", str, f"{where} request").upper()
        url = _need(req, "url", str, f"{where} request")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CassetteError(f"{where} request: 'url' must be an absolute http(s) URL, got {url!r}")
        status = _need(res, "status", int, f"{where} response")
        at = item.get("at")
        if at is not None and (not isinstance(at, int | float) or at < 0):
            raise CassetteError(f"{where}: 'at' must be a number of seconds >= 0")
        exchanges.append(Exchange(
            method=method, url=url, headers=_headers(req, f"{where} request"),
            body=_body(req, f"{where} request"), status=status,
            response_headers=_headers(res, f"{where} response"),
            response_body=_body(res, f"{where} response").decode(errors="replace"),
            at=float(at) if at is not None else None, note=str(item.get("note", ""))))
    source = data.get("source", [])
    return Cassette(path=name, name=str(data.get("name", Path(name).stem)), setup=setup, exchanges=exchanges,
                    source=source if isinstance(source, list) else [source])


# --- the fake for one cassette -----------------------------------------------------------------------
def _backend(cassette: Cassette, overrides: Mapping[str, Any] | None = None) -> MockBackend:
    settings = {**cassette.setup.get("settings", {}), **(overrides or {})}
    if "client_code" in cassette.setup:
        settings.setdefault("client_code", cassette.setup["client_code"])
    if "lifecycle" in settings:
        try:
            settings["lifecycle"] = Lifecycle.parse(str(settings["lifecycle"]))
        except LifecycleError as exc:
            raise CassetteError(f"{cassette.path}: setup.settings.lifecycle: {exc}") from None
    try:
        config = MockConfig(**settings)
    except TypeError as exc:
        raise CassetteError(f"{cassette.path}: setup.settings (with --setting): {exc}") from None
    backend = MockBackend(config)
    backend.clock.freeze()
    profiles = cassette.setup.get("profiles", [])
    if profiles:
        try:
            backend.seed_profiles(config.client_code, profiles)
        except ControlError as exc:
            raise CassetteError(f"{cassette.path}: setup.profiles: {exc}") from None
    offers = cassette.setup.get("offers", [])
    if offers and not hasattr(backend, "set_offer"):
        raise CassetteError(f"{cassette.path}: setup.offers: this fake has no Delivery API offers")
    for i, offer in enumerate(offers):
        if not isinstance(offer, dict) or not isinstance(offer.get("mbox"), str):
            raise CassetteError(f"{cassette.path}: setup.offers[{i}]: give an object with mbox, content and type")
        try:
            backend.set_offer(config.client_code, offer["mbox"], offer.get("content"),
                              offer_type=offer.get("type", "json"))
        except ControlError as exc:
            raise CassetteError(f"{cassette.path}: setup.offers[{i}]: {exc}") from None
    return backend


# --- comparing ---------------------------------------------------------------------------------------
class _Ids:
    """Ids the recorded server issued, mapped to the ones the fake issued in their place."""

    def __init__(self) -> None:
        self.map: dict[str, str] = {}

    def learn(self, recorded: str, fake: str) -> None:
        if recorded and fake and recorded != fake and len(recorded) >= 6:
            self.map[recorded] = fake

    def rewrite(self, text: str) -> str:
        for recorded in sorted(self.map, key=len, reverse=True):  # longest first: one id may contain another
            text = text.replace(recorded, self.map[recorded])
        return text


def _same_shape(key: str, recorded: str, fake: str, ids: _Ids) -> bool:
    if key in TIMESTAMP_KEYS:
        return bool(_TIMESTAMP.fullmatch(recorded)) == bool(_TIMESTAMP.fullmatch(fake))
    if key in URL_KEYS:
        r, f = urlsplit(recorded), urlsplit(fake)
        if not recorded or not fake:
            return recorded == fake
        # the edge host (mboxedgeNN) is the deployment's; the path and the query's keys must agree
        rq, fq = dict(parse_qsl(r.query)), dict(parse_qsl(f.query))
        if r.path != f.path or ("batchId" in rq and "batchId" not in fq):
            return False
        if "batchId" in rq:
            ids.learn(rq["batchId"], fq["batchId"])
        return True
    if key == "batchId":
        ids.learn(recorded, fake)
        return ids.map.get(recorded, recorded) == fake or bool(_BATCH_ID.fullmatch(fake))
    if key in ID_KEYS:
        ids.learn(recorded.split(".")[0], fake.split(".")[0])
        return bool(fake)
    return True  # HOST_KEYS: any host


def _generated(key: str) -> bool:
    return key in TIMESTAMP_KEYS or key in ID_KEYS or key in URL_KEYS or key in HOST_KEYS


def _compare_json(rec: Any, fake: Any, path: str, key: str, out: list[tuple[str, str, Any, Any]],
                  ids: _Ids) -> None:
    if isinstance(rec, dict) and isinstance(fake, dict):
        for k, v in rec.items():
            if k not in fake:
                out.append(("body.missing", f"{path}.{k}", v, None))
            else:
                _compare_json(v, fake[k], f"{path}.{k}", k, out, ids)
        for k, v in fake.items():
            if k not in rec:
                out.append(("body.extra", f"{path}.{k}", None, v))
    elif isinstance(rec, list) and isinstance(fake, list):
        for i, (r, f) in enumerate(zip(rec, fake, strict=False)):
            _compare_json(r, f, f"{path}[{i}]", key, out, ids)
        for i in range(len(fake), len(rec)):
            out.append(("body.missing", f"{path}[{i}]", rec[i], None))
        for i in range(len(rec), len(fake)):
            out.append(("body.extra", f"{path}[{i}]", None, fake[i]))
    elif isinstance(rec, str) and isinstance(fake, str) and _generated(key):
        if not _same_shape(key, rec, fake, ids):
            out.append(("body.shape", path, rec, fake))
    elif rec != fake or type(rec) is not type(fake):
        out.append(("body.value", path, rec, fake))


def _compare_xml(rec: ET.Element, fake: ET.Element, path: str, out: list[tuple[str, str, Any, Any]],
                 ids: _Ids) -> None:
    if rec.tag != fake.tag:
        out.append(("body.value", f"{path} (element name)", rec.tag, fake.tag))
        return
    here = f"{path}/{rec.tag}"
    rtext, ftext = (rec.text or "").strip(), (fake.text or "").strip()
    if len(rec) == 0 and len(fake) == 0:
        if _generated(rec.tag):
            if not _same_shape(rec.tag, rtext, ftext, ids):
                out.append(("body.shape", here, rtext, ftext))
        elif rtext != ftext:
            out.append(("body.value", here, rtext, ftext))
    for name in sorted(set(rec.attrib) | set(fake.attrib)):
        if rec.attrib.get(name) != fake.attrib.get(name):
            out.append(("body.value", f"{here}/@{name}", rec.attrib.get(name), fake.attrib.get(name)))
    # children compared in order, per element name: the n-th <profile> with the n-th <profile>
    rkids: dict[str, list[ET.Element]] = {}
    fkids: dict[str, list[ET.Element]] = {}
    for kids, parent in ((rkids, rec), (fkids, fake)):
        for child in parent:
            kids.setdefault(child.tag, []).append(child)
    for tag in list(dict.fromkeys([*rkids, *fkids])):
        rs, fs = rkids.get(tag, []), fkids.get(tag, [])
        multi = len(rs) > 1 or len(fs) > 1
        for i, (r, f) in enumerate(zip(rs, fs, strict=False)):
            _compare_xml(r, f, here + (f"[{i + 1}]" if multi else ""), out, ids)
        for i, r in enumerate(rs[len(fs):], len(fs)):
            out.append(("body.missing", f"{here}/{tag}" + (f"[{i + 1}]" if multi else ""),
                        ET.tostring(r, encoding="unicode").strip(), None))
        for i, f in enumerate(fs[len(rs):], len(rs)):
            out.append(("body.extra", f"{here}/{tag}" + (f"[{i + 1}]" if multi else ""), None,
                        ET.tostring(f, encoding="unicode").strip()))


def _as_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _NOT


def _as_xml(text: str) -> ET.Element | None:
    if not text.lstrip().startswith("<"):
        return None
    try:
        return ET.fromstring(text.strip())
    except ET.ParseError:
        return None


_NOT = object()


def compare_bodies(recorded: str, fake: str, ids: _Ids | None = None) -> list[tuple[str, str, Any, Any]]:
    """The differences between two bodies as (rule, where, recorded, fake)."""
    ids = ids if ids is not None else _Ids()
    out: list[tuple[str, str, Any, Any]] = []
    if not recorded.strip() and not fake.strip():
        return out
    rj, fj = _as_json(recorded), _as_json(fake)
    if rj is not _NOT and isinstance(rj, dict | list):
        if fj is _NOT:
            out.append(("body.format", "body", "JSON", fake))
        else:
            _compare_json(rj, fj, "$", "", out, ids)
        return out
    rx, fx = _as_xml(recorded), _as_xml(fake)
    if rx is not None:
        if fx is None:
            out.append(("body.format", "body", "XML", fake))
        else:
            _compare_xml(rx, fx, "", out, ids)
        return out
    if " ".join(recorded.split()) != " ".join(fake.split()):
        out.append(("body.text", "body", recorded, fake))
    return out


def _media(headers: Mapping[str, str]) -> str | None:
    for k, v in headers.items():
        if k.lower() == "content-type":
            return v.split(";")[0].strip().lower()
    return None


def _tenant(parts: SplitResult, backend: MockBackend) -> str:
    """The tenant a request is for: /m2/<client>/, ?client=, the <code>.tt.omtrdc.net host, else the default."""
    m = re.match(r"/m2/([^/]+)/", parts.path)
    if m and m.group(1) != "client":
        return m.group(1)
    query = dict(parse_qsl(parts.query))
    return query.get("client") or client_code_from_host(parts.netloc) or backend.config.client_code


# --- replaying ---------------------------------------------------------------------------------------
def replay(cassette: Cassette, settings: Mapping[str, Any] | None = None) -> list[Difference]:
    """Replay one cassette against a fresh fake (``settings`` over the cassette's own); the differences,
    in exchange order."""
    backend = _backend(cassette, settings)
    client = create_app(backend).test_client()
    ids = _Ids()
    diffs: list[Difference] = []
    start = backend.clock.now()
    name = Path(cassette.path).name
    for i, ex in enumerate(cassette.exchanges, 1):
        if ex.at is not None:
            due = start + ex.at
            if due > backend.clock.now():
                backend.advance(due - backend.clock.now())
        url = ids.rewrite(ex.url)
        parts = urlsplit(url)
        headers = {k: ids.rewrite(v) for k, v in ex.headers.items() if k.lower() not in ("host", "content-length")}
        for k, v in list(headers.items()):
            if REDACTED in v and k.lower() == "authorization":
                # a recorded token is never stored; the fake's own stands in for it
                headers[k] = v.replace(REDACTED, backend.current_token(_tenant(parts, backend)).value)
        body = ids.rewrite(ex.body.decode(errors="surrogateescape")).encode(errors="surrogateescape")
        response = client.open(parts.path or "/", method=ex.method, query_string=parts.query, headers=headers,
                               data=body, base_url=f"{parts.scheme}://{parts.netloc}")
        got = response.get_data(as_text=True)
        shown = urlsplit(ex.url)  # as recorded: the reader finds it in the cassette
        request = f"{ex.method} {shown.path}" + (f"?{shown.query}" if shown.query else "")
        found: list[tuple[str, str, Any, Any]] = []
        if response.status_code != ex.status:
            found.append(("status", "status", ex.status, response.status_code))
        recorded_media = _media(ex.response_headers)
        if recorded_media is not None and recorded_media != _media(dict(response.headers)):
            found.append(("header.content-type", "Content-Type", recorded_media, _media(dict(response.headers))))
        found += compare_bodies(ex.response_body, got, ids)
        diffs += [Difference(name, i, request, *d) for d in found]
    return diffs


@dataclass
class Result:
    cassettes: list[Cassette]
    differences: list[Difference]

    @property
    def exchanges(self) -> int:
        return sum(len(c.exchanges) for c in self.cassettes)


def verify(paths: Iterable[str | Path], settings: Mapping[str, Any] | None = None) -> Result:
    """Load every cassette (a directory stands for the ``*.json`` files in it), replay each, collect."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.json"))
            if not found:
                raise CassetteError(f"{p}: a directory without cassettes (*.json)")
            files += found
        else:
            files.append(p)
    cassettes = [load(f) for f in files]  # every file is checked before anything is replayed
    diffs = [d for c in cassettes for d in replay(c, settings)]
    return Result(cassettes, diffs)


def report(result: Result) -> str:
    """The report: a summary line, then the differences grouped by rule."""
    differing = {(d.cassette, d.index) for d in result.differences}
    lines = [f"verify: {len(result.cassettes)} cassette(s), {result.exchanges} exchange(s), "
             f"{len(differing)} differ"]
    by_rule: dict[str, list[Difference]] = {}
    for d in result.differences:
        by_rule.setdefault(d.rule, []).append(d)
    for rule_id in RULES:
        group = by_rule.get(rule_id)
        if group:
            lines.append(f"\n{rule_id} ({len(group)}): {RULES[rule_id]}")
            lines += [f"  {d.line()}" for d in group]
    if not differing:
        lines.append("the fake answered every recorded request as recorded")
    return "\n".join(lines)


def main(paths: Sequence[str], settings: Mapping[str, Any] | None = None) -> int:
    """Exit status: 0 when the fake agrees with every cassette, 1 when it differs, 2 for a bad cassette."""
    try:
        result = verify(paths, settings)
    except CassetteError as exc:
        print(f"target-profile-mock verify: error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(report(result), flush=True)
    return 1 if result.differences else 0
