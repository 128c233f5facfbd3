"""Causal delivery: which signed batches a batch depends on, and what it may remove.

Every batch names, by hash, the head batches its author had applied when sealing it. A
receiver applies it only once all of them are applied here, and computes its **covered
version vector**: the join of its dependencies' vectors plus the batch itself. That vector is
what the author provably observed, so:

* the author's own previous batch must be covered (``seq - 1``), else the dependencies are
  refused as :attr:`~crdtmem.errors.RefusalReason.BAD_DEPENDENCIES`;
* a removal, a map-key removal or an MV-register overwrite (the causal context of an OR-Set,
  OR-Map or MV-register delta) may name another replica's dots only as far as that replica's
  covered batches created them in the same object; beyond is
  :attr:`~crdtmem.errors.RefusalReason.UNOBSERVED_REMOVE`. Dots not made yet cannot be
  covered, because a hash cannot name a batch that does not exist;
* a Yjs document delta's **delete set** may delete another client's items only as far as the
  covered batches of the replica owning that client id had inserted them in the same
  document. Each replica edits under its own Yjs client id
  (:func:`~crdtmem.crdt.document.yjs_client_id`), and a batch whose update creates items
  under another client id is refused as forged when it is decoded (``only_writes_as``), so
  the items of client id ``c`` were all inserted by one replica's batches. A deleted range of
  ``c`` reaching past the clock that replica's covered batches had inserted up to is
  :attr:`~crdtmem.errors.RefusalReason.UNOBSERVED_REMOVE`, and so is a range of a client id
  no applied batch wrote as. Deleting the author's own items is always allowed. A
  delete-only update thus cannot erase text its author never received, nor text typed after
  it.

:class:`CausalIndex` keeps, per applied batch, its hash and covered vector, the current heads
(what the next local batch depends on), and per object and replica how far that replica's
dots (in documents: its Yjs clock) reached after each of its batches. It holds no wires and is
rebuilt on restart from the delta log (:meth:`CausalIndex.record` in log order), reading each
batch's reach from its journaled index entry (:mod:`.reindex`) rather than its deltas.

Departed incarnations pruned here (:mod:`.retirement`) leave the covered vectors built after
their witness, and every check reads a vector through
:meth:`Retirements.seq_in <crdtmem.protocol.retirement.Retirements.seq_in>`, so a removal is
judged the same at a replica that pruned them and at one that did not.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from ..crdt.document import Document, update_footprint, yjs_client_id
from ..crdt.dotkernel import KernelContainer
from ..errors import RefusalReason, RemoteProtocolError
from .batch import DeltaBatch
from .retirement import Retirements

__all__ = ["CausalIndex", "BatchReach", "reach_of", "UnobservedRemoveError", "BadDependenciesError", "EquivocationError"]



class UnobservedRemoveError(RemoteProtocolError):
    """A batch removes or overwrites another replica's dots its dependencies do not cover."""

    reason = RefusalReason.UNOBSERVED_REMOVE


class BadDependenciesError(RemoteProtocolError):
    """A batch's dependencies skip its author's own previous batch, or one of them was refused."""

    reason = RefusalReason.BAD_DEPENDENCIES


class EquivocationError(RemoteProtocolError):
    """An author signed two different batches under one sequence number.

    The second is never applied (it would reuse the first one's dots). It is evidence against
    the author, not against the peer that relayed it, so the connection stays open.
    """

    reason = RefusalReason.EQUIVOCATION


