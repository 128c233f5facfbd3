"""Joining with a liar among the members: one lying member cannot feed a new peer forged or partial history.

The joiner verifies every author's signed batches itself, so a member that withholds batches,
serves a doctored copy or holds state no signed batch carries only delays it: with an honest
member reachable too, the joiner ends with every author's whole, verified history.
"""

from __future__ import annotations

from crdtmem.crdt import GCounter
from crdtmem.errors import RefusalReason
from crdtmem.testing import Cluster


def _doctored(wire: bytes) -> bytes:
    """The same batch with one byte of its body changed: its signature no longer matches."""
    middle = len(wire) // 2
    return wire[:middle] + bytes([wire[middle] ^ 0xFF]) + wire[middle + 1 :]


def _build_history() -> Cluster:
    cluster = Cluster(seed=5)
    for name in ("alice", "bob", "liar", "honest"):
        cluster.add(name)
    for a, b in (("alice", "liar"), ("bob", "liar"), ("alice", "honest"), ("bob", "honest")):
        cluster.connect(a, b)
    for i in range(30):
        writer = ("alice", "bob")[i % 2]
        cluster.memory(writer).counter("tasks").increment(1)
        cluster.memory(writer).set("facts").add(f"{writer}-{i}")
        cluster.run(0.2)
    assert cluster.run_until(cluster.converged, timeout=60)
    cluster.disconnect("alice", "liar")
    cluster.disconnect("bob", "liar")
    return cluster


def _corrupt(cluster: Cluster) -> None:
    """The liar withholds some batches, serves a doctored one and holds forged state."""
    liar = cluster.node("liar")
    bob = cluster.memory("bob").replica_id
    log = liar._log
    alice_dots = [dot for dot in list(log._wires) if dot.replica != bob]
    for dot in alice_dots[::3]:
        log._forget(dot)  # withheld
    victim = next(dot for dot in log._wires if dot.replica == bob)
    log._wires[victim] = _doctored(log._wires[victim])
    cluster.memory("liar").apply_delta("tasks", GCounter({bob: 10_000}), bob)


def test_a_joiner_gets_whole_verified_history_despite_one_lying_member() -> None:
    cluster = _build_history()
    _corrupt(cluster)
    honest = cluster.memory("honest")
    cluster.add("joiner")
    cluster.connect("joiner", "liar")
    cluster.run(5)
    cluster.connect("joiner", "honest")
    joiner_node = cluster.node("joiner")
    assert cluster.run_until(lambda: joiner_node.seen == cluster.node("honest").seen, timeout=120)
    joiner = cluster.memory("joiner")
    assert joiner.counter("tasks").value == honest.counter("tasks").value == 30
    assert joiner.set("facts").value == honest.set("facts").value
    assert len(joiner.set("facts").value) == 30
    reasons = {refusal.reason for refusal in cluster.refusals("joiner")}
    assert RefusalReason.BAD_BATCH_SIGNATURE in reasons  # the doctored batch was caught, not applied


def test_a_joiner_reaching_only_the_liar_gets_no_forged_state() -> None:
    cluster = _build_history()
    _corrupt(cluster)
    cluster.add("joiner")
    cluster.connect("joiner", "liar")
    cluster.run(60)
    joiner = cluster.memory("joiner")
    # Partial at worst: never more than the signed writes, never the forged counter slot.
    assert joiner.counter("tasks").value <= 30
    honest_seen, joiner_seen = cluster.node("honest").seen, cluster.node("joiner").seen
    assert all(honest_seen.max(author) >= top for author, top in joiner_seen.vv.items())
