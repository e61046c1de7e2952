"""Invalid requests: each breaks exactly one error rule of :data:`target_profile_mock.contracts.RULES` and carries the
outcome the fake gives it, derived from the rule table (status, ``success`` false, ``[rule-id]``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import quote, quote_plus

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ..batch import batch_update_path
from ..rules import LIMITS, RULES, Rule, Severity
from ..single import FORM, FORM_HEADERS, PROFILE_PREFIX, single_update_request
from ._http import HttpRequest, as_http
from .building import attribute_names, attribute_values, profile_attributes, third_party_ids, tnt_ids
from .valid import BatchCall, _check_client, batch_files

__all__ = [
    "BREAKABLE_RULES",
    "ExpectedOutcome",
    "InvalidCall",
    "invalid_batch_files",
    "invalid_calls",
    "invalid_single_updates",
]


@dataclass(frozen=True, slots=True)
class ExpectedOutcome:
    """What the fake answers to a request that breaks ``rule``: HTTP status, the XML ``<success>`` flag,
    and a fragment of the ``<message>``."""

    status: int
    success: bool
    message: str

    @classmethod
    def refusal(cls, rule: Rule) -> ExpectedOutcome:
        return cls(rule.status, False, f"[{rule.id}]")


@dataclass(frozen=True)
class InvalidCall:
    """A request that breaks exactly one error rule, and the outcome it must get."""

    request: HttpRequest
    rule: Rule
    expected: ExpectedOutcome
    surface: Literal["single-update", "batch-submit", "delivery"]

    @property
    def rule_id(self) -> str:
        return self.rule.id


Maker = Callable[[str], st.SearchStrategy[tuple[HttpRequest, str]]]
_MAKERS: dict[str, tuple[Literal["single-update", "batch-submit"], Maker]] = {}


def _breaks(rule_id: str, surface: Literal["single-update", "batch-submit"]) -> Callable[[Maker], Maker]:
    def deco(fn: Maker) -> Maker:
        assert RULES[rule_id].severity is Severity.ERROR, rule_id
        _MAKERS[rule_id] = (surface, fn)
        return fn
    return deco


_ids = st.one_of(st.tuples(st.just("mboxPC"), tnt_ids()), st.tuples(st.just("mbox3rdPartyId"),
                                                                      third_party_ids(max_size=64)))
_attrs = profile_attributes(min_size=1, max_size=4, values=attribute_values(max_size=24))
_methods = st.sampled_from(("GET", "POST"))


def _single(client: str, method: str, pairs: list[tuple[str, str]]) -> HttpRequest:
    return as_http(single_update_request(pairs, method=method, client=client))  # type: ignore[arg-type]


def _profile_pairs(attrs: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(PROFILE_PREFIX + k, v) for k, v in attrs.items()]


# --- single update rules ---------------------------------------------------------------------------
@_breaks("single.identifier-missing", "single-update")
def _no_identifier(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    # sometimes with an identifier the API does not take (a deviation, never an identifier)
    other = st.lists(st.tuples(st.sampled_from(("mboxMCGVID", "marketingCloudVisitorId", "customerIds", "tntId")),
                               st.text("0123456789abcdef", min_size=1, max_size=20)), max_size=1)
    return st.builds(lambda m, a, o: (_single(client, m, o + _profile_pairs(a)), "no mboxPC or mbox3rdPartyId"),
                     _methods, _attrs, other)


@_breaks("single.no-attributes", "single-update")
def _no_attributes(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    names = st.sampled_from(("profile.", "profile", "attr", "prof.x"))
    extra = st.lists(st.tuples(names, attribute_values(max_size=8)), max_size=2)
    return st.builds(lambda m, i, e: (_single(client, m, [i, *e]), "no profile.<name> parameter"),
                     _methods, _ids, extra)


@_breaks("single.get-too-large", "single-update")
def _get_too_large(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    def build(i: tuple[str, str], name: str, chunk: str) -> tuple[HttpRequest, str]:
        # the chunk is repeated, not drawn whole: a 9 KB value costs a few drawn characters
        value = (chunk * (LIMITS.single_get_bytes // max(1, len(quote(chunk, safe=""))) + 1))
        return _single(client, "GET", [i, (PROFILE_PREFIX + name, value)]), "GET over 8 KB"
    return st.builds(build, _ids, attribute_names(max_size=12), attribute_values(min_size=1, max_size=8))


@_breaks("single.post-too-large", "single-update")
def _post_too_large(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    def build(i: tuple[str, str], name: str, chunk: str, extra: int) -> tuple[HttpRequest, str]:
        value = chunk * (LIMITS.single_post_bytes // max(1, len(quote(chunk, safe=""))) + 1 + extra)
        return _single(client, "POST", [i, (PROFILE_PREFIX + name, value)]), "POST over 60 KB"
    return st.builds(build, _ids, attribute_names(max_size=12), attribute_values(min_size=1, max_size=8),
                     st.integers(0, 100))


@_breaks("single.method", "single-update")
def _single_method(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    return st.builds(lambda m, i, a: (replace(_single(client, "GET", [i, *_profile_pairs(a)]), method=m),
                                      f"method {m}"),
                     st.sampled_from(("PUT", "PATCH", "DELETE")), _ids, _attrs)


@_breaks("single.unknown-body", "single-update")
def _unknown_body(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    def build(i: tuple[str, str], a: dict[str, str], how: int, ctype: str) -> tuple[HttpRequest, str]:
        get = _single(client, "GET", [i, *_profile_pairs(a)])
        if how == 0:  # a body that is neither a form nor JSON
            return replace(get, method="POST", body=get.query.encode(), headers={"Content-Type": ctype}), ctype
        if how == 1:  # JSON that is not a flat object
            return (replace(get, method="POST", body=b"[1, 2]", headers={"Content-Type": "application/json"}),
                    "JSON array body")
        return (replace(get, method="POST", body=b"profile.x=\xff\xfe", headers={"Content-Type": FORM}),
                "form body that is not UTF-8")
    return st.builds(build, _ids, _attrs, st.integers(0, 2),
                     st.sampled_from(("text/plain", "application/xml", "text/csv", "application/octet-stream")))


def _with_plus_or_slash(ids: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Customer ids with ``+``, ``/`` or both put in at a drawn place (they break id.third-party-chars)."""
    def put(base: str, at: int, chars: str) -> str:
        at %= len(base) + 1
        return base[:at] + chars + base[at:]
    return st.builds(put, ids, st.integers(0, 256), st.sampled_from(("+", "/", "+/")))


