"""Departed incarnations: retirement records, and pruning them from vectors and contexts.

Every start of a peer writes under a fresh incarnation, and short-lived sub-agents start
often, so without this every incarnation that ever wrote would stay in every version vector
and causal context for good. An incarnation that leaves says so with a **retirement record**
``(incarnation, final_seq)``, an element of one grow-only set of the shared memory,
:data:`RETIRED_NAME`, carried in an ordinary signed batch:

* a clean stop (:meth:`Node.retire <crdtmem.protocol.node.Node.retire>`) seals the
  incarnation's last batch with its own record, ``final_seq`` being that batch's number;
* the next start of a key retires the incarnations that ran on its store before and did not
  retire, at the highest number the store holds for each (the store journals every batch
  before it is sent, so it holds all they sent).

A receiver checks each record (:meth:`Retirements.check`): its author must be an
incarnation of the retired one's key, and the batch must cover the retired incarnation up to
``final_seq`` (refused as ``bad-retirement``). Several records for one incarnation: the largest
``final_seq`` wins. A batch of a retired incarnation beyond its final number is refused
(``retired-author``), unless a member's batch depends on it (the node's beyond-the-cut path,
shared with revocations).

**Pruning, without a leader.** Replica R prunes incarnation X once it has applied X's record
and every X batch up to ``final_seq``, and has applied a **witness**: a batch of another
incarnation whose covered vector covers ``X@final_seq`` (a new start's record batch is one;
after a clean stop, the next batch of anyone who saw it). No new dot of X can arrive any
more, so R drops X from its seen set, from every object's causal context and from what it
knows of its peers; a re-delivered X batch is a duplicate. The witness ``W_X = (A, s)``
keeps covered vectors exact without the X entry (see :meth:`Retirements.seq_in`): a vector
that covers ``A#s`` covers ``X@final_seq``. It also tells reconciliation whether a peer
whose ``Sync`` lacks X holds all of X (it holds ``A#s``) or never saw it (it gets X's
batches; a peer that pruned X drops them as duplicates). Waiting for the witness makes every
pruned incarnation decidable this way: a peer that holds every batch R's seen set names
holds every pruned incarnation's batches too.

Pure: the node feeds it the batches it applies (and, on restart, its log in order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..clocks import CausalContext, Dot
from ..errors import RefusalReason, RemoteProtocolError
from ..identity import key_id_of
from ..values import decode_value
from .membership import RevokedAuthorError

__all__ = [
    "RETIRED_NAME",
    "BadRetirementError",
    "RetiredAuthorError",
    "Retirements",
    "retirement",
    "retirement_records",
    "finals_in",
]

RETIRED_NAME = "crdtmem.retired"
"""The grow-only set of the shared memory holding the retirement records."""


class BadRetirementError(RemoteProtocolError):
    """A retirement record of another key's incarnation, beyond what its batch covers, or malformed."""

    reason = RefusalReason.BAD_RETIREMENT


class RetiredAuthorError(RevokedAuthorError):
    """A batch of a retired incarnation beyond its final number.

    Held like a revoked key's batch past its cut: applied after all if a member's batch
    depends on it.
    """

    reason = RefusalReason.RETIRED_AUTHOR


def retirement(incarnation: str, final_seq: int) -> tuple[str, int]:
    """The record retiring ``incarnation`` after its batch ``final_seq`` (an element of :data:`RETIRED_NAME`)."""
    return (incarnation, final_seq)


def retirement_records(deltas: Iterable[tuple[str, Any]]) -> list[tuple[str, int]]:
    """The retirement records a batch's deltas write, in no order.

    Raises:
        BadRetirementError: :data:`RETIRED_NAME` is written as another type than a grow-only
            set, or one of its elements is not a record.
    """
    records: list[tuple[str, int]] = []
    for name, delta in deltas:
        if name != RETIRED_NAME:
            continue
        items = getattr(delta, "items", None)
        if getattr(delta, "TAG", None) != "gset" or not isinstance(items, set):
            raise BadRetirementError(f"{RETIRED_NAME!r} written as a {getattr(delta, 'TAG', '?')}")
        for item in items:
            record = _parse(item)
            if record is None:
                raise BadRetirementError(f"a malformed retirement record in {RETIRED_NAME!r}")
            records.append(record)
    return records


