"""Logical time: dots, causal contexts and a hybrid logical clock.

Nothing here reads a clock. The hybrid clock is handed the physical time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

__all__ = ["Dot", "CausalContext", "HybridClock"]


class Dot(NamedTuple):
    """One event: the ``counter``-th write of ``replica``."""

    replica: str
    counter: int


class CausalContext:
    """The set of dots a replica has seen: a compact version vector plus a cloud of stray dots.

    Dots contiguous from 1 live in ``vv``; dots seen out of order live in ``cloud`` until the
    gap before them fills. Kept compact, so equal sets have equal representations.
    """

    __slots__ = ("vv", "cloud")

    def __init__(self, vv: dict[str, int] | None = None, cloud: set[Dot] | None = None) -> None:
        self.vv: dict[str, int] = vv if vv is not None else {}
        self.cloud: set[Dot] = cloud if cloud is not None else set()

    def __contains__(self, dot: Dot) -> bool:
        return dot[1] <= self.vv.get(dot[0], 0) or dot in self.cloud

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CausalContext) and self.vv == other.vv and self.cloud == other.cloud

    def __repr__(self) -> str:
        return f"CausalContext({self.vv}, {sorted(self.cloud)})"

    def size(self) -> int:
        """How many dots the context covers (used to pick the cheaper side of a join)."""
        return sum(self.vv.values()) + len(self.cloud)

    def dots(self) -> Iterator[Dot]:
        """Every dot covered; only sensible for small (delta) contexts."""
        for replica, top in self.vv.items():
            for counter in range(1, top + 1):
                yield Dot(replica, counter)
        yield from self.cloud

    def max(self, replica: str) -> int:
        top = self.vv.get(replica, 0)
        for dot in self.cloud:
            if dot[0] == replica and dot[1] > top:
                top = dot[1]
        return top

    def next_dot(self, replica: str) -> Dot:
        """A fresh dot for a local write by ``replica``, recorded in this context."""
        if self.cloud:
            dot = Dot(replica, self.max(replica) + 1)
            self.add(dot)
            return dot
        counter = self.vv.get(replica, 0) + 1
        self.vv[replica] = counter
        return Dot(replica, counter)

    def add(self, dot: Dot) -> None:
        replica, counter = dot
        top = self.vv.get(replica, 0)
        if counter == top + 1:
            self.vv[replica] = counter
            if self.cloud:
                self._extend(replica)
        elif counter > top:
            self.cloud.add(dot)

    def _extend(self, replica: str) -> None:
        """Pull cloud dots of ``replica`` that now continue its contiguous run into the vv."""
        cloud, top = self.cloud, self.vv.get(replica, 0)
        while (following := Dot(replica, top + 1)) in cloud:
            cloud.remove(following)
            top += 1
        self.vv[replica] = top

    def join(self, other: CausalContext) -> bool:
        """Union, in place; say whether any dot was new. Cost: the size of ``other``."""
        vv, raised = self.vv, []
        for replica, counter in other.vv.items():
            if counter > vv.get(replica, 0):
                vv[replica] = counter
                raised.append(replica)
        if raised and self.cloud:
            self.cloud = {dot for dot in self.cloud if dot[1] > vv.get(dot[0], 0)}
            for replica in raised:
                self._extend(replica)
        grew = bool(raised)
        for dot in other.cloud:
            if dot not in self:
                self.add(dot)
                grew = True
        return grew

    def compact(self) -> None:
        """Move cloud dots that became contiguous into the version vector; drop covered ones."""
        vv = self.vv
        self.cloud = {dot for dot in self.cloud if dot[1] > vv.get(dot[0], 0)}
        for replica in {dot[0] for dot in self.cloud}:
            if Dot(replica, vv.get(replica, 0) + 1) in self.cloud:
                self._extend(replica)

    def copy(self) -> CausalContext:
        return CausalContext(dict(self.vv), set(self.cloud))

    def replicas(self) -> set[str]:
        return set(self.vv) | {dot[0] for dot in self.cloud}


class HybridClock:
    """A hybrid logical clock (Kulkarni et al.) whose physical part is handed in.

    A timestamp is one int: milliseconds since the epoch shifted left 16 bits, plus a logical
    counter. Timestamps from one clock strictly increase, and ``tick(now, after=t)`` is later
    than ``t``, so a write that has seen another always orders after it.
    """

    LOGICAL_BITS = 16

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    @property
    def last(self) -> int:
        return self._last

    def tick(self, now: float, after: int = 0) -> int:
        """Return a new timestamp for a local event at physical time ``now`` (seconds)."""
        physical = int(now * 1000) << self.LOGICAL_BITS
        stamp = max(physical, self._last + 1, after + 1)
        self._last = stamp
        return stamp

    def observe(self, stamp: int) -> None:
        """Fold in a timestamp seen from another replica."""
        if stamp > self._last:
            self._last = stamp

    @classmethod
    def wall_ms(cls, stamp: int) -> int:
        return stamp >> cls.LOGICAL_BITS

    @classmethod
    def bound(cls, now: float) -> int:
        """The greatest timestamp whose physical part is not after ``now`` (seconds)."""
        return ((int(now * 1000) + 1) << cls.LOGICAL_BITS) - 1
