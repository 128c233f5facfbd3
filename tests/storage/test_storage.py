"""SQLite persistence: snapshot + journal, compaction, refusals, and a Peer restarting on its store."""

from __future__ import annotations

import hashlib
import sqlite3
import time

import pytest

from crdtmem import Memory, Peer
from crdtmem.clocks import CausalContext, Dot
from crdtmem.identity import Identity
from crdtmem.protocol.batch import peek_batch, seal_batch
from crdtmem.runtime import PeerOptions, StoreOptions
from crdtmem.storage import Snapshot, SqliteStore, StoreError

from ..inprocess import same_state, team


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def journal_some(store: SqliteStore, identity: Identity, memory: Memory, start: int, n: int) -> list[bytes]:
    wires = []
    for seq in range(start, start + n):
        memory.counter("c").increment(seq)
        memory.set("facts").add(f"fact-{seq}")
        batch = seal_batch(identity, seq, memory.take_deltas())
        wires.append(batch.wire)
        store.append([(batch.author, seq, batch.wire, b"")])
    return wires


def file_digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_journal_replays_into_the_same_memory(tmp_path) -> None:
    (identity,), _, (memory,) = team(1)
    with SqliteStore.open(tmp_path / "p.db", identity.peer_id) as store:
        journal_some(store, identity, memory, 1, 5)
    with SqliteStore.open(tmp_path / "p.db", identity.peer_id) as store:
        restored = store.load()
    assert same_state(restored.memory, memory)
    assert all(Dot(identity.peer_id, s) in restored.seen for s in range(1, 6))
    assert restored.journal_rows == 5 and len(restored.log_wires) == 5


def test_compaction_keeps_the_state_and_every_batch(tmp_path) -> None:
    (identity,), _, (memory,) = team(1)
    path = tmp_path / "p.db"
    with SqliteStore.open(path, identity.peer_id) as store:
        journal_some(store, identity, memory, 1, 4)
        seen = store.load().seen
        store.compact(Snapshot.of(memory, seen))
        assert store.journal_rows == 0
        journal_some(store, identity, memory, 5, 2)  # journal after the snapshot
    with SqliteStore.open(path, identity.peer_id) as store:
        restored = store.load()
        assert store.journal_rows == 2
    assert same_state(restored.memory, memory)
    assert restored.journal_rows == 2
    assert [peek_batch(w)[1] for w in restored.log_wires] == [1, 2, 3, 4, 5, 6]
    assert restored.seen.vv == {identity.peer_id: 6}


def test_a_store_of_another_peer_is_refused_and_untouched(tmp_path) -> None:
    (alice, bob), _, (memory, _) = team(2)
    path = tmp_path / "alice.db"
    with SqliteStore.open(path, alice.peer_id) as store:
        journal_some(store, alice, memory, 1, 2)
    before = file_digest(path)
    with pytest.raises(StoreError, match="belongs to peer"):
        SqliteStore.open(path, bob.peer_id)
    assert file_digest(path) == before


@pytest.mark.parametrize("content", [b"this is not a database at all" * 40, b"SQLite format 3\x00" + b"\xff" * 2000])
def test_a_corrupt_file_is_refused_and_untouched(tmp_path, content: bytes) -> None:
    (identity,), _, _ = team(1)
    path = tmp_path / "bad.db"
    path.write_bytes(content)
    with pytest.raises(StoreError):
        SqliteStore.open(path, identity.peer_id)
    assert path.read_bytes() == content


def test_another_applications_database_is_refused(tmp_path) -> None:
    (identity,), _, _ = team(1)
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    before = file_digest(path)
    with pytest.raises(StoreError, match="not a crdtmem store"):
        SqliteStore.open(path, identity.peer_id)
    assert file_digest(path) == before


