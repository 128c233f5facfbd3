"""The one recovery path: a snapshot plus a journal, as bytes, back into a memory, seen set and log."""

from __future__ import annotations

import pytest

from crdtmem import Memory
from crdtmem.clocks import CausalContext, Dot
from crdtmem.identity import Identity
from crdtmem.protocol.batch import seal_batch
from crdtmem.protocol.recovery import Snapshot, StoreError, recover


def clock() -> float:
    return 1_700_000_000.0


def author(n: int) -> tuple[Identity, Memory]:
    identity = Identity.from_private_bytes(bytes([n]) * 32)
    return identity, Memory(identity.peer_id, clock=clock)


def write(identity: Identity, memory: Memory, seq: int, fn) -> bytes:
    """Apply ``fn(memory)`` and seal the resulting deltas as batch ``seq``."""
    fn(memory)
    return seal_batch(identity, seq, memory.take_deltas()).wire


def test_a_journal_alone_rebuilds_the_memory_the_seen_set_and_the_log() -> None:
    alice, memory = author(1)
    wires = [write(alice, memory, seq, lambda m, seq=seq: m.counter("c").increment(seq)) for seq in (1, 2, 3)]
    restored = recover(alice.peer_id, None, wires, clock=clock)
    assert restored.memory.snapshot() == memory.snapshot()
    assert restored.seen == CausalContext({alice.peer_id: 3})
    assert restored.log_wires == wires and restored.journal_rows == 3


def test_journal_batches_the_snapshot_already_reflects_are_logged_but_not_replayed() -> None:
    alice, memory = author(1)
    first = write(alice, memory, 1, lambda m: m.counter("c").increment(5))
    seen = CausalContext({alice.peer_id: 1})
    snapshot = Snapshot.of(memory, seen)
    second = write(alice, memory, 2, lambda m: m.counter("c").increment(1))
    restored = recover(alice.peer_id, snapshot, [first, second], clock=clock)
    assert restored.memory.counter("c").value == 6  # the first increment applied once, not twice
    assert restored.log_wires == [first, second]  # the whole journal is the catch-up log
    assert restored.journal_rows == 1


def test_the_snapshot_round_trips_memory_and_seen() -> None:
    alice, memory = author(1)
    write(alice, memory, 1, lambda m: m.register("r").assign("x"))
    seen = CausalContext({alice.peer_id: 1}, {Dot("someone", 4)})
    restored = recover(alice.peer_id, Snapshot.of(memory, seen), [], clock=clock)
    assert restored.memory.snapshot() == memory.snapshot()
    assert restored.seen == seen and restored.log_wires == []


def test_replay_applies_other_authors_batches_without_a_keyring() -> None:
    # Our own journal was verified when it was written; its authors may have left the keyring.
    alice, _ = author(1)
    bob, bobs = author(2)
    wire = write(bob, bobs, 1, lambda m: m.counter("c").increment(5))
    restored = recover(alice.peer_id, None, [wire], clock=clock)
    assert restored.memory.replica_id == alice.peer_id
    assert restored.memory.counter("c").value == 5 and Dot(bob.peer_id, 1) in restored.seen


def test_a_journal_batch_of_another_type_replays_as_a_type_clash() -> None:
    alice, memory = author(1)
    bob, bobs = author(2)
    counted = write(alice, memory, 1, lambda m: m.counter("x").increment())
    clash = write(bob, bobs, 1, lambda m: (m.set("y").add(1), m.set("x").add(1)))
    restored = recover(alice.peer_id, None, [counted, clash], clock=clock)
    assert restored.memory.names() == ["x", "y"]
    assert restored.memory.conflicts() == {"x": ["gcounter", "orset"]}
    assert restored.memory.value("x") == 1 and restored.memory.set("x").value == frozenset({1})


def test_undecodable_parts_raise_store_error_naming_the_store() -> None:
    alice, memory = author(1)
    good = Snapshot.of(memory, CausalContext())
    for snapshot, journal in [
        (Snapshot(b"garbage", good.seen), []),
        (Snapshot(good.memory, b"\x93"), []),
        (None, [b"not a batch"]),
        (None, ["not bytes"]),
    ]:
        with pytest.raises(StoreError, match="^disk.db is corrupt"):
            recover(alice.peer_id, snapshot, journal, source="disk.db")


class _Anyone:
    def public_key(self, peer_id: str) -> bytes:
        return b""
