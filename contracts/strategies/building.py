"""Building blocks: identifiers, attribute names, attribute values and profile attribute maps."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ..rules import LIMITS

__all__ = ["attribute_names", "attribute_values", "profile_attributes", "third_party_ids", "tnt_ids"]

#: Characters in attribute names: Adobe documents none beyond "URL-encoded UTF-8", so names stay to the
#: letters, digits and punctuation every public example and client uses.
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
_NAME_START = NAME_CHARS[:52]


def check_sizes(min_size: int, max_size: int | None, default: int, *, floor: int = 0,
                ceiling: int | None = None) -> int:
    """Validate ``min_size``/``max_size`` eagerly; the effective ``max_size`` (``default`` when None)."""
    if not isinstance(min_size, int) or isinstance(min_size, bool) or min_size < floor:
        raise InvalidArgument(f"min_size={min_size!r} must be an integer >= {floor}")
    if ceiling is not None and min_size > ceiling:
        raise InvalidArgument(f"min_size={min_size!r} is over the limit of {ceiling}")
    if max_size is None:
        return max(min(default, ceiling) if ceiling is not None else default, min_size)
    if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < min_size:
        raise InvalidArgument(f"max_size={max_size!r} must be an integer >= min_size={min_size}")
    if ceiling is not None and max_size > ceiling:
        raise InvalidArgument(f"max_size={max_size!r} is over the limit of {ceiling}")
    return max_size


@st.composite
def _tnt_ids(draw: st.DrawFn, with_location_hint: bool | None) -> str:
    # documented examples: 1368007744041-575948.01_00, 111492025094307-353046, 1436187396849-250353.03_03
    head = draw(st.integers(10**12, 10**15 - 1))
    tail = draw(st.integers(0, 999_999))
    base = f"{head}-{tail:06d}"
    hint = draw(st.booleans()) if with_location_hint is None else with_location_hint
    if not hint:
        return base
    node = draw(st.integers(0, 99))
    if draw(st.booleans()):
        return f"{base}.{node:02d}_{draw(st.integers(0, 99)):02d}"
    return f"{base}.{node:02d}"


def tnt_ids(*, with_location_hint: bool | None = None) -> st.SearchStrategy[str]:
    """Target ids (``mboxPC``, ``pcId``, ``tntId``) in the documented ``<digits>-<digits>[.<hint>]`` format.

    ``with_location_hint`` True always adds a location hint (``.01_00`` or ``.17``), False never does,
    None (the default) draws either.
    """
    if with_location_hint not in (None, True, False):
        raise InvalidArgument(f"with_location_hint={with_location_hint!r} must be True, False or None")
    return _tnt_ids(with_location_hint)


def third_party_ids(*, min_size: int = 1, max_size: int | None = None,
                    alphabet: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[str]:
    """Customer ids (``mbox3rdPartyId``, ``thirdPartyId``) within the documented rules: no ``+``, no ``/``,
    1 to 256 characters.

    The default alphabet is any printable Unicode character; pass ``alphabet`` (a strategy of single
    characters) to narrow it. Characters ``+`` and ``/`` are never produced, whatever the alphabet.
    """
    max_size = check_sizes(min_size, max_size, LIMITS.third_party_id_max_chars, floor=1,
                           ceiling=LIMITS.third_party_id_max_chars)
    chars = alphabet if alphabet is not None else st.characters(exclude_categories=("Cs", "Cc"),
                                                                exclude_characters="+/")
    # a forbidden character is mapped to a fixed allowed one rather than filtered: generation never stalls
    chars = chars.map(lambda c: "_" if c in "+/" else c)
    return st.text(chars, min_size=min_size, max_size=max_size)


def attribute_names(*, min_size: int = 1, max_size: int | None = None) -> st.SearchStrategy[str]:
    """Profile attribute names as sent after ``profile.`` (single update) or as batch headers.

    A letter, then letters, digits, ``_``, ``-`` and ``.``; never starting with ``profile.`` (which the
    fake strips as a prefix). Default ``max_size`` is 32.
    """
    max_size = check_sizes(min_size, max_size, 32, floor=1)
    return st.builds(lambda a, b: a + b, st.sampled_from(_NAME_START),
                     st.text(NAME_CHARS, min_size=min_size - 1, max_size=max_size - 1)).map(
        lambda n: "P" + n[1:] if n.startswith("profile.") else n)


#: The characters that break naive encoders; values draw them often, not only by chance.
RESERVED_CHARS = '+&=%,"'


def attribute_values(*, min_size: int = 0, max_size: int | None = None) -> st.SearchStrategy[str]:
    """Attribute values: any Unicode text (no lone surrogates, which UTF-8 cannot carry), with the
    reserved characters ``+ & = % , "`` and the empty value drawn often. Default ``max_size`` is 64.

    An empty value is valid to send but never sets or clears an attribute (EL-BULK 2025-10-28).
    """
    max_size = check_sizes(min_size, max_size, 64)
    # three plain text strategies (each on Hypothesis's fast path for alphabets) rather than one text of
    # a one_of alphabet, which costs a draw per character and runs ten times slower
    reserved = RESERVED_CHARS + " \n\t;#?"
    return st.one_of(
        st.text(_VALUE_CHARS, min_size=min_size, max_size=max_size),
        st.text(reserved, min_size=min_size, max_size=max_size),
        st.builds(lambda a, b: a + b, st.text(_VALUE_CHARS, max_size=max_size // 2),
                  st.text(reserved, min_size=min_size, max_size=max_size - max_size // 2)),
    )


_VALUE_CHARS = st.characters(exclude_categories=("Cs",))


def profile_attributes(*, min_size: int = 0, max_size: int | None = None,
                       names: st.SearchStrategy[str] | None = None,
                       values: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[dict[str, str]]:
    """Attribute maps ``{name: value}``; default names :func:`attribute_names`, values
    :func:`attribute_values`, ``max_size`` 8."""
    max_size = check_sizes(min_size, max_size, 8)
    return st.dictionaries(names if names is not None else attribute_names(),
                           values if values is not None else attribute_values(),
                           min_size=min_size, max_size=max_size)
