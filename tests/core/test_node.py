"""The sans-I/O Node in a test cluster: convergence, partitions, refusals, authorship."""

from __future__ import annotations

import random

import pycrdt
import pytest

from crdtmem import Memory
from crdtmem.clocks import Dot
from crdtmem.crdt import GCounter, LWWRegister, ORSet
from crdtmem.crdt.document import Document
from crdtmem.identity import Identity, Keyring, key_id_of
from crdtmem.protocol.batch import batch_hash, seal_batch
from crdtmem.protocol.events import BatchApplied, Refused, TypeClash
from crdtmem.protocol.messages import Batches
from crdtmem.protocol.node import NodeConfig
from crdtmem.testing import Cluster, LinkFaults, RawSession
from crdtmem.values import encode_value

MALLORY = Identity.from_private_bytes(bytes(range(32)))


def write_some(memory: Memory, tag: str, n: int = 5) -> None:
    for i in range(n):
        memory.counter("tasks").increment(1)
        memory.pncounter("budget").decrement(i + 1)
        memory.set("facts").add(f"{tag}-fact-{i}")
        memory.register("goal").assign(f"{tag}-goal-{i}")
        memory.map("board").put(f"{tag}-task-{i}", {"owner": tag, "n": i})
    memory.set("facts").remove(f"{tag}-fact-0")
    memory.mvregister("plan").assign(f"{tag}-plan")
    text = memory.doc("notes").get("notes", type=pycrdt.Text)
    text += f"[{tag}]"


def members(cluster: Cluster, *names: str) -> None:
    for name in names:
        cluster.add(name)


@pytest.mark.parametrize("size", [2, 3])
def test_nodes_on_a_clean_link_converge(size: int) -> None:
    cluster = Cluster(seed=size)
    names = [f"n{i}" for i in range(size)]
    members(cluster, *names)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            cluster.connect(a, b)
    for name in names:
        write_some(cluster.memory(name), name)
    cluster.run(3)
    assert cluster.converged()
    assert len(cluster.merkle_roots()) == 1
    assert cluster.memory("n0").counter("tasks").value == 5 * size
    assert cluster.synced()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nodes_converge_over_a_lossy_duplicating_reordering_link(seed: int) -> None:
    cluster = Cluster(
        seed=seed,
        faults=LinkFaults(loss=0.2, duplicate=0.2, reorder=0.3),
        config=NodeConfig(anti_entropy_interval=2.0, handshake_timeout=1.0),
    )
    members(cluster, "a", "b", "c")
    cluster.connect("a", "b")
    cluster.connect("b", "c")  # a and c have no direct link: deltas must be relayed
    rng = random.Random(seed)
    for step in range(10):
        write_some(cluster.memory(rng.choice("abc")), f"s{step}", n=2)
        cluster.run(0.3)
    cluster.faults = LinkFaults()
    assert cluster.run_until(cluster.converged, timeout=10)
    assert len(cluster.merkle_roots()) == 1


def test_relayed_batches_keep_their_authors_signature() -> None:
    cluster = Cluster(seed=7)
    members(cluster, "a", "b", "c")
    cluster.connect("a", "b")
    cluster.connect("b", "c")  # c has no link to a
    cluster.run(1)
    cluster.memory("a").counter("c").increment(3)
    cluster.run(2)
    made = [e.wire for e in cluster.events("a") if isinstance(e, BatchApplied) and e.local]
    relayed = [e for e in cluster.events("c") if isinstance(e, BatchApplied)]
    assert cluster.memory("c").counter("c").value == 3
    assert [e.wire for e in relayed] == made  # byte for byte: b relayed a's signed batch unchanged
    assert relayed[0].author == cluster.node("a").replica_id


def test_partition_heals_by_reconciling_the_signed_batches_each_side_lacks() -> None:
    cluster = Cluster(seed=11, config=NodeConfig(anti_entropy_interval=1000))
    members(cluster, "a", "b", "c")
    cluster.connect("a", "b")
    cluster.connect("a", "c")
    cluster.connect("b", "c")
    for name in ("a", "b", "c"):
        write_some(cluster.memory(name), f"before-{name}", n=2)
    cluster.run(2)
    assert cluster.converged()
    cluster.partition(["a"], ["b", "c"])
    write_some(cluster.memory("a"), "alone", n=4)
    cluster.memory("a").set("facts").remove("before-b-fact-1")
    write_some(cluster.memory("b"), "majority", n=4)
    cluster.memory("c").set("facts").add("before-b-fact-1")  # concurrent re-add survives a's remove
    cluster.run(2)
    assert not cluster.converged()
    assert all(cluster.node(name).log_size() > 0 for name in cluster.names)  # kept for good
    cluster.heal_all()
    assert cluster.run_until(cluster.converged, timeout=5)
    assert len(cluster.merkle_roots()) == 1
    facts = cluster.memory("a").set("facts").value
    assert "before-b-fact-1" in facts and "alone-fact-3" in facts and "majority-fact-3" in facts
    assert cluster.run_until(cluster.synced, timeout=5)  # every replica holds every signed batch


