"""The :class:`~crdtmem.protocol.node.Node` side of author checkpoints (mixed into it).

:mod:`.checkpoint` defines a checkpoint and how it is sealed, opened and checked; this is how
the node uses them: answering a peer's first ``Sync`` with its own or a taken checkpoint
instead of the batches it stands for, taking one (:meth:`Checkpointing._on_checkpoints`),
passing it on to peers lacking those batches and to holders of them who check it, and
fetching an author's batches after all (``WantHistory``) when a later batch names one that a
taken checkpoint stands for, or when a checkpoint cannot be taken.
"""

from __future__ import annotations

import logging
from typing import Any

from ..clocks import CausalContext, Dot
from ..crdt.document import Document, yjs_client_id
from ..errors import DecodeError, RemoteProtocolError
from ..identity import verify
from .batch import DeltaBatch, ForgedDeltaError, UntrustedAuthorError, batch_hash, check_stamps, peek_batch, read_batch
from .causal import EquivocationError, UnobservedRemoveError, reach_of
from .checkpoint import Checkpoint, Contribution, open_checkpoint, read_checkpoint_header, seal_checkpoint
from .events import CheckpointApplied, Refused, SendKind
from .messages import Batches, Checkpoints, WantHistory
from .nodeparts import NodeParts
from .reindex import index_entry

__all__ = ["Checkpointing"]

log = logging.getLogger("crdtmem.node")

_MAX_HANDLED = 1024
"""Checkpoint wires remembered as handled here, so one sent again is not opened again (the oldest go first)."""


