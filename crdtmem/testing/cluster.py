"""``Cluster``: real :class:`~crdtmem.protocol.node.Node` s on a virtual clock, linked in memory.

A test harness in the spirit of h11's ``ConnectionPair``: every node runs the real protocol
(handshake, signed batches, gossip, anti-entropy), the cluster only moves frames and time.
Time jumps from one event to the next — a frame's arrival, a redial, a node's
:meth:`~crdtmem.protocol.node.Node.next_deadline` — so there is no polling step and a run
with the same seed replays exactly::

    from crdtmem.testing import Cluster, LinkFaults

    cluster = Cluster(seed=1, faults=LinkFaults(loss=0.1))
    cluster.add("alice")
    cluster.add("bob")
    cluster.connect("alice", "bob")
    cluster.memory("alice").counter("tasks").increment(2)
    assert cluster.run_until(cluster.converged, timeout=30)
    assert cluster.memory("bob").counter("tasks").value == 2

Links are wanted (:meth:`Cluster.connect`) or not (:meth:`Cluster.disconnect`); a wanted link
whose connection breaks — a refused frame, :meth:`Cluster.drop`, a :meth:`Cluster.cut` of
the network — is redialed after a :class:`~crdtmem.protocol.backoff.Backoff` delay, and
redials fail while the link is cut, until :meth:`Cluster.heal`. For hostile tests,
:meth:`Cluster.open_raw` opens a connection whose far end is the test itself, and
:meth:`Cluster.inject` hands any frames to a node.

Like the rest of the core, this module does no I/O and reads no clock.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..identity import Identity, Keyring
from ..memory import Memory
from ..protocol.backoff import Backoff
from ..protocol.events import BatchApplied, CheckpointApplied, Close, Event, PeerConnected, Refused, Send
from ..protocol.framing import FrameChannel
from ..protocol.handshake import Handshake
from ..protocol.messages import Message, encode_message
from ..protocol.node import Node, NodeConfig
from ..protocol.recovery import Restored, recover
from ..protocol.stats import NodeStats

__all__ = ["Cluster", "Conn", "LinkFaults", "RawSession"]


@dataclass(frozen=True)
class Conn:
    """One end of a connection: the id ``owner``'s node knows it by."""

    owner: str
    peer: str
    number: int

    @property
    def far_end(self) -> Conn:
        """The same connection as the peer's node knows it."""
        return Conn(self.peer, self.owner, self.number)


@dataclass(frozen=True)
class LinkFaults:
    """What the network does to every frame, drawn from the cluster's seeded generator.

    A frame is lost with probability ``loss``, else delivered twice with probability
    ``duplicate``; each copy takes ``latency`` seconds, or with probability ``reorder`` up to
    ``reorder_spread`` times longer (so later frames overtake it). Framing refuses gaps and
    replays, so loss and reordering break connections, which are then redialed.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    latency: float = 0.01
    reorder_spread: float = 20.0


@dataclass
class RawSession:
    """A connection to a node whose far end is the test: see :meth:`Cluster.open_raw`."""

    conn: Conn
    """The id the node knows the connection by (pass it to :meth:`Cluster.inject`)."""
    handshake: Handshake
    channel: FrameChannel | None = None
    """Seals frames as the far end's identity, once the handshake is done."""
    received: list[bytes] = field(default_factory=list)
    """Every frame the node sent on this connection, in order, handshake included."""
    closed: bool = False

    def seal(self, message: Message) -> list[bytes]:
        """The frames that carry ``message`` from this end, validly tagged, in order."""
        if self.channel is None:
            raise RuntimeError("the handshake of this raw session did not finish")
        return self.channel.seal_message(encode_message(message))


@dataclass
class _Link:
    dialer: str
    listener: str
    backoff: Backoff
    wanted: bool = True
    cut: bool = False
    conn: Conn | None = None  # the dialer's end of the open connection
    redial_at: float | None = None


_DELIVER, _DIAL = 0, 1


