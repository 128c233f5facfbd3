"""The :class:`~crdtmem.protocol.node.Node` side of departed incarnations (mixed into it).

:mod:`.retirement` holds the records and decides what is pruned when; this is how the node
acts on it: :meth:`Departures.retire` on a clean stop, retiring a store's predecessors at
start, replaying the log on restart, dropping pruned incarnations from the seen set, the
memory's contexts and what it knows of its peers, and reading peers' seen sets without them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from ..clocks import CausalContext, Dot
from ..errors import DecodeError, RemoteProtocolError
from ..identity import key_id_of
from .batch import read_batch, read_header
from .causal import reach_of
from .checkpoint import Checkpoint, is_checkpoint, read_checkpoint, read_checkpoint_header
from .nodeparts import NodeParts
from .reindex import read_index_entry
from .retirement import RETIRED_NAME, retirement, retirement_records

__all__ = ["Departures"]

log = logging.getLogger("crdtmem.node")


class Departures(NodeParts):
    """The :class:`~crdtmem.protocol.node.Node` methods for departed incarnations (mixed into it).

    It relies on the node's memory, identity, seen set, delta log, causal index, sessions and
    knowledge of peers, and on ``flush`` (sign the pending writes as one batch and push it).
    """

    _known_seen: dict[str, CausalContext]

    def retire(self, now: float) -> None:
        """Stop writing under this incarnation for good; call on a clean stop.

        Seals its last batch: the pending local writes plus the record retiring this
        incarnation at that batch's number, pushed like any flush (perform
        :meth:`take_actions` and journal the events as usual, then let the peer go). Every
        replica then prunes this incarnation from its vectors and contexts once it holds all
        its batches. An incarnation that never wrote is in no vector: it only stops writing.
        Later local writes raise :class:`~crdtmem.errors.RetiredWriterError`. Calling it
        twice is harmless.
        """
        if self.replica_id in self._retirements.finals:
            return
        if not self.seen.max(self.replica_id) and not self.memory.has_pending_deltas():
            self.memory.seal(f"{self.replica_id} retired: start a new peer to write")
            return  # it never wrote: no vector names it, nothing to retire
        final = self.seen.max(self.replica_id) + 1
        self.memory.gset(RETIRED_NAME).add(retirement(self.replica_id, final))
        self.flush(now)
        self.memory.seal(f"{self.replica_id} retired after its batch #{final}: start a new peer to write")

    def retired(self) -> dict[str, int]:
        """The departed incarnations pruned here, with their final batch numbers (for metrics and tests)."""
        return dict(self._retirements.pruned)

    def batches_seen(self) -> int:
        """How many batches this replica holds: those its seen set names plus the pruned incarnations' ones."""
        return self.seen.size() + sum(self._retirements.pruned.values())

    def _holds(self, dot: Dot) -> bool:
        """Whether batch ``dot`` is applied here (named by the seen set, or of a pruned incarnation)."""
        return dot in self.seen or self._retirements.holds(dot)

    def _holds_all(self, incarnation: str, final: int) -> bool:
        return self.seen.vv.get(incarnation, 0) >= final

    def _missing_for(self, seen: CausalContext) -> list[tuple[Dot, bytes]]:
        """The logged batches a peer whose seen set is ``seen`` lacks, oldest first (its own
        pruning of departed incarnations taken into account where the witness shows it)."""
        return self._log.missing(seen, self._retirements.holder_of_all(seen))

    def _have_all(self, seen: CausalContext) -> bool:
        """Whether our seen set holds every batch ``seen`` names (those of pruned incarnations included)."""
        pruned = self._retirements.pruned
        if not pruned:
            return self.seen.covers(seen)
        return self.seen.covers(seen, skip=lambda replica, top: top <= pruned.get(replica, 0))

    def _strip_pruned(self, deltas: Iterable[tuple[str, object]]) -> None:
        """Drop pruned incarnations that a just-applied batch brought back into object contexts
        (a removal's context names the dots it removed)."""
        pruned = self._retirements.pruned
        if not pruned:
            return
        for name, delta in deltas:
            ctx = getattr(delta, "ctx", None)
            if ctx is not None:
                back = [r for r in ctx.replicas() if r in pruned]
                if back:
                    self.memory.forget(back, (name,))

    def _prune(self, incarnations: list[str]) -> None:
        """Drop newly pruned incarnations from the seen set, the memory and what we know of peers."""
        if not incarnations:
            return
        gone = set(incarnations)
        for replica in incarnations:
            self.seen.forget(replica)
            for known in self._known_seen.values():
                known.forget(replica)
        for session in self._sessions.values():
            for replica in incarnations:
                session.peer_seen.forget(replica)
            session.in_flight = {dot for dot in session.in_flight if dot[0] not in gone}
        self.memory.forget(gone)
        self.stats.incarnations_pruned += len(incarnations)
        log.debug("pruned departed incarnations %s", ", ".join(incarnations))

    def _replay(self, log_wires: Iterable[bytes], log_entries: Sequence[bytes] = ()) -> None:
        """Rebuild the causal index and the pruned incarnations from the log, in the order the
        batches were applied; then prune the restored seen set and memory alike.

        ``log_entries[i]``, if given and readable, is the index entry journaled with the i-th
        wire (:mod:`.reindex`): that batch's header alone is then decoded, not its deltas.
        """
        applied = CausalContext()

        def holds_all(incarnation: str, final: int) -> bool:
            return applied.vv.get(incarnation, 0) >= final

        for i, wire in enumerate(log_wires):  # in the order they were applied, so dependencies come first
            if is_checkpoint(wire):
                checkpoint, covered, records = self._replay_checkpoint(wire, log_entries[i] if i < len(log_entries) else b"")
                applied.join(CausalContext(dict(covered)))
                for replica in self._retirements.note(checkpoint.author, checkpoint.seq, covered, records, holds_all):
                    applied.forget(replica)
                continue
            try:
                reach, records = read_index_entry(log_entries[i])
                batch = read_header(wire)
            except (IndexError, DecodeError):  # journaled without one: decode the deltas
                batch = read_batch(wire, max_size=self.config.max_message_bytes)
                reach = None
                try:
                    records = retirement_records(batch.deltas)
                except RemoteProtocolError:
                    records = []  # not a record here when it was applied either
            dot = Dot(batch.author, batch.seq)
            self._log.add(dot, wire, batch.hash)
            checkpoint = self._checkpoints.get(batch.author)  # journaled after one that stands for it?
            covered = self._causal.record(batch, reach=reach, head=checkpoint is None or batch.seq > checkpoint.seq)
            applied.add(dot)
            for replica in self._retirements.note(batch.author, batch.seq, covered, records, holds_all):
                applied.forget(replica)
        pruned = list(self._retirements.pruned)
        for replica in pruned:
            self.seen.forget(replica)
        self.memory.forget(pruned)

    def _replay_checkpoint(self, wire: bytes, entry: bytes) -> tuple[Checkpoint, dict[str, int], list[tuple[str, int]]]:
        """Re-index a journaled checkpoint (:mod:`.checkpoint`); return it (without its deltas),
        its covered vector and the retirement records it carries."""
        try:
            reach, records = read_index_entry(entry)
            checkpoint = read_checkpoint_header(wire)
        except DecodeError:  # journaled without an entry: decode the deltas
            checkpoint = read_checkpoint(wire, max_size=self.config.max_message_bytes)
            reach = reach_of(checkpoint.as_batch())
            try:
                records = retirement_records(checkpoint.deltas)
            except RemoteProtocolError:
                records = []
        covered = self._causal.record_checkpoint(checkpoint.as_batch(), reach)
        self._checkpoints[checkpoint.author] = checkpoint
        return checkpoint, covered, records

    def _retire_predecessors(self, predecessors: Iterable[str]) -> None:
        """Retire this store's earlier incarnations that did not, in this start's first batch."""
        for incarnation in sorted(set(predecessors)):
            if (incarnation == self.replica_id or key_id_of(incarnation) != self.identity.peer_id
                    or incarnation in self._retirements.finals):
                continue
            final = self.seen.max(incarnation)
            if final:  # one that never wrote is in no vector
                self.memory.gset(RETIRED_NAME).add(retirement(incarnation, final))
