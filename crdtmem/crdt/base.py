"""What every crdtmem type provides, so Memory, the codec and the Merkle index can treat them alike."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import ClassVar, Protocol, Self

__all__ = ["Crdt", "WHOLE"]

WHOLE = b""
"""The single leaf key of types that the Merkle index digests as one piece."""


class Crdt(Protocol):
    """A delta-state CRDT: mutators change the state in place and return a delta of the same type.

    ``join`` is the least upper bound (commutative, associative, idempotent); a delta is joined
    like any state. Types that hold many independent entries split into leaves so the Merkle
    index digests one entry alone; the rest have the single leaf :data:`WHOLE`.

    A class providing this becomes storable and replicable with one
    :func:`~crdtmem.crdt.registry.register_type` call.
    """

    TAG: ClassVar[str]

    def join(self, other: Self) -> set[Hashable]:
        """Join ``other`` in place; return the leaf keys that changed."""

    def copy(self) -> Self: ...

    def writers(self) -> set[str]:
        """Replica ids whose slots, dots or timestamps this state (read as a delta) writes."""

    def leaf_keys(self) -> Iterable[Hashable]:
        """Every leaf key this state holds (for a delta: the leaves it touches)."""