def test_removal_made_during_a_partition_is_repaired_everywhere() -> None:
    cluster = Cluster(seed=12, config=NodeConfig(anti_entropy_interval=1000))
    members(cluster, "a", "b")
    cluster.connect("a", "b")
    cluster.memory("a").set("facts").add("stale")
    cluster.run(1)
    cluster.cut("a", "b")
    cluster.memory("b").set("facts").remove("stale")
    cluster.run(1)
    cluster.heal("a", "b")
    cluster.run(3)
    assert "stale" not in cluster.memory("a").set("facts")
    assert cluster.converged()


def test_a_node_trusts_its_own_batches_without_its_key_in_the_keyring() -> None:
    cluster = Cluster(seed=13)
    members(cluster, "alice", "bob", "carol")
    cluster.connect("alice", "carol")
    cluster.connect("carol", "bob")  # bob gets alice's batch through carol, never meeting alice
    cluster.memory("alice").set("facts").add("mine")
    cluster.run(0.3)
    others = Keyring()
    for name in ("bob", "carol"):
        others.add(cluster.node(name).identity)
    cluster.restart("alice", keyring=others)  # an empty store...
    cluster.connect("alice", "bob")  # ...and bob, who never met alice, sends her batch back
    cluster.run(0.3)
    assert cluster.memory("alice").set("facts").value == {"mine"}
    assert cluster.stats("alice").batches_applied == 1
    assert not cluster.refusals("alice")
    assert cluster.node("alice").identity.peer_id not in others and len(others) == 2


# -- refusals -------------------------------------------------------------------------------


def _honest(seed: int = 5) -> tuple[Cluster, RawSession]:
    """An honest node holding some state, and a raw session to it as the trusted ``MALLORY``."""
    cluster = Cluster(seed=seed)
    cluster.add("honest")
    cluster.memory("honest").counter("tasks").increment(2)
    cluster.memory("honest").set("facts").add("kept")
    cluster.run(1)
    cluster.keyring.add(MALLORY)
    mallory = cluster.open_raw("honest", MALLORY)
    assert cluster.node("honest").peers() == {mallory.conn: MALLORY.peer_id}
    return cluster, mallory


def _refusals(events) -> list[str]:
    return [e.reason for e in events if isinstance(e, Refused)]


def _forged(deltas) -> Batches:
    return Batches((seal_batch(MALLORY, 1, deltas).wire,))


def test_trusted_peer_cannot_inflate_another_peers_counter_slot() -> None:
    cluster, mallory = _honest()
    honest = cluster.memory("honest")
    before = honest.snapshot()
    events = cluster.inject(mallory.conn, mallory.seal(_forged([("tasks", GCounter({honest.replica_id: 1000}))])))
    assert _refusals(events) == ["forged-author"]
    assert honest.snapshot() == before


def test_trusted_peer_cannot_forge_another_peers_dots() -> None:
    cluster, mallory = _honest()
    honest = cluster.memory("honest")
    before = honest.snapshot()
    forged = ORSet()
    forged.kernel.entries[encode_value("forged")] = {Dot(honest.replica_id, 99): None}
    forged.kernel.ctx.add(Dot(honest.replica_id, 99))
    events = cluster.inject(mallory.conn, mallory.seal(_forged([("facts", forged)])))
    assert _refusals(events) == ["forged-author"]
    assert honest.snapshot() == before


def test_trusted_peer_cannot_write_a_timestamp_in_another_peers_name() -> None:
    cluster, mallory = _honest()
    honest = cluster.memory("honest")
    before = honest.snapshot()
    forged = LWWRegister(10**12, honest.replica_id, encode_value("hijacked"))
    events = cluster.inject(mallory.conn, mallory.seal(_forged([("goal", forged)])))
    assert _refusals(events) == ["forged-author"]
    assert honest.snapshot() == before


