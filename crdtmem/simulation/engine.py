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

The network between the peers (connections, transport, partitions and link faults) is
:mod:`.network`; a relay broker, if the scenario has one, is :mod:`.broker`; the event queue is :mod:`.queue`; what a run measures is :mod:`.metrics`.

Crashes: every peer keeps its durable state in a :class:`~crdtmem.storage.memory.MemoryStore`
(a journal of every batch it applied plus a snapshot, the parts a SQLite store keeps), and a
restart rebuilds the peer with :func:`~crdtmem.protocol.recovery.restore`, the recovery the
websocket runtime runs. As in the runtime, every batch is journaled when it is applied (its own
before being sent); the store is compacted every ``compaction_interval`` (with 0, only at the
crash), which decides how much a restart replays, not what it keeps. Every start, from the
store or (``store="lost"``) empty, is a new incarnation of the peer's key, so no dot of the
earlier life is reused. A killed peer's incarnation is retired by its key's next start (from
what the store holds); a clean exit (``Crash(clean=True)``) retires it itself, in the last
batch it sends, so the others can prune it from their vectors.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from ..identity import Identity, Keyring, new_incarnation
from ..memory import Memory
from ..protocol.events import BatchApplied, CheckpointApplied, Close, PeerConnected, Publish, RelaySend, Send
from ..protocol.node import Node
from ..protocol.recovery import Restored, restore
from ..storage.memory import MemoryStore
from .broker import BrokerSpec, SimBroker
from .latency import Latency
from .metrics import Dissemination, Sample, divergence_of, gossip_bound_rounds, live_roots, take_sample
from .network import Network
from .queue import (
    BREAK,
    CALL,
    CLOSE,
    COMPACT,
    DELIVER,
    DIAL,
    FLUSH,
    OPEN,
    SAMPLE,
    TICK,
    WRITE,
    EventQueue,
)
from .scenario import Crash, Scenario
from .simpeer import SimPeer
from .topology import Topology, blocks
from .verdict import final_check
from .workload import Workload

__all__ = ["Simulation", "SimPeer", "Sample", "EPOCH", "gossip_bound_rounds"]

EPOCH = 1_700_000_000.0
"""Virtual time 0 on the peers' clocks (so hybrid timestamps look like real ones)."""

