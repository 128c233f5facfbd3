"""Logical time: dots, causal contexts and a hybrid logical clock.

Nothing here reads a clock. The hybrid clock is handed the physical time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

__all__ = ["Dot", "CausalContext", "HybridClock", "count_unseen"]


class Dot(NamedTuple):
    """One event: the ``counter``-th write of ``replica``."""

    replica: str
    counter: int


_TOP, _DOTS, _HEAP = 0, 1, 2
"""A replica's strays: one int while there is one (most delta contexts hold exactly one dot,
and that is the hot path: no container to allocate), else a record ``[top, dots, heap]``: the
greatest stray, the stray counters (a set), and a min-heap of them built on first need (None
until then) to drain them from the bottom as the contiguous run grows. Dots only ever leave
from the bottom, so ``top`` stays right."""

_Strays = int | list


def _counters(strays: _Strays) -> set[int] | tuple[int]:
    return (strays,) if type(strays) is int else strays[_DOTS]


def _heap(record: list) -> list[int]:
    heap = record[_HEAP]
    if heap is None:
        heap = record[_HEAP] = list(record[_DOTS])
        heapq.heapify(heap)
    return heap


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
        self._stray: dict[str, _Strays] = {}  # replica → its strays, see _TOP
        if cloud:
            for replica, counter in cloud:
                self.add_stray(replica, counter)

    @classmethod
    def of_dot(cls, replica: str, counter: int) -> CausalContext:
        """The context of one dot (a local write's delta), built without the general checks."""
        ctx = cls.__new__(cls)
        if counter == 1:
            ctx.vv, ctx._stray = {replica: 1}, {}
        else:
            ctx.vv, ctx._stray = {}, {replica: counter}
        return ctx

    @property
    def cloud(self) -> set[Dot]:
        """The stray dots, as a new set (build it only for small contexts or rare reads)."""
        return {Dot(replica, counter) for replica, counter in self.iter_cloud()}

    def cloud_size(self) -> int:
        """How many stray dots the cloud holds."""
        if not self._stray:
            return 0
        return sum([1 if type(s) is int else len(s[_DOTS]) for s in self._stray.values()])

    def iter_cloud(self) -> Iterator[tuple[str, int]]:
        """Every stray dot as a ``(replica, counter)`` pair (equal to its Dot), in no order."""
        for replica, strays in self._stray.items():
            if type(strays) is int:
                yield (replica, strays)
            else:
                for counter in strays[_DOTS]:
                    yield (replica, counter)

    def cloud_pairs(self) -> list[tuple[str, int]]:
        """Every stray dot as a ``(replica, counter)`` pair, in a list (faster than iterating)."""
        out: list[tuple[str, int]] = []
        for replica, strays in self._stray.items():
            if type(strays) is int:
                out.append((replica, strays))
            else:
                out.extend([(replica, counter) for counter in strays[_DOTS]])
        return out

    def cloud_pairs_upto(self, other: CausalContext) -> list[tuple[str, int]]:
        """The stray dots that are no later than ``other``'s greatest dot of their replica (all
        of a replica ``other`` holds no dot of), as ``(replica, counter)`` pairs.

        A join asks it for the dots of an incoming context its entries may hold: a dot past
        everything its context has seen of that replica is in none of them. Cost: the strays
        of replicas ``other`` has seen this far, one C-level pass for the others.
        """
        out: list[tuple[str, int]] = []
        for replica, strays in self._stray.items():
            top = other.max(replica)
            if type(strays) is int:
                if not top or strays <= top:
                    out.append((replica, strays))
            elif not top or top >= strays[_TOP]:
                out.extend([(replica, counter) for counter in strays[_DOTS]])
            elif min(strays[_DOTS]) <= top:
                out.extend([(replica, counter) for counter in strays[_DOTS] if counter <= top])
        return out

    def single(self) -> tuple[str, int] | None:
        """The context's only dot if it holds exactly one (a fresh write's delta), else None."""
        vv, strays = self.vv, self._stray
        if vv:
            if strays or len(vv) != 1:
                return None
            ((replica, top),) = vv.items()
            return (replica, 1) if top == 1 else None
        if len(strays) != 1:
            return None
        ((replica, counter),) = strays.items()
        return (replica, counter) if type(counter) is int else None

    def stray_replicas(self) -> Iterable[str]:
        """The replicas with stray dots (read-only)."""
        return self._stray.keys()

    def stray(self, replica: str) -> set[int] | tuple[int, ...]:
        """The stray counters of ``replica`` (read-only)."""
        strays = self._stray.get(replica)
        return () if strays is None else _counters(strays)

    def __contains__(self, dot: Dot) -> bool:
        replica, counter = dot
        if counter <= self.vv.get(replica, 0):
            return True
        strays = self._stray.get(replica)
        if strays is None:
            return False
        return counter == strays if type(strays) is int else counter in strays[_DOTS]

    def unseen_of(self, dots: dict) -> dict:
        """The items of ``dots`` (keyed by dot) whose dot this context lacks; one call per map.

        Returns ``dots`` itself when the context has seen none of them (treat it as read-only).
        """
        vv, strays = self.vv, self._stray
        for d in dots:
            if d[1] <= vv.get(d[0], 0) or (
                (s := strays.get(d[0])) is not None and (d[1] == s if type(s) is int else d[1] in s[_DOTS])
            ):
                break
        else:
            return dots
        return {
            d: p for d, p in dots.items()
            if d[1] > vv.get(d[0], 0)
            and ((s := strays.get(d[0])) is None or (d[1] != s if type(s) is int else d[1] not in s[_DOTS]))
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CausalContext) or self.vv != other.vv or self._stray.keys() != other._stray.keys():
            return False
        theirs = other._stray
        return all(set(_counters(s)) == set(_counters(theirs[r])) for r, s in self._stray.items())

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
        strays = self._stray.get(replica)
        if strays is None:
            return self.vv.get(replica, 0)
        return strays if type(strays) is int else strays[_TOP]

    def next_dot(self, replica: str) -> Dot:
        """A fresh dot for a local write by ``replica``, recorded in this context."""
        return Dot(replica, self.next_counter(replica))

    def next_counter(self, replica: str) -> int:
        """The counter of a fresh dot for a local write by ``replica``, recorded in this context."""
        if replica in self._stray:
            counter = self.max(replica) + 1
            self.add((replica, counter))  # type: ignore[arg-type]  # a plain tuple is cheaper
            return counter
        counter = self.vv.get(replica, 0) + 1
        self.vv[replica] = counter
        return counter

    def add(self, dot: Dot) -> bool:
        """Record ``dot``; say whether it was new (False: the context held it, nothing changed)."""
        replica, counter = dot
        top = self.vv.get(replica, 0)
        if counter == top + 1:
            self.vv[replica] = counter
            if replica in self._stray:
                self._settle(replica)
        elif counter > top:
            strays = self._stray.get(replica)
            if strays is None:
                self._stray[replica] = counter
            elif type(strays) is list:  # (inlined from add_stray: this is every write's path)
                dots = strays[_DOTS]
                if counter in dots:
                    return False
                dots.add(counter)
                if strays[_HEAP] is not None:
                    heapq.heappush(strays[_HEAP], counter)
                if counter > strays[_TOP]:
                    strays[_TOP] = counter
            elif counter != strays:
                self._stray[replica] = [max(strays, counter), {strays, counter}, None]
            else:
                return False
        else:
            return False
        return True

    def add_stray(self, replica: str, counter: int) -> None:
        """Record a dot without the contiguity check; call :meth:`compact` once after the last.

        For decoding a context dot by dot (a dot already recorded is ignored).
        """
        strays = self._stray.get(replica)
        if strays is None:
            self._stray[replica] = counter
        elif type(strays) is int:
            if counter != strays:
                self._stray[replica] = [max(strays, counter), {strays, counter}, None]
        elif counter not in strays[_DOTS]:
            strays[_DOTS].add(counter)
            if strays[_HEAP] is not None:
                heapq.heappush(strays[_HEAP], counter)
            if counter > strays[_TOP]:
                strays[_TOP] = counter

    def add_strays(self, dots: list[tuple[str, int]]) -> None:
        """Record many dots (a decoded context's cloud) without the contiguity check, as
        :meth:`add_stray` does one by one but with a replica's strays going in as one set;
        call :meth:`compact` once after."""
        replicas = {replica for replica, _ in dots}
        if len(replicas) == 1:  # the common cloud: one writer's batch
            by_replica = {replicas.pop(): {counter for _, counter in dots}}
        else:
            by_replica = {}
            for replica, counter in dots:
                by_replica.setdefault(replica, set()).add(counter)
        for replica, counters in by_replica.items():
            held = self._stray.get(replica)
            if held is not None:
                counters.update(_counters(held))
            self._stray[replica] = next(iter(counters)) if len(counters) == 1 else [max(counters), counters, None]

    def _settle(self, replica: str) -> None:
        """Drop ``replica``'s strays the run now covers and pull in those that continue it."""
        strays, top = self._stray[replica], self.vv.get(replica, 0)
        if type(strays) is int:
            if strays <= top + 1:
                del self._stray[replica]
                if strays == top + 1:
                    self.vv[replica] = strays
            return
        heap, dots = _heap(strays), strays[_DOTS]
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
            if type(theirs) is int:  # the common case: a delta's one dot
                if theirs > vv.get(replica, 0):
                    mine = strays.get(replica)
                    if mine is None or (theirs != mine if type(mine) is int else theirs not in mine[_DOTS]):
                        self.add((replica, theirs))  # type: ignore[arg-type]  # a plain tuple is cheaper
                        grew = True
                continue
            dots, top = theirs[_DOTS], vv.get(replica, 0)
            if theirs[_TOP] - top == len(dots) and min(dots) == top + 1:  # exactly the run after ours
                vv[replica] = theirs[_TOP]  # (a batch of fresh writes): taken in whole
                grew = True
                if replica in strays:
                    self._settle(replica)
                continue
            for counter in dots:
                if counter > vv.get(replica, 0):
                    mine = strays.get(replica)
                    if mine is None or (counter != mine if type(mine) is int else counter not in mine[_DOTS]):
                        self.add((replica, counter))  # type: ignore[arg-type]
                        grew = True
        return grew

    def compact(self) -> None:
        """Move cloud dots that became contiguous into the version vector; drop covered ones."""
        vv = self.vv
        for replica, strays in list(self._stray.items()):
            if type(strays) is not int or strays <= vv.get(replica, 0) + 1:  # else nothing to settle
                self._settle(replica)

    def copy(self) -> CausalContext:
        twin = CausalContext(dict(self.vv))
        twin._stray = {
            r: s if type(s) is int else [s[_TOP], set(s[_DOTS]), None if s[_HEAP] is None else list(s[_HEAP])]
            for r, s in self._stray.items()
        }
        return twin

    def replicas(self) -> set[str]:
        """Every replica with a dot in this context."""
        return self.vv.keys() | self._stray.keys()

    def covers(self, other: CausalContext, skip: Callable[[str, int], bool] | None = None) -> bool:
        """Whether this context holds every dot of ``other``, but for the replicas
        ``skip(replica, top)`` excuses (``top``: ``other``'s greatest dot of it, or a stray)."""
        vv = self.vv
        if skip is None:
            return all(vv.get(r, 0) >= c for r, c in other.vv.items()) and all(d in self for d in other.iter_cloud())
        return all(vv.get(r, 0) >= c or skip(r, c) for r, c in other.vv.items()) and all(
            d in self or skip(d[0], d[1]) for d in other.iter_cloud())

    def forget(self, replica: str) -> bool:
        """Drop every dot of ``replica``; say whether there was any.

        Call only for a replica that can write no new dot here (a departed incarnation whose
        every batch is applied, see :mod:`crdtmem.protocol.retirement`): its dots are then no
        longer "seen" by this context, so the caller must keep them from arriving again.
        """
        had_run = self.vv.pop(replica, None) is not None
        return self._stray.pop(replica, None) is not None or had_run


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