def test_trusted_peer_cannot_edit_a_document_as_another_client() -> None:
    cluster, mallory = _honest()
    honest = cluster.memory("honest")
    before = honest.snapshot()
    impostor = Document.for_replica(honest.replica_id)
    updates = []
    impostor.watch(updates.append)
    impostor.doc.get("notes", type=pycrdt.Text).insert(0, "forged")
    events = cluster.inject(mallory.conn, mallory.seal(_forged([("notes", updates[0])])))
    assert _refusals(events) == ["forged-author"]
    assert honest.snapshot() == before


def test_a_batch_received_again_is_a_duplicate_without_a_second_verification(monkeypatch) -> None:
    import crdtmem.protocol.node as node_module

    cluster, mallory = _honest()
    own = Memory(MALLORY.peer_id)
    own.counter("tasks").increment(1)
    wire = seal_batch(MALLORY, 1, own.take_deltas()).wire
    verified, real_verify = [], node_module.verify
    monkeypatch.setattr(node_module, "verify", lambda *args: verified.append(args) or real_verify(*args))
    cluster.inject(mallory.conn, mallory.seal(Batches((wire,))))
    events = cluster.inject(mallory.conn, mallory.seal(Batches((bytes(bytearray(wire)),))))
    stats = cluster.stats("honest")
    assert len(verified) == 1 and stats.duplicate_batches == 1 and stats.batches_applied == 1
    assert _refusals(events) == [] and cluster.memory("honest").counter("tasks").value == 3


def test_what_a_peer_was_known_to_hold_carries_over_to_its_next_connection() -> None:
    cluster, mallory = _honest()
    node = cluster.node("honest")
    own = Memory(MALLORY.peer_id)
    own.counter("tasks").increment(1)
    cluster.inject(mallory.conn, mallory.seal(Batches((seal_batch(MALLORY, 1, own.take_deltas()).wire,))))
    assert node.lag() == {MALLORY.peer_id: 1}  # the honest node's own batch; Mallory's it sent itself
    node.close(mallory.conn, cluster.now)
    cluster.open_raw("honest", MALLORY)
    assert node.lag() == {MALLORY.peer_id: 1}  # before Mallory says a word on the new connection


def test_batch_with_a_broken_signature_is_refused() -> None:
    cluster, mallory = _honest()
    honest = cluster.memory("honest")
    before = honest.snapshot()
    own = Memory(MALLORY.peer_id)
    own.counter("tasks").increment(1)
    broken = bytearray(seal_batch(MALLORY, 1, own.take_deltas()).wire)
    broken[-1] ^= 0x01
    events = cluster.inject(mallory.conn, mallory.seal(Batches((bytes(broken),))))
    assert _refusals(events) == ["bad-batch-signature"]
    assert honest.snapshot() == before


def test_a_trusted_peers_own_batch_is_applied() -> None:
    cluster, mallory = _honest()
    own = Memory(MALLORY.peer_id)
    own.counter("tasks").increment(1)
    events = cluster.inject(mallory.conn, mallory.seal(Batches((seal_batch(MALLORY, 1, own.take_deltas()).wire,))))
    assert _refusals(events) == []
    assert cluster.memory("honest").counter("tasks").value == 3


# -- type clashes ---------------------------------------------------------------------------------

TRENT = Identity.from_private_bytes(bytes(range(2, 34)))  # a second trusted writer


def _clashing_pair(seed: int = 7) -> Cluster:
    cluster = Cluster(seed=seed)
    members(cluster, "alice", "bob")
    cluster.connect("alice", "bob")
    cluster.memory("alice").set("kept").add("before")
    cluster.run(1)
    return cluster


def _one_batch(identity: Identity, write) -> Batches:
    own = Memory(identity.peer_id)
    write(own)
    return Batches((seal_batch(identity, 1, own.take_deltas()).wire,))


