"""The discrete-event engine: real sans-I/O Nodes on a seeded virtual network.

The engine is a shell, like the websocket runtime: it moves the bytes each
:class:`~crdtmem.protocol.node.Node` asks to send, calls ``open`` / ``receive`` / ``close`` /
``tick`` with the virtual ``now``, and wakes each node at its ``next_deadline()``. It holds no
protocol logic, so what a run shows is what the library does.

Determinism: one ``random.Random(scenario.seed)`` feeds everything. At start it seeds, in a
fixed order, the sub-streams for the topology, the network, the workload, the faults, the
identities and every Node's own ``rng`` (a restarted node draws a fresh one), so a change in
one (say, more writes) does not reshuffle the others. Events at equal times run in the order
they were scheduled.

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
close one latency later.

Crashes: a peer that crashes with its store kept restarts from its durable state — the
memory snapshot, the batches it has seen and its delta log — as the SQLite store would give
it back (with ``checkpoint_interval`` > 0, remote changes after the last checkpoint are lost;
its own batches never are, as they are journaled before being sent). A peer whose store is
lost comes back **under a new identity** that is added to the keyring: restarting empty under
the old identity would reuse batch sequence numbers and CRDT dots the others already hold
for different writes, so its new writes would be ignored as already seen, or worse, merged as
if they were the old ones. A new identity is what an operator must do in that case.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from ..clocks import CausalContext, Dot
from ..identity import Identity, Keyring, verify
from ..memory import Memory
from ..protocol.batch import open_batch
from ..protocol.events import BatchApplied, Close, PeerConnected, Send
from ..protocol.node import Node, NodeConfig
from .latency import Latency
from .scenario import Scenario
from .topology import Topology, blocks
from .workload import Workload

__all__ = ["Simulation", "SimPeer", "Sample", "EPOCH"]

EPOCH = 1_700_000_000.0
"""Virtual time 0 on the peers' clocks (so hybrid timestamps look like real ones)."""

_DELIVER, _TICK, _DIAL, _OPEN, _CLOSE, _BREAK, _WRITE, _FLUSH, _SAMPLE, _CALL, _CHECKPOINT = range(11)
_MIN_RTO = 0.2
_MAX_RETRANSMITS = 6
_SPIN_LIMIT = 10_000


class SimPeer:
    """One simulated peer: its identity, replica and Node (None while crashed)."""

    __slots__ = (
        "index", "identity", "memory", "node", "alive", "skew", "edges", "tick_at", "store",
        "journal", "generation", "flush_pending", "last_change", "spins", "crashes",
    )

    def __init__(self, index: int, identity: Identity, skew: float) -> None:
        self.index = index
        self.identity = identity
        self.memory: Memory | None = None
        self.node: Node | None = None
        self.alive = False
        self.skew = skew
        self.edges: list[int] = []
        self.tick_at: float | None = None
        self.store: tuple[bytes | None, CausalContext | None, list[bytes]] | None = None
        self.journal: list[bytes] = []
        self.generation = 0
        self.flush_pending = False
        self.last_change = 0.0
        self.spins = 0
        self.crashes = 0

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id


class _Edge:
    __slots__ = ("index", "a", "b", "down", "conn", "conns", "pending", "backoff", "connected_once")

    def __init__(self, index: int, a: int, b: int, backoff: float) -> None:
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


class Sample:
    """One point of the divergence series (``missing_*``: batches made anywhere that a live
    peer has not seen yet — the per-peer lag, as its maximum and mean)."""

    __slots__ = ("t", "divergence", "roots", "live", "links", "messages", "bytes", "missing_max", "missing_mean")

    def __init__(self, t: float, divergence: float, roots: int, live: int, links: int, messages: int, nbytes: int,
                 missing_max: int = 0, missing_mean: float = 0.0):
        self.t, self.divergence, self.roots, self.live = t, divergence, roots, live
        self.links, self.messages, self.bytes = links, messages, nbytes
        self.missing_max, self.missing_mean = missing_max, missing_mean


