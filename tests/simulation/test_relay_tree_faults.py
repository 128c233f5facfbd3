"""The relay tree (``eager_tree``) through faults: a partition, the root crashing, an eager
parent crashing, a flapping link. Every replica converges, the tree spans the peers again, and it re-forms in a bounded
number of parent changes (no distances counted up to the bound)."""

from __future__ import annotations

from collections import deque

import pytest

from crdtmem.simulation import (
    Crash,
    LinkFault,
    NodeConfig,
    Partition,
    Scenario,
    Simulation,
)
from crdtmem.simulation.report import build_report

PEERS = 24


def _scenario(**faults) -> Scenario:
    return Scenario(peers=PEERS, seed=5, topology="regular:4", writes=4.0, write_until=12.0, duration=20.0,
                    node=NodeConfig(eager_tree=True, anti_entropy_interval=30.0), **faults)


def _root(sim: Simulation) -> int:
    return min(range(PEERS), key=lambda i: sim.peers[i].peer_id)


def _tree_spans(sim: Simulation) -> bool:
    relay = {p.peer_id: p.node.eager_peers() for p in sim.live_peers()}
    edges = sum(len(v) for v in relay.values())
    start = next(iter(relay))
    reached, queue = {start}, deque([start])
    while queue:
        for other in relay[queue.popleft()]:
            if other not in reached:
                reached.add(other)
                queue.append(other)
    return reached == set(relay) and edges == 2 * (len(relay) - 1)  # connected, and no cycle


def _root_link() -> tuple[int, int]:
    sim = Simulation(_scenario())
    root = _root(sim)
    return next((a, b) for a, b in sim.links() if root in (a, b))


@pytest.mark.parametrize("fault", ["partition", "flapping-root-link"])
def test_the_tree_spans_the_peers_again_after_a_fault_and_every_replica_converges(fault: str) -> None:
    if fault == "partition":
        faults = {"partitions": [Partition(at=4.0, heal_at=9.0, groups=2)]}
    else:
        a, b = _root_link()
        faults = {"link_faults": [LinkFault(a, b, at, at + 1.0) for at in (3.0, 5.0, 7.0)]}
    sim = Simulation(_scenario(**faults))
    sim.run()
    report = build_report(sim)
    assert report["converged"]
    assert _tree_spans(sim)
    assert report["node_stats"]["tree_parent_changes"] <= 10 * PEERS


def test_when_the_root_crashes_the_others_form_a_tree_without_it_and_take_it_back_after_its_restart() -> None:
    root = _root(Simulation(_scenario()))
    sim = Simulation(_scenario(crashes=[Crash(peer=root, at=4.0, restart_at=15.0)]))
    sim.run_until(14.0)
    assert _tree_spans(sim)  # the others, without the root
    assert all(p.node._tree.root != sim.peers[root].peer_id for p in sim.live_peers())
    sim.run()
    report = build_report(sim)
    assert report["converged"] and _tree_spans(sim)
    assert {p.node._tree.root for p in sim.live_peers()} == {sim.peers[root].peer_id}
    assert report["node_stats"]["tree_parent_changes"] <= 10 * PEERS



def _parent_of(sim: Simulation, peer: int) -> str | None:
    """The peer id of ``peer``'s parent in the relay tree (None: it is a root)."""
    node = sim.peers[peer].node
    return node.peers().get(node._tree.parent) if node._tree.parent is not None else None


def test_when_an_eager_parent_dies_its_children_take_another_and_no_write_is_lost() -> None:
    before = Simulation(_scenario())
    before.run_until(3.5)  # the tree has formed; the crash below changes nothing before 4 s
    root = before.peers[_root(before)].peer_id
    parent = next(i for i, p in enumerate(before.peers) if p.peer_id != root and len(p.node.eager_peers()) >= 3)
    children = [i for i in range(PEERS) if _parent_of(before, i) == before.peers[parent].peer_id]
    assert len(children) >= 2
    sim = Simulation(_scenario(crashes=[Crash(peer=parent, at=4.0)]))
    sim.run_until(6.0)
    assert _tree_spans(sim)  # the others, without it
    assert all(_parent_of(sim, child) not in (None, sim.peers[parent].peer_id) for child in children)
    sim.run()
    report = build_report(sim)
    assert report["converged"] and _tree_spans(sim)  # the live peers' writes, made before and after, reached them all
    assert report["node_stats"]["tree_parent_changes"] <= 10 * PEERS