class CausalIndex:
    """The applied batches' hashes, covered vectors and heads, and per-object dot and Yjs reach.

    Args:
        retirements: the departed incarnations pruned here (:mod:`.retirement`): covered vectors
            built here leave out the pruned entries they imply, and are read through it.
    """

    def __init__(self, retirements: Retirements | None = None) -> None:
        self._retirements = retirements or Retirements()
        self._covered: dict[bytes, dict[str, int]] = {}
        self._heads: set[bytes] = set()
        self._refused: set[bytes] = set()
        # (object name, replica) -> (that replica's batch seqs, ascending; the highest dot
        # counter it had made in the object as of each)
        self._reach: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        # the same for Yjs documents: (document name, replica) -> (its batch seqs, the clock
        # after the last item it had inserted under its client id as of each)
        self._yjs_reach: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        # Yjs client id -> the replica that writes as it (learned from applied batches)
        self._yjs_replicas: dict[int, str] = {}

    def __contains__(self, batch_hash: bytes) -> bool:
        return batch_hash in self._covered

    def __len__(self) -> int:
        return len(self._covered)

    def vector_entries(self) -> int:
        """Entries over the covered vectors of every batch applied here (what departed
        incarnations would cost without pruning); walks them all, so call it to measure."""
        return sum(map(len, self._covered.values()))

    def heads(self) -> tuple[bytes, ...]:
        """What a local batch sealed now depends on. Call when flushing."""
        return tuple(sorted(self._heads))

    def missing(self, batch: DeltaBatch) -> list[bytes]:
        """The dependencies of ``batch`` not applied here yet (wait for them before applying)."""
        return [d for d in batch.deps if d not in self._covered]

    def refused(self, batch_hash: bytes) -> bool:
        return batch_hash in self._refused

    def refuse(self, batch: DeltaBatch) -> None:
        """Remember a refused batch, so batches that depend on it are refused at once."""
        self._refused.add(batch.hash)

    def check(self, batch: DeltaBatch) -> dict[str, int]:
        """The covered vector of ``batch``, whose dependencies are all applied; nothing changes.

        Call just before applying it.

        Raises:
            BadDependenciesError: the dependencies skip the author's previous batch or include a
                refused one.
            UnobservedRemoveError: a delta's context names another replica's dots beyond what
                the covered batches created, or a document delta's delete set names another
                replica's Yjs items beyond what the covered batches inserted.
        """
        if any(dep in self._refused for dep in batch.deps):
            raise BadDependenciesError(f"batch {batch.author}#{batch.seq} depends on a refused batch")
        covered = self._join(batch.deps)
        if covered.get(batch.author, 0) != batch.seq - 1:
            raise BadDependenciesError(
                f"batch {batch.author}#{batch.seq} does not depend on its author's batch #{batch.seq - 1}"
            )
        covered[batch.author] = batch.seq
        for name, delta in batch.deltas:
            if isinstance(delta, Document):
                self._check_document(batch, name, delta, covered)
                continue
            if not isinstance(delta, KernelContainer):
                continue
            ctx = delta.ctx
            for replica in ctx.replicas():
                if replica == batch.author:
                    continue
                top = ctx.max(replica)
                if top > self._reach_at(name, replica, self._retirements.seq_in(covered, replica)):
                    raise UnobservedRemoveError(
                        f"batch {batch.author}#{batch.seq} removes dots of {replica} in {name!r} "
                        "that its dependencies do not cover"
                    )
        return covered

    def _check_document(self, batch: DeltaBatch, name: str, delta: Document, covered: dict[str, int]) -> None:
        """Refuse a document delta whose delete set reaches past what ``covered`` inserted."""
        try:
            deletes = update_footprint(delta.encoded()).deletes
        except ValueError as exc:
            raise UnobservedRemoveError(
                f"batch {batch.author}#{batch.seq}: the delete set of {name!r} cannot be read ({exc})"
            ) from exc
        own = yjs_client_id(batch.author)
        for client, ranges in deletes.items():
            if client == own or not ranges:
                continue
            replica = self._yjs_replicas.get(client)
            reach = 0 if replica is None else self._yjs_reach_at(name, replica, self._retirements.seq_in(covered, replica))
            clock, length = ranges[-1]  # sorted and merged: the last range ends highest
            if clock + length > reach:
                raise UnobservedRemoveError(
                    f"batch {batch.author}#{batch.seq} deletes items of {replica or f'Yjs client {client}'} "
                    f"in {name!r} that its dependencies do not cover"
                )

    def record(self, batch: DeltaBatch, covered: dict[str, int] | None = None,
               reach: BatchReach | None = None, *, head: bool = True) -> dict[str, int]:
        """Note ``batch`` as applied (after :meth:`check`, or in log order on restart); return
        its covered vector.

        Args:
            reach: :func:`reach_of` the batch, if known already (a restart reads it from the
                journal instead of decoding the deltas: then ``batch`` need carry none).
            head: False for a batch that an applied checkpoint already stands for
                (:mod:`.checkpoint`): it is indexed, but later ones here depend on it already.
        """
        if covered is None:
            covered = self._join(batch.deps)
            covered[batch.author] = batch.seq
        self._covered[batch.hash] = covered
        if head:
            self._heads.difference_update(batch.deps)
            self._heads.add(batch.hash)
        author, seq = batch.author, batch.seq
        dots, yjs = reach_of(batch) if reach is None else reach
        for name, top in dots:
            _extend(self._reach, (name, author), seq, top)
        for name, end in yjs:
            self._yjs_replicas.setdefault(yjs_client_id(author), author)
            _extend(self._yjs_reach, (name, author), seq, end)
        return covered

    def record_checkpoint(self, batch: DeltaBatch, reach: BatchReach) -> dict[str, int]:
        """Note a checkpoint (:mod:`.checkpoint`) as applied: ``batch`` is it as the batch it
        ends with (``author#seq``, its hash). It covers its author's batches ``1..seq`` and no
        one else's, so it is the head in place of any of them. Returns its covered vector."""
        author, seq = batch.author, batch.seq
        covered = {author: seq}
        superseded = [h for h in self._heads if (vector := self._covered[h]).keys() == {author} and vector[author] <= seq]
        self._heads.difference_update(superseded)
        self.record(batch, covered, reach)
        return covered

    def vouch(self, batch: DeltaBatch) -> bool:
        """Let ``batch`` satisfy the batches that depend on it without applying it; True if done.

        Call for an equivocating batch (its author signed another batch under its number, and
        that one is applied here). Honest replicas that applied this version build on it; their
        batches must not wait for it or be refused with it. It is never applied, never a head of
        ours, and adds nothing to what removals may cover here. Needs its own dependencies known.
        """
        if batch.hash in self._covered or any(dep not in self._covered for dep in batch.deps):
            return False
        covered = self._join(batch.deps)
        covered[batch.author] = batch.seq
        self._covered[batch.hash] = covered
        return True

    def _join(self, deps: Iterable[bytes]) -> dict[str, int]:
        """The join of the covered vectors of ``deps`` (those applied here)."""
        vectors = sorted(filter(None, map(self._covered.get, deps)), key=len, reverse=True)
        covered = dict(vectors[0]) if vectors else {}  # the largest copied whole: often all it takes
        for vector in vectors[1:]:
            for replica, seq in vector.items():
                if seq > covered.get(replica, 0):
                    covered[replica] = seq
        self._retirements.shrink(covered)
        return covered

    def record_all(self, batches: Iterable[DeltaBatch]) -> None:
        for batch in batches:
            self.record(batch)

    def _reach_at(self, name: str, replica: str, seq: int) -> int:
        return _reach_at(self._reach, name, replica, seq)

    def _yjs_reach_at(self, name: str, replica: str, seq: int) -> int:
        return _reach_at(self._yjs_reach, name, replica, seq)


