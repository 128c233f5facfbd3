"""LWW-Register: the assignment with the greatest (hybrid timestamp, replica id) wins.

The pair is a total order, so there are no ties to break arbitrarily and every replica picks
the same winner.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from .base import WHOLE

__all__ = ["LWWRegister"]


class LWWRegister:
    TAG = "lwwregister"
    __slots__ = ("stamp", "replica", "payload")

    def __init__(self, stamp: int = 0, replica: str = "", payload: bytes | None = None) -> None:
        self.stamp, self.replica, self.payload = stamp, replica, payload

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LWWRegister) and self._key() == other._key()

    def __repr__(self) -> str:
        return f"LWWRegister({self.stamp}, {self.replica!r}, {self.payload!r})"

    def _key(self) -> tuple[int, str, bytes | None]:
        return (self.stamp, self.replica, self.payload)

    def assign(self, replica: str, stamp: int, payload: bytes) -> LWWRegister:
        """Write ``payload``; ``stamp`` must exceed :attr:`stamp` (the caller's clock sees to it)."""
        self.stamp, self.replica, self.payload = stamp, replica, payload
        return LWWRegister(stamp, replica, payload)

    def join(self, other: LWWRegister) -> set[Hashable]:
        if (other.stamp, other.replica) > (self.stamp, self.replica):
            self.stamp, self.replica, self.payload = other.stamp, other.replica, other.payload
            return {WHOLE}
        return set()

    def copy(self) -> LWWRegister:
        return LWWRegister(self.stamp, self.replica, self.payload)

    def max_stamp(self) -> int:
        return self.stamp

    def writers(self) -> set[str]:
        return {self.replica} if self.stamp else set()

    def leaf_keys(self) -> Iterable[Hashable]:
        return (WHOLE,)
