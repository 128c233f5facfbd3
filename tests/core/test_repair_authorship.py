"""Authorship on every path: reconciliation moves only original signed batches.

A trusted peer whose memory holds state it was never sent in a signed batch (here: written
straight into its memory, as a hijacked agent could) must not spread that state to anyone,
whatever repair path runs between them.
"""

from __future__ import annotations

import pycrdt
import pytest

from crdtmem.clocks import Dot
from crdtmem.crdt import GCounter, LWWRegister, ORSet
from crdtmem.crdt.document import Document
from crdtmem.testing import Cluster
from crdtmem.values import encode_value


def _tampered(name: str, victim: str):
    if name == "tasks":
        return GCounter({victim: 1000})
    if name == "facts":
        forged = ORSet()
        forged.kernel.entries[encode_value("forged")] = {Dot(victim, 99): None}
        forged.kernel.ctx.add(Dot(victim, 99))
        return forged
    if name == "goal":
        return LWWRegister(10**15, victim, encode_value("hijacked"))
    impostor = Document.for_replica(victim)
    updates = []
    impostor.watch(updates.append)
    impostor.doc.get("notes", type=pycrdt.Text).insert(0, "forged")
    return updates[0]


@pytest.mark.parametrize("name", ["tasks", "facts", "goal", "notes"])
def test_a_peer_cannot_spread_writes_in_another_peers_name_through_reconciliation(name: str) -> None:
    cluster = Cluster(seed=21)
    cluster.add("victim")
    cluster.add("honest")
    cluster.add("mallory")
    victim = cluster.node("victim").identity.peer_id
    cluster.memory("victim").counter("tasks").increment(1)
    cluster.memory("victim").set("facts").add("real")
    cluster.memory("victim").register("goal").assign("real")
    cluster.connect("victim", "mallory")
    cluster.run(2)
    # mallory's memory gains state no signed batch of the victim carries
    cluster.memory("mallory").apply_delta(name, _tampered(name, victim), victim)
    before = cluster.memory("honest").snapshot()
    cluster.connect("honest", "mallory")
    cluster.run(40)  # past a periodic reconciliation
    honest = cluster.memory("honest")
    assert honest.snapshot() != before  # the real, signed writes arrived
    assert honest.counter("tasks").value == 1
    assert "forged" not in honest.set("facts").value
    assert honest.register("goal").value == "real"
    assert "forged" not in str(honest.doc("notes").get("notes", type=pycrdt.Text))
