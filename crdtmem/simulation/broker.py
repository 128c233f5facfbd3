"""``SimBroker``: a modelled NATS JetStream broker between simulated peers (a hub, not a mesh).

What it models, so 10,000 agents through one broker can be set against the gossip mesh:

* **publish cost**: the broker handles one message at a time; storing one takes
  ``publish_cost`` seconds of its time, and handing it to each subscriber ``deliver_cost``
  more, so a busy broker queues publishes (its backlog is the ``busy_until`` horizon);
* **per-subscriber delivery**: every connected peer gets every stored message once, in stream
  order, through its durable consumer: a peer that was away (crashed, or cut off by a broker
  outage) resumes after the last message it was delivered;
* **retention**: a message older than ``retention`` seconds is dropped from the stream; a peer
  resuming behind that point starts at the oldest kept message and reconciles the rest;
* **deduplication**: a message id (the batch hash) stored within ``duplicate_window`` is
  acknowledged and not stored again, as JetStream's ``Nats-Msg-Id``;
* **reconciliation requests**: a request goes to one random other connected peer (a queue
  group), its answers straight back to the requester;
* **outages**: while down, publishes are lost (never acknowledged: their publishers publish
  them again), nothing is delivered, and every peer sees its relay go down and come back.

Latency peer↔broker is the scenario's, drawn per message. Like the rest of the simulator it
decides nothing for the peers: it calls the real Node's relay inputs.

Spec syntax (``Scenario.broker``, ``crdtmem simulate --broker``)::

    publish=20us,deliver=1us,retention=60m,window=2m
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..protocol.events import Publish, RelaySend
from .latency import Latency, parse_duration
from .queue import CALL, EventQueue
from .simpeer import SimPeer

__all__ = ["BrokerSpec", "SimBroker"]

_SPEC_KEYS = {"publish": "publish_cost", "deliver": "deliver_cost", "retention": "retention", "window": "duplicate_window"}


@dataclass(frozen=True)
class BrokerSpec:
    """The broker's costs and limits, in seconds (see the module docstring)."""

    publish_cost: float = 20e-6
    deliver_cost: float = 1e-6
    retention: float = 3600.0
    duplicate_window: float = 120.0

    @classmethod
    def parse(cls, spec: str) -> BrokerSpec:
        """Read ``key=DURATION,...`` with keys ``publish``, ``deliver``, ``retention``, ``window``."""
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in _SPEC_KEYS:
                raise ValueError(f"bad broker spec {spec!r}: use {','.join(k + '=T' for k in _SPEC_KEYS)}")
            values[_SPEC_KEYS[key.strip()]] = parse_duration(value)
        made = cls(**values)
        if not made.retention > 0:
            raise ValueError(f"bad broker spec {spec!r}: retention must be positive")
        return made