class Checkpointing(NodeParts):
    """The :class:`~crdtmem.protocol.node.Node` methods for author checkpoints (mixed into it).

    It relies on the node's memory, identity, membership, seen set, delta log, causal index,
    retirements, sessions, config, stats and event list, and on its ``_release``,
    ``_join``, ``_queue_relay``, ``_send_message``, ``_ready_sessions``, ``_prune``,
    ``_stamp_bound`` and ``_unbuffer``.
    """

    members: Any
    _events: list
    _pending: dict[bytes, Any]
    _waiting: dict[bytes, dict[bytes, None]]
    _pending_by_author: dict[str, dict[bytes, tuple[bytes, ...]]]
    _pure: bool
    _own_checkpoint_cache: Checkpoint | None
    _checkpoints_handled: dict[tuple[str, int, bytes, bytes], None]
    _history_wanted: set[str]
    _audited_at: dict[str, float]
    _audits_offered: set[tuple[str | None, Dot]]
    _sealed_at: float | None
    _checkpoint_pushed: int
    _now: float

    def own_checkpoint(self) -> Checkpoint | None:
        """Our own batches so far, as one checkpoint: read from the memory while it holds
        nothing but what we sealed (and no write waits to be), else the last one taken then."""
        seq = self.seen.max(self.replica_id)
        minimum = self.config.checkpoint_min_batches
        cached = self._own_checkpoint_cache
        if (self._pure and minimum is not None and seq >= minimum and not self.memory.has_pending_deltas()
                and (cached is None or cached.seq != seq)):
            (head,) = self._causal.heads()  # a pure chain's only head: our last batch
            contribution = Contribution.of_state(self.replica_id, seq, head, self.memory.entries())
            self._own_checkpoint_cache = cached = seal_checkpoint(self.identity, contribution)
        return cached

    def _checkpoint_of(self, author: str) -> Checkpoint | None:
        """The checkpoint this node can send for ``author``: its own, or one it took."""
        return self.own_checkpoint() if author == self.replica_id else self._checkpoints.get(author)

    def _checkpoint_push_at(self) -> float | None:
        """When our checkpoint is due to go to our neighbours (``checkpoint_push_idle``), or None."""
        idle, minimum = self.config.checkpoint_push_idle, self.config.checkpoint_min_batches
        if idle is None or minimum is None or not self._pure or self._sealed_at is None:
            return None
        if self.seen.max(self.replica_id) < max(minimum, 2 * self._checkpoint_pushed):
            return None
        return self._sealed_at + idle

    def _push_checkpoint(self, now: float) -> None:
        """Pass our checkpoint to the neighbours once we have been idle long enough (see
        ``checkpoint_push_idle``); they check it and send it on to joiners."""
        due = self._checkpoint_push_at()
        if due is None or now < due or self.memory.has_pending_deltas():
            return
        self._checkpoint_pushed = self.seen.max(self.replica_id)  # due no more, pushed or not
        checkpoint = self.own_checkpoint()
        if checkpoint is not None:
            for session in self._ready_sessions():
                if session.heard:
                    self._send_checkpoint(session, checkpoint)

    def _taint(self) -> None:
        """Another's batch or checkpoint is about to join our memory: keep our checkpoint as it
        stands now (our batches sealed so far stand alone), for later joiners."""
        if self._pure:
            self.own_checkpoint()
            self._pure = False

    def _stood_for(self, dot: Dot, batch_hash: bytes) -> bool:
        """Whether batch ``dot`` (hash ``batch_hash``) is one that a checkpoint taken here stands
        for and that is not logged here yet: it is indexed when it comes, as if new."""
        checkpoint = self._checkpoints.get(dot.replica) if self._checkpoints else None
        return (checkpoint is not None and dot.counter <= checkpoint.seq and dot not in self._log
                and (batch_hash not in self._causal or batch_hash == checkpoint.head))

    def _hidden_by_checkpoint(self, source: Any, wire: bytes) -> bool:
        """Whether ``wire`` is a batch that a checkpoint taken here stands for and that nothing
        here needs: no waiting batch names it and its author's batches are not being fetched.
        Such a batch (a neighbour sending what it holds, unaware of the checkpoint) is a
        duplicate, counted without being verified; the others are indexed (see ``_stood_for``)."""
        try:
            author, seq = peek_batch(wire)
        except DecodeError:
            return False  # opening it reports it
        checkpoint = self._checkpoints.get(author)
        if (checkpoint is None or seq > checkpoint.seq or Dot(author, seq) in self._log
                or author in self._history_wanted or batch_hash(wire) in self._waiting):
            return False
        source.peer_seen.add(Dot(author, seq))
        self.stats.duplicate_batches += 1
        return True

    def _with_checkpoints(self, session: Any, seen: CausalContext) -> CausalContext:
        """Answering a peer's first ``Sync`` (its ``seen``): send it a checkpoint instead of the
        batches it stands for, per author, where it lacks ``checkpoint_min_batches`` of them or
        we lack their wires; return ``seen`` with what the checkpoints sent stand for, to find
        the batches still to send (costing the batches after them, not the ones they replace)."""
        minimum = self.config.checkpoint_min_batches
        if minimum is None:
            return seen
        self._seal_for_checkpoint(session)
        sent: dict[str, int] = {}
        holds_all = self._retirements.holder_of_all(seen)
        for author in sorted({self.replica_id, *self._checkpoints}):
            checkpoint = self._checkpoint_of(author)
            has = seen.max(author)
            if checkpoint is None or has >= checkpoint.seq or seen.vv.get(author, 0) != has:
                continue  # it holds them all, or some out of order: batches
            if not has and holds_all(author):
                continue  # a departed incarnation it pruned
            if checkpoint.seq - has < minimum and self._log.holds_run(author, has + 1, checkpoint.seq):
                continue  # a few batches cost less than the state
            self._send_checkpoint(session, checkpoint)
            sent[author] = checkpoint.seq
        if not sent:
            return seen
        covered = seen.copy()
        covered.join(CausalContext(sent))
        return covered

    def _seal_for_checkpoint(self, session: Any) -> None:
        """While we write alone, sign our pending writes now, so our checkpoint for the peer on
        ``session`` covers them (it is read from the memory, which holds them); the batch they
        make goes to the peer inside that checkpoint, not on its own."""
        if not (self._pure and self.memory.has_pending_deltas()):
            return
        dot = Dot(self.replica_id, self.seen.max(self.replica_id) + 1)
        session.in_flight.add(dot)  # (the flush's push to it skips what is in flight)
        self.flush(self._now)
        if dot not in self.seen:  # nothing could be encoded: nothing was sealed under it
            session.in_flight.discard(dot)

    def _offer_for_audit(self, session: Any, seen: CausalContext) -> None:
        """Send the checkpoints taken here whose batches we never got to a peer holding them
        (``seen``), once per peer: it checks them (:meth:`_audit`), so a lying one is caught by
        the first honest holder its joiners meet."""
        for author, checkpoint in self._checkpoints.items():
            offered = (session.peer_id, checkpoint.dot)
            if (seen.max(author) >= checkpoint.seq and offered not in self._audits_offered
                    and not self._log.holds_run(author, 1, checkpoint.seq)):
                self._audits_offered.add(offered)
                self._send_checkpoint(session, checkpoint)

    def _send_checkpoint(self, session: Any, checkpoint: Checkpoint) -> None:
        if checkpoint.dot in session.checkpoints_sent:
            return
        session.checkpoints_sent.add(checkpoint.dot)
        self.stats.checkpoints_sent += 1
        self._send_message(session, Checkpoints((checkpoint.wire,)), SendKind.CATCH_UP)

    def _on_checkpoints(self, session: Any, message: Checkpoints, now: float) -> None:
        """Take each checkpoint that brings batches we lack; check those we hold the batches of.

        A checkpoint that cannot be taken (its author untrusted, its content refused) is
        answered with a ``WantHistory``: the sender then sends the batches themselves. A bad
        signature or malformed bytes close the connection, as for a batch.
        """
        for wire in message.wires:
            key = read_checkpoint_header(wire).key
            if key in self._checkpoints_handled:
                continue
            try:
                checkpoint = open_checkpoint(wire, self.members, verify, max_size=self.config.max_message_bytes)
            except UntrustedAuthorError:
                self._want_history(session, key[0])  # its batches are parked until trusted
                continue
            except (ForgedDeltaError, UnobservedRemoveError) as exc:  # signed so: its author is at fault
                self._handled(key)
                self._refuse_checkpoint(session, key[0], key[1], exc)
                continue
            self._handled(key)
            author = checkpoint.author
            if author == self.replica_id:
                continue
            if self.seen.max(author) >= checkpoint.seq:
                self._audit(session, checkpoint, now)  # kept, to send on to joiners, if it matches
                continue
            if self._retirements.holds(Dot(author, checkpoint.seq)):
                continue  # a departed incarnation pruned here: we hold all it wrote
            if self.seen.vv.get(author, 0) != self.seen.max(author):
                self._want_history(session, author)  # some of its batches are held out of order: batches
                continue
            try:
                self._take_checkpoint(checkpoint)
            except RemoteProtocolError as exc:
                self._refuse_checkpoint(session, author, checkpoint.seq, exc)
                continue
            fresh = self._release(session.conn, checkpoint.head)
            for other in self._ready_sessions():  # neighbours lacking those batches get it, as a Sync answer would
                if other is not session and other.heard:
                    if other.peer_seen.max(author) < checkpoint.seq:
                        self._send_checkpoint(other, checkpoint)
                    else:
                        self._offer_for_audit(other, other.peer_seen)
            if fresh:
                self._queue_relay(fresh, now)

    def _handled(self, key: tuple[str, int, bytes, bytes]) -> None:
        """Note a checkpoint whose signature verified (its :attr:`~.checkpoint.Checkpoint.key`),
        so it is not opened again: keyed only once verified, as a forged body could carry a
        copied signature."""
        self._checkpoints_handled[key] = None
        if len(self._checkpoints_handled) > _MAX_HANDLED:
            del self._checkpoints_handled[next(iter(self._checkpoints_handled))]

    def _take_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Check and join a verified checkpoint like the batch it ends with (its own author's
        earlier batches, which it stands for, need not be held)."""
        batch = checkpoint.as_batch()
        self.members.check(batch, vouched=False)
        self._retirements.check_author(batch, vouched=False)
        covered = {checkpoint.author: checkpoint.seq}
        records = self._retirements.check(batch, covered)
        check_stamps(batch, self._stamp_bound())
        self._join(batch)
        self.seen.join(CausalContext(dict(covered)))
        reach = reach_of(batch, self._joined_clocks(batch))
        self._causal.record_checkpoint(batch, reach)
        self._checkpoints[checkpoint.author] = checkpoint
        for waiting, _deps in list(self._pending_by_author.get(checkpoint.author, {}).items()):
            if self._pending[waiting].seq <= checkpoint.seq:  # it stands for them: they wait for nothing now
                self._unbuffer(checkpoint.author, waiting)
        self._events.append(CheckpointApplied(checkpoint.author, checkpoint.seq, checkpoint.wire,
                                              index_entry(reach, records)))
        self._prune(self._retirements.note(checkpoint.author, checkpoint.seq, covered, records, self._holds_all))
        self.stats.checkpoints_applied += 1

    def _joined_clocks(self, batch: DeltaBatch) -> dict[str, int]:
        """The author's Yjs clock in each of our Docs a checkpoint was just joined into: how far
        it reached there (its documents' ends are not read, see ``Document.whole_state``)."""
        client = yjs_client_id(batch.author)
        clocks = {}
        for name, delta in batch.deltas:
            state = self.memory.state(name)
            if isinstance(delta, Document) and isinstance(state, Document):
                clocks[name] = state.clock(client)
        return clocks

    def _refuse_checkpoint(self, session: Any, author: str, seq: int, exc: RemoteProtocolError,
                           *, fetch: bool = True) -> None:
        """Refuse a validly signed checkpoint (count, report, keep the connection: its author is
        at fault, not the peer relaying it) and, with ``fetch``, fetch its author's batches instead."""
        log.debug("refused checkpoint %s#%d from %s: %s", author, seq, session.peer_id, exc)
        self.stats.count_refusal(exc.reason)
        self._events.append(Refused(session.conn, exc.reason, str(exc)))
        if fetch:
            self._want_history(session, author)

    def _audit(self, session: Any, checkpoint: Checkpoint, now: float) -> None:
        """Check a checkpoint against its author's batches held here (at most once per author
        per ``checkpoint_audit_interval``): one that differs is refused as equivocation."""
        author, last = checkpoint.author, self._audited_at.get(checkpoint.author)
        if last is not None and now - last < self.config.checkpoint_audit_interval:
            return
        if not self._log.holds_run(author, 1, checkpoint.seq):
            return  # we hold some of them through a checkpoint ourselves, or not at all
        self._audited_at[author] = now
        wires = self._log.of_author(author)[: checkpoint.seq]
        batches = (read_batch(wire, max_size=self.config.max_message_bytes) for wire in wires)
        if Contribution.of(batches).matches(checkpoint, max_size=self.config.max_message_bytes):
            held = self._checkpoints.get(author)
            if held is None or held.seq < checkpoint.seq:
                self._checkpoints[author] = checkpoint
            return
        self._refuse_checkpoint(session, author, checkpoint.seq, EquivocationError(
            f"{author}'s checkpoint #{checkpoint.seq} differs from its batches 1..{checkpoint.seq}"), fetch=False)

    def _want_history(self, session: Any, author: str) -> None:
        """Ask the peer for every batch of ``author`` it logged (once per connection and author)."""
        if author not in self._history_wanted:
            self._history_wanted.add(author)
            self.stats.histories_wanted += 1
        checkpoint = self._checkpoints.get(author)
        if checkpoint is not None and self._log.holds_run(author, 1, checkpoint.seq):
            self._history_wanted.discard(author)  # every one of them is here now
            return
        if author not in session.histories_asked:
            session.histories_asked.add(author)
            self._send_message(session, WantHistory((author,)), SendKind.GOSSIP)

    def _on_want_history(self, session: Any, message: WantHistory) -> None:
        """Send the peer every logged batch of the authors it names, once per author and connection."""
        step = self.config.max_batch_wires_per_message
        for author in message.authors:
            if author in session.histories_sent:
                continue
            session.histories_sent.add(author)
            wires = self._log.of_author(author)
            for start in range(0, len(wires), step):
                self._send_message(session, Batches(tuple(wires[start : start + step])), SendKind.CATCH_UP)
