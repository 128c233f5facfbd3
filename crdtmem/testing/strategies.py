"""Hypothesis strategies for what crdtmem can store.

Use :func:`values` for set elements and map keys, :func:`stored_values` for what a register or
map can hold, in your own property tests. :data:`COMMON` and :func:`elements` favour a few
values that collide, so that removes, overwrites and conflicts actually happen.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

__all__ = ["values", "stored_values", "COMMON", "elements"]

_MIN_INT, _MAX_INT = -(2**63), 2**64 - 1


def _scalars(max_size: int) -> SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(_MIN_INT, _MAX_INT),
        st.floats(allow_nan=False),
        st.text(max_size=max_size),
        st.binary(max_size=max_size),
    )


def values(*, max_size: int = 8, max_leaves: int = 8) -> SearchStrategy[Any]:
    """Any value crdtmem can use as a set element or map key.

    That is str, int (64-bit), float (no NaN), bool, None, bytes and tuples of these, nested.
    Use it to feed ``Memory`` handles or your own types in property tests.

    Args:
        max_size: longest str, bytes or tuple generated.
        max_leaves: most scalars in one nested value.
    """
    return st.recursive(
        _scalars(max_size),
        lambda inner: st.lists(inner, max_size=max_size).map(tuple),
        max_leaves=max_leaves,
    )


def stored_values(*, max_size: int = 8, max_leaves: int = 8) -> SearchStrategy[Any]:
    """Any value a register or map can hold: :func:`values` plus lists and dicts of them."""
    keys = values(max_size=max_size, max_leaves=2)
    return st.recursive(
        _scalars(max_size),
        lambda inner: st.one_of(
            st.lists(inner, max_size=max_size).map(tuple),
            st.lists(inner, max_size=max_size),
            st.dictionaries(keys, inner, max_size=max_size),
        ),
        max_leaves=max_leaves,
    )


# A few values that collide often, so removes, overwrites and conflicts actually happen.
COMMON = (0, 1, True, "a", "b", b"a", None, 1.5, ("a", 1))


def elements() -> SearchStrategy[Any]:
    """A :data:`COMMON` value or any small one of :func:`values`."""
    return st.one_of(st.sampled_from(COMMON), values(max_size=3, max_leaves=3))

