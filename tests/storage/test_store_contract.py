"""Every store keeps one contract (``protocol.recovery.Store``): the SQLite file and the in-memory store alike."""

from __future__ import annotations

import random

import anyio
import pytest

from crdtmem import Memory, Peer
from crdtmem.clocks import CausalContext
from crdtmem.identity import Identity, Keyring
from crdtmem.protocol.batch import seal_batch
from crdtmem.protocol.recovery import Snapshot, Store, restore
from crdtmem.storage import MemoryStore, SqliteStore

ALICE = Identity.from_private_bytes(bytes([7]) * 32)


def clock() -> float:
    return 1_700_000_000.0


@pytest.fixture(params=["sqlite", "memory"])
def make_store(request, tmp_path):
    """A factory: call it again to reopen the same store, as a restarted peer does."""
    opened: list[Store] = []

    def make() -> Store:
        if request.param == "sqlite":
            store = SqliteStore(tmp_path / "alice.db", ALICE.peer_id)
        else:
            store = opened[0] if opened else MemoryStore(ALICE.peer_id)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def journal(store: Store, memory: Memory, seqs: range) -> list[bytes]:
    wires = []
    for seq in seqs:
        memory.counter("c").increment(seq)
        memory.set("facts").add(f"fact-{seq}")
        wire = seal_batch(ALICE, seq, memory.take_deltas()).wire
        store.append([(ALICE.peer_id, seq, wire, b"entry %d" % seq)])
        wires.append(wire)
    return wires


def test_a_new_store_holds_nothing(make_store) -> None:
    store = make_store()
    assert store.peer_id == ALICE.peer_id
    assert store.load_parts() == (None, [], [])
    assert store.journal_rows == 0


def test_appended_batches_come_back_in_order(make_store) -> None:
    store = make_store()
    wires = journal(store, Memory(ALICE.peer_id, clock=clock), range(1, 4))
    assert store.append([]) == 0
    assert store.journal_rows == 3
    store.close()
    parts = make_store().load_parts()
    assert list(parts.journal) == wires
    assert list(parts.index_entries) == [b"entry 1", b"entry 2", b"entry 3"]  # each with its wire


def test_a_store_remembers_every_incarnation_that_wrote_through_it(make_store) -> None:
    store = make_store()
    assert store.start_incarnation(f"{ALICE.peer_id}.aaaaaaaa") == []
    assert store.start_incarnation(f"{ALICE.peer_id}.bbbbbbbb") == [f"{ALICE.peer_id}.aaaaaaaa"]
    store.close()
    assert make_store().start_incarnation(f"{ALICE.peer_id}.cccccccc") == [
        f"{ALICE.peer_id}.aaaaaaaa", f"{ALICE.peer_id}.bbbbbbbb"]


def test_compaction_replaces_the_snapshot_and_keeps_every_journaled_batch(make_store) -> None:
    store = make_store()
    memory = Memory(ALICE.peer_id, clock=clock)
    wires = journal(store, memory, range(1, 4))
    store.compact(Snapshot.of(memory, CausalContext({ALICE.peer_id: 2})))
    snapshot = Snapshot.of(memory, CausalContext({ALICE.peer_id: 3}))
    store.compact(snapshot)
    assert store.journal_rows == 0  # nothing left to replay
    later = journal(store, memory, range(4, 6))
    assert store.journal_rows == 2
    store.close()
    parts = make_store().load_parts()
    assert parts.snapshot == snapshot and list(parts.journal) == wires + later


def test_restore_rebuilds_what_was_journaled_and_compacted(make_store) -> None:
    store = make_store()
    memory = Memory(ALICE.peer_id, clock=clock)
    journal(store, memory, range(1, 3))
    store.compact(Snapshot.of(memory, CausalContext({ALICE.peer_id: 2})))
    journal(store, memory, range(3, 5))
    store.close()
    restored = restore(make_store(), clock=clock)
    assert restored.memory.snapshot() == memory.snapshot()
    assert restored.seen == CausalContext({ALICE.peer_id: 4})
    assert restored.journal_rows == 2 and len(restored.log_wires) == 4


@pytest.mark.anyio
async def test_a_peer_restarts_from_a_memory_store_and_writes_as_a_new_incarnation() -> None:
    keyring = Keyring()
    keyring.add(ALICE)
    store = MemoryStore(ALICE.peer_id)
    memory = Memory(ALICE.peer_id, clock=clock)
    with anyio.fail_after(5):
        async with Peer(memory, ALICE, keyring, store=store, rng=random.Random(1)) as peer:
            memory.counter("c").increment(3)
            await peer.flush()
            assert store.journal_rows == 1  # journaled before anything is sent
            first = peer.node.replica_id
    assert store.load_parts().snapshot is not None  # the peer compacted on its way out
    fresh = Memory(ALICE.peer_id, clock=clock)
    with anyio.fail_after(5):
        async with Peer(fresh, ALICE, keyring, store=store, rng=random.Random(2)) as peer:
            assert fresh.counter("c").value == 3
            fresh.counter("c").increment()
            await peer.flush()
            # The first incarnation retired on exit (its batch #2); this batch covers it: pruned
            assert peer.node.seen == CausalContext({peer.node.replica_id: 1})
            assert peer.node.retired() == {first: 2}
    assert store.incarnations == [first, peer.node.replica_id]


@pytest.mark.anyio
async def test_a_peer_refuses_another_peers_store() -> None:
    bob = Identity.from_private_bytes(bytes([8]) * 32)
    keyring = Keyring()
    keyring.add(ALICE)
    with anyio.fail_after(5), pytest.raises(ValueError, match="belongs to"):
        async with Peer(Memory(ALICE.peer_id, clock=clock), ALICE, keyring, store=MemoryStore(bob.peer_id)):
            pass
