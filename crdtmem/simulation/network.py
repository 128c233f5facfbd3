"""The simulated network: links, connections, the transport model, partitions and link faults.

Connections model websockets: each topology link is dialed by its lower-numbered peer,
re-dialed with exponential backoff (``redial`` doubling up to ``redial_max``, jittered) while
it is down, and carries frames with the link's latency. ``transport="stream"`` (default) is
TCP: frames arrive in order; a lost packet is retransmitted after a timeout (200 ms minimum,
doubling), holding back what follows; after 6 losses in a row the connection breaks.
Duplicates are discarded by TCP (counted, not delivered) and reordering only delays.
``transport="datagram"`` hands every loss, duplicate and reordering to the Node as is.

Partitions and link faults close the connections they cut at once, on both sides (as if
keepalives had already noticed); dialers keep retrying with backoff and reconnect at their
first attempt after the heal. A crash resets its peer's connections: each neighbour sees the
close one latency later; a clean exit closes them after the last frame it sent.

:class:`Network` holds no protocol logic and never calls a Node itself: it schedules
deliveries on the engine's :class:`~.queue.EventQueue` and hands the opening and closing of
a connection on one side back to the engine.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Sequence

from ..protocol.backoff import Backoff
from .latency import Latency
from .queue import BREAK, CLOSE, DELIVER, DIAL, OPEN, EventQueue
from .scenario import Scenario

from .simpeer import SimPeer

__all__ = ["Network"]

_MIN_RTO = 0.2
_MAX_RETRANSMITS = 6


class _Edge:
    __slots__ = ("index", "a", "b", "down", "conn", "conns", "pending", "backoff", "connected_once")

    def __init__(self, index: int, a: int, b: int, backoff: Backoff) -> None:
        self.index, self.a, self.b = index, a, b
        self.down = 0
        self.conn: int | None = None  # the dialer side's conn id while connected
        self.conns: set[int] = set()  # every conn id of this link still open on some side
        self.pending = False  # a DIAL or OPEN event is scheduled
        self.backoff = backoff
        self.connected_once = False


class _Conn:
    __slots__ = ("id", "owner", "peer", "other", "edge", "last_arrival", "broken")

    def __init__(self, cid: int, owner: int, peer: int, other: int, edge: int) -> None:
        self.id, self.owner, self.peer, self.other, self.edge = cid, owner, peer, other, edge
        self.last_arrival = 0.0
        self.broken = False


class Network:
    """The links between simulated peers and the connections over them.

    Args:
        scenario: transport, loss, duplication, reordering and redial settings.
        latency: one-way latency of every link.
        rng: the run's network random stream (latency, loss and jitter draws).
        queue: where deliveries, dials and closes are scheduled.
        peers: the simulation's peers; read for liveness, and each learns its links here.
        links: the topology's links ``(a, b)``; ``a`` dials.
        open_node: ``open_node(peer, conn, dialer)`` opens a new connection on one side.
        close_node: ``close_node(peer, conn, reason)`` tells one live side its connection closed.

    Attributes:
        edges: one per link, in ``links`` order.
        conns: every open connection side by id (two ids per connection).
        group: each peer's partition group, or None while not partitioned.
        partitioned: True between :meth:`partition` and :meth:`heal`.
        messages: frames sent, by kind.
        bytes: bytes of the frames sent, by kind.
        net: connection, loss, retransmission and delivery counts.
    """

    def __init__(
        self,
        scenario: Scenario,
        latency: Latency,
        rng: random.Random,
        queue: EventQueue,
        peers: Sequence[SimPeer],
        links: Sequence[tuple[int, int]],
        *,
        open_node: Callable[[SimPeer, int, bool], None],
        close_node: Callable[[SimPeer, int, str], None],
    ) -> None:
        self.scenario = scenario
        self.latency = latency
        self.rng = rng
        self.queue = queue
        self.peers = peers
        self._open_node = open_node
        self._close_node = close_node
        self.edges: list[_Edge] = []
        for a, b in links:
            edge = _Edge(len(self.edges), a, b, Backoff(scenario.redial, scenario.redial_max))
            self.edges.append(edge)
            peers[a].edges.append(edge.index)
            peers[b].edges.append(edge.index)
        self.conns: dict[int, _Conn] = {}
        self._conn_ids = itertools.count()
        self.group: list[int] | None = None
        self.partitioned = False
        self.messages: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.net: Counter[str] = Counter()

    # -- links ----------------------------------------------------------------------------------

    def links(self) -> list[tuple[int, int]]:
        """The topology's links as (dialer, acceptor) peer indices."""
        return [(e.a, e.b) for e in self.edges]

    def links_up(self) -> int:
        """How many links hold a connection now."""
        return sum(1 for e in self.edges if e.conn is not None)

    def start_dialing(self, peer: SimPeer, at: float) -> None:
        """A peer (re)started at ``at``: its dials go out shortly after, on every idle link it dials."""
        for e in peer.edges:
            edge = self.edges[e]
            if edge.a == peer.index and not edge.pending and edge.conn is None:
                edge.pending = True
                self.queue.at(at + self.rng.uniform(0, 0.01), DIAL, e)

    def connected(self, cid: int) -> None:
        """The Node on ``cid`` finished its handshake: the link's backoff starts over."""
        conn = self.conns.get(cid)
        if conn is not None:
            edge = self.edges[conn.edge]
            edge.backoff.reset()
            if conn.owner == edge.a:
                self.net["handshakes"] += 1

    def _reachable(self, edge: _Edge) -> bool:
        peers = self.peers
        if edge.down or not (peers[edge.a].alive and peers[edge.b].alive):
            return False
        group = self.group
        return group is None or group[edge.a] == group[edge.b]

    def _retry(self, edge: _Edge) -> None:
        """Schedule the dialer's next attempt (if it is alive), with jittered exponential backoff."""
        if edge.pending or not self.peers[edge.a].alive:
            return
        edge.pending = True
        self.queue.at(self.queue.now + edge.backoff.next_delay(self.rng), DIAL, edge.index)

    def dial(self, e: int) -> None:
        """Event DIAL: link ``e``'s dialer tries to connect; the attempt takes ``connect_rtts``."""
        edge = self.edges[e]
        edge.pending = False
        if edge.conn is not None or not self.peers[edge.a].alive:
            return
        self.net["dials"] += 1
        if not self._reachable(edge):
            self.net["dials_failed"] += 1
            self._retry(edge)
            return
        lat = self.latency
        rtt = lat.sample(self.rng) + lat.sample(self.rng)
        edge.pending = True
        self.queue.at(self.queue.now + self.scenario.connect_rtts * rtt, OPEN, edge.index)

    def open(self, e: int) -> None:
        """Event OPEN: link ``e``'s dial completes, if the link is still reachable."""
        edge = self.edges[e]
        edge.pending = False
        if edge.conn is not None or not self.peers[edge.a].alive:
            return
        if not self._reachable(edge):
            self.net["dials_failed"] += 1
            self._retry(edge)
            return
        k = next(self._conn_ids)
        ca, cb = 2 * k, 2 * k + 1
        self.conns[ca] = _Conn(ca, edge.a, edge.b, cb, edge.index)
        self.conns[cb] = _Conn(cb, edge.b, edge.a, ca, edge.index)
        edge.conn = ca
        edge.connected_once = True
        self.net["connections"] += 1
        a, b = self.peers[edge.a], self.peers[edge.b]
        edge.conns.update((ca, cb))
        self._open_node(a, ca, True)
        self._open_node(b, cb, False)

    # -- frames ---------------------------------------------------------------------------------

    def transmit(self, cid: int, data: bytes, kind: str) -> None:
        """Carry one frame a Node sent on ``cid`` to the other side, as the transport would."""
        size = len(data)
        self.messages[kind] += 1
        self.bytes[kind] += size
        conn = self.conns.get(cid)
        if conn is None or conn.broken:
            self.net["dropped_on_closed"] += 1
            return
        s = self.scenario
        rng = self.rng
        now = self.queue.now
        delay = self.latency.sample(rng)
        if s.transport == "stream":
            if s.loss and rng.random() < s.loss:
                rto = max(_MIN_RTO, 4 * self.latency.mean)
                tries = 0
                while True:
                    self.net["retransmissions"] += 1
                    delay += rto
                    rto *= 2
                    tries += 1
                    if tries > _MAX_RETRANSMITS:
                        # The stream gives up: this and everything after it on the connection is lost.
                        conn.broken = True
                        self.net["lost"] += 1
                        self.queue.at(now + delay, BREAK, cid, "too many retransmissions")
                        return
                    if rng.random() >= s.loss:
                        break
            if s.duplicate and rng.random() < s.duplicate:
                self.net["duplicates_discarded"] += 1  # TCP drops the copy; it only costs bandwidth
            if s.reorder and rng.random() < s.reorder:
                delay += rng.uniform(0, 4 * self.latency.mean + 0.001)
                self.net["reordered"] += 1
            arrival = now + delay
            arrival = max(arrival, conn.last_arrival)  # in order: held back behind earlier frames
            conn.last_arrival = arrival
            self.queue.at(arrival, DELIVER, conn.other, data)
            return
        # datagram
        if s.loss and rng.random() < s.loss:
            self.net["lost"] += 1
            return
        if s.reorder and rng.random() < s.reorder:
            delay += rng.uniform(0, 4 * self.latency.mean + 0.001)
            self.net["reordered"] += 1
        self.queue.at(now + delay, DELIVER, conn.other, data)
        if s.duplicate and rng.random() < s.duplicate:
            self.net["duplicated"] += 1
            self.queue.at(now + self.latency.sample(rng), DELIVER, conn.other, data)

    # -- closing --------------------------------------------------------------------------------

    def _drop_conn(self, cid: int) -> _Conn | None:
        """Forget one side of a connection; the first side to go marks the link down and redials."""
        conn = self.conns.pop(cid, None)
        if conn is None:
            return None
        edge = self.edges[conn.edge]
        edge.conns.discard(cid)
        if edge.conn in (cid, conn.other):
            edge.conn = None
            self.net["disconnections"] += 1
            self._retry(edge)
        return conn

    def local_close(self, cid: int, reason: str) -> None:
        """The node closed ``cid`` (it already forgot the session): tell the other side later."""
        conn = self._drop_conn(cid)
        self.net["closed_by_node"] += 1
        if conn is not None and conn.other in self.conns:
            arrival = max(self.queue.now + self.latency.sample(self.rng), conn.last_arrival)
            self.queue.at(arrival, CLOSE, conn.other, reason)

    def remote_close(self, cid: int, reason: str) -> None:
        """Event CLOSE: side ``cid`` learns its connection is gone."""
        conn = self._drop_conn(cid)
        if conn is None:
            return
        peer = self.peers[conn.owner]
        if peer.alive:
            self._close_node(peer, cid, reason)

    def break_conn(self, cid: int, reason: str) -> None:
        """Event BREAK: both ends of ``cid``'s connection learn it is gone (a transport failure)."""
        conn = self.conns.get(cid)
        if conn is None:
            return
        self.net["connection_breaks"] += 1
        other = conn.other
        self.remote_close(cid, reason)
        self.remote_close(other, reason)

    def _cut_edge(self, edge: _Edge, reason: str) -> None:
        if edge.conn is not None:
            self.break_conn(edge.conn, reason)
        for cid in sorted(edge.conns):  # half-open leftovers of earlier connections
            self.remote_close(cid, reason)

    def drop_peer(self, index: int, *, clean: bool = False) -> None:
        """Peer ``index`` stopped: its sides are gone at once, each other side sees the close later.

        After a crash the close comes one latency later; after a ``clean`` exit it also comes
        after every frame the peer sent (a close frame follows the data).
        """
        reason = "peer exited" if clean else "peer crashed"
        now = self.queue.now
        for cid in sorted(c for e in self.peers[index].edges for c in self.edges[e].conns):
            conn = self.conns[cid]
            if conn.owner == index:
                self._drop_conn(cid)
                if conn.other in self.conns:
                    arrival = now + self.latency.sample(self.rng)
                    if clean:
                        arrival = max(arrival, conn.last_arrival)
                    self.queue.at(arrival, CLOSE, conn.other, reason)

    # -- faults ---------------------------------------------------------------------------------

    def partition(self, groups: list[list[int]]) -> None:
        """Split the peers into ``groups`` now (peers not listed form one more group)."""
        group = [len(groups)] * len(self.peers)
        for g, members in enumerate(groups):
            for p in members:
                group[p] = g
        self.group, self.partitioned = group, True
        for edge in self.edges:
            if group[edge.a] != group[edge.b]:
                self._cut_edge(edge, "partition")

    def heal(self) -> None:
        """End the partition now; dialers reconnect at their next (backed-off) attempt."""
        self.group, self.partitioned = None, False

    def link_down(self, a: int, b: int) -> None:
        """Take the link between peers ``a`` and ``b`` down now (down counts nest)."""
        for edge in self._edges_between(a, b):
            edge.down += 1
            self._cut_edge(edge, "link down")

    def link_up(self, a: int, b: int) -> None:
        """Undo one :meth:`link_down`; the dialer retries soon once the link is fully up."""
        for edge in self._edges_between(a, b):
            edge.down = max(0, edge.down - 1)
            if not edge.down and edge.conn is None:
                edge.backoff.reset()  # the operator fixed it: try soon

    def _edges_between(self, a: int, b: int) -> list[_Edge]:
        a, b = min(a, b), max(a, b)
        found = [self.edges[e] for e in self.peers[a].edges if self.edges[e].b == b and self.edges[e].a == a]
        if not found:
            raise ValueError(f"peers {a} and {b} have no link in this topology")
        return found
