"""``DeltaLog``: the signed batches a node keeps to serve catch-up, indexed by author.

A node logs every batch it makes or applies and sends a peer what its ``seen`` set lacks;
batches are kept for good, unless an opt-in ``max_batches`` is set. The log is indexed by author and sequence
number, so answering a peer costs the size of the gap, not the size of the log: a node that
has been partitioned for a while can hold a long log while its neighbours ack every 50 ms.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from ..clocks import CausalContext, Dot
from .batch import batch_hash

__all__ = ["DeltaLog"]


class DeltaLog:
    """Batch wires by dot, oldest first: all of them, or at most ``max_batches`` if set.

    When a bound is set and reached, the oldest batch is dropped.
    """

    def __init__(self, max_batches: int | None = None) -> None:
        self.max_batches = max_batches
        self._wires: dict[Dot, bytes] = {}  # insertion order: oldest first
        self._order: dict[Dot, int] = {}  # dot -> when it was added (a causal order)
        self._added = 0
        self._seqs: dict[str, list[int]] = {}  # per author, ascending
        self._dots: dict[bytes, Dot] = {}  # batch hash -> dot, for batches wanted by hash
        self._by_wire: dict[bytes, Dot] = {}  # the logged wires themselves -> their dots

    def __len__(self) -> int:
        return len(self._wires)

    def __contains__(self, dot: Dot) -> bool:
        return dot in self._wires

    def get(self, dot: Dot, default: bytes | None = None) -> bytes | None:
        """The logged wire of batch ``dot``, or ``default`` if the log does not hold it."""
        return self._wires.get(dot, default)

    def dot_of(self, wire: bytes) -> Dot | None:
        """The dot of the logged batch whose wire is exactly ``wire``, or None.

        Call on a received wire before decoding it: a batch received again (the common case
        with several neighbours) is recognised by its bytes alone, without parsing them.
        """
        return self._by_wire.get(wire)

    def by_hash(self, batch_hash: bytes) -> bytes | None:
        """The logged wire whose hash is ``batch_hash``, or None."""
        dot = self._dots.get(batch_hash)
        return None if dot is None else self._wires[dot]

    def holds_run(self, author: str, first: int, last: int) -> bool:
        """Whether the log holds every batch ``first..last`` of ``author`` (costs a search)."""
        seqs = self._seqs.get(author, ())
        i = bisect.bisect_left(seqs, first)
        return last < first or (i + last - first < len(seqs) and seqs[i] == first and seqs[i + last - first] == last)

    def of_author(self, author: str) -> list[bytes]:
        """Every logged wire of ``author``, in sequence order (costs that author's batches)."""
        return [self._wires[Dot(author, seq)] for seq in self._seqs.get(author, ())]

    def wires(self) -> list[bytes]:
        return list(self._wires.values())

    def position(self) -> int:
        """How many batches were ever logged: pass it to :meth:`since` later."""
        return self._added

    def since(self, position: int) -> list[tuple[Dot, bytes]]:
        """The logged batches added at or after ``position`` (:meth:`position`), oldest first.

        Costs the batches returned, not the log.
        """
        out = []
        order = self._order
        for dot, wire in reversed(self._wires.items()):
            if order[dot] < position:
                break
            out.append((dot, wire))
        out.reverse()
        return out

    def add(self, dot: Dot, wire: bytes, batch_hash: bytes) -> None:
        """Log batch ``dot`` (its signed ``wire`` and that wire's hash); a dot logged already is kept."""
        if dot in self._wires:
            return
        self._wires[dot] = wire
        self._dots[batch_hash] = dot
        self._by_wire[wire] = dot
        self._order[dot] = self._added
        self._added += 1
        seqs = self._seqs.setdefault(dot[0], [])
        if not seqs or dot[1] > seqs[-1]:
            seqs.append(dot[1])
        else:
            bisect.insort(seqs, dot[1])
        if self.max_batches is not None and len(self._wires) > self.max_batches:
            self._forget(next(iter(self._wires)))

    def missing(self, seen: CausalContext, holds_all: Callable[[str], bool] | None = None) -> list[tuple[Dot, bytes]]:
        """The logged batches ``seen`` lacks, oldest sequence number first per author.

        Args:
            holds_all: for an author ``seen`` names no batch of, whether its holder has them
                all anyway (it pruned that departed incarnation, see
                :meth:`Retirements.holder_of_all <crdtmem.protocol.retirement.Retirements.holder_of_all>`).
        """
        out = []
        vv = seen.vv
        for author, seqs in self._seqs.items():
            below = vv.get(author, 0)
            if seqs[-1] <= below:  # the usual case for most authors: it has every one of them
                continue
            if holds_all is not None and not seen.max(author) and holds_all(author):
                continue
            for seq in seqs[bisect.bisect_right(seqs, below):]:
                dot = Dot(author, seq)
                if dot not in seen:
                    out.append((dot, self._wires[dot]))
        order = self._order
        out.sort(key=lambda item: order[item[0]])  # the order they were applied: causal
        return out

    def count_missing(self, seen: CausalContext, holds_all: Callable[[str], bool] | None = None) -> int:
        """How many logged batches ``seen`` lacks (see :meth:`missing`)."""
        return len(self.missing(seen, holds_all))

    def _forget(self, dot: Dot) -> None:
        wire = self._wires.pop(dot)
        del self._dots[batch_hash(wire)]
        del self._by_wire[wire]
        del self._order[dot]
        seqs = self._seqs[dot[0]]
        del seqs[bisect.bisect_left(seqs, dot[1])]
        if not seqs:
            del self._seqs[dot[0]]