_SPIN_LIMIT = 10_000


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
        on_sealed: called as ``on_sealed(peer, wire)`` with every batch a peer seals, as it is
            journaled (to measure batches or keep a ledger of the writes, e.g.
            :class:`~.ledger.SealedWrites`).
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        progress: Callable[[Simulation], None] | None = None,
        on_sealed: Callable[[SimPeer, bytes], None] | None = None,
    ) -> None:
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        self.scenario = s = scenario
        s.validate()
        self.progress = progress
        self.on_sealed = on_sealed
        master = random.Random(s.seed)
        self.rng_topology = random.Random(master.getrandbits(64))
        self.rng_net = random.Random(master.getrandbits(64))
        self.rng_workload = random.Random(master.getrandbits(64))
        self.rng_faults = random.Random(master.getrandbits(64))
        self.rng_ids = random.Random(master.getrandbits(64))
        self.rng_nodes = random.Random(master.getrandbits(64))
        self.latency = Latency.parse(s.latency)
        self.topology = Topology.parse(s.topology)
        self.config = s.node
        self.queue = EventQueue()
        self.keyring = Keyring()
        self.peers: list[SimPeer] = []
        for i in range(s.peers):
            identity = Identity.from_private_bytes(self.rng_ids.randbytes(32))
            skew = self.rng_faults.uniform(-s.skew, s.skew) if s.skew else 0.0
            self.peers.append(SimPeer(i, identity, skew))
            self.keyring.add(identity)
        self.network = network = Network(
            s,
            self.latency,
            self.rng_net,
            self.queue,
            self.peers,
            self.topology.edges(s.peers, self.rng_topology),
            open_node=self._open_side,
            close_node=self._close_side,
        )
        self.edges, self.conns = network.edges, network.conns
        self.workload = Workload(s.workload, self.rng_workload, keys=s.keys)
        writers = list(range(s.peers))
        if s.writers and s.writers < s.peers:
            writers = sorted(self.rng_workload.sample(writers, s.writers))
        self.writers = writers
        # measures
        self.messages, self.bytes, self.net = network.messages, network.bytes, network.net
        self.broker: SimBroker | None = None
        if s.broker:
            self.broker = SimBroker(BrokerSpec.parse(s.broker), self.queue, self.latency,
                                    random.Random(master.getrandbits(64)), self.peers, self._call,
                                    self.messages, self.bytes)
        self.samples: list[Sample] = []
        self.timeline: list[dict[str, Any]] = []
        self.last_change = 0.0
        self.dissemination = Dissemination()
        """Each batch's spread: from its signing to the last peer applying it."""
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

    @property
    def now(self) -> float:
        """Virtual seconds since the run began."""
        return self.queue.now

    @property
    def group(self) -> list[int] | None:
        """Each peer's partition group, or None while not partitioned."""
        return self.network.group

    @property
    def partitioned(self) -> bool:
        return self.network.partitioned

    # -- scheduling -----------------------------------------------------------------------------

    def _schedule_scenario(self) -> None:
        s = self.scenario
        at = self.queue.at
        for part in sorted(s.partitions, key=lambda p: p.at):
            groups = [list(b) for b in blocks(s.peers, part.groups)]
            at(part.at, CALL, self.partition, groups)
            if part.heal_at is not None:
                at(part.heal_at, CALL, self.heal, None)
        for crash in s.crashes:
            at(crash.at, CALL, self._scheduled_crash, crash)
            if crash.restart_at is not None:
                at(crash.restart_at, CALL, self.restart, crash.peer)
        for fault in s.link_faults:
            at(fault.at, CALL, self.link_down, (fault.a, fault.b))
            if fault.up_at is not None:
                at(fault.up_at, CALL, self.link_up, (fault.a, fault.b))
        for outage in s.broker_outages:
            at(outage.at, CALL, self.broker_down, None)
            if outage.up_at is not None:
                at(outage.up_at, CALL, self.broker_up, None)
        if s.writes > 0:
            until = s.effective_write_until()
            first = s.write_from + self.rng_workload.expovariate(s.writes)
            if first < until:
                at(first, WRITE)
        at(0.0, SAMPLE)
        if s.compaction_interval > 0:
            at(s.compaction_interval, COMPACT)

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
        clock = self.queue
        queue = clock.heap
        pop = heapq.heappop
        peers, conns, network = self.peers, self.conns, self.network
        perf = time.perf_counter
        node_wall = 0.0
        deliveries = 0
        started, cpu_started = perf(), time.process_time()
        try:
            while queue and queue[0][0] <= end and not self._stop:
                t, _, code, x, y = pop(queue)
                clock.now = t
                if code == DELIVER:
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
                elif code == TICK:
                    peer = peers[x]
                    if peer.tick_at != t or y != peer.generation or not peer.alive:
                        continue
                    peer.tick_at = None
                    began = perf()
                    peer.node.tick(t)
                    node_wall += perf() - began
                    self._after(peer, ticked=True)
                elif code == SAMPLE:
                    self._sample()
                elif code == WRITE:
                    self._write_event()
                elif code == DIAL:
                    network.dial(x)
                elif code == OPEN:
                    network.open(x)
                elif code == CLOSE:
                    network.remote_close(x, y)
                elif code == BREAK:
                    network.break_conn(x, y)
                elif code == FLUSH:
                    peer = peers[x]
                    peer.flush_pending = False
                    if peer.alive and y == peer.generation:
                        self._flush(peer)
                elif code == CALL:
                    x(y) if y is not None else x()
                elif code == COMPACT:
                    self._compact_stores()
            if not self._stop:
                clock.now = max(clock.now, end)
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
                self.network.transmit(action.conn, action.data, action.kind)
            elif type(action) is Close:
                self.network.local_close(action.conn, action.reason)
            elif type(action) in (Publish, RelaySend):
                self.broker.perform(peer, action)
        events = node.take_events()
        if events:
            for event in events:
                kind = type(event)
                if kind is BatchApplied:
                    peer.store.append([(event.author, event.seq, event.wire, event.index_entry)])
                    if event.local:
                        self.dissemination.signed(event.author, event.seq, self.queue.now)
                        self.batches_created += 1
                        if self.on_sealed is not None:
                            self.on_sealed(peer, event.wire)
                    else:
                        self.dissemination.applied(peer.index, event.author, event.seq, self.queue.now)
                elif kind is CheckpointApplied:
                    self.dissemination.checkpoint_taken(peer.index, event.author, event.seq, self.queue.now)
                    peer.store.append([(event.author, event.seq, event.wire, event.index_entry)])
                elif kind is PeerConnected:
                    self.network.connected(event.conn)
        deadline = node.next_deadline()
        if deadline is None:
            return
        now = self.queue.now
        deadline = max(deadline, now)
        if ticked and deadline <= now:
            # tick() just ran, yet the node says it is still due: a timer that did not fire
            # (e.g. a float rounding mismatch between tick() and next_deadline()). A real
            # runtime would spin until the wall clock moves on; here time only moves with
            # events, so wake it a microsecond later, and count it (network.node_timer_spins).
            self.net["node_timer_spins"] += 1
            peer.spins += 1
            if peer.spins > _SPIN_LIMIT:
                raise RuntimeError(f"peer {peer.index}'s next_deadline() never advances past tick()")
            deadline = now + 1e-6
        elif ticked:
            peer.spins = 0
        if peer.tick_at is None or deadline < peer.tick_at:
            peer.tick_at = deadline
            self.queue.at(deadline, TICK, peer.index, peer.generation)

    def _call(self, peer: SimPeer, fn: Callable[..., None], *args: Any) -> None:
        began = time.perf_counter()
        fn(*args)
        self.wall["node"] += time.perf_counter() - began
        self._after(peer)

    def _open_side(self, peer: SimPeer, cid: int, dialer: bool) -> None:
        began = time.perf_counter()
        peer.node.open(cid, self.now, dialer=dialer)
        self.wall["node"] += time.perf_counter() - began
        self._after(peer)

    def _close_side(self, peer: SimPeer, cid: int, reason: str) -> None:
        self._call(peer, peer.node.close, cid, self.now, reason)

    def _boot(self, peer: SimPeer, at: float) -> None:
        """Start a fresh peer, with an empty store, at virtual time ``at``."""
        peer.store = MemoryStore(peer.peer_id)
        self.dissemination.store_lost(peer.index)
        self._start(peer, Memory(peer.peer_id, clock=self._clock(peer)), at)

    def _clock(self, peer: SimPeer) -> Callable[[], float]:
        queue = self.queue
        return lambda: EPOCH + queue.now + peer.skew

    def _start(self, peer: SimPeer, memory: Memory, at: float, restored: Restored | None = None) -> None:
        rng = random.Random(self.rng_nodes.getrandbits(64))
        memory.incarnate(new_incarnation(peer.peer_id, rng))  # the draw the node would make
        predecessors = peer.store.start_incarnation(memory.replica_id) if peer.store is not None else []
        node = Node(
            memory,
            peer.identity,
            self.keyring,
            rng=rng,
            config=self.config,
            seen=None if restored is None else restored.seen,
            log_wires=() if restored is None else restored.log_wires,
            predecessors=predecessors,
            log_entries=() if restored is None else restored.log_entries,
        )
        peer.memory, peer.node, peer.alive = memory, node, True
        peer.generation += 1
        peer.tick_at = None

        def changed(name: str, origin: str, peer: SimPeer = peer) -> None:
            peer.last_change = self.now
            self.last_change = max(self.last_change, self.now)

        memory.on_change(changed)
        # First tick staggered over one gossip interval, so rounds are not in lockstep.
        first = at + self.rng_net.uniform(0, self.config.gossip_interval)
        peer.tick_at = first
        self.queue.at(first, TICK, peer.index, peer.generation)
        self.network.start_dialing(peer, at)
        if self.broker is not None and (not self.scenario.broker_peers or peer.index < self.scenario.broker_peers):
            self.broker.attach(peer, at)

    # -- faults ---------------------------------------------------------------------------------

    def partition(self, groups: list[list[int]]) -> None:
        """Split the peers into ``groups`` now (peers not listed form one more group)."""
        self.network.partition(groups)
        self.timeline.append({"t": _r(self.now), "event": "partition", "groups": len(set(self.group))})

    def heal(self) -> None:
        """End the partition now; dialers reconnect at their next (backed-off) attempt."""
        self.network.heal()
        self.timeline.append({"t": _r(self.now), "event": "heal"})

    def broker_down(self) -> None:
        """The broker becomes unreachable now (see :class:`~.scenario.BrokerOutage`)."""
        self.broker.go_down()
        self.timeline.append({"t": _r(self.now), "event": "broker-down"})

    def broker_up(self) -> None:
        self.broker.come_up()
        self.timeline.append({"t": _r(self.now), "event": "broker-up"})

    def link_down(self, pair: tuple[int, int]) -> None:
        self.network.link_down(*pair)
        self.timeline.append({"t": _r(self.now), "event": "link-down", "link": list(pair)})

    def link_up(self, pair: tuple[int, int]) -> None:
        self.network.link_up(*pair)
        self.timeline.append({"t": _r(self.now), "event": "link-up", "link": list(pair)})

    def _scheduled_crash(self, crash: Crash) -> None:
        self.crash(crash.peer, crash.store, clean=crash.clean)

    def crash(self, index: int, store: str = "kept", *, clean: bool = False) -> None:
        """Stop a peer now: killed, or with ``clean`` exiting cleanly.

        A killed peer's neighbours see their connections reset one latency later. A clean exit
        first retires the incarnation (:meth:`~crdtmem.protocol.node.Node.retire`) and sends
        that last batch like any flush; its connections close after it, as a websocket's close
        frame follows its data.
        """
        peer = self.peers[index]
        if not peer.alive:
            return
        if clean:
            self._call(peer, peer.node.retire, self.now)
        peer.crashes += 1
        if store != "kept":
            peer.store = None
        elif self.scenario.compaction_interval <= 0 and not peer.memory.has_pending_deltas():
            # The store holds every batch journaled; writes not flushed yet die with the process
            # (a snapshot now would hold them with no batch to send them in).
            self._compact(peer)
        for key, value in peer.node.stats.as_dict().items():
            self.retired_stats[key] += value
        peer.alive = False
        peer.node = None
        peer.tick_at = None
        peer.flush_pending = False
        event = {"t": _r(self.now), "event": "crash", "peer": index, "store": store}
        self.timeline.append(event | {"clean": True} if clean else event)
        self.network.drop_peer(index, clean=clean)
        if self.broker is not None:
            self.broker.detach(index)

    def restart(self, index: int) -> None:
        """Bring a crashed peer back now, from its store or, if it was lost, empty: either way under
        the same key and a fresh incarnation (the node draws one at every start)."""
        peer = self.peers[index]
        if peer.alive:
            return
        if peer.store is not None:
            restored = restore(peer.store, clock=self._clock(peer))
            self._start(peer, restored.memory, self.now, restored)
            detail = "kept"
        else:
            self._boot(peer, self.now)
            detail = "lost"
        peer.last_change = self.now
        self.last_change = max(self.last_change, self.now)
        self.timeline.append({"t": _r(self.now), "event": "restart", "peer": index, "store": detail})

    def _compact_stores(self) -> None:
        """Compact every live peer's store, as the runtime does periodically; due again in
        ``compaction_interval``."""
        for peer in self.peers:
            if peer.alive:
                self._compact(peer)
        self.queue.at(self.now + self.scenario.compaction_interval, COMPACT)

    def _compact(self, peer: SimPeer) -> None:
        """Compact the peer's store to its live state, as the runtime's compaction does: its
        pending writes flushed (journaled and sent) first, so the snapshot holds no write that
        no batch carries."""
        if peer.memory.has_pending_deltas():
            self._call(peer, peer.node.flush, self.now)
        peer.store.compact(peer.node.snapshot())

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
                self.queue.at(self.now + s.flush_delay, FLUSH, index, peer.generation)
        else:
            self.writes_skipped += 1
        nxt = self.now + self.rng_workload.expovariate(s.writes)
        if nxt < s.effective_write_until():
            self.queue.at(nxt, WRITE)

    def _flush(self, peer: SimPeer) -> None:
        began = time.perf_counter()
        peer.node.flush(self.now)
        self.wall["node"] += time.perf_counter() - began
        self._after(peer)

    # -- measuring ------------------------------------------------------------------------------

    def links(self) -> list[tuple[int, int]]:
        """The topology's links as (dialer, acceptor) peer indices."""
        return self.network.links()

    def live_peers(self) -> list[SimPeer]:
        return [p for p in self.peers if p.alive]

    def roots(self) -> dict[int, Any]:
        """Each live peer's Merkle root (after folding in its pending changes)."""
        return live_roots(self.peers)

    def divergence(self) -> tuple[float, int, int]:
        """(share of live peer pairs whose roots differ, distinct roots, live peers).

        Exact, not sampled: see :func:`.metrics.divergence_of`.
        """
        return divergence_of(self.roots())

    def _sample(self) -> None:
        began = time.perf_counter()
        s = self.scenario
        links_up = self.network.links_up()
        sample = take_sample(self.now, self.peers, links_up, self.batches_created, self.messages, self.bytes)
        self.samples.append(sample)
        self.wall["sampling"] += time.perf_counter() - began
        if self.progress is not None:
            self.progress(self)
        nxt = self.now + s.sample_interval
        if s.stop_when_converged and self._quiet_now() and sample.divergence == 0.0:
            if self._converged_since is None:
                self._converged_since = self.now
            if self.now - self._converged_since >= s.settle:
                self.stopped_early = True
                self._stop = True
                return
        else:
            self._converged_since = None
        if nxt <= s.duration + 1e-9:
            self.queue.at(nxt, SAMPLE)

    def _quiet_now(self) -> bool:
        """No scheduled fault, write or restart is still to come."""
        s = self.scenario
        if self.now < s.last_disruption() or (s.writes > 0 and self.now < s.effective_write_until()):
            return False
        if any(p.at > self.now for p in s.partitions) or any(c.at > self.now for c in s.crashes):
            return False
        if any(o.at > self.now for o in s.broker_outages):
            return False
        return not any(f.at > self.now for f in s.link_faults)

    def check(self):
        """The final check: do all live replicas hold identical values and roots? See :mod:`.report`."""
        return final_check(self.peers)


def _r(t: float) -> float:
    return round(t, 6)