def test_a_tampered_journal_row_is_detected(tmp_path) -> None:
    (identity,), _, (memory,) = team(1)
    path = tmp_path / "p.db"
    with SqliteStore.open(path, identity.peer_id) as store:
        journal_some(store, identity, memory, 1, 3)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE journal SET wire = CAST(X'00' || wire AS BLOB) WHERE id = 2")
    with SqliteStore.open(path, identity.peer_id) as store, pytest.raises(StoreError, match="checksum"):
        store.load()


def test_a_tampered_snapshot_is_detected(tmp_path) -> None:
    (identity,), _, (memory,) = team(1)
    path = tmp_path / "p.db"
    with SqliteStore.open(path, identity.peer_id) as store:
        journal_some(store, identity, memory, 1, 3)
        store.compact(Snapshot.of(memory, store.load().seen))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE snapshot SET seen = X'90'")
    with SqliteStore.open(path, identity.peer_id) as store, pytest.raises(StoreError, match="corrupt"):
        store.load()


def test_an_empty_file_left_by_a_crash_during_creation_is_initialised(tmp_path) -> None:
    (identity,), _, _ = team(1)
    path = tmp_path / "p.db"
    path.write_bytes(b"")
    with SqliteStore.open(path, identity.peer_id) as store:
        assert store.load().memory.names() == []


@pytest.mark.anyio
async def test_a_peer_restarts_from_its_store_and_writes_as_a_new_incarnation(tmp_path) -> None:
    (identity,), keyring, (memory,) = team(1)
    path = tmp_path / "p.db"
    async with Peer(memory, identity, keyring, store=path) as peer:
        memory.counter("c").increment(3)
        memory.set("facts").add("kept")
        await peer.flush()
        memory.register("r").assign("last")
        await peer.flush()
        first = peer.node.replica_id
    fresh = Memory(identity.peer_id, clock=time.time)
    async with Peer(fresh, identity, keyring, store=path) as peer:
        assert same_state(fresh, memory)
        assert peer.node.seen == CausalContext({first: 3})  # two flushes, and the retirement on exit
        assert peer.node.replica_id != first and fresh.replica_id == peer.node.replica_id
        fresh.counter("c").increment(1)
        await peer.flush()
        # This batch covers the retired incarnation's last one: it is pruned
        assert peer.node.seen == CausalContext({peer.node.replica_id: 1})
        assert peer.node.retired() == {first: 3}
        assert fresh.counter("c").value == 4


@pytest.mark.anyio
async def test_writes_are_journaled_before_anything_is_sent(tmp_path) -> None:
    """A flushed write is in the store even if the process dies right after (no snapshot taken)."""
    (identity,), keyring, (memory,) = team(1)
    path = tmp_path / "p.db"
    peer = Peer(memory, identity, keyring, PeerOptions(store=StoreOptions(path, compact_every=10**9)))
    async with peer:
        memory.counter("c").increment(7)
        await peer.flush()
        with SqliteStore(path, None, readonly=True) as reader:  # a second connection sees the commit
            assert reader.load().memory.counter("c").value == 7


@pytest.mark.anyio
async def test_background_compaction_bounds_the_journal(tmp_path) -> None:
    (identity,), keyring, (memory,) = team(1)
    path = tmp_path / "p.db"
    async with Peer(memory, identity, keyring, PeerOptions(store=StoreOptions(path, compact_every=20))) as peer:
        for i in range(100):
            memory.counter("c").increment()
            await peer.flush()
        await peer.wait_for(lambda: peer.store.journal_rows < 20, timeout=5)
        assert peer.metrics()["store"]["compactions"] >= 1
    with SqliteStore(path, None, readonly=True) as reader:
        assert reader.load().memory.counter("c").value == 100


def test_a_second_writer_on_the_same_store_is_refused(tmp_path) -> None:
    path = tmp_path / "a.db"
    first = SqliteStore(path, "alicealicealice1")
    with pytest.raises(StoreError, match="in use by another process"):
        SqliteStore(path, "alicealicealice1")
    reader = SqliteStore(path, None, readonly=True)  # `crdtmem inspect` still reads it
    reader.close()
    first.close()
    SqliteStore(path, "alicealicealice1").close()  # free again once the writer closed
