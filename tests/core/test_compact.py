"""Compact batches (:mod:`crdtmem.protocol.compact`): the form a connection carries signed batches in.

The receiver must rebuild the exact wire each author signed, and refuse, before anything is
applied, a compact message naming what the connection never carried: the attacks come from a
trusted key (``MALLORY``) speaking the real protocol.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from crdtmem import Memory, codec
from crdtmem.clocks import Dot
from crdtmem.errors import DecodeError, RefusalReason
from crdtmem.identity import Identity
from crdtmem.protocol.batch import DeltaBatch, seal_batch
from crdtmem.protocol.compact import (
    MAX_ALIASES,
    MAX_COMPACT_WIRE,
    BadBatchReferenceError,
    BatchCompressor,
    BatchExpander,
)
from crdtmem.protocol.events import Refused
from crdtmem.protocol.framing import FrameChannel
from crdtmem.protocol.messages import (
    Batches,
    CompactBatches,
    Sync,
    decode_message,
    encode_message,
)
from crdtmem.testing import Cluster, RawSession

from .test_claims import MALLORY, _cluster

ALICE, BOB = (Identity.from_private_bytes(bytes([n]) * 32) for n in (1, 2))
LIMIT = 1 << 20


def _batch(identity: Identity, seq: int, element: str, deps: tuple[bytes, ...] = (), *,
           memory: Memory | None = None) -> DeltaBatch:
    """The author's batch number ``seq`` adding ``element`` (to ``memory``, the author's replica)."""
    memory = memory or Memory(identity.peer_id)
    memory.set("facts").add(element)
    return seal_batch(identity, seq, memory.take_deltas(), deps)


def _history() -> list[DeltaBatch]:
    """Two authors' batches, each naming the heads its author had applied."""
    a1 = _batch(ALICE, 1, "a1")
    a2 = _batch(ALICE, 2, "a2", (a1.hash,))
    b1 = _batch(BOB, 1, "b1", (a2.hash,))
    a3 = _batch(ALICE, 3, "a3", (a2.hash,))
    b2 = _batch(BOB, 2, "b2", (a3.hash, b1.hash))
    return [a1, a2, b1, a3, b2]


def _carry(compressor: BatchCompressor, expander: BatchExpander, wires: tuple[bytes, ...]) -> tuple[bytes, bytes]:
    """The compact payload for ``wires`` and what the far end rebuilds from it, through the real codec."""
    payload = encode_message(compressor.compact(wires))
    message = decode_message(payload, max_size=LIMIT)
    assert isinstance(message, CompactBatches)
    return payload, expander.expand(message).wires


def test_batches_of_several_authors_rebuild_to_the_exact_signed_wires() -> None:
    compressor, expander = BatchCompressor(), BatchExpander()
    history = _history()
    for batch in history:  # one message per batch, as a writer's flushes go
        _, rebuilt = _carry(compressor, expander, (batch.wire,))
        assert rebuilt == (batch.wire,)
    _, rebuilt = _carry(compressor, expander, tuple(b.wire for b in history))  # and all again in one message
    assert rebuilt == tuple(b.wire for b in history)


def test_an_authors_next_batch_costs_an_alias_a_step_and_a_reference() -> None:
    compressor = BatchCompressor()
    a1, a2 = _history()[:2]
    compressor.compact((a1.wire,))
    (entry,) = compressor.compact((a2.wire,)).entries
    assert entry[:3] == [0, 1, [0]]  # alias 0, one past its last number, depends on its last batch
    compact = len(encode_message(CompactBatches((entry,))))
    plain = len(encode_message(Batches((a2.wire,))))
    assert plain - compact >= len(ALICE.peer_id) + 16  # the author's id and the hash are gone


def test_a_batch_naming_another_authors_last_batch_references_it_by_alias() -> None:
    compressor, expander = BatchCompressor(), BatchExpander()
    history = _history()
    for batch in history[:4]:
        _carry(compressor, expander, (batch.wire,))
    (entry,) = compressor.compact((history[4].wire,)).entries
    assert entry[0] == 1 and sorted(entry[2]) == [0, 1]  # bob by alias; alice's a3 and bob's b1 by alias


def test_a_wire_its_parts_would_not_rebuild_is_sent_whole() -> None:
    a1 = _history()[0]
    author, seq, deps, body, signature = codec.unpack(a1.wire)
    # The same parts with the author as a str8, where msgpack writes a fixstr: another encoder's bytes.
    odd = b"\x95\xd9" + bytes([len(author)]) + author.encode() + b"".join(map(codec.pack, (seq, deps, body, signature)))
    assert codec.unpack(odd) == codec.unpack(a1.wire) and odd != a1.wire
    compressor, expander = BatchCompressor(), BatchExpander()
    _, rebuilt = _carry(compressor, expander, (odd,))
    assert rebuilt == (odd,)
    _, rebuilt = _carry(compressor, expander, (a1.wire,))  # the whole wire gave no alias
    assert rebuilt == (a1.wire,) and compressor.compact((_history()[1].wire,)).entries[0][0] == 0


