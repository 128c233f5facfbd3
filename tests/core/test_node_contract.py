"""The Node's driving contract: when it wants to be woken, and that ticking moves that on."""

from __future__ import annotations

import math
import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from crdtmem import Memory
from crdtmem.identity import Identity, Keyring
from crdtmem.protocol.events import Close, Send
from crdtmem.protocol.node import Node, NodeConfig

IDENTITIES = [Identity.from_private_bytes(bytes([n + 1]) * 32) for n in range(3)]
BUSY = NodeConfig(gossip_interval=0.3, anti_entropy_interval=1.0, handshake_timeout=0.5, ack_delay=0.1)
"""Timers of one scale, so that short runs reach every kind of deadline."""


def _keyring() -> Keyring:
    keyring = Keyring()
    for identity in IDENTITIES:
        keyring.add(identity)
    return keyring


def _node(identity: Identity = IDENTITIES[0], now: list[float] | None = None) -> Node:
    clock = now or [0.0]
    return Node(Memory(identity.peer_id, clock=lambda: clock[0]), identity, _keyring(), rng=random.Random(1))


def test_a_started_idle_node_wakes_for_its_next_gossip_round() -> None:
    node = _node()
    assert node.next_deadline() is None  # not started: only input creates work
    node.tick(10.0)
    assert node.next_deadline() == 10.0 + node.config.gossip_interval


def test_a_local_write_makes_the_node_due_at_the_latest_time_it_was_given() -> None:
    node = _node()
    node.tick(10.0)
    node.memory.counter("tasks").increment()
    assert node.next_deadline() == 10.0
    node.tick(10.5)  # no neighbour waits for it: the write coalesces with later ones a while
    assert node.stats.batches_created == 0
    assert node.next_deadline() == 10.5 + node.config.max_flush_delay
    node.memory.counter("tasks").increment()
    node.tick(10.5 + node.config.max_flush_delay)
    assert node.stats.batches_created == 1
    assert node.next_deadline() == 10.0 + node.config.gossip_interval


def test_flush_signs_pending_writes_at_once_even_with_no_neighbour() -> None:
    node = _node()
    node.tick(10.0)
    node.memory.counter("tasks").increment()
    node.flush(10.0)
    assert node.stats.batches_created == 1


def test_a_write_before_any_input_is_due_at_once() -> None:
    node = _node()
    node.memory.counter("tasks").increment()
    assert node.next_deadline() == -math.inf


class NodeTimers(RuleBasedStateMachine):
    """Three nodes over in-order links; Hypothesis picks writes, dials, deliveries, losses and ticks."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        clock = lambda: self.now  # noqa: E731 - one clock shared by the replicas
        keyring = _keyring()
        self.nodes = [
            Node(Memory(identity.peer_id, clock=clock), identity, keyring, rng=random.Random(n), config=BUSY)
            for n, identity in enumerate(IDENTITIES)
        ]
        self.far: dict[tuple[int, int], tuple[int, int]] = {}  # (node, conn) → (peer node, its conn)
        self.in_flight: list[tuple[int, int, bytes]] = []  # (node, conn, frame), in send order
        self.conns = 0
        for n in range(len(self.nodes)):
            self.nodes[n].tick(self.now)
            self._pump(n)

    def _pump(self, n: int) -> None:
        for action in self.nodes[n].take_actions():
            far = self.far.get((n, action.conn))
            if isinstance(action, Send) and far is not None:
                self.in_flight.append((*far, action.data))
            elif isinstance(action, Close) and far is not None:
                self._close(n, action.conn)
        self.nodes[n].take_events()

    def _close(self, n: int, conn: int) -> None:
        m, other = self.far.pop((n, conn))
        del self.far[(m, other)]
        self.in_flight = [f for f in self.in_flight if f[:2] not in ((n, conn), (m, other))]
        self.nodes[n].close(conn, self.now)
        self.nodes[m].close(other, self.now)
        self._pump(n)
        self._pump(m)

    @rule(n=st.integers(0, 2), value=st.integers(0, 5))
    def write(self, n: int, value: int) -> None:
        self.nodes[n].memory.set("facts").add(value)

    @rule(a=st.integers(0, 2), b=st.integers(0, 2))
    def dial(self, a: int, b: int) -> None:
        if a != b:
            self.conns += 1
            self.far[(a, self.conns)] = (b, -self.conns)
            self.far[(b, -self.conns)] = (a, self.conns)
            self.nodes[a].open(self.conns, self.now, dialer=True)
            self.nodes[b].open(-self.conns, self.now, dialer=False)
            self._pump(a)
            self._pump(b)

    @rule(pick=st.integers(0, 1000))
    def deliver_next_frame_of_a_connection(self, pick: int) -> None:
        if self.in_flight:
            n, conn, _ = self.in_flight[pick % len(self.in_flight)]
            index = next(i for i, f in enumerate(self.in_flight) if f[:2] == (n, conn))
            _, _, data = self.in_flight.pop(index)
            self.nodes[n].receive(conn, data, self.now)
            self._pump(n)

    @rule()
    def deliver_everything_in_flight(self) -> None:
        for _ in range(500):
            if not self.in_flight:
                return
            n, conn, data = self.in_flight.pop(0)
            self.nodes[n].receive(conn, data, self.now)
            self._pump(n)

    @rule(pick=st.integers(0, 1000))
    def lose_a_frame(self, pick: int) -> None:
        if self.in_flight:
            self.in_flight.pop(pick % len(self.in_flight))

    @rule(pick=st.integers(0, 1000))
    def hang_up(self, pick: int) -> None:
        if self.far:
            self._close(*sorted(self.far)[pick % len(self.far)])

    @rule(seconds=st.floats(0, 0.5))
    def let_time_pass(self, seconds: float) -> None:
        self.now += seconds

    @rule(n=st.integers(0, 2))
    def tick_at_the_deadline(self, n: int) -> None:
        node = self.nodes[n]
        deadline = node.next_deadline()
        if deadline is None:
            return
        self.now = max(self.now, deadline)
        node.tick(self.now)
        self._pump(n)
        after = node.next_deadline()
        assert after is None or after > self.now

    @rule()
    def run_the_earliest_timers_with_the_network_idle(self) -> None:
        for _ in range(5):
            self.deliver_everything_in_flight()
            deadlines = [(d, n) for n, node in enumerate(self.nodes) if (d := node.next_deadline()) is not None]
            if deadlines:
                self.tick_at_the_deadline(min(deadlines)[1])

    @invariant()
    def pending_writes_are_due_within_the_flush_delay(self) -> None:
        for node in self.nodes:
            if node.memory.has_pending_deltas():
                deadline = node.next_deadline()
                assert deadline is not None and deadline <= self.now + node.config.max_flush_delay


NodeTimers.TestCase.settings = settings(max_examples=100, stateful_step_count=50, deadline=None, derandomize=True)
test_ticking_at_the_deadline_moves_the_deadline_later = NodeTimers.TestCase