class Cluster:
    """Nodes, links and a virtual clock (see the module docstring).

    Args:
        seed: seeds every identity, node and network decision.
        config: the tunables of every node added.
        faults: what the network does to frames; may be replaced at any time.
        redial: the first and the longest redial delay of a broken link, in seconds.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        config: NodeConfig | None = None,
        faults: LinkFaults | None = None,
        redial: tuple[float, float] = (0.1, 2.0),
    ) -> None:
        self.seed = seed
        self.config = config or NodeConfig()
        self.faults = faults or LinkFaults()
        self.redial = redial
        self.now = 0.0
        self.keyring = Keyring()
        """Every member's key; nodes trust it unless given their own keyring."""
        self.delivered = 0
        """Frames handed to nodes so far (copies included)."""
        self._rng = random.Random(seed)
        self._nodes: dict[str, Node] = {}
        self._starts: dict[str, int] = {}  # how many times each node started (its rng seed changes)
        self._incarnations: dict[str, list[str]] = {}  # each member's incarnations, oldest first
        self._events: dict[str, list[Event]] = {}
        # what each member's store would journal: every applied batch's wire and index entry
        self._journals: dict[str, list[BatchApplied | CheckpointApplied]] = {}
        self._links: dict[frozenset[str], _Link] = {}
        self._open: set[Conn] = set()
        self._raw: dict[Conn, RawSession] = {}
        self._queue: list[tuple[float, int, int, Any, bytes]] = []  # (when, ticket, kind, target, frame)
        self._tickets = itertools.count()
        self._numbers = itertools.count(1)

    # -- members ----------------------------------------------------------------------------

    def add(self, name: str, identity: Identity | None = None, *, keyring: Keyring | None = None) -> Node:
        """Start a node called ``name`` (with a fresh memory) and return it.

        Args:
            identity: its key (default: derived from the seed and the name).
            keyring: whom it trusts (default: :attr:`keyring`, which always gains its key).
        """
        if name in self._nodes:
            raise ValueError(f"{name!r} is already a member; use restart()")
        identity = identity or Identity.from_private_bytes(random.Random(f"{self.seed}-{name}").randbytes(32))
        self.keyring.add(identity)
        self._journals[name] = []
        return self._start(name, identity, keyring or self.keyring)

    def restart(self, name: str, *, keyring: Keyring | None = None, keep_store: bool = False) -> Node:
        """Replace ``name``'s node by a new one with its identity, under a fresh incarnation.

        Its connections close (wanted links are redialed); the old node is returned by no
        query any more. Without ``keep_store`` the memory starts empty: a crash that lost the
        store. With it, the new node recovers from what a store would hold — a snapshot taken
        now and every batch the old node applied, with its index entry — as after a kill: it
        re-indexes those batches from their entries and retires the earlier incarnations of
        this store that did not retire themselves.
        """
        old = self.node(name)
        for conn in sorted((c for c in self._open | set(self._raw) if name in (c.owner, c.peer)), key=_order):
            self._break(conn, "peer restarted")
        if not keep_store:
            self._journals[name] = []
            return self._start(name, old.identity, keyring or old.keyring)
        journal = self._journals[name]
        restored = recover(old.identity.peer_id, old.snapshot(), [e.wire for e in journal],
                           index_entries=[e.index_entry for e in journal], clock=lambda: self.now)
        return self._start(name, old.identity, keyring or old.keyring, restored)

    def leave(self, name: str, *, retire: bool = True) -> None:
        """Member ``name`` leaves the cluster for good.

        With ``retire`` it stops cleanly: it retires its incarnation (:meth:`Node.retire`) and
        stays until every neighbour has its last batch. Without, it is killed on the spot and
        never restarted (nothing retires its incarnation).
        """
        node = self.node(name)
        if retire:
            node.retire(self.now)
            self._pump(name)
            self.run_until(lambda: all(node.synced_with().values()), timeout=30)
        for key in [k for k in self._links if name in k]:
            link = self._links.pop(key)
            if link.conn is not None:
                self._break(link.conn, "left")
        del self._nodes[name]
        del self._journals[name]

    def _start(self, name: str, identity: Identity, keyring: Keyring, restored: Restored | None = None) -> Node:
        memory = Memory(identity.peer_id, clock=lambda: self.now)
        starts = self._starts[name] = self._starts.get(name, 0) + 1
        # A seed per start: a restarted node draws a fresh incarnation, as a real restart does.
        seed = f"{self.seed}/{name}" if starts == 1 else f"{self.seed}/{name}/{starts}"
        incarnations = self._incarnations.setdefault(name, [])
        if restored is None:
            node = Node(memory, identity, keyring, rng=random.Random(seed), config=self.config)
        else:
            memory.merge(restored.memory)
            node = Node(memory, identity, keyring, rng=random.Random(seed), config=self.config,
                        seen=restored.seen, log_wires=restored.log_wires, predecessors=incarnations,
                        log_entries=restored.log_entries)
        incarnations.append(node.replica_id)
        self._nodes[name] = node
        self._events.setdefault(name, [])
        node.tick(self.now)
        self._pump(name)
        return node

    # -- links ------------------------------------------------------------------------------

    def connect(self, a: str, b: str) -> None:
        """Want a link between ``a`` and ``b`` (``a`` dials) and dial it now."""
        key = self._key(a, b)
        link = self._links.get(key)
        if link is None:
            self._links[key] = link = _Link(a, b, Backoff(*self.redial))
        link.wanted = True
        if link.conn is None:
            self._dial(link)

    def disconnect(self, a: str, b: str) -> None:
        """Stop wanting the link between ``a`` and ``b`` and close its connection."""
        link = self._links.pop(self._key(a, b), None)
        if link is not None and link.conn is not None:
            self._break(link.conn, "disconnected")

    def drop(self, a: str, b: str) -> None:
        """Break the connection between ``a`` and ``b`` once; the link is redialed."""
        link = self._links[self._key(a, b)]
        if link.conn is not None:
            self._break(link.conn, "connection dropped")

    def cut(self, a: str, b: str) -> None:
        """The network between ``a`` and ``b`` fails: the connection breaks, redials fail."""
        link = self._links[self._key(a, b)]
        link.cut = True
        if link.conn is not None:
            self._break(link.conn, "network cut")

    def heal(self, a: str, b: str) -> None:
        """The network between ``a`` and ``b`` works again; the next redial succeeds."""
        self._links[self._key(a, b)].cut = False

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every wanted link between members of different groups."""
        side = {name: i for i, group in enumerate(groups) for name in group}
        for link in list(self._links.values()):
            a, b = link.dialer, link.listener
            if a in side and b in side and side[a] != side[b]:
                self.cut(a, b)

    def heal_all(self) -> None:
        """Heal every cut link."""
        for link in self._links.values():
            link.cut = False

    def conn(self, owner: str, peer: str) -> Conn:
        """The open connection between ``owner`` and ``peer``, as ``owner``'s node knows it."""
        link = self._links.get(self._key(owner, peer))
        if link is None or link.conn is None:
            raise LookupError(f"no open connection between {owner!r} and {peer!r}")
        return link.conn if link.conn.owner == owner else link.conn.far_end

    def links_up(self) -> int:
        """How many links have an open connection (handshaking or ready)."""
        return sum(link.conn is not None for link in self._links.values())

    # -- hostile input ----------------------------------------------------------------------

    def open_raw(self, target: str, identity: Identity, *, handshake: bool = True) -> RawSession:
        """Open a connection to ``target`` whose far end is the test, speaking as ``identity``.

        With ``handshake`` the far end completes the real handshake at once (``identity``
        must be trusted by ``target`` for that to succeed), and :meth:`RawSession.seal` then
        frames any message. Without it, the far end stays silent.
        """
        node = self.node(target)
        conn = Conn(target, f"raw:{identity.peer_id}", next(self._numbers))
        trust = Keyring()
        trust.add(node.identity)
        session = RawSession(conn, Handshake(identity, trust, self._rng.randbytes(32), self._rng.randbytes(32)))
        self._raw[conn] = session
        node.open(conn, self.now, dialer=False)
        self._pump(target)
        if handshake:
            self.inject(conn, session.handshake.start())
            seen = 0
            while not session.handshake.done and not session.closed and seen < len(session.received):
                seen += 1
                self.inject(conn, session.handshake.receive(session.received[seen - 1]))
            if session.handshake.done:
                keys = session.handshake.keys
                session.channel = FrameChannel(keys, peer_id=target, max_frame_bytes=self.config.max_frame_bytes)
        return session

    def inject(self, conn: Conn, frames: Iterable[bytes]) -> list[Event]:
        """Hand ``frames`` to the node that owns ``conn`` now, as if they had arrived on it.

        Returns:
            The events the node raised meanwhile (they are also recorded, see :meth:`events`).
        """
        start = len(self._events[conn.owner])
        for frame in frames:
            self._nodes[conn.owner].receive(conn, frame, self.now)
            self._pump(conn.owner)
        return self._events[conn.owner][start:]

    # -- time -------------------------------------------------------------------------------

    def run(self, seconds: float) -> None:
        """Advance the clock by ``seconds``, handling every frame, redial and timer due."""
        end = self.now + seconds
        while self._step(end):
            pass
        self.now = max(self.now, end)

    def run_until(self, predicate: Callable[[], bool], *, timeout: float) -> bool:
        """Run until ``predicate()`` holds (checked after every event) or ``timeout`` passes.

        Returns:
            Whether the predicate held.
        """
        end = self.now + timeout
        while not predicate():
            if not self._step(end):
                self.now = max(self.now, end)
                return predicate()
        return True

    def _step(self, end: float) -> bool:
        """Handle the earliest event due by ``end``; False if there is none."""
        when, name = self._next_tick()
        queued = self._queue[0][0] if self._queue else None
        if queued is not None and queued <= end and (when is None or queued <= when):
            _, _, kind, target, data = heapq.heappop(self._queue)
            self.now = max(self.now, queued)
            if kind == _DELIVER:
                self._deliver(target, data)
            else:
                self._redial(target)
            return True
        if when is None or when > end:
            return False
        self.now = max(self.now, when)
        node = self._nodes[name]
        node.tick(self.now)
        self._pump(name)
        after = node.next_deadline()
        if after is not None and after <= self.now:
            raise AssertionError(f"{name}'s next_deadline() is {after} after tick({self.now})")
        return True

    def _next_tick(self) -> tuple[float | None, str | None]:
        best: tuple[float | None, str | None] = (None, None)
        for name, node in self._nodes.items():
            deadline = node.next_deadline()
            if deadline is not None:
                deadline = max(deadline, self.now)
                if best[0] is None or deadline < best[0]:
                    best = (deadline, name)
        return best

    # -- queries ----------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """The members, in the order they were added."""
        return list(self._nodes)

    def node(self, name: str) -> Node:
        """The current node of member ``name``."""
        return self._nodes[name]

    def memory(self, name: str) -> Memory:
        """Member ``name``'s replica (write to it; the node signs and sends the writes)."""
        return self._nodes[name].memory

    def memories(self) -> dict[str, Memory]:
        """Every member's replica, by name."""
        return {name: node.memory for name, node in self._nodes.items()}

    def stats(self, name: str) -> NodeStats:
        """Member ``name``'s node counters."""
        return self._nodes[name].stats

    def converged(self) -> bool:
        """Whether every replica holds the same values and the same canonical bytes."""
        memories = list(self.memories().values())
        values = memories[0].values()
        snapshot = memories[0].snapshot()
        return all(m.values() == values and m.snapshot() == snapshot for m in memories[1:])

    def synced(self) -> bool:
        """Whether every node knows each connected peer to have seen what it has (and no write waits)."""
        return all(node.synced() for node in self._nodes.values())

    def merkle_roots(self) -> set[bytes]:
        """The distinct Merkle roots of the replicas (one when they agree)."""
        roots = set()
        for node in self._nodes.values():
            node.index.refresh()
            roots.add(node.index.root())
        return roots

    def events(self, name: str) -> list[Event]:
        """Every event member ``name``'s nodes raised so far, in order."""
        return list(self._events[name])

    def take_events(self, name: str) -> list[Event]:
        """The events member ``name`` raised since the last call, then forgets them."""
        events, self._events[name] = self._events[name], []
        return events

    def refusals(self, name: str) -> list[Refused]:
        """Every :class:`Refused` event member ``name`` raised so far."""
        return [e for e in self._events[name] if isinstance(e, Refused)]

    # -- plumbing ---------------------------------------------------------------------------

    @staticmethod
    def _key(a: str, b: str) -> frozenset[str]:
        if a == b:
            raise ValueError("a link joins two different members")
        return frozenset((a, b))

    def _dial(self, link: _Link) -> None:
        link.redial_at = None
        if link.cut:
            self._schedule_redial(link)
            return
        conn = Conn(link.dialer, link.listener, next(self._numbers))
        link.conn = conn
        self._open |= {conn, conn.far_end}
        self._nodes[link.dialer].open(conn, self.now, dialer=True)
        self._nodes[link.listener].open(conn.far_end, self.now, dialer=False)
        self._pump(link.dialer)
        self._pump(link.listener)

    def _redial(self, key: frozenset[str]) -> None:
        link = self._links.get(key)
        if link is not None and link.wanted and link.conn is None and link.redial_at == self.now:
            self._dial(link)

    def _schedule_redial(self, link: _Link) -> None:
        link.redial_at = self.now + link.backoff.next_delay(self._rng)
        key = self._key(link.dialer, link.listener)
        heapq.heappush(self._queue, (link.redial_at, next(self._tickets), _DIAL, key, b""))

    def _break(self, conn: Conn, reason: str) -> None:
        """Close both ends of ``conn`` (either end may be given) and schedule a redial."""
        raw = self._raw.pop(conn, None) or self._raw.pop(conn.far_end, None)
        if raw is not None:
            raw.closed = True
            self._close_end(raw.conn, reason)
            return
        if conn not in self._open:
            return
        self._open -= {conn, conn.far_end}
        for end in sorted((conn, conn.far_end), key=_order):
            self._close_end(end, reason)
        link = self._links.get(frozenset((conn.owner, conn.peer)))
        if link is not None and link.conn in (conn, conn.far_end):
            link.conn = None
            if link.wanted:
                self._schedule_redial(link)

    def _close_end(self, conn: Conn, reason: str) -> None:
        node = self._nodes.get(conn.owner)
        if node is not None:
            node.close(conn, self.now, reason)
            self._pump(conn.owner)

    def _deliver(self, conn: Conn, data: bytes) -> None:
        if conn in self._open:
            self.delivered += 1
            self._nodes[conn.owner].receive(conn, data, self.now)
            self._pump(conn.owner)

    def _pump(self, name: str) -> None:
        """Perform the node's actions in order and record its events."""
        node = self._nodes[name]
        while True:
            actions = node.take_actions()
            events = node.take_events()
            if not actions and not events:
                return
            self._events[name].extend(events)
            for event in events:
                if isinstance(event, (BatchApplied, CheckpointApplied)):
                    self._journals[name].append(event)
                elif isinstance(event, PeerConnected) and isinstance(event.conn, Conn):
                    link = self._links.get(frozenset((event.conn.owner, event.conn.peer)))
                    if link is not None:
                        link.backoff.reset()
            for action in actions:
                if isinstance(action, Send):
                    self._transmit(action.conn, action.data)
                elif isinstance(action, Close):
                    self._break(action.conn, action.reason)

    def _transmit(self, conn: Conn, data: bytes) -> None:
        raw = self._raw.get(conn)
        if raw is not None:
            raw.received.append(data)
            return
        if conn not in self._open:
            return
        faults, rng = self.faults, self._rng
        if rng.random() < faults.loss:
            return
        copies = 2 if rng.random() < faults.duplicate else 1
        for _ in range(copies):
            spread = rng.random() * faults.reorder_spread if rng.random() < faults.reorder else 0.0
            arrival = self.now + faults.latency * (1 + spread)
            heapq.heappush(self._queue, (arrival, next(self._tickets), _DELIVER, conn.far_end, data))


def _order(conn: Conn) -> tuple[str, str, int]:
    return (conn.owner, conn.peer, conn.number)
