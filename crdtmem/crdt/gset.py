"""G-Set: elements (canonical value bytes) can be added, never removed."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

__all__ = ["GSet"]


class GSet:
    TAG = "gset"
    __slots__ = ("items",)

    def __init__(self, items: set[bytes] | None = None) -> None:
        self.items: set[bytes] = items if items is not None else set()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GSet) and self.items == other.items

    def __repr__(self) -> str:
        return f"GSet({sorted(self.items)})"

    def add(self, element: bytes) -> GSet:
        self.items.add(element)
        return GSet({element})

    def join(self, other: GSet) -> set[Hashable]:
        fresh = other.items - self.items
        self.items |= fresh
        return set(fresh)

    def copy(self) -> GSet:
        return GSet(set(self.items))

    def writers(self) -> set[str]:
        return set()  # an element names no author: anyone trusted may add any element

    def leaf_keys(self) -> Iterable[Hashable]:
        return self.items
