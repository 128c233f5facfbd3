"""The sans-I/O Node over an in-test fake network: convergence, partitions, refusals, authorship."""

from __future__ import annotations

import random

import pycrdt
import pytest

from crdtmem.clocks import Dot
from crdtmem.crdt import GCounter, LWWRegister, ORSet
from crdtmem.crdt.document import Document
from crdtmem.identity import Identity
from crdtmem.protocol.batch import seal_batch
from crdtmem.errors import LostHistoryError
from crdtmem.protocol.events import BatchApplied, HistoryLost, Refused
from crdtmem.protocol.messages import Batches, encode_message
from crdtmem.protocol.node import NodeConfig
from crdtmem.values import encode_value

from .fakenet import FakeNet


def write_some(node, tag: str, n: int = 5) -> None:
    mem = node.memory
    for i in range(n):
        mem.counter("tasks").increment(1)
        mem.pncounter("budget").decrement(i + 1)
        mem.set("facts").add(f"{tag}-fact-{i}")
        mem.register("goal").assign(f"{tag}-goal-{i}")
        mem.map("board").put(f"{tag}-task-{i}", {"owner": tag, "n": i})
    mem.set("facts").remove(f"{tag}-fact-0")
    mem.mvregister("plan").assign(f"{tag}-plan")
    text = mem.doc("notes").get("notes", type=pycrdt.Text)
    text += f"[{tag}]"


def roots(net: FakeNet) -> set[bytes]:
    out = set()
    for node in net.nodes.values():
        node.index.refresh()
        out.add(node.index.root())
    return out


@pytest.mark.parametrize("size", [2, 3])
def test_nodes_on_a_clean_link_converge(size: int) -> None:
    net = FakeNet(seed=size)
    names = [f"n{i}" for i in range(size)]
    for name in names:
        net.add(name)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            net.connect(a, b)
    for name in names:
        write_some(net.nodes[name], name)
    net.run(3)
    assert net.converged()
    assert len(roots(net)) == 1
    assert net.nodes["n0"].memory.counter("tasks").value == 5 * size
    assert all(node.synced() for node in net.nodes.values())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nodes_converge_over_a_lossy_duplicating_reordering_link(seed: int) -> None:
    net = FakeNet(seed=seed, loss=0.2, duplicate=0.2, reorder=0.3, config=NodeConfig(anti_entropy_interval=2.0, handshake_timeout=1.0))
    for name in ("a", "b", "c"):
        net.add(name)
    net.connect("a", "b")
    net.connect("b", "c")  # a and c have no direct link: deltas must be relayed
    rng = random.Random(seed)
    for step in range(10):
        write_some(net.nodes[rng.choice("abc")], f"s{step}", n=2)
        net.run(0.3)
    net.loss = net.duplicate = net.reorder = 0.0
    net.run(10)
    assert net.converged()
    assert len(roots(net)) == 1


def test_relayed_batches_keep_their_authors_signature() -> None:
    net = FakeNet(seed=7)
    for name in ("a", "b", "c"):
        net.add(name)
    net.connect("a", "b")
    net.connect("b", "c")  # c has no link to a
    for node in net.nodes.values():
        node.take_events()
    net.nodes["a"].memory.counter("c").increment(3)
    net.run(2)
    made = [e.wire for e in net.nodes["a"].take_events() if isinstance(e, BatchApplied) and e.local]
    relayed = [e for e in net.nodes["c"].take_events() if isinstance(e, BatchApplied)]
    assert net.nodes["c"].memory.counter("c").value == 3
    assert [e.wire for e in relayed] == made  # byte for byte: b relayed a's signed batch unchanged
    assert relayed[0].author == net.nodes["a"].identity.peer_id