def test_two_batches_writing_one_name_as_two_types_do_not_partition_honest_peers() -> None:
    cluster = _clashing_pair()
    cluster.keyring.add(MALLORY)
    cluster.keyring.add(TRENT)
    to_alice, to_bob = cluster.open_raw("alice", MALLORY), cluster.open_raw("bob", TRENT)
    cluster.inject(to_alice.conn, to_alice.seal(_one_batch(MALLORY, lambda m: m.set("x").add("a set"))))
    cluster.inject(to_bob.conn, to_bob.seal(_one_batch(TRENT, lambda m: m.counter("x").increment(4))))
    cluster.run(2)
    assert not cluster.refusals("alice") and not cluster.refusals("bob")
    assert cluster.conn("alice", "bob") is not None and cluster.node("alice").peers()
    cluster.memory("alice").set("kept").add("after")  # the link still carries other writes
    assert cluster.run_until(cluster.converged, timeout=5)
    assert len(cluster.merkle_roots()) == 1
    for name in ("alice", "bob"):
        memory = cluster.memory(name)
        assert memory.value("x") == 4 and memory.set("x").value == frozenset({"a set"})
        assert memory.set("kept").value == frozenset({"before", "after"})
        assert [e for e in cluster.events(name) if isinstance(e, TypeClash)] == [
            TypeClash("x", ("gcounter", "orset"))
        ]


def test_two_honest_agents_first_using_one_name_as_two_types_stay_connected_and_converge() -> None:
    cluster = Cluster(seed=11)
    members(cluster, "alice", "bob", "carol")
    cluster.memory("alice").register("status").assign("busy")
    cluster.memory("bob").map("status").put("alice", "busy")
    cluster.connect("alice", "bob")
    cluster.connect("bob", "carol")
    assert cluster.run_until(cluster.converged, timeout=5)
    assert not any(cluster.refusals(name) for name in ("alice", "bob", "carol"))
    assert cluster.memory("carol").conflicts() == {"status": ["lwwregister", "ormap"]}
    assert cluster.memory("carol").value("status") == "busy"
    assert len(cluster.merkle_roots()) == 1


def test_a_batch_naming_one_object_as_two_types_keeps_the_link_and_resolves_the_same_everywhere() -> None:
    cluster = _clashing_pair()
    cluster.keyring.add(MALLORY)
    mallory = cluster.open_raw("alice", MALLORY)
    set_part, counter_part = Memory(MALLORY.peer_id), Memory(MALLORY.peer_id)
    set_part.set("x").add("s")
    counter_part.counter("x").increment(2)
    wire = seal_batch(MALLORY, 1, set_part.take_deltas() + counter_part.take_deltas()).wire
    events = cluster.inject(mallory.conn, mallory.seal(Batches((wire,))))
    assert _refusals(events) == [] and mallory.conn in cluster.node("alice").peers()
    assert cluster.run_until(cluster.converged, timeout=5)
    assert cluster.memory("bob").conflicts() == {"x": ["gcounter", "orset"]}
    assert cluster.memory("bob").value("x") == 2


# -- batches of authors not (yet) trusted ----------------------------------------------------------

CAROL = Identity.from_private_bytes(bytes(range(1, 33)))  # in no keyring until a test adds her


def _carols_batch(seq: int, amount: int = 1, after: bytes | None = None) -> bytes:
    """Carol's batch ``seq``; ``after`` is her previous batch's wire, which it depends on."""
    own = Memory(CAROL.peer_id)
    own.counter("tasks").increment(amount)
    deps = (batch_hash(after),) if after is not None else ()
    return seal_batch(CAROL, seq, own.take_deltas(), deps).wire


def test_a_relayed_batch_of_an_untrusted_author_is_parked_and_the_relay_stays_connected() -> None:
    cluster, mallory = _honest()
    honest = cluster.node("honest")
    before = honest.memory.snapshot()
    events = cluster.inject(mallory.conn, mallory.seal(Batches((_carols_batch(1),))))
    assert _refusals(events) == []
    assert honest.peers() == {mallory.conn: MALLORY.peer_id}
    assert honest.memory.snapshot() == before
    assert honest.parked() == 1 and honest.stats.batches_parked == 1


def test_a_parked_batch_is_applied_and_relayed_once_its_author_is_trusted() -> None:
    cluster, mallory = _honest()
    cluster.add("bob")
    cluster.connect("bob", "honest")
    cluster.run(1)
    cluster.inject(mallory.conn, mallory.seal(Batches((_carols_batch(1, amount=5),))))
    cluster.keyring.add(CAROL)
    cluster.node("honest").trust(cluster.now)
    cluster.run(1)
    assert cluster.node("honest").parked() == 0
    assert cluster.memory("honest").counter("tasks").value == 7
    assert cluster.memory("bob").counter("tasks").value == 7  # relayed like any fresh batch
    assert not cluster.refusals("honest") and not cluster.refusals("bob")