class Simulation:
    """Build the peers and the network of ``scenario``; :meth:`run` it, or drive it step by step.

    Step-by-step use (tests, notebooks)::

        sim = Simulation(Scenario(peers=5, writes=0, duration=60))
        sim.advance(2.0)                         # connect, handshake
        sim.write(0, lambda m: m.counter("c").increment())
        sim.partition([[0, 1], [2, 3, 4]]); sim.advance(5)
        sim.heal(); sim.advance(10)
        assert sim.check().converged

    Args:
        scenario: the run's parameters (faults listed there are scheduled at once).
        progress: called as ``progress(sim)`` after every sample (for progress bars).
    """

    def __init__(self, scenario: Scenario, *, progress: Callable[[Simulation], None] | None = None) -> None:
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        self.scenario = s = scenario
        s.validate()
        self.progress = progress
        master = random.Random(s.seed)
        self.rng_topology = random.Random(master.getrandbits(64))
        self.rng_net = random.Random(master.getrandbits(64))
        self.rng_workload = random.Random(master.getrandbits(64))
        self.rng_faults = random.Random(master.getrandbits(64))
        self.rng_ids = random.Random(master.getrandbits(64))
        self.rng_nodes = random.Random(master.getrandbits(64))
        self.latency = Latency.parse(s.latency)
        self.topology = Topology.parse(s.topology)
        self.config = NodeConfig(
            gossip_interval=s.gossip_interval,
            fanout=s.fanout,
            anti_entropy_interval=s.anti_entropy_interval,
            max_log_batches=s.max_log_batches,
        )
        self.now = 0.0
        self._queue: list[tuple] = []
        self._seq = itertools.count()
        self.keyring = Keyring()
        self.peers: list[SimPeer] = []
        for i in range(s.peers):
            identity = Identity.from_private_bytes(self.rng_ids.randbytes(32))
            skew = self.rng_faults.uniform(-s.skew, s.skew) if s.skew else 0.0
            self.peers.append(SimPeer(i, identity, skew))
            self.keyring.add(identity)
        self.edges: list[_Edge] = []
        for a, b in self.topology.edges(s.peers, self.rng_topology):
            edge = _Edge(len(self.edges), a, b, s.redial)
            self.edges.append(edge)
            self.peers[a].edges.append(edge.index)
            self.peers[b].edges.append(edge.index)
        self.conns: dict[int, _Conn] = {}
        self._conn_ids = itertools.count()
        self.group: list[int] | None = None
        self.partitioned = False
        self.workload = Workload(s.workload, self.rng_workload, keys=s.keys)
        writers = list(range(s.peers))
        if s.writers and s.writers < s.peers:
            writers = sorted(self.rng_workload.sample(writers, s.writers))
        self.writers = writers
        # measures
        self.messages: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.net: Counter[str] = Counter()
        self.samples: list[Sample] = []
        self.timeline: list[dict[str, Any]] = []
        self.last_change = 0.0
        self.last_write = None
        self.writes_done = 0
        self.writes_skipped = 0
        self.batches_created = 0
        self.stopped_early = False
        self._stop = False
        self._converged_since: float | None = None
        self.retired_stats: Counter[str] = Counter()  # node stats of crashed node incarnations
        self.wall: dict[str, float] = defaultdict(float)
        for peer in self.peers:
            self._boot(peer, self.rng_net.uniform(0, s.boot_spread) if s.boot_spread else 0.0)
        self._schedule_scenario()
        self.wall["setup"] = time.perf_counter() - wall_start
        self.wall["cpu"] += time.process_time() - cpu_start

    # -- scheduling -----------------------------------------------------------------------------

    def _at(self, t: float, code: int, x: Any = None, y: Any = None) -> None:
        heapq.heappush(self._queue, (t, next(self._seq), code, x, y))

    def _schedule_scenario(self) -> None:
        s = self.scenario
        for part in sorted(s.partitions, key=lambda p: p.at):
            groups = [list(b) for b in blocks(s.peers, part.groups)]
            self._at(part.at, _CALL, self.partition, groups)
            if part.heal_at is not None:
                self._at(part.heal_at, _CALL, self.heal, None)
        for crash in s.crashes:
            self._at(crash.at, _CALL, self.crash, (crash.peer, crash.store))
            if crash.restart_at is not None:
                self._at(crash.restart_at, _CALL, self.restart, crash.peer)
        for fault in s.link_faults:
            self._at(fault.at, _CALL, self.link_down, (fault.a, fault.b))
            if fault.up_at is not None:
                self._at(fault.up_at, _CALL, self.link_up, (fault.a, fault.b))
        if s.writes > 0:
            until = s.effective_write_until()
            first = s.write_from + self.rng_workload.expovariate(s.writes)
            if first < until:
                self._at(first, _WRITE)
        self._at(0.0, _SAMPLE)
        if s.checkpoint_interval > 0:
            self._at(s.checkpoint_interval, _CHECKPOINT)

    # -- running --------------------------------------------------------------------------------

    def run(self) -> Simulation:
        """Run until ``scenario.duration`` (or convergence, with ``stop_when_converged``)."""
        self.run_until(self.scenario.duration)
        return self

    def advance(self, seconds: float) -> None:
        """Run the next ``seconds`` of virtual time."""
        self.run_until(self.now + seconds)

    def run_until(self, end: float) -> None:
        """Process every event up to virtual time ``end`` (inclusive)."""
        queue = self._queue
        pop = heapq.heappop
        peers, conns = self.peers, self.conns
        perf = time.perf_counter
        node_wall = 0.0
        deliveries = 0
        started, cpu_started = perf(), time.process_time()
        try:
            while queue and queue[0][0] <= end and not self._stop:
                t, _, code, x, y = pop(queue)
                self.now = t
                if code == _DELIVER:
                    conn = conns.get(x)
                    if conn is None:
                        self.net["dropped_on_closed"] += 1
                        continue
                    peer = peers[conn.owner]
                    began = perf()
                    peer.node.receive(x, y, t)
                    node_wall += perf() - began
                    deliveries += 1
                    self._after(peer)
                elif code == _TICK:
                    peer = peers[x]
                    if peer.tick_at != t or y != peer.generation or not peer.alive:
                        continue
                    peer.tick_at = None
                    began = perf()
                    peer.node.tick(t)
                    node_wall += perf() - began
                    self._after(peer, ticked=True)
                elif code == _SAMPLE:
                    self._sample()
                elif code == _WRITE:
                    self._write_event()
                elif code == _DIAL:
                    self._dial(self.edges[x])
                elif code == _OPEN:
                    self._open(self.edges[x])
                elif code == _CLOSE:
                    self._remote_close(x, y)
                elif code == _BREAK:
                    self._break(x, y)
                elif code == _FLUSH:
                    peer = peers[x]
                    peer.flush_pending = False
                    if peer.alive and y == peer.generation:
                        self._flush(peer)
                elif code == _CALL:
                    x(y) if y is not None else x()
                elif code == _CHECKPOINT:
                    self._checkpoint()
            if not self._stop:
                self.now = max(self.now, end)
        finally:
            self.wall["node"] += node_wall
            self.wall["run"] += perf() - started
            self.wall["cpu"] += time.process_time() - cpu_started
            self.net["delivered"] += deliveries

    def stop(self) -> None:
        """End :meth:`run_until` after the current event."""
        self._stop = True

    # -- driving nodes ----------------------------------------------------------------------

    def _after(self, peer: SimPeer, ticked: bool = False) -> None:
        """Perform what the node asked for, read its events, and schedule its next wake-up."""
        node = peer.node
        for action in node.take_actions():
            if type(action) is Send:
                self._transmit(action.conn, action.data, action.kind)
            elif type(action) is Close:
                self._local_close(action.conn, action.reason)
        events = node.take_events()
        if events:
            for event in events:
                kind = type(event)
                if kind is BatchApplied:
                    if event.local:
                        self.batches_created += 1
                        if self.scenario.checkpoint_interval > 0:
                            peer.journal.append(event.wire)
                elif kind is PeerConnected:
                    conn = self.conns.get(event.conn)
                    if conn is not None:
                        edge = self.edges[conn.edge]
                        edge.backoff = self.scenario.redial
                        if conn.owner == edge.a:
                            self.net["handshakes"] += 1
        deadline = node.next_deadline()
        if deadline is None:
            return
        deadline = max(deadline, self.now)
        if ticked and deadline <= self.now:
            # tick() just ran, yet the node says it is still due: a timer that did not fire
            # (e.g. a float rounding mismatch between tick() and next_deadline()). A real
            # runtime would spin until the wall clock moves on; here time only moves with
            # events, so wake it a microsecond later, and count it (network.node_timer_spins).
            self.net["node_timer_spins"] += 1
            peer.spins += 1
            if peer.spins > _SPIN_LIMIT:
                raise RuntimeError(f"peer {peer.index}'s next_deadline() never advances past tick()")
            deadline = self.now + 1e-6
        elif ticked:
            peer.spins = 0
        if peer.tick_at is None or deadline < peer.tick_at:
            peer.tick_at = deadline
            self._at(deadline, _TICK, peer.index, peer.generation)

    def _call(self, peer: SimPeer, fn: Callable[..., None], *args: Any) -> None:
        began = time.perf_counter()
        fn(*args)
        self.wall["node"] += time.perf_counter() - began
        self._after(peer)

    def _boot(self, peer: SimPeer, at: float) -> None:
        """Start a fresh peer (no store) at virtual time ``at``."""
        self._start(peer, Memory(peer.peer_id, clock=self._clock(peer)), None, [], at)

    def _clock(self, peer: SimPeer) -> Callable[[], float]:
        return lambda: EPOCH + self.now + peer.skew

    def _start(self, peer: SimPeer, memory: Memory, seen: CausalContext | None, log: list[bytes], at: float) -> None:
        node = Node(
            memory,
            peer.identity,
            self.keyring,
            rng=random.Random(self.rng_nodes.getrandbits(64)),
            config=self.config,
            seen=seen,
            log_wires=log,
        )
        peer.memory, peer.node, peer.alive = memory, node, True
        peer.generation += 1
        peer.journal = []
        peer.tick_at = None

        def changed(name: str, origin: str, peer: SimPeer = peer) -> None:
            peer.last_change = self.now
            self.last_change = max(self.last_change, self.now)

        memory.on_change(changed)
        # First tick staggered over one gossip interval, so rounds are not in lockstep.
        first = at + self.rng_net.uniform(0, self.scenario.gossip_interval)
        peer.tick_at = first
        self._at(first, _TICK, peer.index, peer.generation)
        for e in peer.edges:
            edge = self.edges[e]
            if edge.a == peer.index and not edge.pending and edge.conn is None:
                edge.pending = True
                self._at(at + self.rng_net.uniform(0, 0.01), _DIAL, e)

    # -- the network --------------------------------------------------------------------------

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
        delay = edge.backoff * self.rng_net.uniform(0.5, 1.0)
        edge.backoff = min(edge.backoff * 2, self.scenario.redial_max)
        self._at(self.now + delay, _DIAL, edge.index)

    def _dial(self, edge: _Edge) -> None:
        edge.pending = False
        if edge.conn is not None or not self.peers[edge.a].alive:
            return
        self.net["dials"] += 1
        if not self._reachable(edge):
            self.net["dials_failed"] += 1
            self._retry(edge)
            return
        lat = self.latency
        rtt = lat.sample(self.rng_net) + lat.sample(self.rng_net)
        edge.pending = True
        self._at(self.now + self.scenario.connect_rtts * rtt, _OPEN, edge.index)

    def _open(self, edge: _Edge) -> None:
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
        self._open_side(a, ca, True)
        self._open_side(b, cb, False)

    def _open_side(self, peer: SimPeer, cid: int, dialer: bool) -> None:
        began = time.perf_counter()
        peer.node.open(cid, self.now, dialer=dialer)
        self.wall["node"] += time.perf_counter() - began
        self._after(peer)

    def _transmit(self, cid: int, data: bytes, kind: str) -> None:
        size = len(data)
        self.messages[kind] += 1
        self.bytes[kind] += size
        conn = self.conns.get(cid)
        if conn is None or conn.broken:
            self.net["dropped_on_closed"] += 1
            return
        s = self.scenario
        rng = self.rng_net
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
                        self._at(self.now + delay, _BREAK, cid, "too many retransmissions")
                        return
                    if rng.random() >= s.loss:
                        break
            if s.duplicate and rng.random() < s.duplicate:
                self.net["duplicates_discarded"] += 1  # TCP drops the copy; it only costs bandwidth
            if s.reorder and rng.random() < s.reorder:
                delay += rng.uniform(0, 4 * self.latency.mean + 0.001)
                self.net["reordered"] += 1
            arrival = self.now + delay
            arrival = max(arrival, conn.last_arrival)  # in order: held back behind earlier frames
            conn.last_arrival = arrival
            self._at(arrival, _DELIVER, conn.other, data)
            return
        # datagram
        if s.loss and rng.random() < s.loss:
            self.net["lost"] += 1
            return
        if s.reorder and rng.random() < s.reorder:
            delay += rng.uniform(0, 4 * self.latency.mean + 0.001)
            self.net["reordered"] += 1
        self._at(self.now + delay, _DELIVER, conn.other, data)
        if s.duplicate and rng.random() < s.duplicate:
            self.net["duplicated"] += 1
            self._at(self.now + self.latency.sample(rng), _DELIVER, conn.other, data)

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

    def _local_close(self, cid: int, reason: str) -> None:
        """The node closed ``cid`` (it already forgot the session): tell the other side later."""
        conn = self._drop_conn(cid)
        self.net["closed_by_node"] += 1
        if conn is not None and conn.other in self.conns:
            self._at(max(self.now + self.latency.sample(self.rng_net), conn.last_arrival), _CLOSE, conn.other, reason)

    def _remote_close(self, cid: int, reason: str) -> None:
        conn = self._drop_conn(cid)
        if conn is None:
            return
        peer = self.peers[conn.owner]
        if peer.alive:
            self._call(peer, peer.node.close, cid, self.now, reason)

    def _break(self, cid: int, reason: str) -> None:
        """Both ends of ``cid``'s connection learn it is gone (a transport failure)."""
        conn = self.conns.get(cid)
        if conn is None:
            return
        self.net["connection_breaks"] += 1
        other = conn.other
        self._remote_close(cid, reason)
        self._remote_close(other, reason)

    def _cut_edge(self, edge: _Edge, reason: str) -> None:
        if edge.conn is not None:
            self._break(edge.conn, reason)
        for cid in sorted(edge.conns):  # half-open leftovers of earlier connections
            self._remote_close(cid, reason)

    # -- faults ---------------------------------------------------------------------------------

    def partition(self, groups: list[list[int]]) -> None:
        """Split the peers into ``groups`` now (peers not listed form one more group)."""
        group = [len(groups)] * len(self.peers)
        for g, members in enumerate(groups):
            for p in members:
                group[p] = g
        self.group, self.partitioned = group, True
        self.timeline.append({"t": _r(self.now), "event": "partition", "groups": len(set(group))})
        for edge in self.edges:
            if group[edge.a] != group[edge.b]:
                self._cut_edge(edge, "partition")

    def heal(self) -> None:
        """End the partition now; dialers reconnect at their next (backed-off) attempt."""
        self.group, self.partitioned = None, False
        self.timeline.append({"t": _r(self.now), "event": "heal"})

    def link_down(self, pair: tuple[int, int]) -> None:
        for edge in self._edges_between(*pair):
            edge.down += 1
            self._cut_edge(edge, "link down")
        self.timeline.append({"t": _r(self.now), "event": "link-down", "link": list(pair)})

    def link_up(self, pair: tuple[int, int]) -> None:
        for edge in self._edges_between(*pair):
            edge.down = max(0, edge.down - 1)
            if not edge.down and edge.conn is None:
                edge.backoff = self.scenario.redial  # the operator fixed it: try soon
        self.timeline.append({"t": _r(self.now), "event": "link-up", "link": list(pair)})

    def _edges_between(self, a: int, b: int) -> list[_Edge]:
        a, b = min(a, b), max(a, b)
        found = [self.edges[e] for e in self.peers[a].edges if self.edges[e].b == b and self.edges[e].a == a]
        if not found:
            raise ValueError(f"peers {a} and {b} have no link in this topology")
        return found

    def crash(self, arg: tuple[int, str] | int, store: str = "kept") -> None:
        """Stop a peer now. Its neighbours see their connections reset one latency later."""
        index, store = arg if isinstance(arg, tuple) else (arg, store)
        peer = self.peers[index]
        if not peer.alive:
            return
        peer.crashes += 1
        if store == "kept":
            if self.scenario.checkpoint_interval > 0:
                snap, seen, log = peer.store or (None, None, [])
                peer.store = (snap, seen, log + peer.journal)
            else:
                peer.store = (peer.memory.snapshot(), peer.node.seen.copy(), peer.node.log_wires())
        else:
            peer.store = None
        for key, value in peer.node.stats.items():
            self.retired_stats[key] += value
        peer.alive = False
        peer.node = None
        peer.tick_at = None
        peer.flush_pending = False
        self.timeline.append({"t": _r(self.now), "event": "crash", "peer": index, "store": store})
        for cid in sorted(c for e in peer.edges for c in self.edges[e].conns):
            conn = self.conns[cid]
            if conn.owner == index:
                self._drop_conn(cid)
                if conn.other in self.conns:
                    self._at(self.now + self.latency.sample(self.rng_net), _CLOSE, conn.other, "peer crashed")

    def restart(self, index: int) -> None:
        """Bring a crashed peer back now, from its store (or, if it was lost, as a new identity)."""
        peer = self.peers[index]
        if peer.alive:
            return
        if peer.store is not None:
            snap, seen, log = peer.store
            memory = Memory.from_snapshot(peer.peer_id, snap, clock=self._clock(peer)) if snap else Memory(
                peer.peer_id, clock=self._clock(peer)
            )
            seen = seen.copy() if seen is not None else CausalContext()
            if self.scenario.checkpoint_interval > 0:  # replay the journal of own batches
                for wire in peer_journal_wires(log, seen):
                    batch = open_batch(wire, self.keyring, verify, max_size=self.config.max_message_bytes)
                    for name, delta in batch.deltas:
                        memory.apply_delta(name, delta, batch.author)
                    seen.add(Dot(batch.author, batch.seq))
            self._start(peer, memory, seen, log, self.now)
            detail = "kept"
        else:
            peer.identity = Identity.from_private_bytes(self.rng_ids.randbytes(32))
            self.keyring.add(peer.identity)
            self._boot(peer, self.now)
            detail = "lost"
        peer.store = None
        peer.last_change = self.now
        self.last_change = max(self.last_change, self.now)
        self.timeline.append({"t": _r(self.now), "event": "restart", "peer": index, "store": detail})

    def _checkpoint(self) -> None:
        for peer in self.peers:
            if peer.alive:
                peer.store = (peer.memory.snapshot(), peer.node.seen.copy(), peer.node.log_wires())
                peer.journal = []
        self._at(self.now + self.scenario.checkpoint_interval, _CHECKPOINT)

    # -- writes ---------------------------------------------------------------------------------

    def write(self, index: int, fn: Callable[[Memory], Any] | None = None) -> None:
        """Apply ``fn(memory)`` on a live peer now (default: one workload write) and flush."""
        peer = self.peers[index]
        if not peer.alive:
            raise ValueError(f"peer {index} is crashed")
        if fn is None:
            self.workload.write(peer.memory, index)
        else:
            fn(peer.memory)
        self.writes_done += 1
        self.last_write = self.now
        self._flush(peer)

    def _write_event(self) -> None:
        s = self.scenario
        index = self.writers[self.rng_workload.randrange(len(self.writers))]
        peer = self.peers[index]
        if peer.alive:
            self.workload.write(peer.memory, index)
            self.writes_done += 1
            self.last_write = self.now
            if s.flush_delay <= 0:
                self._flush(peer)
            elif not peer.flush_pending:
                peer.flush_pending = True
                self._at(self.now + s.flush_delay, _FLUSH, index, peer.generation)
        else:
            self.writes_skipped += 1
        nxt = self.now + self.rng_workload.expovariate(s.writes)
        if nxt < s.effective_write_until():
            self._at(nxt, _WRITE)

    def _flush(self, peer: SimPeer) -> None:
        began = time.perf_counter()
        peer.node.flush(self.now)
        self.wall["node"] += time.perf_counter() - began
        self._after(peer)

    # -- measuring ------------------------------------------------------------------------------

    def links(self) -> list[tuple[int, int]]:
        """The topology's links as (dialer, acceptor) peer indices."""
        return [(e.a, e.b) for e in self.edges]

    def live_peers(self) -> list[SimPeer]:
        return [p for p in self.peers if p.alive]

    def roots(self) -> dict[int, Any]:
        """Each live peer's Merkle root (after folding in its pending changes)."""
        out = {}
        for peer in self.peers:
            if peer.alive:
                index = peer.node.index
                index.refresh()
                out[peer.index] = index.root()
        return out

    def divergence(self) -> tuple[float, int, int]:
        """(share of live peer pairs whose roots differ, distinct roots, live peers).

        Exact, not sampled: pairs that agree are counted per distinct root, sum of C(k, 2).
        """
        counts = Counter(self.roots().values())
        live = sum(counts.values())
        pairs = live * (live - 1) // 2
        if pairs == 0:
            return 0.0, len(counts), live
        agree = sum(k * (k - 1) // 2 for k in counts.values())
        return (pairs - agree) / pairs, len(counts), live

    def _sample(self) -> None:
        began = time.perf_counter()
        s = self.scenario
        div, roots, live = self.divergence()
        links = sum(1 for e in self.edges if e.conn is not None)
        created = self.batches_created
        missing = [created - p.node.seen.size() for p in self.peers if p.alive]
        sample = Sample(
            self.now, div, roots, live, links, sum(self.messages.values()), sum(self.bytes.values()),
            max(missing, default=0), sum(missing) / len(missing) if missing else 0.0,
        )
        self.samples.append(sample)
        self.wall["sampling"] += time.perf_counter() - began
        if self.progress is not None:
            self.progress(self)
        nxt = self.now + s.sample_interval
        if s.stop_when_converged and self._quiet_now() and div == 0.0:
            if self._converged_since is None:
                self._converged_since = self.now
            if self.now - self._converged_since >= s.settle:
                self.stopped_early = True
                self._stop = True
                return
        else:
            self._converged_since = None
        if nxt <= s.duration + 1e-9:
            self._at(nxt, _SAMPLE)

    def _quiet_now(self) -> bool:
        """No scheduled fault, write or restart is still to come."""
        s = self.scenario
        if self.now < s.last_disruption() or (s.writes > 0 and self.now < s.effective_write_until()):
            return False
        if any(p.at > self.now for p in s.partitions) or any(c.at > self.now for c in s.crashes):
            return False
        return not any(f.at > self.now for f in s.link_faults)

    def check(self):
        """The final check: do all live replicas hold identical values and roots? See :mod:`.report`."""
        from .report import final_check

        return final_check(self)


def peer_journal_wires(log: list[bytes], seen: CausalContext) -> list[bytes]:
    """The journaled batches not yet reflected in the checkpoint's ``seen`` (to replay on restart)."""
    from ..protocol.batch import peek_batch

    out = []
    for wire in log:
        author, seq = peek_batch(wire)
        if Dot(author, seq) not in seen:
            out.append(wire)
    return out


def _r(t: float) -> float:
    return round(t, 6)


def gossip_bound_rounds(n: int) -> float:
    """Push-pull gossip needs about log2(n) + ln(n) rounds to reach n peers."""
    return math.log2(n) + math.log(n) if n > 1 else 0.0