def test_partition_heals_by_merkle_repair_alone() -> None:
    net = FakeNet(seed=11, config=NodeConfig(max_log_batches=0, anti_entropy_interval=1000))
    for name in ("a", "b", "c"):
        net.add(name)
    net.connect("a", "b")
    net.connect("a", "c")
    net.connect("b", "c")
    for name in ("a", "b", "c"):
        write_some(net.nodes[name], f"before-{name}", n=2)
    net.run(2)
    assert net.converged()
    net.cut("a", "b")
    net.cut("a", "c")
    write_some(net.nodes["a"], "alone", n=4)
    net.nodes["a"].memory.set("facts").remove("before-b-fact-1")
    write_some(net.nodes["b"], "majority", n=4)
    net.nodes["c"].memory.set("facts").add("before-b-fact-1")  # concurrent re-add survives a's remove
    net.run(2)
    assert not net.converged()
    assert all(node.log_size() == 0 for node in net.nodes.values())
    net.connect("a", "b")
    net.connect("a", "c")
    net.run(3)
    assert net.converged()
    assert len(roots(net)) == 1
    facts = net.nodes["a"].memory.set("facts").value
    assert "before-b-fact-1" in facts and "alone-fact-3" in facts and "majority-fact-3" in facts
    assert sum(node.stats.repairs for node in net.nodes.values()) >= 1


def test_removal_made_during_a_partition_is_repaired_everywhere() -> None:
    net = FakeNet(seed=12, config=NodeConfig(max_log_batches=0, anti_entropy_interval=1000))
    net.add("a")
    net.add("b")
    net.connect("a", "b")
    net.nodes["a"].memory.set("facts").add("stale")
    net.run(1)
    net.cut("a", "b")
    net.nodes["b"].memory.set("facts").remove("stale")
    net.run(1)
    net.connect("a", "b")
    net.run(2)
    assert "stale" not in net.nodes["a"].memory.set("facts")
    assert net.converged()


# -- refusals -------------------------------------------------------------------------------


def _pair(seed: int = 5) -> FakeNet:
    net = FakeNet(seed=seed)
    net.add("honest")
    net.add("mallory")
    net.connect("honest", "mallory")
    net.nodes["honest"].memory.counter("tasks").increment(2)
    net.nodes["honest"].memory.set("facts").add("kept")
    net.run(1)
    return net


def _inject(net: FakeNet, payload_message) -> list[Refused]:
    """Make mallory send a validly framed message to honest; return honest's refusals."""
    mallory = net.nodes["mallory"]
    (conn,) = [c for c in mallory._sessions if c[1] == "honest"]
    session = mallory._sessions[conn]
    honest = net.nodes["honest"]
    honest.take_events()
    for frame in session.channel.seal_message(encode_message(payload_message)):
        honest.receive(net.links[conn], frame, net.now)
    return [e for e in honest.take_events() if isinstance(e, Refused)]


def _forge(net: FakeNet, victim: str, deltas) -> Batches:
    mallory = net.nodes["mallory"].identity
    seq = net.nodes["mallory"].seen.next_dot(mallory.peer_id).counter
    return Batches((seal_batch(mallory, seq, deltas).wire,))


def test_trusted_peer_cannot_inflate_another_peers_counter_slot() -> None:
    net = _pair()
    honest = net.nodes["honest"]
    before = honest.memory.snapshot()
    refusals = _inject(net, _forge(net, "honest", [("tasks", GCounter({honest.identity.peer_id: 1000}))]))
    assert [r.reason for r in refusals] == ["forged-author"]
    assert honest.memory.snapshot() == before


def test_trusted_peer_cannot_forge_another_peers_dots() -> None:
    net = _pair()
    honest = net.nodes["honest"]
    before = honest.memory.snapshot()
    forged = ORSet()
    forged.kernel.entries[encode_value("forged")] = {Dot(honest.identity.peer_id, 99): None}
    forged.kernel.ctx.add(Dot(honest.identity.peer_id, 99))
    refusals = _inject(net, _forge(net, "honest", [("facts", forged)]))
    assert [r.reason for r in refusals] == ["forged-author"]
    assert honest.memory.snapshot() == before


