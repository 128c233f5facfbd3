"""Hypothesis drives the simulator: writes, partitions, heals, crashes and restarts, in any order.

Whatever happened, once the network heals, every crashed peer restarts and the network stays
quiet for a while, every live replica holds identical values and Merkle roots.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from crdtmem.simulation import NodeConfig, Scenario, Simulation

QUIET_SECONDS = 20.0


def _write(kind: str, value: int):
    def apply(memory) -> None:
        if kind == "counter":
            memory.counter("hits").increment(1)
        elif kind == "fact":
            memory.set("facts").add(f"fact-{value}")
        elif kind == "unfact":
            memory.set("facts").remove(f"fact-{value}")
        elif kind == "register":
            memory.register("goal").assign(value)
        elif kind == "mvregister":
            memory.mvregister("plan").assign(value)
        elif kind == "put":
            memory.map("board").put(f"k{value % 3}", value)
        else:
            memory.map("board").remove(f"k{value % 3}")

    return apply


class PartitionedCluster(RuleBasedStateMachine):
    """A handful of peers on a simulated network; Hypothesis chooses what goes wrong when."""

    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulation | None = None
        self.increments = 0

    @initialize(
        seed=st.integers(0, 2**16),
        peers=st.integers(3, 6),
        topology=st.sampled_from(["mesh", "ring", "star", "regular:2"]),
        loss=st.sampled_from([0.0, 0.0, 0.1]),
    )
    def start(self, seed: int, peers: int, topology: str, loss: float) -> None:
        scenario = Scenario(
            peers=peers, seed=seed, topology=topology, loss=loss, writes=0, duration=1e9,
            node=NodeConfig(anti_entropy_interval=2.0), redial=0.2, redial_max=2.0, skew=0.5,
        )
        self.sim = Simulation(scenario)
        self.sim.advance(1.0)

    @property
    def n(self) -> int:
        return len(self.sim.peers)

    @rule(
        peer=st.integers(0, 5),
        kind=st.sampled_from(["counter", "fact", "unfact", "register", "mvregister", "put", "remove"]),
        value=st.integers(0, 9),
    )
    def write(self, peer: int, kind: str, value: int) -> None:
        peer %= self.n
        if self.sim.peers[peer].alive:
            self.sim.write(peer, _write(kind, value))
            self.increments += kind == "counter"

    @rule(sides=st.lists(st.booleans(), min_size=6, max_size=6))
    def partition(self, sides: list[bool]) -> None:
        left = [i for i in range(self.n) if sides[i]]
        right = [i for i in range(self.n) if not sides[i]]
        if self.sim.partitioned:
            self.sim.heal()
        self.sim.partition([left, right])

    @precondition(lambda self: self.sim is not None and self.sim.partitioned)
    @rule()
    def heal(self) -> None:
        self.sim.heal()

    @rule(peer=st.integers(0, 5), store=st.sampled_from(["kept", "kept", "lost"]))
    def crash(self, peer: int, store: str) -> None:
        peer %= self.n
        if sum(p.alive for p in self.sim.peers) > 1:
            self.sim.crash(peer, store)

    @rule(peer=st.integers(0, 5))
    def an_incarnation_retires(self, peer: int) -> None:
        """A clean stop: the peer seals its last batch with its retirement, sends it, then goes."""
        peer %= self.n
        if self.sim.peers[peer].alive and sum(p.alive for p in self.sim.peers) > 1:
            node = self.sim.peers[peer].node
            self.sim.write(peer, lambda memory: node.retire(self.sim.now))  # performs the node's sends
            self.sim.advance(0.3)
            self.sim.crash(peer, "kept")

    @precondition(lambda self: self.sim is not None and any(not p.alive for p in self.sim.peers))
    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        down = [p.index for p in self.sim.peers if not p.alive]
        self.sim.restart(data.draw(st.sampled_from(down)))

    @rule(seconds=st.floats(0.01, 3.0))
    def advance(self, seconds: float) -> None:
        self.sim.advance(seconds)

    @invariant()
    def counters_never_exceed_the_increments_made(self) -> None:
        if self.sim is None:
            return
        for peer in self.sim.live_peers():
            assert peer.memory.counter("hits").value <= self.increments

    def teardown(self) -> None:
        if self.sim is None:
            return
        if self.sim.partitioned:
            self.sim.heal()
        for peer in self.sim.peers:
            if not peer.alive:
                self.sim.restart(peer.index)
        self.sim.advance(QUIET_SECONDS)
        check = self.sim.check()
        assert check.converged, (
            f"not converged after a heal and {QUIET_SECONDS}s of quiet: {check.differing_peers_total} peer(s) differ "
            f"from peer {check.reference_peer}: {check.differing_peers}; keys {check.differing_keys}"
        )


PartitionedCluster.TestCase.settings = settings(
    max_examples=12, stateful_step_count=14, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(autouse=True)
def _quiet_node_logs():
    logger = logging.getLogger("crdtmem")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


test_any_history_of_faults_converges_after_a_final_heal = PartitionedCluster.TestCase