def test_trust_can_replace_the_keyring() -> None:
    cluster, mallory = _honest()
    cluster.inject(mallory.conn, mallory.seal(Batches((_carols_batch(1),))))
    wider = Keyring()
    for key in (MALLORY, CAROL, cluster.node("honest").identity):
        wider.add(key)
    cluster.node("honest").trust(cluster.now, wider)
    assert cluster.node("honest").keyring is wider
    assert cluster.memory("honest").counter("tasks").value == 3


def test_parked_batches_beyond_the_bound_drop_the_oldest_and_count_it() -> None:
    cluster = Cluster(seed=5, config=NodeConfig(max_parked_batches=2))
    cluster.add("honest")
    cluster.keyring.add(MALLORY)
    mallory = cluster.open_raw("honest", MALLORY)
    wire = None
    for seq in (1, 2, 3):
        wire = _carols_batch(seq, amount=10**seq, after=wire)
        cluster.inject(mallory.conn, mallory.seal(Batches((wire,))))
    honest = cluster.node("honest")
    assert honest.parked() == 2
    assert (honest.stats.batches_parked, honest.stats.parked_dropped) == (3, 1)
    cluster.keyring.add(CAROL)
    honest.trust(cluster.now)
    # The oldest was dropped: the two kept wait for it (fetched by the next Sync), applying nothing.
    assert honest.pending_size() == 2 and honest.memory.counter("tasks").value == 0
    assert Dot(CAROL.peer_id, 3) not in honest.seen


def test_a_parked_batch_with_a_bad_signature_is_dropped_when_its_author_is_trusted() -> None:
    cluster, mallory = _honest()
    broken = bytearray(_carols_batch(1))
    broken[-1] ^= 0x01
    events = cluster.inject(mallory.conn, mallory.seal(Batches((bytes(broken),))))
    assert _refusals(events) == []  # untrusted: the signature cannot be checked yet
    cluster.keyring.add(CAROL)
    cluster.node("honest").trust(cluster.now)
    assert cluster.node("honest").parked() == 0
    assert cluster.stats("honest").refusals == {"bad-batch-signature": 1}
    assert cluster.memory("honest").counter("tasks").value == 2


def test_garbage_after_handshake_is_refused_with_a_specific_reason() -> None:
    cluster = Cluster(seed=5)
    members(cluster, "honest", "mallory")
    cluster.connect("honest", "mallory")
    cluster.memory("honest").set("facts").add("kept")
    cluster.run(1)
    before = cluster.memory("honest").snapshot()
    events = cluster.inject(cluster.conn("honest", "mallory"), [b"\x93garbage"])
    assert _refusals(events) == ["malformed-frame"]
    assert cluster.memory("honest").snapshot() == before
    assert cluster.node("honest").peers() == {}


def test_handshake_that_never_finishes_times_out() -> None:
    cluster = Cluster(seed=3, config=NodeConfig(handshake_timeout=2.0))
    cluster.add("a")
    cluster.keyring.add(MALLORY)
    cluster.open_raw("a", MALLORY, handshake=False)
    cluster.run(1.0)
    assert not cluster.refusals("a")
    cluster.run(1.5)
    assert [r.reason for r in cluster.refusals("a")] == ["handshake-timeout"]


def test_a_replica_restarted_without_its_store_keeps_writing_under_a_new_incarnation() -> None:
    cluster = Cluster(seed=9)
    members(cluster, "alice", "bob")
    cluster.connect("alice", "bob")
    for i in range(3):
        cluster.memory("alice").set("facts").add(f"before-{i}")
        cluster.run(0.2)
    bob = cluster.memory("bob")
    assert bob.set("facts").value == {"before-0", "before-1", "before-2"}
    first = cluster.node("alice").replica_id
    cluster.cut("alice", "bob")
    # alice comes back with her key but an empty store: she writes as a new incarnation, #1 of it
    reborn = cluster.restart("alice")
    assert reborn.replica_id != first and key_id_of(reborn.replica_id) == key_id_of(first)
    reborn.memory.set("facts").add("after")
    cluster.run(0.1)
    cluster.heal("alice", "bob")
    cluster.run(3.0)
    assert bob.set("facts").value == {"before-0", "before-1", "before-2", "after"}
    assert reborn.memory.set("facts").value == bob.set("facts").value, "her old writes come back from bob"
    reborn.memory.set("facts").add("later")
    reborn.flush(cluster.now)
    reborn.check_writable()
    cluster.run(1.0)
    assert "later" in bob.set("facts").value
    assert not cluster.refusals("alice") and not cluster.refusals("bob")