def test_a_large_wire_is_sent_whole_and_gives_no_alias() -> None:
    memory = Memory(ALICE.peer_id)
    memory.set("facts").add("x" * MAX_COMPACT_WIRE)
    large = seal_batch(ALICE, 1, memory.take_deltas())
    memory.set("facts").add("small")
    small = seal_batch(ALICE, 2, memory.take_deltas(), (large.hash,))
    compressor, expander = BatchCompressor(), BatchExpander()
    assert compressor.compact((large.wire,)).entries == (large.wire,)
    _, rebuilt = _carry(compressor, expander, (large.wire, small.wire))
    assert rebuilt == (large.wire, small.wire)
    entry = compressor.compact((small.wire,)).entries[0]
    assert entry[0] == 0 and entry[2] == [large.hash]  # aliased by the small one; the whole one is named in full


def test_authors_past_the_alias_table_are_named_in_full() -> None:
    compressor, expander = BatchCompressor(), BatchExpander()
    author, _, deps, body, signature = codec.unpack(_history()[0].wire)
    # distinct authors (the expander checks no signature): more than the table holds
    wires = tuple(codec.pack([f"{author[:20]}.{n:x}", 1, deps, body, signature]) for n in range(MAX_ALIASES + 2))
    _, rebuilt = _carry(compressor, expander, wires + wires[-1:])
    assert rebuilt == wires + wires[-1:]
    entries = compressor.compact(wires[-1:]).entries
    assert entries[0][0] == codec.unpack(wires[-1])[0]  # still in full: never aliased


def test_an_alias_the_connection_never_gave_is_refused() -> None:
    a1 = codec.unpack(_history()[0].wire)
    with pytest.raises(BadBatchReferenceError) as info:
        BatchExpander().expand(CompactBatches(([0, 1, [], a1[3], a1[4]],)))
    assert info.value.reason is RefusalReason.BAD_BATCH_REFERENCE
    with pytest.raises(BadBatchReferenceError):
        BatchExpander().expand(CompactBatches(([-1, 1, [], a1[3], a1[4]],)))


def test_a_dependency_on_the_last_batch_of_an_unknown_alias_is_refused() -> None:
    author, _, _, body, signature = codec.unpack(_history()[0].wire)
    expander = BatchExpander()
    with pytest.raises(BadBatchReferenceError):
        expander.expand(CompactBatches(([author, 1, [0], body, signature],)))  # alias 0 is this very entry's
    with pytest.raises(BadBatchReferenceError):
        expander.expand(CompactBatches(([author, 1, [7], body, signature],)))


def test_a_number_below_one_is_refused() -> None:
    compressor, expander = BatchCompressor(), BatchExpander()
    history = _history()
    _carry(compressor, expander, (history[0].wire, history[1].wire))
    _, _, deps, body, signature = codec.unpack(history[0].wire)
    for step in (-2, -5):  # alice's last number here is 2
        with pytest.raises(DecodeError, match="number"):
            expander.expand(CompactBatches(([0, step, deps, body, signature],)))
    with pytest.raises(DecodeError, match="number"):
        BatchExpander().expand(CompactBatches(([ALICE.peer_id, 0, deps, body, signature],)))


@pytest.mark.parametrize("entry", [
    [0, 1, [], b"body"],  # four parts
    [True, 1, [], b"body", b"sig"],  # neither a replica id nor an alias
    [0, 1.0, [], b"body", b"sig"],
    [0, 1, [b"\x00" * 15], b"body", b"sig"],  # a hash of the wrong length
    [0, 1, [None], b"body", b"sig"],
    [0, 1, [0] * 65, b"body", b"sig"],  # more dependencies than a batch may name
    [0, 1, [], "body", b"sig"],
    [0, 1, [], b"body", None],
    "a wire as a str",
])
def test_a_malformed_compact_entry_is_refused_by_the_decoder(entry: object) -> None:
    with pytest.raises(DecodeError):
        decode_message(codec.pack([12, [entry]]), max_size=LIMIT)


def test_an_empty_replica_id_is_refused() -> None:
    _, _, _, body, signature = codec.unpack(_history()[0].wire)
    with pytest.raises(DecodeError):
        BatchExpander().expand(CompactBatches((["", 1, [], body, signature],)))


# -- node level ----------------------------------------------------------------------------------


def test_nodes_log_the_wires_their_authors_signed_byte_for_byte() -> None:
    cluster = _cluster()
    for n in range(5):
        cluster.memory("alice").set("facts").add(f"a{n}")
        cluster.run(0.01)
        cluster.memory("bob").set("facts").add(f"b{n}")
        cluster.run(0.01)
    cluster.run(1)
    alice, bob = cluster.node("alice"), cluster.node("bob")
    assert len(alice.log_wires()) >= 10 and sorted(alice.log_wires()) == sorted(bob.log_wires())
    assert not cluster.refusals("alice") and not cluster.refusals("bob")


