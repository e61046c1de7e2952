"""Valid requests: single updates and batch files, ready to send, with what they mean."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property, partial
from types import MappingProxyType
from typing import Literal

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ..batch import BatchKey, batch_update_path, encode_batch
from ..rules import LIMITS
from ..single import FORM_HEADERS, build_single_update
from ..single import IdParam as IdKind
from . import building as b
from ._http import HttpRequest, as_http
from .building import check_sizes, profile_attributes

__all__ = ["BatchCall", "BatchSpec", "SingleUpdateCall", "batch_files", "batch_specs", "single_updates"]

Method = Literal["GET", "POST"]


def _freeze(d: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(d))


# --- single updates --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SingleUpdateCall:
    """A valid single profile update: the request to send and what it asks for."""

    request: HttpRequest
    client: str
    id_kind: IdKind  #: ``mboxPC`` or ``mbox3rdPartyId``
    profile_id: str
    attributes: Mapping[str, str]  #: as sent, names without ``profile.``; empty values included

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def effective_attributes(self) -> dict[str, str]:
        """The attributes the update sets: empty values never set or clear anything."""
        return {k: v for k, v in self.attributes.items() if v != ""}


def _single_request(client: str, id_kind: IdKind, profile_id: str, attributes: Mapping[str, str],
                    method: Method) -> HttpRequest:
    return as_http(build_single_update(profile_id, attributes, id_kind=id_kind, method=method, client=client))


def _fits(req: HttpRequest) -> bool:
    if req.method == "GET":
        return len(req.target.encode()) <= LIMITS.single_get_bytes
    return len(req.query) + len(req.body) <= LIMITS.single_post_bytes


def _single_call(client: str, head: tuple[Method, IdKind, str], attrs: dict[str, str]) -> SingleUpdateCall:
    method, id_kind, profile_id = head
    req = _single_request(client, id_kind, profile_id, attrs, method)
    if not _fits(req):
        # Keep within the documented sizes without filtering: drop trailing attributes until it fits
        # (shrinking then favours the smaller requests anyway).
        while len(attrs) > 1 and not _fits(req):
            attrs = dict(list(attrs.items())[:-1])
            req = _single_request(client, id_kind, profile_id, attrs, method)
        if not _fits(req):
            name = next(iter(attrs))
            attrs = {name: attrs[name][:64]}
            req = _single_request(client, id_kind, profile_id, attrs, method)
    return SingleUpdateCall(req, client, id_kind, profile_id, _freeze(attrs))


def _heads(methods: st.SearchStrategy[Method] | None, id_kinds: st.SearchStrategy[IdKind] | None,
           tnt: st.SearchStrategy[str], third: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[Method, IdKind, str]]:
    """``(method, id kind, profile id)``. With the default methods and kinds, the branch of one one_of
    decides both (every layer of drawing costs, and a single update is drawn thousands of times a run)."""
    ids = {"mboxPC": tnt, "mbox3rdPartyId": third}
    if methods is None and id_kinds is None:
        return st.one_of(*(ids[k].map(partial(_head, m, k)) for k in ids for m in ("GET", "POST")))
    kinds = id_kinds if id_kinds is not None else st.sampled_from(tuple(ids))
    return st.tuples(methods if methods is not None else _METHODS, kinds.flatmap(
        lambda k: ids[k].map(partial(_pair, k)))).map(lambda t: (t[0], *t[1]))


def _head(method: Method, kind: IdKind, profile_id: str) -> tuple[Method, IdKind, str]:
    return method, kind, profile_id


def _pair(kind: IdKind, profile_id: str) -> tuple[IdKind, str]:
    return kind, profile_id


def single_updates(
    *,
    client: str = "demo",
    methods: st.SearchStrategy[Method] | None = None,
    id_kinds: st.SearchStrategy[IdKind] | None = None,
    attributes: st.SearchStrategy[dict[str, str]] | None = None,
    tnt_ids: st.SearchStrategy[str] | None = None,
    third_party_ids: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[SingleUpdateCall]:
    """Valid single updates (EL-SINGLE): GET or POST, by ``mboxPC`` or ``mbox3rdPartyId``, with at least
    one ``profile.<name>`` parameter, percent-encoded UTF-8, within 8 KB (GET) / 60 KB (POST).

    POST sends the parameters as an ``application/x-www-form-urlencoded`` body. Every argument that
    varies is a strategy: e.g. ``methods=st.just("POST")``. Default attributes are
    ``profile_attributes(min_size=1, max_size=3)``.
    """
    _check_client(client)
    # builds() over flat strategies rather than a composite, for the same reason as in _heads
    return st.builds(
        partial(_single_call, client),
        _heads(methods, id_kinds, tnt_ids if tnt_ids is not None else _default_tnt,
               third_party_ids if third_party_ids is not None else _default_third),
        attributes if attributes is not None else _default_attributes,
    )


def _check_client(client: str) -> None:
    if not isinstance(client, str) or not client or not client.replace("-", "").replace("_", "").isalnum():
        raise InvalidArgument(f"client={client!r} must be a client code such as 'demo' (letters, digits, - and _)")


_METHODS: st.SearchStrategy[Method] = st.sampled_from(("GET", "POST"))
_default_tnt = b.tnt_ids()
_default_third = b.third_party_ids()
_default_attributes = profile_attributes(min_size=1, max_size=3)


# --- batch files -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchSpec:
    """A small description of a batch file that expands deterministically to any number of rows.

    Rows ``0 .. len(templates)-1`` are the drawn template rows exactly. Every later row ``i`` copies
    template ``i % len(templates)``, with an id derived from ``seed`` and ``i`` and its non-empty cells
    marked with the row number, so a 500,000-row file costs a handful of drawn values, and
    shrinking works on the description.
    """

    version: Literal[1, 2]
    key: BatchKey
    attributes: tuple[str, ...]
    templates: tuple[tuple[str, tuple[str, ...]], ...]  #: ``(id, cells)``; cells may be short or empty
    rows: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.version not in (1, 2):
            raise ValueError(f"version must be 1 or 2, not {self.version!r}")
        if self.key not in ("pcId", "thirdPartyId"):
            raise ValueError(f"key must be pcId or thirdPartyId, not {self.key!r}")
        if not self.templates or self.rows < 0 or not self.attributes:
            raise ValueError("a batch spec needs attributes, at least one template row, and rows >= 0")
        if any(len(cells) > len(self.attributes) for _, cells in self.templates):
            raise ValueError("a template row has more cells than there are attributes")

    def _derived_id(self, i: int) -> str:
        if self.key == "pcId":
            return f"{1_000_000_000_000 + self.seed % 10**12}-{i:06d}"
        return f"gen-{self.seed}-{i}"

    def iter_rows(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        """Every row as ``(id, cells)``, in file order."""
        templates = self.templates
        k = len(templates)
        yield from templates[: self.rows]
        for i in range(k, self.rows):
            _, cells = templates[i % k]
            mark = f"~{i}"
            yield self._derived_id(i), tuple(c + mark if c else c for c in cells)


@dataclass(frozen=True)
class BatchCall:
    """A valid batch file and the request that submits it (EL-BULK)."""

    spec: BatchSpec
    client: str

    @property
    def version(self) -> Literal[1, 2]:
        return self.spec.version

    @property
    def key(self) -> BatchKey:
        return self.spec.key

    @property
    def attributes(self) -> tuple[str, ...]:
        return self.spec.attributes

    @property
    def row_count(self) -> int:
        return self.spec.rows

    def rows(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        return self.spec.iter_rows()

    def records(self) -> Iterator[tuple[str, dict[str, str]]]:
        """Each row as ``(id, {attribute: value})`` with empty cells left out (they set nothing)."""
        names = self.spec.attributes
        for row_id, cells in self.spec.iter_rows():
            yield row_id, {names[j]: v for j, v in enumerate(cells) if v}

    @cached_property
    def body(self) -> bytes:
        """The exact bytes sent: ``batch=`` then the percent-encoded CSV, one row a line."""
        return encode_batch(self.spec.key, self.spec.attributes, self.spec.iter_rows())

    @property
    def path(self) -> str:
        return batch_update_path(self.client, self.spec.version)

    @property
    def request(self) -> HttpRequest:
        return HttpRequest("POST", self.path, "", self.body, FORM_HEADERS)

    def __repr__(self) -> str:
        return f"BatchCall(client={self.client!r}, spec={self.spec!r})"


@st.composite
def _batch_specs(draw: st.DrawFn, min_rows: int, max_rows: int, versions: st.SearchStrategy[int],
                 keys: st.SearchStrategy[BatchKey], max_attributes: int, max_templates: int,
                 names: st.SearchStrategy[str], values: st.SearchStrategy[str],
                 tnt: st.SearchStrategy[str], third: st.SearchStrategy[str]) -> BatchSpec:
    version = draw(versions)
    key = draw(keys)
    attrs = tuple(draw(st.lists(names, min_size=1, max_size=max_attributes, unique=True)))
    rows = draw(st.integers(min_rows, max_rows))
    n_templates = draw(st.integers(1, max(1, min(max_templates, rows))))
    ids = tnt if key == "pcId" else third
    templates = []
    for _ in range(n_templates):
        row_id = draw(ids)
        cells = tuple(draw(st.lists(values, max_size=len(attrs))))
        templates.append((row_id, cells))
    seed = draw(st.integers(0, 2**32 - 1)) if rows > n_templates else 0
    return BatchSpec(version, key, attrs, tuple(templates), rows, seed)  # type: ignore[arg-type]


def batch_specs(
    *,
    min_rows: int = 1,
    max_rows: int | None = None,
    versions: st.SearchStrategy[int] | None = None,
    keys: st.SearchStrategy[BatchKey] | None = None,
    max_attributes: int = 5,
    max_templates: int = 8,
    attribute_names: st.SearchStrategy[str] | None = None,
    attribute_values: st.SearchStrategy[str] | None = None,
    tnt_ids: st.SearchStrategy[str] | None = None,
    third_party_ids: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[BatchSpec]:
    """Descriptions of valid batch files (see :class:`BatchSpec`); ``max_rows`` defaults to 20 and may be
    up to the documented 500,000. Files up to ``max_templates`` rows are drawn cell by cell."""
    max_rows = check_sizes(min_rows, max_rows, 20, ceiling=LIMITS.batch_max_rows)
    for name, n in (("max_attributes", max_attributes), ("max_templates", max_templates)):
        if not isinstance(n, int) or n < 1:
            raise InvalidArgument(f"{name}={n!r} must be an integer >= 1")
    return _batch_specs(
        min_rows, max_rows,
        versions if versions is not None else st.sampled_from((1, 2)),
        keys if keys is not None else st.sampled_from(("pcId", "thirdPartyId")),
        max_attributes, max_templates,
        attribute_names if attribute_names is not None else _batch_names,
        attribute_values if attribute_values is not None else _batch_values,
        tnt_ids if tnt_ids is not None else _default_tnt,
        third_party_ids if third_party_ids is not None else _batch_third,
    )


_batch_names = b.attribute_names(max_size=24)
_batch_values = b.attribute_values(max_size=32)
_batch_third = b.third_party_ids(max_size=64)


def batch_files(*, client: str = "demo", min_rows: int = 1, max_rows: int | None = None,
                **kwargs: object) -> st.SearchStrategy[BatchCall]:
    """Valid batch files, ready to send (``.request``, ``.body``), v1 or v2, keyed by ``pcId`` or
    ``thirdPartyId``. Keyword arguments are those of :func:`batch_specs`, e.g. ``max_rows=500_000``."""
    _check_client(client)
    return batch_specs(min_rows=min_rows, max_rows=max_rows, **kwargs).map(  # type: ignore[arg-type]
        lambda spec: BatchCall(spec, client))
