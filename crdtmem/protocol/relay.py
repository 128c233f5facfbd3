"""Relay links: a :class:`~crdtmem.protocol.node.Node` publishing to, and consuming from, a broker's stream.

A relay (NATS JetStream in production, a modelled hub in the simulator) is not a session:
no handshake, no MACs. The broker is trusted to deliver, never for content, so every signed
batch it delivers goes through the node's one verification, causal-buffer and parking path,
and bad input is refused, counted and changes nothing; the link is never closed for it.

The shell drives a link like this (``link`` is any hashable id)::

    node.attach_relay(link, now)
    node.relay_up(link, now, max_payload=...)      # connected (again): republish, ask for a repair
    node.relay_deliver(link, wire, now)            # one message of the stream (a batch wire)
    node.relay_stored(link, msg_id, now)           # the broker acknowledged a Publish as durable
    node.relay_message(link, data, now, reply_to)  # a reconciliation message (request or answer)
    node.relay_down(link, now)                     # disconnected; unconfirmed batches wait

and performs the :class:`~crdtmem.protocol.events.Publish` and
:class:`~crdtmem.protocol.events.RelaySend` actions among the node's others.

What goes to the stream: this node's own batches, and the batches it applied from websocket
links (bridging the mesh into the stream), each with its batch hash as the broker's
deduplication id, so bridges publishing the same batch within the broker's duplicate window
store it once. A published batch stays *unconfirmed* until the broker acknowledges it or the
stream delivers it back; unconfirmed batches are published again on every :meth:`relay_up`
and every ``relay_republish_interval``. Batches delivered by the stream are relayed to mesh
neighbours as usual, never back to the stream.

What the stream no longer holds (its retention dropped it, or a durable consumer skipped it)
is repaired by reconciliation over the broker, outside the stream: the node sends a
``Sync`` request (on :meth:`relay_up`, when a delivered batch waits for dependencies, and every
``anti_entropy_interval``). A request no peer answered (none was subscribed yet, as when the
broker just restarted and the others have not reconnected, or the message was lost) is asked
again after a backoff from ``gossip_interval`` doubling up to ``anti_entropy_interval``; the
first answer resets it. One peer answers with the signed batches the requester lacks and
its own ``Sync``, and the requester publishes to the stream what that answer shows the other
peer lacks (a bounded number per answer). Flights::

    requester                       broker                       one answering peer
      RelaySend(Sync) ─────────────────────────────────────────────▶ relay_message
      relay_message ◀────────── Batches(missing wires)... , Sync(reply) ──┘
      Publish(what the answerer lacks) ──▶ stream ──▶ everyone
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from ..clocks import CausalContext, Dot
from ..errors import CrdtmemError, DecodeError, RefusalReason
from .backoff import Backoff
from .batch import batch_hash
from .events import Publish, Refused, RelaySend, SendKind
from .messages import Batches, Sync, decode_message, encode_message

__all__ = ["RelayLink", "RelayInputs"]

log = logging.getLogger("crdtmem.relay")

_MESSAGE_OVERHEAD = 64  # bytes a Batches message adds around its wires, with room to spare


@dataclass
class RelayLink:
    """What a node knows of one relay: what reached its stream, and what it still must publish."""

    conn: Hashable
    sync_retry: Backoff
    """Delays before a reconciliation request nobody answered is asked again."""
    max_payload: int = 1024 * 1024
    """The largest message the broker takes (NATS's default until :meth:`RelayInputs.relay_up` says)."""
    up: bool = False
    peer_seen: CausalContext = field(default_factory=CausalContext)
    """Batches the relay delivered to us or acknowledged as stored: never published to it again."""
    unconfirmed: dict[str, tuple[Dot, float]] = field(default_factory=dict)
    """msg_id -> (batch, when last published) for batches not yet acknowledged by the broker,
    least recently published first."""
    next_sync: float = 0.0
    sync_wanted: bool = False

    @property
    def peer_id(self) -> str:
        return f"relay {self.conn}"


class RelayInputs:
    """The :class:`~crdtmem.protocol.node.Node` methods that drive relay links (mixed into it).

    It relies on the node's delta log, config, stats, event and action lists, and on
    ``_accept`` (verify, buffer or apply a list of batch wires from one source).
    """

    _relays: dict[Hashable, RelayLink]

    def attach_relay(self, link: Hashable, now: float) -> None:
        """Call once per relay, before any other relay call for ``link``; it starts down.

        Args:
            link: any hashable id, distinct from every connection id.
            now: the current time.
        """
        if link in self._relays:
            raise ValueError(f"relay {link!r} is already attached")
        self._advance(now)
        first_retry = min(self.config.gossip_interval, self.config.anti_entropy_interval)
        self._relays[link] = RelayLink(link, Backoff(first_retry, self.config.anti_entropy_interval))

    def relay_up(self, link: Hashable, now: float, *, max_payload: int | None = None) -> None:
        """Call when the relay (re)connected: publishes what it has not confirmed and asks for a repair.

        Args:
            max_payload: the largest message the broker takes, if known; larger batches are not
                published (the mesh and reconciliation still carry them).
        """
        self._advance(now)
        relay = self._relays[link]
        relay.up = True
        if max_payload is not None:
            relay.max_payload = max_payload
        relay.sync_retry.reset()
        self._republish(relay, now, older_than=now)
        self.flush(now)  # writes held while no one could take them go out now
        self._relay_sync(relay, now)

    def relay_down(self, link: Hashable, now: float) -> None:
        """Call when the relay disconnected; publishing resumes on :meth:`relay_up`."""
        self._advance(now)
        self._relays[link].up = False

    def relay_stored(self, link: Hashable, msg_id: str, now: float) -> None:
        """Call when the broker acknowledged the :class:`Publish` ``msg_id`` as durably stored."""
        self._advance(now)
        relay = self._relays[link]
        entry = relay.unconfirmed.pop(msg_id, None)
        if entry is not None:
            relay.peer_seen.add(entry[0])

    def relay_deliver(self, link: Hashable, wire: bytes, now: float) -> None:
        """Call with each message the relay's stream delivers (one signed batch wire), in order.

        Never raises for bad input: garbage or a bad signature is refused with a
        :class:`Refused` event, counted, and changes nothing.
        """
        self._advance(now)
        relay = self._relays[link]
        self.stats.bytes_received += len(wire)
        self.stats.relay_delivered += 1
        relay.unconfirmed.pop(batch_hash(wire).hex(), None)
        self._relay_accept(relay, (wire,), now)

    def relay_message(self, link: Hashable, data: bytes, now: float, reply_to: str | None = None) -> None:
        """Call with each reconciliation message received over the relay (not from its stream).

        Args:
            reply_to: the reply address of a request (answers go there); None for answers.
        """
        self._advance(now)
        relay = self._relays[link]
        self.stats.bytes_received += len(data)
        try:
            message = decode_message(data, max_size=self.config.max_message_bytes)
        except CrdtmemError as exc:
            self._relay_refuse(relay, exc)
            return
        if isinstance(message, Batches):
            self._relay_accept(relay, message.wires, now)
        elif isinstance(message, Sync) and not message.reply and reply_to is not None:
            self._answer_sync(relay, message.seen, reply_to)
        elif isinstance(message, Sync) and message.reply:
            self._sync_answered(relay, now)
            self._publish_lacking(relay, message.seen, now)
        else:
            self._relay_refuse(relay, DecodeError("unexpected message over the relay"))

    def relays(self) -> dict[Hashable, bool]:
        """Attached relays, each with whether it is up; ask at any time."""
        return {link: relay.up for link, relay in self._relays.items()}

    def relay_unconfirmed(self) -> int:
        """Batches published to some relay and not yet acknowledged by its broker (for health)."""
        return sum(len(relay.unconfirmed) for relay in self._relays.values())

    # -- the node's hooks -------------------------------------------------------------------

    def _relay_publish_fresh(self, batches: list[tuple[Dot, bytes]], now: float) -> None:
        """Publish own or mesh batches to every relay whose stream is not known to hold them."""
        for relay in self._relays.values():
            self._publish(relay, batches, now)

    def _relay_tick(self, now: float) -> None:
        for relay in self._relays.values():
            if not relay.up:
                continue
            self._republish(relay, now, older_than=now - self.config.relay_republish_interval)
            if now >= relay.next_sync:
                self._relay_sync(relay, now)

    def _relay_deadlines(self) -> Iterable[float]:
        for relay in self._relays.values():
            if relay.up:
                yield relay.next_sync
                if relay.unconfirmed:
                    oldest = next(iter(relay.unconfirmed.values()))[1]
                    yield oldest + self.config.relay_republish_interval

    # -- internals --------------------------------------------------------------------------

    def _relay_accept(self, relay: RelayLink, wires: Iterable[bytes], now: float) -> None:
        for wire in wires:
            try:
                fresh, fetch = self._accept(relay, (wire,))
            except CrdtmemError as exc:
                self._relay_refuse(relay, exc)
                continue
            if fetch and not relay.sync_wanted:
                # Its dependencies may be gone from the stream: ask a peer, soon but not per batch.
                relay.sync_wanted = True
                relay.next_sync = min(relay.next_sync, now + self.config.gossip_interval)
            if fresh:
                self._queue_relay(fresh, now)

    def _relay_refuse(self, relay: RelayLink, exc: CrdtmemError) -> None:
        reason = getattr(exc, "reason", RefusalReason.INTERNAL_ERROR)
        log.warning("refused %s from %s: %s", reason, relay.peer_id, exc)
        self.stats.count_refusal(reason)
        self._events.append(Refused(relay.conn, reason, str(exc)))

    def _relay_sync(self, relay: RelayLink, now: float) -> None:
        """Ask one peer for a repair; until an answer comes, ask again after a growing delay."""
        relay.sync_wanted = False
        relay.next_sync = now + relay.sync_retry.next_delay(self.rng)
        if relay.up:
            self.stats.anti_entropy_sessions += 1
            self._relay_send(relay, encode_message(Sync(self.seen)), None)

    def _sync_answered(self, relay: RelayLink, now: float) -> None:
        """A peer answered a request: the next one is due after a full ``anti_entropy_interval``."""
        relay.sync_retry.reset()
        if not relay.sync_wanted:
            relay.next_sync = now + self._anti_entropy_delay()

    def _answer_sync(self, relay: RelayLink, seen: CausalContext, reply_to: str) -> None:
        """Send a requester the signed batches it lacks, in messages the broker takes, then our Sync."""
        chunk: list[bytes] = []
        size = _MESSAGE_OVERHEAD
        for _, wire in self._missing_for(seen):
            if len(wire) + _MESSAGE_OVERHEAD > relay.max_payload:
                continue
            if size + len(wire) + 8 > relay.max_payload:
                self._relay_send(relay, encode_message(Batches(tuple(chunk))), reply_to)
                chunk, size = [], _MESSAGE_OVERHEAD
            chunk.append(wire)
            size += len(wire) + 8
        if chunk:
            self._relay_send(relay, encode_message(Batches(tuple(chunk))), reply_to)
        self._relay_send(relay, encode_message(Sync(self.seen, reply=True)), reply_to)

    def _publish_lacking(self, relay: RelayLink, seen: CausalContext, now: float) -> None:
        """Publish what an answer says its peer lacks, at most ``max_batch_wires_per_message`` at a time.

        The answer is unsigned and anyone on the broker could send one: the bound keeps what a
        few bytes can make us publish small; the next reconciliation round publishes more.
        """
        lacking = [
            (dot, wire) for dot, wire in self._missing_for(seen)
            if dot not in relay.peer_seen and batch_hash(wire).hex() not in relay.unconfirmed
        ]
        self._publish(relay, lacking[: self.config.max_batch_wires_per_message], now)

    def _relay_send(self, relay: RelayLink, data: bytes, to: str | None) -> None:
        self._actions.append(RelaySend(relay.conn, data, to))
        self.stats.count_send(SendKind.RELAY, len(data))

    def _publish(self, relay: RelayLink, batches: Iterable[tuple[Dot, bytes]], now: float) -> None:
        for dot, wire in batches:
            if dot in relay.peer_seen:
                continue
            if len(wire) > relay.max_payload:
                log.warning("batch %s#%d (%d bytes) exceeds the relay's max payload: not published",
                            dot.replica, dot.counter, len(wire))
                continue
            msg_id = batch_hash(wire).hex()
            if msg_id in relay.unconfirmed:
                continue
            relay.unconfirmed[msg_id] = (dot, now)
            if relay.up:
                self._emit_publish(relay, wire, msg_id)

    def _republish(self, relay: RelayLink, now: float, *, older_than: float) -> None:
        due = []
        for msg_id, (dot, at) in relay.unconfirmed.items():
            if at > older_than:
                break  # least recently published first: the rest are younger
            due.append((msg_id, dot))
        for msg_id, dot in due:
            del relay.unconfirmed[msg_id]
            wire = self._log.get(dot)
            if wire is None:  # evicted from the log: reconciliation cannot serve it either
                continue
            relay.unconfirmed[msg_id] = (dot, now)  # re-inserted: now the most recent
            self._emit_publish(relay, wire, msg_id)

    def _emit_publish(self, relay: RelayLink, wire: bytes, msg_id: str) -> None:
        self._actions.append(Publish(relay.conn, wire, msg_id))
        self.stats.count_send(SendKind.RELAY, len(wire))
