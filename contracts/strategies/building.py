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


def _hint(hint: int) -> str:
    # ``hint`` 1.._HINTS: odd ``.NN``, even ``.N_N`` / ``.NN_NN`` / ``.NN_N`` (Target issues one- and
    # two-digit parts: .01_00, .17_05, .28_0, .35_0, .01)
    node, odd = divmod(hint, 2)
    if odd:
        return f".{node % 100:02d}"
    node -= 1
    cluster, member = divmod(node, 100)
    width = node % 3  # 0: .NN_NN, 1: .NN_N, 2: .N_N
    if width == 0:
        return f".{cluster % 100:02d}_{member:02d}"
    if width == 1:
        return f".{cluster % 100:02d}_{member % 10}"
    return f".{cluster % 10}_{member % 10}"


def _tnt_id(head: int, rest: int = 0, hint_offset: int = 0) -> str:
    # documented examples: 1368007744041-575948.01_00, 111492025094307-353046, 1436187396849-250353.03_03,
    # 10abf6304b2714215b1fd39a870f01afc.28_20 (Delivery API), 123 (bulk sample), 123.35_0 (SDK sample).
    # ``rest`` packs the 6-digit number (low digits) and the location hint (0 none): one draw instead
    # of four, and small values (which Hypothesis favours and shrinks towards) mean no hint. ``head``
    # picks the shape: most are <digits>-<digits>; the top range gives 32 hex digits or plain digits.
    hint, tail = divmod(rest, 1_000_000)
    hint += hint_offset
    if head < _DASHED:
        base = f"{head}-{tail:06d}"
    elif head % 2:
        base = f"{(head * 0x9E3779B97F4A7C15 + tail) % 16**32:032x}" + ("c" if tail % 5 == 0 else "")
    else:
        base = str(head % 10**6 + tail)
    return base if hint <= 0 else base + _hint(hint)


