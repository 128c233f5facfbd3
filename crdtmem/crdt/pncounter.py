"""PN-Counter: a G-Counter of increments and one of decrements."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from .base import WHOLE
from .gcounter import GCounter

__all__ = ["PNCounter"]


class PNCounter:
    TAG = "pncounter"
    __slots__ = ("p", "n")

    def __init__(self, p: GCounter | None = None, n: GCounter | None = None) -> None:
        self.p = p if p is not None else GCounter()
        self.n = n if n is not None else GCounter()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PNCounter) and self.p == other.p and self.n == other.n

    def __repr__(self) -> str:
        return f"PNCounter(+{self.p.slots}, -{self.n.slots})"

    @property
    def value(self) -> int:
        return self.p.value - self.n.value

    def increment(self, replica: str, n: int = 1) -> PNCounter:
        return PNCounter(p=self.p.increment(replica, n))

    def decrement(self, replica: str, n: int = 1) -> PNCounter:
        return PNCounter(n=self.n.increment(replica, n))

    def join(self, other: PNCounter) -> set[Hashable]:
        return self.p.join(other.p) | self.n.join(other.n)

    def copy(self) -> PNCounter:
        return PNCounter(self.p.copy(), self.n.copy())

    def writers(self) -> set[str]:
        return self.p.writers() | self.n.writers()

    def leaf_keys(self) -> Iterable[Hashable]:
        return (WHOLE,)