def _too_long(ids: st.SearchStrategy[str], most_over: int) -> st.SearchStrategy[str]:
    """Customer ids over the 256-character limit by 1 to ``most_over`` + 1: a drawn id repeated (a long id
    costs a few drawn characters)."""
    limit = LIMITS.third_party_id_max_chars
    return st.builds(lambda s, n: (s * (limit // len(s) + 2 + n))[: limit + 1 + n], ids, st.integers(0, most_over))


@_breaks("id.third-party-chars", "single-update")
def _third_party_chars(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    return st.builds(lambda m, pid, a: (_single(client, m, [("mbox3rdPartyId", pid), *_profile_pairs(a)]),
                                        f"mbox3rdPartyId {pid!r}"),
                     _methods, _with_plus_or_slash(third_party_ids(max_size=40)), _attrs)


@_breaks("id.third-party-length", "single-update")
def _third_party_length(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    long_ids = _too_long(third_party_ids(max_size=8, alphabet=st.characters(min_codepoint=33, max_codepoint=126)),
                         100)
    return st.builds(lambda m, pid, a: (_single(client, m, [("mbox3rdPartyId", pid), *_profile_pairs(a)]),
                                        f"mbox3rdPartyId of {len(pid)} characters"), _methods, long_ids, _attrs)


@_breaks("id.empty", "single-update")
def _empty_id(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    return st.builds(lambda m, k, a: (_single(client, m, [(k, ""), *_profile_pairs(a)]), f"empty {k}"),
                     _methods, st.sampled_from(("mboxPC", "mbox3rdPartyId")), _attrs)


# --- batch rules -----------------------------------------------------------------------------------
_small_batches = batch_files(max_rows=5, max_attributes=3, max_templates=5)


def _submit(call: BatchCall, body: bytes, method: str = "POST") -> HttpRequest:
    return HttpRequest(method, call.path, "", body, FORM_HEADERS)


def _lines(call: BatchCall) -> list[bytes]:
    return call.body.split(b"\n")


@_breaks("batch.missing-prefix", "batch-submit")
def _missing_prefix(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    def build(c: BatchCall, lead: str) -> tuple[HttpRequest, str]:
        body = c.body[len(b"batch="):]
        return _submit(c, lead.encode() + body), "body without batch="
    return st.builds(build, batch_files(client=client, max_rows=5), st.sampled_from(("", "data=", "Batch=", "csv=")))


@_breaks("batch.empty", "batch-submit")
def _empty(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    bodies = st.sampled_from((b"", b"batch=", b"batch=\n", b"\n", b" \n\n", b"batch= \n", b"batch=\r\n"))
    return st.builds(lambda v, b: (HttpRequest("POST", batch_update_path(client, v), "", b, FORM_HEADERS),
                                   f"body {b!r}"), st.sampled_from((1, 2)), bodies)


def _with_header_key(c: BatchCall, key: str) -> bytes:
    lines = _lines(c)
    head = lines[0].split(b",", 1)
    lines[0] = b"batch=" + quote(key, safe="").encode() + (b"," + head[1] if len(head) > 1 else b"")
    return b"\n".join(lines)


@_breaks("batch.bad-key-header", "batch-submit")
def _bad_key(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    keys = st.one_of(st.sampled_from(("pcid", "PCID", "thirdpartyid", "ThirdPartyId", "mboxPC", "mbox3rdPartyId",
                                      "tntId", "id", "customerId", "")),
                     attribute_names(max_size=12).map(_not_a_key))
    return st.builds(lambda c, k: (_submit(c, _with_header_key(c, k)), f"key header {k!r}"),
                     _small_batches, keys)


def _not_a_key(name: str) -> str:
    # a drawn name that happens to be a real key (or an ECID name, another rule) is moved off it
    return "x" + name if name in ("pcId", "thirdPartyId") or name.lower() in _ECID_NAMES else name


_ECID_NAMES = ("marketingcloudvisitorid", "ecid", "mcid")


@_breaks("batch.form-encoded-file", "batch-submit")
def _form_encoded_file(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    def build(c: BatchCall, plus: bool) -> tuple[HttpRequest, str]:
        # requests' data={"batch": text} (urlencode: quote_plus), or a whole-file quote()
        text = c.body[len(b"batch="):].decode("ascii")
        encoded = quote_plus(text, safe="") if plus else quote(text, safe="")
        return _submit(c, b"batch=" + encoded.encode("ascii")), "the whole file form-encoded as one field"
    return st.builds(build, batch_files(client=client, max_rows=5, max_attributes=3), st.booleans())


@_breaks("batch.ecid-key", "batch-submit")
def _ecid_key(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    keys = st.sampled_from(("marketingCloudVisitorId", "ECID", "ecid", "mcid", "MCID", "MarketingCloudVisitorID"))
    return st.builds(lambda c, k: (_submit(c, _with_header_key(c, k)), f"key header {k!r}"),
                     _small_batches, keys)


@_breaks("batch.no-attribute-headers", "batch-submit")
def _no_attribute_headers(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    def build(c: BatchCall, empties: int) -> tuple[HttpRequest, str]:
        lines = _lines(c)
        lines[0] = b"batch=" + c.key.encode() + b"," * empties
        return _submit(c, b"\n".join(lines)), "header with no attribute names"
    return st.builds(build, _small_batches, st.integers(0, 3))


@_breaks("batch.too-large", "batch-submit")
def _too_large(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    def build(c: BatchCall, extra: int) -> tuple[HttpRequest, str]:
        head = c.body
        row = _lines(c)[1] + b"\n"
        n = (LIMITS.batch_max_bytes - len(head)) // len(row) + 1 + extra
        return _submit(c, head + row * n), f"{len(head) + len(row) * n:,} bytes"
    return st.builds(build, batch_files(client=client, max_rows=2), st.integers(0, 1000))


@_breaks("batch.too-many-rows", "batch-submit")
def _too_many_rows(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    def build(version: int, key: str, value: str, extra: int) -> tuple[HttpRequest, str]:
        n = LIMITS.batch_max_rows + 1 + extra
        # tiny rows keep the file far below 50 MB, so only the row count breaks a rule
        row = b"r," + quote(value, safe="").encode() + b"\n"
        body = b"batch=" + key.encode() + b",a\n" + row * n
        return HttpRequest("POST", batch_update_path(client, version), "", body, FORM_HEADERS), f"{n:,} rows"
    return st.builds(build, st.sampled_from((1, 2)), st.sampled_from(("pcId", "thirdPartyId")),
                     attribute_values(max_size=3), st.integers(0, 10))


def _inject(c: BatchCall, line: int, at: int, text: bytes) -> bytes:
    lines = _lines(c)
    i = line % (len(lines) - 1)  # the last element is the empty string after the final newline
    start = len(b"batch=") if i == 0 else 0
    pos = start + at % (len(lines[i]) - start + 1)
    lines[i] = lines[i][:pos] + text + lines[i][pos:]
    return b"\n".join(lines)


@_breaks("batch.raw-ampersand", "batch-submit")
def _raw_ampersand(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    return st.builds(lambda c, li, at, t: (_submit(c, _inject(c, li, at, t)), "raw & in a line"),
                     _small_batches, st.integers(0, 10), st.integers(0, 500), st.sampled_from((b"&", b"a&b=c", b"&&")))


@_breaks("batch.bad-encoding", "batch-submit")
def _bad_encoding(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    bad = st.sampled_from((b"%FF", b"%C3", b"%80", b"%ED%A0%80", b"\xff", b"\xc3(", b"%F0%9F"))
    return st.builds(lambda c, li, at, t: (_submit(c, _inject(c, li, at, t)), f"{t!r} in a line"),
                     _small_batches, st.integers(0, 10), st.integers(0, 500), bad)


@_breaks("batch.unterminated-quote", "batch-submit")
def _unterminated_quote(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    def build(c: BatchCall, li: int, cell: str) -> tuple[HttpRequest, str]:
        lines = _lines(c)
        i = 1 + li % (len(lines) - 2)  # a data row: an unreadable header line is refused for it instead
        lines[i] = lines[i] + b',"' + quote(cell, safe="").encode()
        return _submit(c, b"\n".join(lines)), "a quote that does not close"
    return st.builds(build, _small_batches, st.integers(0, 10), attribute_values(max_size=8))


@_breaks("batch.third-party-id", "batch-submit")
def _bad_third_party_row(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    ids = third_party_ids(max_size=30)
    bad_ids = st.one_of(_with_plus_or_slash(ids), _too_long(ids, 50))

    def build(c: BatchCall, li: int, pid: str) -> tuple[HttpRequest, str]:
        lines = _lines(c)
        i = 1 + li % (len(lines) - 2)
        rest = lines[i].split(b",", 1)
        lines[i] = quote(pid, safe="").encode() + (b"," + rest[1] if len(rest) > 1 else b"")
        return _submit(c, b"\n".join(lines)), f"thirdPartyId {pid!r}"
    return st.builds(build, batch_files(client=client, max_rows=5, max_attributes=3,
                                        keys=st.just("thirdPartyId")), st.integers(0, 10), bad_ids)


@_breaks("batch.method", "batch-submit")
def _batch_method(client: str) -> st.SearchStrategy[tuple[HttpRequest, str]]:
    return st.builds(lambda c, m: (_submit(c, c.body if m != "GET" else b"", m), f"method {m}"),
                     _small_batches, st.sampled_from(("GET", "PUT", "PATCH", "DELETE")))


#: The error rules a request payload can break, each with its own strategy (``invalid_calls(rule_id)``).
BREAKABLE_RULES: tuple[str, ...] = tuple(_MAKERS)


def _one(rule_id: str, client: str) -> st.SearchStrategy[InvalidCall]:
    surface, maker = _MAKERS[rule_id]
    r = RULES[rule_id]
    return maker(client).map(lambda pair: InvalidCall(pair[0], r, ExpectedOutcome.refusal(r), surface))


def invalid_calls(rule_id: str | None = None, *, client: str = "demo") -> st.SearchStrategy[InvalidCall]:
    """Requests that break the error rule ``rule_id`` (one of :data:`BREAKABLE_RULES`), or any of them
    when None. Each example breaks exactly that one error rule, so its outcome is fully determined."""
    _check_client(client)
    if rule_id is None:
        return st.one_of(*(_one(r, client) for r in BREAKABLE_RULES))
    if rule_id not in RULES:
        raise InvalidArgument(f"no rule {rule_id!r}; rules with strategies: {', '.join(BREAKABLE_RULES)}")
    if RULES[rule_id].severity is not Severity.ERROR:
        raise InvalidArgument(f"{rule_id} is a {RULES[rule_id].severity}: the fake accepts such requests, "
                              "so there is no invalid example of it")
    if rule_id not in _MAKERS:
        raise InvalidArgument(f"{rule_id} is not about a request payload (rate limits, auth and batch status "
                              f"are covered by scenarios); rules with strategies: {', '.join(BREAKABLE_RULES)}")
    return _one(rule_id, client)


def invalid_single_updates(*, client: str = "demo") -> st.SearchStrategy[InvalidCall]:
    """Single updates that break one error rule each."""
    _check_client(client)
    return st.one_of(*(_one(r, client) for r, (s, _) in _MAKERS.items() if s == "single-update"))


def invalid_batch_files(*, client: str = "demo", include_huge: bool = True) -> st.SearchStrategy[InvalidCall]:
    """Batch submissions that break one error rule each. ``include_huge=False`` leaves out the files over
    50 MB or 500,000 rows, which take a second or more to build and send."""
    _check_client(client)
    huge = () if include_huge else ("batch.too-large", "batch.too-many-rows")
    return st.one_of(*(_one(r, client) for r, (s, _) in _MAKERS.items() if s == "batch-submit" and r not in huge))


