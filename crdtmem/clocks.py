"""Logical time: dots, causal contexts and a hybrid logical clock.

Nothing here reads a clock. The hybrid clock is handed the physical time.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import NamedTuple

__all__ = ["Dot", "CausalContext", "HybridClock", "count_unseen"]


class Dot(NamedTuple):
    """One event: the ``counter``-th write of ``replica``."""

    replica: str
    counter: int


class _Stray:
    """One replica's dots beyond its contiguous run: a set for lookups, a min-heap for draining
    from the bottom as the run grows, and the greatest (dots only ever leave from the bottom)."""

    __slots__ = ("dots", "heap", "top")

    def __init__(self, counters: Iterable[int] = ()) -> None:
        self.dots: set[int] = set(counters)
        self.heap: list[int] = list(self.dots)
        heapq.heapify(self.heap)
        self.top = max(self.dots, default=0)

    def add(self, counter: int) -> None:
        self.dots.add(counter)
        heapq.heappush(self.heap, counter)
        if counter > self.top:
            self.top = counter

    def copy(self) -> _Stray:
        twin = _Stray.__new__(_Stray)
        twin.dots, twin.heap, twin.top = set(self.dots), list(self.heap), self.top
        return twin


class CausalContext:
    """The set of dots a replica has seen: a compact version vector plus a cloud of stray dots.

    Dots contiguous from 1 live in ``vv``; dots seen out of order live in the cloud until the
    gap before them fills. Kept compact, so equal sets have equal representations.

    The cloud is kept per replica, so every operation costs the dots it touches — never the
    size of a range a peer names, nor the strays of other replicas: a peer that leaves tens of
    thousands of gapped dots in a context slows no later write to it.
    """

    __slots__ = ("vv", "_stray")

    def __init__(self, vv: dict[str, int] | None = None, cloud: Iterable[Dot] | None = None) -> None:
        self.vv: dict[str, int] = vv if vv is not None else {}
        self._stray: dict[str, _Stray] = {}
        if cloud:
            by_replica: dict[str, list[int]] = {}
            for replica, counter in cloud:
                by_replica.setdefault(replica, []).append(counter)
            self._stray = {replica: _Stray(counters) for replica, counters in by_replica.items()}

    @property
    def cloud(self) -> set[Dot]:
        """The stray dots, as a new set (build it only for small contexts or rare reads)."""
        return {Dot(replica, c) for replica, stray in self._stray.items() for c in stray.dots}

    def cloud_size(self) -> int:
        """How many stray dots the cloud holds."""
        return sum(len(stray.dots) for stray in self._stray.values())

    def iter_cloud(self) -> Iterator[Dot]:
        """Every stray dot, in no particular order, without building a set."""
        for replica, stray in self._stray.items():
            for counter in stray.dots:
                yield Dot(replica, counter)

    def stray(self, replica: str) -> set[int] | frozenset[int]:
        """The stray counters of ``replica`` (read-only)."""
        found = self._stray.get(replica)
        return found.dots if found is not None else frozenset()

    def __contains__(self, dot: Dot) -> bool:
        replica, counter = dot
        if counter <= self.vv.get(replica, 0):
            return True
        stray = self._stray.get(replica)
        return stray is not None and counter in stray.dots

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CausalContext) or self.vv != other.vv or self._stray.keys() != other._stray.keys():
            return False
        return all(stray.dots == other._stray[replica].dots for replica, stray in self._stray.items())

    def __repr__(self) -> str:
        return f"CausalContext({self.vv}, {sorted(self.iter_cloud())})"

    def size(self) -> int:
        """How many dots the context covers (used to pick the cheaper side of a join)."""
        return sum(self.vv.values()) + self.cloud_size()

    def dots(self) -> Iterator[Dot]:
        """Every dot covered; only sensible for small (delta) contexts."""
        for replica, top in self.vv.items():
            for counter in range(1, top + 1):
                yield Dot(replica, counter)
        yield from self.iter_cloud()

    def max(self, replica: str) -> int:
        """The greatest counter of ``replica`` covered (0: none); constant time."""
        stray = self._stray.get(replica)
        return stray.top if stray is not None else self.vv.get(replica, 0)

    def next_dot(self, replica: str) -> Dot:
        """A fresh dot for a local write by ``replica``, recorded in this context."""
        if replica in self._stray:
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
            if replica in self._stray:
                self._settle(replica)
        elif counter > top:
            stray = self._stray.get(replica)
            if stray is None:
                self._stray[replica] = _Stray((counter,))
            elif counter not in stray.dots:
                stray.add(counter)

    def _settle(self, replica: str) -> None:
        """Drop ``replica``'s strays the run now covers and pull in those that continue it."""
        stray = self._stray[replica]
        heap, dots, top = stray.heap, stray.dots, self.vv.get(replica, 0)
        while heap and heap[0] <= top + 1:
            counter = heapq.heappop(heap)
            dots.discard(counter)
            if counter == top + 1:
                top = counter
        if top:
            self.vv[replica] = top
        if not dots:
            del self._stray[replica]

    def join(self, other: CausalContext) -> bool:
        """Union, in place; say whether any dot was new. Cost: the size of ``other``."""
        vv, strays, grew = self.vv, self._stray, False
        for replica, counter in other.vv.items():
            if counter > vv.get(replica, 0):
                vv[replica] = counter
                grew = True
                if replica in strays:
                    self._settle(replica)
        for replica, theirs in other._stray.items():
            top, mine = vv.get(replica, 0), strays.get(replica)
            for counter in theirs.dots:
                if counter > top and (mine is None or counter not in mine.dots):
                    self.add(Dot(replica, counter))
                    grew = True
                    top, mine = vv.get(replica, 0), strays.get(replica)
        return grew

    def compact(self) -> None:
        """Move cloud dots that became contiguous into the version vector; drop covered ones."""
        for replica in list(self._stray):
            self._settle(replica)

    def copy(self) -> CausalContext:
        twin = CausalContext(dict(self.vv))
        twin._stray = {replica: stray.copy() for replica, stray in self._stray.items()}
        return twin

    def replicas(self) -> set[str]:
        return set(self.vv) | set(self._stray)


def count_unseen(ctx: CausalContext, seen: CausalContext) -> int:
    """How many dots of ``ctx`` ``seen`` lacks, counted without walking any range.

    Cost: the replicas and stray dots of ``ctx`` plus the strays of ``seen`` for those
    replicas, however large the counters are.
    """
    missing = 0
    for replica in ctx.replicas():
        top, have = ctx.vv.get(replica, 0), seen.vv.get(replica, 0)
        if top > have:
            missing += top - have - sum(1 for c in seen.stray(replica) if have < c <= top)
        for counter in ctx.stray(replica):
            if Dot(replica, counter) not in seen:
                missing += 1
    return missing


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
