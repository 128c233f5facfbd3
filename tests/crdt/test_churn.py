"""An OR-Set under heavy add/remove churn stays as small as a fresh one: no tombstones."""

from __future__ import annotations

import random

from crdtmem import Memory, codec
from crdtmem.crdt import Crdt

CYCLES = 100_000  # add + remove pairs, over all replicas together
ELEMENTS = [f"element-{i}" for i in range(10)]
REPLICA_IDS = ("replica-alpha", "replica-bravo", "replica-charlie")


def _group(deltas: list[tuple[str, Crdt]]) -> Crdt:
    """Join one frame's deltas into one delta group, as the sync layer batches them."""
    group = deltas[0][1].copy()
    for _, delta in deltas[1:]:
        group.join(delta)
    return group


def _fresh_set_size() -> int:
    replicas = [Memory(rid) for rid in REPLICA_IDS]
    for replica in replicas:
        for element in ELEMENTS:
            replica.set("s").add(element)
    for replica in replicas[1:]:
        replicas[0].merge(replica)
    return len(codec.encode_state(replicas[0].state("s")))


def test_orset_churn_keeps_state_as_small_as_a_fresh_set() -> None:
    rng = random.Random(20240601)
    replicas = [Memory(rid) for rid in REPLICA_IDS]
    sets = [r.set("s") for r in replicas]
    in_flight: list[tuple[int, Crdt, str]] = []  # (target, delta group, origin)
    cycles = 0
    while cycles < CYCLES:
        writer = rng.randrange(3)
        burst = min(rng.randint(1, 12), CYCLES - cycles)
        for _ in range(burst):
            element = rng.choice(ELEMENTS)
            sets[writer].add(element)
            sets[writer].remove(element)
        cycles += burst
        group = _group(replicas[writer].take_deltas())
        in_flight += [(t, group, REPLICA_IDS[writer]) for t in range(3) if t != writer]
        # deliver a random few, out of order; sometimes deliver one twice
        for _ in range(rng.randint(1, 4)):
            if in_flight:
                target, delta, origin = in_flight.pop(rng.randrange(len(in_flight)))
                replicas[target].apply_delta("s", delta, origin)
                if rng.random() < 0.05:
                    replicas[target].apply_delta("s", delta, origin)
    rng.shuffle(in_flight)
    for target, delta, origin in in_flight:
        replicas[target].apply_delta("s", delta, origin)

    # every replica now holds an empty set whose context is three plain counters
    for replica in replicas:
        kernel = replica.state("s").kernel
        assert kernel.entries == {}
        assert kernel.ctx.cloud == set()
        assert sum(kernel.ctx.vv.values()) == CYCLES  # one dot per add; removes take none

    # the same ten elements written by all three replicas, as in the fresh set
    for writer, replica in enumerate(replicas):
        for element in ELEMENTS:
            sets[writer].add(element)
        for name, delta in replica.take_deltas():
            for target in replicas:
                if target is not replica:
                    target.apply_delta(name, delta, replica.replica_id)

    churned = [len(codec.encode_state(r.state("s"))) for r in replicas]
    fresh = _fresh_set_size()
    assert len(set(churned)) == 1
    assert all(s.value == frozenset(ELEMENTS) for s in sets)
    assert churned[0] <= 2 * fresh + 200, (churned[0], fresh)