def test_trusted_peer_cannot_write_a_timestamp_in_another_peers_name() -> None:
    net = _pair()
    honest = net.nodes["honest"]
    before = honest.memory.snapshot()
    forged = LWWRegister(10**12, honest.identity.peer_id, encode_value("hijacked"))
    refusals = _inject(net, _forge(net, "honest", [("goal", forged)]))
    assert [r.reason for r in refusals] == ["forged-author"]
    assert honest.memory.snapshot() == before


def test_trusted_peer_cannot_edit_a_document_as_another_client() -> None:
    net = _pair()
    honest = net.nodes["honest"]
    before = honest.memory.snapshot()
    impostor = Document.for_replica(honest.identity.peer_id)
    updates = []
    impostor.watch(updates.append)
    impostor.doc.get("notes", type=pycrdt.Text).insert(0, "forged")
    refusals = _inject(net, _forge(net, "honest", [("notes", updates[0])]))
    assert [r.reason for r in refusals] == ["forged-author"]
    assert honest.memory.snapshot() == before


def test_batch_with_a_broken_signature_is_refused() -> None:
    net = _pair()
    honest = net.nodes["honest"]
    before = honest.memory.snapshot()
    mallory = net.nodes["mallory"]
    mallory.memory.counter("tasks").increment(1)
    batch = seal_batch(mallory.identity, 99, mallory.memory.take_deltas())
    broken = bytearray(batch.wire)
    broken[-1] ^= 0x01
    refusals = _inject(net, Batches((bytes(broken),)))
    assert [r.reason for r in refusals] == ["bad-batch-signature"]
    assert honest.memory.snapshot() == before


def test_garbage_after_handshake_is_refused_with_a_specific_reason() -> None:
    net = _pair()
    honest = net.nodes["honest"]
    before = honest.memory.snapshot()
    honest.take_events()
    (conn,) = [c for c in honest._sessions if c[1] == "mallory"]
    honest.receive(conn, b"\x93garbage", net.now)
    refusals = [e for e in honest.take_events() if isinstance(e, Refused)]
    assert len(refusals) == 1 and refusals[0].reason == "malformed-frame"
    assert honest.memory.snapshot() == before
    assert honest.peers() == {}


def test_handshake_that_never_finishes_times_out() -> None:
    net = FakeNet(seed=3, config=NodeConfig(handshake_timeout=2.0))
    node = net.add("a")
    node.open("silent", 0.0, dialer=False)
    node.take_actions()
    node.tick(1.0)
    assert not [e for e in node.take_events() if isinstance(e, Refused)]
    node.tick(2.5)
    refusals = [e for e in node.take_events() if isinstance(e, Refused)]
    assert [r.reason for r in refusals] == ["handshake-timeout"]


def test_a_replica_restarted_without_its_store_stops_signing_writes_the_others_would_ignore() -> None:
    net = FakeNet(seed=9)
    alice, bob = net.add("alice"), net.add("bob")
    net.connect("alice", "bob")
    for i in range(3):
        alice.memory.set("facts").add(f"before-{i}")
        net.run(0.2)
    assert bob.memory.set("facts").value == {"before-0", "before-1", "before-2"}
    net.cut("alice", "bob")
    # alice comes back with her key but an empty store: her next batch would be #1 again
    reborn = net.add("alice", identity=alice.identity)
    reborn.memory.set("facts").add("after")
    net.connect("alice", "bob")
    net.run(1.0)
    assert reborn.lost_history is not None and "#3" in reborn.lost_history
    events = [e for e in reborn.take_events() if isinstance(e, HistoryLost)]
    assert [(e.peer_id, e.theirs) for e in events] == [(bob.identity.peer_id, 3)]
    # "after" went out as alice#1 before anyone could tell, and bob holds the old alice#1:
    # exactly the loss the new identity avoids
    assert "after" not in bob.memory.set("facts").value
    with pytest.raises(LostHistoryError):
        reborn.check_writable()
    reborn.memory.set("facts").add("later")
    reborn.flush(net.now)
    net.run(1.0)
    assert "later" not in bob.memory.set("facts").value  # never signed, never sent
    assert reborn.stats.lost_history == 1
