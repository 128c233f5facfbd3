"""What a node sends to reconcile: no redundant ``Sync``, digest acks, batches wanted by hash.

The far end of each connection is the test (``Cluster.open_raw``), so every message the node
sends is opened and decoded as the peer would.
"""

from __future__ import annotations

import pytest

from crdtmem.clocks import CausalContext, Dot
from crdtmem.crdt import ORSet
from crdtmem.errors import DecodeError
from crdtmem.identity import Identity
from crdtmem.protocol.batch import batch_hash, seal_batch
from crdtmem.protocol.compact import BatchExpander
from crdtmem.protocol.framing import FrameChannel
from crdtmem.protocol.messages import MAX_WANTED, Batches, CompactBatches, Message, SeenDigest, Sync, Want
from crdtmem.protocol.messages import decode_message, encode_message, seen_digest
from crdtmem.testing import Cluster, RawSession
from crdtmem.values import encode_value

BOB = Identity.from_private_bytes(bytes([5]) * 32)
HANDSHAKE_MESSAGES = 2  # the node's hello and auth travel unframed


def _cluster() -> Cluster:
    cluster = Cluster(seed=31)
    cluster.add("alice")
    cluster.keyring.add(BOB)
    cluster.memory("alice").set("facts").add("from alice")
    cluster.node("alice").flush(cluster.now)
    return cluster


def _sent(raw: RawSession, start: int) -> list[Message]:
    """The messages the node sent on ``raw`` from its ``start``-th framed message on."""
    reader = FrameChannel(raw.handshake.keys)  # a fresh one per call: each reads from the first frame
    opened = [reader.open_frame(frame) for frame in raw.received[HANDSHAKE_MESSAGES:]]
    expander = BatchExpander()  # likewise: compact batches name what the connection carried before
    messages = [decode_message(m, max_size=1 << 20) for m in opened if m is not None]
    return [expander.expand(m) if isinstance(m, CompactBatches) else m for m in messages][start:]


def _bobs_batch(seq: int, value: str) -> bytes:
    return seal_batch(BOB, seq, [("facts", ORSet().add(BOB.peer_id, encode_value(value)))]).wire


def test_the_connect_sync_of_the_peer_is_answered_with_batches_not_another_sync() -> None:
    cluster = _cluster()
    raw = cluster.open_raw("alice", BOB)
    (connect,) = _sent(raw, 0)
    assert isinstance(connect, Sync) and not connect.reply
    bobs = CausalContext({BOB.peer_id: 1})  # bob holds a batch alice lacks, and lacks hers
    cluster.inject(raw.conn, raw.seal(Sync(bobs)))
    answer = _sent(raw, 1)
    assert [type(m) for m in answer] == [Batches]  # alice's connect Sync already told bob what she lacks
    # A later Sync (anti-entropy) is answered when the node lacks something the peer holds.
    cluster.inject(raw.conn, raw.seal(Sync(bobs)))
    assert _sent(raw, 2) == [Sync(cluster.node("alice").seen, reply=True)]


def test_an_ack_is_a_digest_when_the_peer_holds_what_we_hold() -> None:
    cluster = _cluster()
    alice = cluster.node("alice")
    raw = cluster.open_raw("alice", BOB)
    cluster.inject(raw.conn, raw.seal(Sync(alice.seen.copy())))  # bob holds alice's batch
    cluster.inject(raw.conn, raw.seal(Batches((_bobs_batch(1, "from bob"),))))
    cluster.run(0.5)  # past the ack delay, before the first gossip round
    (ack,) = _sent(raw, 1)
    assert ack == SeenDigest(seen_digest(alice.seen))
    assert Dot(BOB.peer_id, 1) in alice.seen


def test_an_ack_is_a_full_sync_when_the_peer_may_lack_something() -> None:
    cluster = _cluster()
    raw = cluster.open_raw("alice", BOB)
    cluster.inject(raw.conn, raw.seal(Sync(CausalContext())))  # bob holds nothing yet
    cluster.inject(raw.conn, raw.seal(Batches((_bobs_batch(1, "from bob"),))))
    cluster.run(0.5)
    acks = [m for m in _sent(raw, 1) if not isinstance(m, Batches)]
    assert acks == [Sync(cluster.node("alice").seen, reply=True)]


def test_a_want_is_answered_with_the_batches_held_under_those_hashes() -> None:
    cluster = _cluster()
    alice = cluster.node("alice")
    raw = cluster.open_raw("alice", BOB)
    cluster.inject(raw.conn, raw.seal(Sync(alice.seen.copy())))
    (wire,) = alice.log_wires()
    cluster.inject(raw.conn, raw.seal(Want((batch_hash(wire), bytes(16)))))  # one held, one unknown
    assert _sent(raw, 1) == [Batches((wire,))]  # sent although bob's Sync says he has it


def test_want_messages_round_trip_and_are_bounded() -> None:
    want = Want((bytes(16), b"\x01" * 16))
    assert decode_message(encode_message(want), max_size=1 << 20) == want
    too_many = Want(tuple(i.to_bytes(16, "big") for i in range(MAX_WANTED + 1)))
    with pytest.raises(DecodeError):
        decode_message(encode_message(too_many), max_size=1 << 20)
    with pytest.raises(DecodeError):
        decode_message(encode_message(Want((b"short",))), max_size=1 << 20)


def test_past_the_want_cap_each_want_names_another_sample_of_the_missing_hashes() -> None:
    cluster = _cluster()
    alice = cluster.node("alice")
    raw = cluster.open_raw("alice", BOB)
    cluster.inject(raw.conn, raw.seal(Sync(alice.seen.copy())))
    # Batches that wait for hashes nobody holds: 5 of bob's, each naming 60 made-up dependencies.
    made_up = [i.to_bytes(16, "big") for i in range(300)]
    wires = tuple(
        seal_batch(BOB, seq, [("facts", ORSet().add(BOB.peer_id, encode_value(seq)))], made_up[60 * seq - 60 : 60 * seq]).wire
        for seq in range(1, 6)
    )
    cluster.inject(raw.conn, raw.seal(Batches(wires)))
    assert alice.pending_size() == 5
    wants = []
    for _ in range(2):
        cluster.inject(raw.conn, raw.seal(Sync(alice.seen.copy())))
        wants += [m for m in _sent(raw, 0) if isinstance(m, Want)][len(wants):]
    assert [len(w.hashes) for w in wants] == [MAX_WANTED, MAX_WANTED]
    assert set(wants[0].hashes) | set(wants[1].hashes) <= set(made_up)
    assert set(wants[0].hashes) != set(wants[1].hashes)
