"""``DeltaLog``: the signed batches a node keeps to serve catch-up, indexed by author.

A node logs every batch it makes or applies, sends a peer what its ``seen`` set lacks, and
forgets a batch once every peer it knows has it. The log is indexed by author and sequence
number, so answering a peer costs the size of the gap, not the size of the log: a node that
has been partitioned for a while can hold a long log while its neighbours ack every 50 ms.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from ..clocks import CausalContext, Dot

__all__ = ["DeltaLog"]


class DeltaLog:
    """Batch wires by dot, oldest first, with at most ``max_batches`` kept.

    When full, the oldest batch is dropped: a peer that still lacks it is repaired by
    anti-entropy instead (see :meth:`fills`).
    """

    def __init__(self, max_batches: int) -> None:
        self.max_batches = max_batches
        self._wires: dict[Dot, bytes] = {}  # insertion order: oldest first
        self._order: dict[Dot, int] = {}  # dot -> when it was added (a causal order)
        self._added = 0
        self._seqs: dict[str, list[int]] = {}  # per author, ascending

    def __len__(self) -> int:
        return len(self._wires)

    def __contains__(self, dot: Dot) -> bool:
        return dot in self._wires

    def get(self, dot: Dot, default: bytes | None = None) -> bytes | None:
        """The logged wire of batch ``dot``, or ``default`` if the log does not hold it."""
        return self._wires.get(dot, default)

    def wires(self) -> list[bytes]:
        return list(self._wires.values())

    def add(self, dot: Dot, wire: bytes) -> None:
        if dot in self._wires:
            return
        self._wires[dot] = wire
        self._order[dot] = self._added
        self._added += 1
        seqs = self._seqs.setdefault(dot[0], [])
        if not seqs or dot[1] > seqs[-1]:
            seqs.append(dot[1])
        else:
            bisect.insort(seqs, dot[1])
        if len(self._wires) > self.max_batches:
            self._forget(next(iter(self._wires)))

    def missing(self, seen: CausalContext) -> list[tuple[Dot, bytes]]:
        """The logged batches ``seen`` lacks, oldest sequence number first per author."""
        out = []
        for author, seqs in self._seqs.items():
            for seq in seqs[bisect.bisect_right(seqs, seen.vv.get(author, 0)):]:
                dot = Dot(author, seq)
                if dot not in seen:
                    out.append((dot, self._wires[dot]))
        order = self._order
        out.sort(key=lambda item: order[item[0]])  # the order they were applied: causal
        return out

    def fills(self, seen: CausalContext, target: CausalContext) -> bool:
        """Whether ``seen`` plus this log covers ``target`` (else only anti-entropy can help)."""
        for author, top in target.vv.items():
            have = seen.vv.get(author, 0)
            if top <= have:
                continue
            seqs = self._seqs.get(author, ())
            logged = bisect.bisect_right(seqs, top) - bisect.bisect_right(seqs, have)
            if logged == top - have:
                continue
            # The gap (have, top] is filled if the log and ``seen``'s strays cover it together;
            # count them rather than walk it (its width is a number a peer picks).
            stray = [c for c in seen.stray(author) if have < c <= top]
            both = sum(1 for c in stray if Dot(author, c) in self._wires)
            if logged + len(stray) - both != top - have:
                return False
        return all(dot in seen or dot in self._wires for dot in target.iter_cloud())

    def count_missing(self, seen: CausalContext) -> int:
        return len(self.missing(seen))

    def collect(self, knowns: Iterable[CausalContext]) -> int:
        """Forget the batches every context in ``knowns`` has seen; return how many."""
        knowns = list(knowns)
        if not knowns:
            return 0
        before = len(self._wires)
        for author in list(self._seqs):
            seqs = self._seqs[author]
            cut = bisect.bisect_right(seqs, min(k.vv.get(author, 0) for k in knowns))
            kept = []
            for i, seq in enumerate(seqs):
                dot = Dot(author, seq)
                if i < cut or all(dot in k for k in knowns):
                    del self._wires[dot]
                    del self._order[dot]
                else:
                    kept.append(seq)
            if kept:
                self._seqs[author] = kept
            else:
                del self._seqs[author]
        return before - len(self._wires)

    def _forget(self, dot: Dot) -> None:
        del self._wires[dot]
        del self._order[dot]
        seqs = self._seqs[dot[0]]
        del seqs[bisect.bisect_left(seqs, dot[1])]
        if not seqs:
            del self._seqs[dot[0]]