def finals_in(memory: Any) -> dict[str, int]:
    """The retired incarnations a memory's :data:`RETIRED_NAME` set names, with their final
    numbers (the largest record's); malformed elements are skipped.

    Every batch up to the final number of each is reflected in that memory: a record is only
    applied after them. Recovery reads it from a snapshot to know which journaled batches of
    pruned incarnations the snapshot holds, though its seen set no longer names them.
    """
    state = memory.state(RETIRED_NAME)
    finals: dict[str, int] = {}
    for item in getattr(state, "items", None) or ():
        record = _parse(item)
        if record is not None and record[1] > finals.get(record[0], 0):
            finals[record[0]] = record[1]
    return finals


def _parse(item: bytes) -> tuple[str, int] | None:
    try:
        record = decode_value(item)
    except Exception:  # noqa: BLE001 - any malformed element is simply not a record
        return None
    if (isinstance(record, tuple) and len(record) == 2 and isinstance(record[0], str) and record[0]
            and type(record[1]) is int and record[1] > 0):
        return record
    return None


SeqOf = Callable[[str, int], bool | None]
"""``has(replica, seq)``: whether a vector or seen set holds ``replica#seq``; None if it names
no entry for ``replica`` at all."""


class Retirements:
    """The retired and pruned incarnations as this replica knows them, and their witnesses.

    Feed it every batch applied here, in order (:meth:`note`); ask it before applying one
    (:meth:`check`). Its size is the number of retired incarnations: it is never sent.

    Args:
        keep: an incarnation never pruned here (this replica's own: it is still writing, or
            retiring).
    """

    def __init__(self, keep: str | None = None) -> None:
        self._keep = keep
        self.finals: dict[str, int] = {}
        """Every retired incarnation → its final number (the largest record's)."""
        self.pruned: dict[str, int] = {}
        """The incarnations pruned here → their final number."""
        self.witnesses: dict[str, tuple[str, int]] = {}
        """Pruned incarnation → (author, seq) of the batch that witnessed it."""
        self._ready: set[str] = set()  # retired, every batch applied, waiting for a witness

    # -- before applying a batch ---------------------------------------------------------------

    def check_author(self, batch: Any, *, vouched: bool = False) -> None:
        """Refuse a batch of a retired incarnation beyond its final number (unless ``vouched``).

        Raises:
            RetiredAuthorError: it is beyond; hold it like a revoked author's batch.
        """
        final = self.finals.get(batch.author)
        if final is not None and batch.seq > final and not vouched:
            raise RetiredAuthorError(
                f"batch {batch.author}#{batch.seq} comes after {batch.author} retired at #{final}"
            )

    def check(self, batch: Any, covered: dict[str, int]) -> list[tuple[str, int]]:
        """The batch's retirement records, each checked against its author and covered vector.

        Call with the covered vector :meth:`CausalIndex.check
        <crdtmem.protocol.causal.CausalIndex.check>` returned, before applying the batch.

        Raises:
            BadRetirementError: a record retires another key's incarnation, retires its own
                author at another number than this batch's, or reaches past what the batch covers.
        """
        records = retirement_records(batch.deltas)
        for incarnation, final in records:
            where = f"batch {batch.author}#{batch.seq} retires {incarnation} at #{final}"
            if key_id_of(incarnation) != key_id_of(batch.author):
                raise BadRetirementError(f"{where}: only an incarnation of its own key may retire it")
            if incarnation == batch.author and final != batch.seq:
                raise BadRetirementError(f"{where}: an incarnation retires itself in its last batch")
            if self.seq_in(covered, incarnation) < final:
                raise BadRetirementError(f"{where}, but its dependencies do not cover that batch")
        return records

    # -- after applying one ----------------------------------------------------------------------

    def note(
        self, author: str, seq: int, covered: dict[str, int], records: Iterable[tuple[str, int]],
        holds_all: Callable[[str, int], bool],
    ) -> list[str]:
        """Record an applied batch (its covered vector, its retirement records); return the
        incarnations pruned now.

        Args:
            holds_all: ``holds_all(incarnation, final)``: whether every batch of it up to
                ``final`` is applied here.
        """
        for incarnation, final in records:
            if final > self.finals.get(incarnation, 0) and incarnation not in self.pruned:
                self.finals[incarnation] = final
                self._maybe_ready(incarnation, holds_all)
        if author in self.finals and author not in self.pruned:
            self._maybe_ready(author, holds_all)
        pruned: list[str] = []
        for incarnation in [i for i in self._ready if i != author]:
            final = self.finals[incarnation]
            if self.seq_in(covered, incarnation) >= final:
                self._ready.discard(incarnation)
                self.witnesses[incarnation] = (author, seq)
                self.pruned[incarnation] = final
                pruned.append(incarnation)
        return sorted(pruned)

    def _maybe_ready(self, incarnation: str, holds_all: Callable[[str, int], bool]) -> None:
        if incarnation != self._keep and holds_all(incarnation, self.finals[incarnation]):
            self._ready.add(incarnation)

    # -- reading vectors and seen sets without the pruned entries ---------------------------------

    def holds(self, dot: Dot | tuple[str, int]) -> bool:
        """Whether ``dot`` is a batch of a pruned incarnation (held here, though no seen set names it)."""
        return dot[1] <= self.pruned.get(dot[0], 0)

    def seq_in(self, covered: dict[str, int], replica: str) -> int:
        """How far ``covered`` (a covered vector) reaches in ``replica``'s batches.

        Its entry if it has one; for a pruned incarnation without one, its final number if the
        vector covers its witness (and so its final batch), else 0.
        """
        seq = covered.get(replica)
        if seq is not None:
            return seq
        if replica in self.witnesses and self._reaches(replica, lambda a, s: _in_vector(covered, a, s)):
            return self.pruned[replica]
        return 0

    def shrink(self, covered: dict[str, int]) -> None:
        """Drop from a newly built covered vector the pruned entries its witness makes implied.

        :meth:`seq_in` then reads the same from it. Call on every covered vector built.
        """
        witnesses = self.witnesses
        if not witnesses:
            return
        implied = [r for r in covered if r in witnesses and self._reaches(r, lambda a, s: _in_vector(covered, a, s))]
        for replica in implied:
            del covered[replica]

    def holder_of_all(self, seen: CausalContext) -> Callable[[str], bool]:
        """A test of whether a peer whose seen set is ``seen`` holds every batch of a pruned
        incarnation that ``seen`` does not name (it holds its witness). Remembers its answers:
        make one per ``seen``."""
        answers: dict[str, bool] = {}

        def has(author: str, seq: int) -> bool | None:
            if author in seen.vv or seen.stray(author):
                return Dot(author, seq) in seen
            return None

        def holds_all(replica: str) -> bool:
            answer = answers.get(replica)
            if answer is None:
                answer = answers[replica] = self._reaches(replica, has, answers)
            return answer

        return holds_all

    def _reaches(self, replica: str, has: SeqOf, answers: dict[str, bool] | None = None) -> bool:
        """Whether the holder ``has`` describes holds ``replica``'s witness, through the chain of
        witnesses of pruned incarnations it names no entry for."""
        path = []
        result = False
        while True:
            witness = self.witnesses.get(replica)
            if witness is None:
                break
            path.append(replica)
            author, seq = witness
            if answers is not None and author in answers:
                result = answers[author]
                break
            held = has(author, seq)
            if held is not None:
                result = held
                break
            replica = author  # the witness's author was pruned here too: follow its witness
        if answers is not None:
            for step in path:
                answers[step] = result
        return result


def _in_vector(covered: dict[str, int], author: str, seq: int) -> bool | None:
    have = covered.get(author)
    return None if have is None else have >= seq
