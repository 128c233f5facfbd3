"""G-Counter: one grow-only slot per replica; the value is their sum."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from .base import WHOLE

__all__ = ["GCounter"]


class GCounter:
    TAG = "gcounter"
    __slots__ = ("slots",)

    def __init__(self, slots: dict[str, int] | None = None) -> None:
        self.slots: dict[str, int] = slots if slots is not None else {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GCounter) and self.slots == other.slots

    def __repr__(self) -> str:
        return f"GCounter({self.slots})"

    @property
    def value(self) -> int:
        return sum(self.slots.values())

    def increment(self, replica: str, n: int = 1) -> GCounter:
        total = self.slots.get(replica, 0) + n
        self.slots[replica] = total
        return GCounter({replica: total})

    def join(self, other: GCounter) -> set[Hashable]:
        changed = False
        for replica, count in other.slots.items():
            if count > self.slots.get(replica, 0):
                self.slots[replica] = count
                changed = True
        return {WHOLE} if changed else set()

    def copy(self) -> GCounter:
        return GCounter(dict(self.slots))

    def writers(self) -> set[str]:
        return set(self.slots)

    def leaf_keys(self) -> Iterable[Hashable]:
        return (WHOLE,)
