"""Membership records in the sans-I/O node: who may write them, and where a revocation draws its line."""

from __future__ import annotations

from crdtmem import Memory
from crdtmem.identity import Identity
from crdtmem.protocol.batch import seal_batch
from crdtmem.protocol.events import Refused
from crdtmem.protocol.membership import MEMBERSHIP_NAME, admission, revocation
from crdtmem.protocol.messages import Batches
from crdtmem.testing import Cluster

MALLORY = Identity.from_private_bytes(bytes(range(32)))


def _cluster() -> Cluster:
    cluster = Cluster(seed=5)
    admin = cluster.add("admin").identity
    cluster.keyring.add(admin, admin=True)
    cluster.add("honest")
    cluster.connect("admin", "honest")
    cluster.run(1)
    return cluster


def _mallory_batches(incarnation: str) -> tuple[bytes, bytes]:
    """Two batches of one incarnation of MALLORY's key: #1 adds "old", #2 (after it) adds "new"."""
    memory = Memory(incarnation)
    memory.set("facts").add("old")
    first = seal_batch(MALLORY, 1, memory.take_deltas(), author=incarnation)
    memory.set("facts").add("new")
    second = seal_batch(MALLORY, 2, memory.take_deltas(), (first.hash,), author=incarnation)
    return first.wire, second.wire


def test_a_revoked_keys_batches_beyond_the_cut_are_refused_and_those_within_it_kept() -> None:
    cluster = _cluster()
    cluster.keyring.add(MALLORY)
    incarnation = f"{MALLORY.peer_id}.aaaaaaaa"
    first, second = _mallory_batches(incarnation)
    relay = cluster.open_raw("honest", cluster.node("admin").identity)  # a trusted peer relaying them
    assert not [e for e in cluster.inject(relay.conn, relay.seal(Batches((first,)))) if isinstance(e, Refused)]
    admin = cluster.memory("admin")
    admin.gset(MEMBERSHIP_NAME).add(revocation(MALLORY.peer_id, by=cluster.node("admin").identity.peer_id,
                                               at=1.0, cut={incarnation: 1}))
    cluster.run(1)
    assert cluster.node("honest").members.is_revoked(MALLORY.peer_id)
    events = cluster.inject(relay.conn, relay.seal(Batches((second,))))
    assert [e.reason for e in events if isinstance(e, Refused)] == ["revoked-author"]
    assert cluster.memory("honest").set("facts").value == {"old"}
    assert cluster.node("honest").peers(), "the relay keeps its link"


def test_a_membership_record_in_another_admins_name_is_refused() -> None:
    cluster = _cluster()
    second_admin = Identity.from_private_bytes(bytes([7]) * 32)
    cluster.keyring.add(second_admin, admin=True)
    cluster.keyring.add(MALLORY)
    admin_id = cluster.node("admin").identity.peer_id
    memory = Memory(f"{second_admin.peer_id}.bbbbbbbb")
    memory.gset(MEMBERSHIP_NAME).add(admission(MALLORY.public_key_text, admin=True, by=admin_id, at=1.0))
    wire = seal_batch(second_admin, 1, memory.take_deltas(), author=memory.replica_id).wire
    relay = cluster.open_raw("honest", cluster.node("admin").identity)
    events = cluster.inject(relay.conn, relay.seal(Batches((wire,))))
    assert [e.reason for e in events if isinstance(e, Refused)] == ["not-an-admin"]
    assert not cluster.node("honest").members.is_admin(MALLORY.peer_id)


def test_a_batch_a_member_built_on_before_hearing_of_the_revocation_is_kept_everywhere() -> None:
    cluster = _cluster()
    cluster.keyring.add(MALLORY)
    incarnation = f"{MALLORY.peer_id}.cccccccc"
    first, second = _mallory_batches(incarnation)
    admin_id = cluster.node("admin").identity.peer_id
    to_admin = cluster.open_raw("admin", cluster.node("honest").identity)
    cluster.inject(to_admin.conn, to_admin.seal(Batches((first,))))
    cluster.cut("admin", "honest")
    cluster.memory("admin").gset(MEMBERSHIP_NAME).add(
        revocation(MALLORY.peer_id, by=admin_id, at=1.0, cut={incarnation: 1}))
    cluster.run(0.5)
    to_honest = cluster.open_raw("honest", cluster.node("admin").identity)
    cluster.inject(to_honest.conn, to_honest.seal(Batches((first, second))))  # honest has not heard yet
    cluster.memory("honest").set("facts").add("built on it")  # depends on mallory's #2
    cluster.run(0.5)
    cluster.heal("admin", "honest")
    cluster.run(5)
    admin, honest = cluster.memory("admin"), cluster.memory("honest")
    assert honest.set("facts").value == {"old", "new", "built on it"}
    assert admin.set("facts").value == honest.set("facts").value, "the replicas stay equal"
    assert not [r for r in cluster.refusals("admin") if r.reason == "bad-dependencies"]
    assert cluster.node("honest").members.is_revoked(MALLORY.peer_id)