_DASHED = 10**15
_HEADS = st.integers(10**12, _DASHED + _DASHED // 4)  # a fifth of the draws: 32 hex digits or plain digits
_HINTS = 2 * 100 * 100  # 1 .. _HINTS are the location hints


def tnt_ids(*, with_location_hint: bool | None = None) -> st.SearchStrategy[str]:
    """Target ids (``mboxPC``, ``pcId``, ``tntId``) in the shapes Target issues: ``<digits>-<digits>``,
    32 hex digits or plain digits, with an optional location hint (``.01_00``, ``.28_0``, ``.17``).

    ``with_location_hint`` True always adds a location hint, False never does, None (the default)
    draws either.
    """
    if with_location_hint not in (None, True, False):
        raise InvalidArgument(f"with_location_hint={with_location_hint!r} must be True, False or None")
    if with_location_hint is None:
        return st.builds(_tnt_id, _HEADS, st.integers(0, (_HINTS + 1) * 1_000_000 - 1))
    if with_location_hint:
        return st.builds(_tnt_id, _HEADS, st.integers(0, _HINTS * 1_000_000 - 1), st.just(1))
    return st.builds(_tnt_id, _HEADS, st.integers(0, 999_999))


def third_party_ids(*, min_size: int = 1, max_size: int | None = None,
                    alphabet: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[str]:
    """Customer ids (``mbox3rdPartyId``, ``thirdPartyId``) within the documented rules: no ``+``, no ``/``,
    1 to 256 characters.

    The default alphabet is any printable Unicode character; pass ``alphabet`` (a strategy of single
    characters) to narrow it. Characters ``+`` and ``/`` are never produced, whatever the alphabet.
    """
    max_size = check_sizes(min_size, max_size, LIMITS.third_party_id_max_chars, floor=1,
                           ceiling=LIMITS.third_party_id_max_chars)
    if alphabet is None:
        # a plain characters() alphabet keeps st.text on its fast path (no draw per character)
        return st.text(_THIRD_PARTY_CHARS, min_size=min_size, max_size=max_size)
    # a forbidden character is mapped to a fixed allowed one rather than filtered: generation never stalls
    return st.text(alphabet.map(lambda c: "_" if c in "+/" else c), min_size=min_size, max_size=max_size)


_THIRD_PARTY_CHARS = st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="+/")


def attribute_names(*, min_size: int = 1, max_size: int | None = None) -> st.SearchStrategy[str]:
    """Profile attribute names as sent after ``profile.`` (single update) or as batch headers.

    A letter, then letters, digits, ``_``, ``-`` and ``.``; never starting with ``profile.`` (which the
    fake strips as a prefix). Default ``max_size`` is 32.
    """
    max_size = check_sizes(min_size, max_size, 32, floor=1)
    # one text draw, its first character moved onto a letter (rather than a separate draw for it)
    return st.text(NAME_CHARS, min_size=min_size, max_size=max_size).map(_as_name)


_TO_LETTER = str.maketrans("0123456789_-.", "abcdefghijklm")


def _as_name(text: str) -> str:
    name = text[0].translate(_TO_LETTER) + text[1:]
    return "P" + name[1:] if name.startswith("profile.") else name


#: Names real profiles use; attribute maps draw most names from here, so updates keep meeting the same
#: attributes (overwrites, case and punctuation in names) while a fresh name still turns up.
COMMON_NAMES = ("tier", "email", "firstName", "city", "a", "b", "loyalty.points", "favorite-color", "x_y",
                "Tier")


#: The characters that break naive encoders; values draw them often, not only by chance.
RESERVED_CHARS = '+&=%,"'


#: Values that break naive encoders or decoders, drawn often rather than left to chance.
INTERESTING_VALUES = ("", "+", "&", "=", "%", ",", '"', " ", RESERVED_CHARS, "a+b", "x&y=z", "100%", "%41",
                      "%%20", "a,b", '"quoted"', "1+1=2", "é", "Grüße & Küsse", "日本語", "😀=%", "\u00a0",
                      "tab\tnew\nline", ";#?/", "  padded  ", "null")


def attribute_values(*, min_size: int = 0, max_size: int | None = None) -> st.SearchStrategy[str]:
    """Attribute values: any Unicode text (no lone surrogates, which UTF-8 cannot carry), with the
    reserved characters ``+ & = % , "``, non-ASCII and the empty value drawn often. Default
    ``max_size`` is 64.

    An empty value is valid to send but never sets or clears an attribute (EL-BULK 2025-10-28).
    """
    max_size = check_sizes(min_size, max_size, 64)
    text = st.text(_VALUE_CHARS, min_size=min_size, max_size=max_size)
    # Two draws per value: which branch, then the value. A text whose alphabet mixes the reserved
    # characters in would cost a draw per character and run several times slower.
    known = [v for v in INTERESTING_VALUES if min_size <= len(v) <= max_size]
    return st.one_of(st.sampled_from(known), text) if known else text


_VALUE_CHARS = st.characters(exclude_categories=("Cs",))


def profile_attributes(*, min_size: int = 0, max_size: int | None = None,
                       names: st.SearchStrategy[str] | None = None,
                       values: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[dict[str, str]]:
    """Attribute maps ``{name: value}``; ``max_size`` defaults to 4. Default values are
    :func:`attribute_values`; default names are :data:`COMMON_NAMES` in half the maps, and in the other
    half a fresh :func:`attribute_names` one draw in three, mixed with common ones."""
    max_size = check_sizes(min_size, max_size, 4)
    values = values if values is not None else _DEFAULT_VALUES
    if names is not None:
        return st.dictionaries(names, values, min_size=min_size, max_size=max_size)
    # A key drawn from a plain sampled_from costs one choice, and a one_of of names three draws, so the
    # choice between common and fresh names is made once per map rather than once per name.
    return st.one_of(st.dictionaries(_COMMON, values, min_size=min_size, max_size=max_size),
                     st.dictionaries(_MIXED_NAMES, values, min_size=min_size, max_size=max_size))


_COMMON = st.sampled_from(COMMON_NAMES)
# the common names as two branches (one_of picks a branch uniformly): a fresh name one draw in three
_MIXED_NAMES = st.one_of(st.sampled_from(COMMON_NAMES[:5]), st.sampled_from(COMMON_NAMES[5:]),
                         attribute_names(max_size=16))
_DEFAULT_VALUES = attribute_values()