class BatchReach(NamedTuple):
    """How far a batch's author reached in the objects it wrote: all :class:`CausalIndex`
    takes from a batch's deltas (a restart reads it from the journal, see :mod:`.reindex`)."""

    dots: tuple[tuple[str, int], ...]
    """(object, the author's highest dot counter in its delta), for each dot-kernel object."""
    yjs: tuple[tuple[str, int], ...]
    """(document, the author's Yjs clock after the delta), for each document whose delta reads."""


def reach_of(batch: DeltaBatch, clocks: Mapping[str, int] | None = None) -> BatchReach:
    """The :class:`BatchReach` of a decoded batch (a document delta that cannot be read leaves
    the reach where it was: :meth:`CausalIndex.check` refuses it anyway).

    Args:
        clocks: the author's Yjs clock per document, read from the Docs the batch was joined
            into, for documents it reached as whole states (a checkpoint's: their ends are
            not read, see :meth:`~crdtmem.crdt.document.Document.whole_state`).
    """
    dots: list[tuple[str, int]] = []
    yjs: list[tuple[str, int]] = []
    client = None
    for name, delta in batch.deltas:
        if isinstance(delta, KernelContainer):
            top = delta.ctx.max(batch.author)
            if top:
                dots.append((name, top))
        elif isinstance(delta, Document):
            client = yjs_client_id(batch.author) if client is None else client
            if clocks is not None and name in clocks:
                yjs.append((name, clocks[name]))
                continue
            try:
                ends = update_footprint(delta.encoded()).ends
            except ValueError:
                continue
            yjs.append((name, ends.get(client, 0)))
    return BatchReach(tuple(dots), tuple(yjs))


def _extend(reach: dict[tuple[str, str], tuple[list[int], list[int]]], key: tuple[str, str], seq: int, top: int) -> None:
    """Note that ``key``'s replica reached ``top`` in its batch ``seq`` (usually its latest; an
    earlier one when the batches a checkpoint stood for are indexed after it)."""
    if not top:
        return
    seqs, tops = reach.setdefault(key, ([], []))
    if not seqs or seq > seqs[-1]:
        seqs.append(seq)
        tops.append(max(top, tops[-1] if tops else 0))
        return
    i = bisect.bisect_left(seqs, seq)
    if seqs[i] != seq:
        seqs.insert(i, seq)
        tops.insert(i, max(top, tops[i - 1] if i else 0))


def _reach_at(reach: dict[tuple[str, str], tuple[list[int], list[int]]], name: str, replica: str, seq: int) -> int:
    entry = reach.get((name, replica))
    if entry is None or seq <= 0:
        return 0
    seqs, tops = entry
    i = bisect.bisect_right(seqs, seq)
    return tops[i - 1] if i else 0