def test_a_peer_sending_batches_whole_and_one_sending_them_compact_converge() -> None:
    cluster = Cluster(seed=5)
    cluster.add("whole")
    cluster.add("compact")
    whole = cluster.node("whole")
    whole.config = replace(whole.config, compact_batches=False)
    cluster.connect("whole", "compact")
    for n in range(4):
        for name in ("whole", "compact"):
            cluster.memory(name).set("facts").add(f"{name}-{n}")
            cluster.run(0)  # on an idle link: sent whole at once
            cluster.memory(name).set("facts").add(f"{name}-{n}-held")  # held for the ack: compact
        cluster.run(0.1)
    cluster.run(1)
    assert cluster.converged() and sorted(whole.log_wires()) == sorted(cluster.node("compact").log_wires())
    assert len(whole.log_wires()) >= 12 and not cluster.refusals("whole") and not cluster.refusals("compact")


def _kinds_sent(raw: RawSession) -> list[type]:
    """The types of the messages the node sent on ``raw`` after the handshake, in order."""
    reader = FrameChannel(raw.handshake.keys)
    opened = [reader.open_frame(frame) for frame in raw.received[2:]]  # after the unframed hello and auth
    return [type(decode_message(m, max_size=LIMIT)) for m in opened if m is not None]


def test_writes_on_an_idle_link_go_whole_and_writes_that_waited_go_compact() -> None:
    cluster = _cluster()
    alice = cluster.node("alice")
    mallory = cluster.open_raw("alice", MALLORY)
    cluster.inject(mallory.conn, mallory.seal(Sync(alice.seen.copy())))
    cluster.memory("alice").set("facts").add("idle")
    cluster.run(0)  # every link is idle: the batch goes whole, at once
    cluster.memory("alice").set("facts").add("held")
    cluster.run(0)
    assert alice.writes_held  # mallory never acknowledges: the write waits, then goes compact
    cluster.run(0.1)
    batches = [k for k in _kinds_sent(mallory) if k in (Batches, CompactBatches)]
    assert batches == [Batches, CompactBatches] and not alice.memory.has_pending_deltas()


def test_writes_an_acknowledgement_released_go_compact() -> None:
    cluster = Cluster(seed=9)
    alice = cluster.add("alice")
    cluster.keyring.add(MALLORY)
    mallory = cluster.open_raw("alice", MALLORY)  # alice's only neighbour
    cluster.inject(mallory.conn, mallory.seal(Sync(alice.seen.copy())))
    for element in ("idle", "held", "and-held"):
        cluster.memory("alice").set("facts").add(element)
        cluster.run(0)
    assert alice.writes_held
    cluster.inject(mallory.conn, mallory.seal(Sync(alice.seen.copy(), reply=True)))  # the acknowledgement
    cluster.run(0)
    batches = [k for k in _kinds_sent(mallory) if k in (Batches, CompactBatches)]
    assert batches == [Batches, CompactBatches] and not alice.memory.has_pending_deltas()


def test_a_trusted_peer_sending_compact_batches_has_them_applied() -> None:
    cluster = _cluster()
    mallory = cluster.open_raw("alice", MALLORY)
    replica = Memory(MALLORY.peer_id)
    m1 = _batch(MALLORY, 1, "m1", memory=replica)
    m2 = _batch(MALLORY, 2, "m2", (m1.hash,), memory=replica)
    compressor = BatchCompressor()
    for batch in (m1, m2):
        cluster.inject(mallory.conn, mallory.seal(compressor.compact((batch.wire,))))
    assert {Dot(MALLORY.peer_id, 1), Dot(MALLORY.peer_id, 2)} <= set(cluster.node("alice").seen.dots())
    assert {"m1", "m2"} <= cluster.memory("alice").set("facts").value


def test_a_trusted_peer_naming_an_unknown_alias_is_closed_and_nothing_is_applied() -> None:
    cluster = _cluster()
    alice = cluster.node("alice")
    before = alice.seen.copy()
    mallory = cluster.open_raw("alice", MALLORY)
    valid = BatchCompressor().compact((_batch(MALLORY, 1, "m1").wire,)).entries[0]
    _, _, _, body, signature = valid
    events = cluster.inject(mallory.conn, mallory.seal(CompactBatches((valid, [3, 1, [], body, signature]))))
    assert [e.reason for e in events if isinstance(e, Refused)] == ["bad-batch-reference"]
    assert mallory.closed and alice.seen == before  # the valid entry before it was not applied either
    assert "m1" not in cluster.memory("alice").set("facts").value
    cluster.memory("alice").set("facts").add("a-1")
    cluster.run(1)
    assert "a-1" in cluster.memory("bob").set("facts").value