class SimBroker:
    """The broker of one simulation; the engine forwards node actions and faults to it.

    Args:
        spec: costs and limits.
        queue: the simulation's event queue (virtual time).
        latency: one-way delay between any peer and the broker.
        rng: draws latencies and which peer answers a reconciliation request.
        peers: the simulation's peers, by index.
        call: ``call(peer, fn, *args)`` runs a Node input and handles what it asked for.
        messages, nbytes: the simulation's traffic counters (kind ``relay-delivery`` is added).
    """

    LINK = "broker"

    def __init__(self, spec: BrokerSpec, queue: EventQueue, latency: Latency, rng: random.Random,
                 peers: list[SimPeer], call: Callable[..., None], messages: Counter[str], nbytes: Counter[str]) -> None:
        self.spec, self.queue, self.latency, self.rng, self.peers = spec, queue, latency, rng, peers
        self._call, self._messages, self._bytes = call, messages, nbytes
        self.up = True
        self.busy_until = 0.0
        self._stream: dict[int, tuple[float, bytes]] = {}  # seq -> (stored at, wire)
        self._first, self._next = 1, 1
        self._dedup: dict[str, float] = {}  # msg id -> stored at
        self._cursor: dict[int, int] = {}  # peer index -> last seq delivered (the durable consumer)
        self._subscribed: dict[int, int] = {}  # peer index -> the generation connected
        self.stats: Counter[str] = Counter()

    # -- the engine's calls -----------------------------------------------------------------

    def attach(self, peer: SimPeer, at: float) -> None:
        """A peer (re)started at ``at``: attach its relay link and connect it one latency later."""
        peer.node.attach_relay(self.LINK, self.queue.now)
        self._later(at - self.queue.now + self._lat(), self._connect, (peer.index, peer.generation))

    def detach(self, index: int) -> None:
        """A peer crashed: its subscription ends; its durable consumer (cursor) stays."""
        self._subscribed.pop(index, None)

    def perform(self, peer: SimPeer, action: Publish | RelaySend) -> None:
        """Carry one relay action of ``peer``'s node to the broker."""
        data = action.wire if isinstance(action, Publish) else action.data
        kind = "relay-publish" if isinstance(action, Publish) else "relay-sync"
        self._messages[kind] += 1
        self._bytes[kind] += len(data)
        if isinstance(action, Publish):
            self._later(self._lat(), self._store, (peer.index, peer.generation, action.wire, action.msg_id))
        else:
            self._later(self._lat(), self._route, (peer.index, action.data, action.to))

    def go_down(self) -> None:
        """An outage starts: connected peers see their relay drop one latency later."""
        self.up = False
        for index, generation in list(self._subscribed.items()):
            self._later(self._lat(), self._disconnect, (index, generation))
        self._subscribed.clear()

    def come_up(self) -> None:
        """The outage ends: every live attached peer reconnects one latency later."""
        self.up = True
        for peer in self.peers:
            if peer.alive and self.LINK in peer.node.relays():
                self._later(self._lat(), self._connect, (peer.index, peer.generation))

    def inject(self, wire: bytes) -> None:
        """Store ``wire`` as a publisher holding no key would (tests of hostile input)."""
        self._store((-1, -1, wire, f"injected-{self._next}"))

    def retained(self) -> int:
        """Messages the stream holds now."""
        self._expire()
        return self._next - self._first

    # -- internals --------------------------------------------------------------------------

    def _lat(self) -> float:
        return self.latency.sample(self.rng)

    def _later(self, delay: float, fn: Callable[[Any], None], arg: Any) -> None:
        self.queue.at(self.queue.now + max(0.0, delay), CALL, fn, arg)

    def _peer(self, index: int, generation: int) -> SimPeer | None:
        if not 0 <= index < len(self.peers):
            return None
        peer = self.peers[index]
        return peer if peer.alive and peer.generation == generation else None

    def _connect(self, arg: tuple[int, int]) -> None:
        index, generation = arg
        peer = self._peer(index, generation)
        if peer is None or not self.up or index in self._subscribed:
            return
        self._subscribed[index] = generation
        self._call(peer, peer.node.relay_up, self.LINK, self.queue.now)
        self._expire()
        backlog = range(max(self._cursor.get(index, 0) + 1, self._first), self._next)
        self._deliver_all(backlog, [index])

    def _disconnect(self, arg: tuple[int, int]) -> None:
        peer = self._peer(*arg)
        if peer is not None:
            self._call(peer, peer.node.relay_down, self.LINK, self.queue.now)

    def _store(self, arg: tuple[int, int, bytes, str]) -> None:
        index, generation, wire, msg_id = arg
        if not self.up:
            self.stats["publishes_lost"] += 1
            return
        now = self.queue.now
        self._expire()
        stored_at = self._dedup.get(msg_id)
        if stored_at is not None and stored_at >= now - self.spec.duplicate_window:
            self.stats["duplicates_dropped"] += 1
            self._later(self._lat(), self._acked, (index, generation, msg_id))
            return
        start = max(now, self.busy_until)
        stored = start + self.spec.publish_cost
        self.busy_until = stored
        seq = self._next
        self._next += 1
        self._stream[seq] = (stored, wire)
        self._dedup[msg_id] = stored
        self.stats["stored"] += 1
        self.stats["max_backlog_ms"] = max(self.stats["max_backlog_ms"], round((start - now) * 1000))
        self._later(stored - now + self._lat(), self._acked, (index, generation, msg_id))
        self._deliver_all([seq], list(self._subscribed))

    def _deliver_all(self, seqs: Any, indices: list[int]) -> None:
        """Hand the messages ``seqs`` to each subscriber in ``indices``, in order, at the broker's pace."""
        now = self.queue.now
        at = max(now, self.busy_until)
        for seq in seqs:
            for index in indices:
                at += self.spec.deliver_cost
                # One connection per subscriber delivers in order: a fixed latency keeps that order.
                self._later(at - now + self.latency.mean, self._deliver, (index, self._subscribed[index], seq))
        self.busy_until = at

    def _deliver(self, arg: tuple[int, int, int]) -> None:
        index, generation, seq = arg
        peer = self._peer(index, generation)
        entry = self._stream.get(seq)
        if peer is None or entry is None or self._subscribed.get(index) != generation:
            return
        if self._cursor.get(index, 0) >= seq:
            return  # delivered already (a backlog and a live delivery crossed)
        self._cursor[index] = seq
        wire = entry[1]
        self._messages["relay-delivery"] += 1
        self._bytes["relay-delivery"] += len(wire)
        self._call(peer, peer.node.relay_deliver, self.LINK, wire, self.queue.now)

    def _acked(self, arg: tuple[int, int, str]) -> None:
        index, generation, msg_id = arg
        peer = self._peer(index, generation)
        if peer is not None and self._subscribed.get(index) == generation:
            self._call(peer, peer.node.relay_stored, self.LINK, msg_id, self.queue.now)

    def _route(self, arg: tuple[int, bytes, str | None]) -> None:
        sender, data, to = arg
        if not self.up:
            return
        if to is None:
            others = [i for i in self._subscribed if i != sender]
            if not others:
                return
            target, reply_to = self.rng.choice(others), str(sender)
        else:
            target, reply_to = int(to), None
        generation = self._subscribed.get(target)
        if generation is None:
            return
        self._messages["relay-delivery"] += 1
        self._bytes["relay-delivery"] += len(data)
        self._later(self._lat(), self._answer, (target, generation, data, reply_to))

    def _answer(self, arg: tuple[int, int, bytes, str | None]) -> None:
        index, generation, data, reply_to = arg
        peer = self._peer(index, generation)
        if peer is not None:
            self._call(peer, peer.node.relay_message, self.LINK, data, self.queue.now, reply_to)

    def _expire(self) -> None:
        horizon = self.queue.now - self.spec.retention
        while self._first < self._next and self._stream[self._first][0] < horizon:
            del self._stream[self._first]
            self._first += 1
            self.stats["expired"] += 1
        if len(self._dedup) > 4 * (self._next - self._first) + 1024:
            window = self.queue.now - self.spec.duplicate_window
            self._dedup = {k: t for k, t in self._dedup.items() if t >= window}
