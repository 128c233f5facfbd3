"""Claims need signatures: another replica's history is believed only from its signed batches.

Each attack comes from a *trusted* key (``MALLORY``) speaking the real protocol, so only the
rule "an unsigned word about history changes nothing" stands between it and the victim.
"""

from __future__ import annotations

from crdtmem import Memory, codec
from crdtmem.clocks import CausalContext, Dot
from crdtmem.identity import Identity
from crdtmem.protocol.batch import seal_batch
from crdtmem.protocol.events import Refused
from crdtmem.protocol.messages import Batches, Sync
from crdtmem.testing import Cluster

MALLORY = Identity.from_private_bytes(bytes(range(32)))
FAR = 1_000_000


def _cluster() -> Cluster:
    cluster = Cluster(seed=11)
    cluster.add("alice")
    cluster.add("bob")
    cluster.connect("alice", "bob")
    cluster.memory("alice").set("facts").add("a-0")
    cluster.run(1)
    cluster.keyring.add(MALLORY)
    return cluster


def _still_writes(cluster: Cluster, name: str, element: str) -> None:
    node = cluster.node(name)
    cluster.memory(name).set("facts").add(element)
    cluster.run(1)
    node.check_writable()
    assert all(element in m.set("facts").value for m in cluster.memories().values())


def test_an_unsigned_sync_claiming_our_history_goes_further_does_not_halt_us() -> None:
    cluster = _cluster()
    alice = cluster.node("alice").replica_id
    mallory = cluster.open_raw("alice", MALLORY)
    cluster.inject(mallory.conn, mallory.seal(Sync(CausalContext({alice: FAR}))))
    _still_writes(cluster, "alice", "a-1")


def test_a_batch_header_in_our_name_is_not_believed_before_its_signature() -> None:
    cluster = _cluster()
    alice = cluster.node("alice").replica_id
    mallory = cluster.open_raw("alice", MALLORY)
    own = Memory(MALLORY.peer_id)
    own.counter("tasks").increment(1)
    wire = seal_batch(MALLORY, 1, own.take_deltas()).wire
    _, _, deps, body, signature = codec.unpack(wire)
    forged = codec.pack([alice, FAR, deps, body, signature])  # our name, a far number, not our signature
    events = cluster.inject(mallory.conn, mallory.seal(Batches((forged,))))
    assert [e.reason for e in events if isinstance(e, Refused)] == ["bad-batch-signature"]
    assert Dot(alice, FAR) not in cluster.node("alice").seen
    _still_writes(cluster, "alice", "a-1")


def test_a_claim_relayed_through_an_honest_peer_does_not_halt_the_victim() -> None:
    cluster = _cluster()
    alice = cluster.node("alice").replica_id
    mallory = cluster.open_raw("bob", MALLORY)
    claim = CausalContext({alice: FAR})
    cluster.inject(mallory.conn, mallory.seal(Sync(claim)))
    # the pre-version-3 "covered" Sync: the sender's word that its state reached us
    covered = codec.pack(["sync", codec.context_to_plain(claim), True, True])
    cluster.inject(mallory.conn, mallory.channel.seal_message(covered))
    cluster.run(3)
    assert Dot(alice, FAR) not in cluster.node("bob").seen
    _still_writes(cluster, "alice", "a-1")


def test_a_covered_claim_is_never_adopted_into_the_store() -> None:
    cluster = _cluster()
    bob = cluster.node("bob")
    before = bob.seen.copy()
    alice = cluster.node("alice").replica_id
    mallory = cluster.open_raw("bob", MALLORY)
    claim = CausalContext({alice: FAR, MALLORY.peer_id: FAR})
    covered = codec.pack(["sync", codec.context_to_plain(claim), True, True])
    cluster.inject(mallory.conn, mallory.channel.seal_message(covered))
    assert bob.seen == before  # what bob journals and snapshots as seen is unchanged
    assert Dot(MALLORY.peer_id, 1) not in bob.seen
