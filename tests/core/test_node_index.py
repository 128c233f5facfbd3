"""The node index kept with a snapshot: a restart decodes only what the snapshot does not reflect.

A restart from the index must know exactly what a restart replaying the whole journal knows
(covered vectors read alike, heads, reach, prunings), or the two would judge a removal
differently: that is checked here on a cluster where an incarnation departed and was pruned.
"""

from __future__ import annotations

import random
import sqlite3

import pycrdt
import pytest

from crdtmem import Memory
from crdtmem.protocol import departures
from crdtmem.protocol.node import Node
from crdtmem.protocol.nodeindex import NodeIndex
from crdtmem.protocol.recovery import Snapshot, StoreError, recover
from crdtmem.storage import SqliteStore
from crdtmem.storage.sqlite import STORE_FORMAT
from crdtmem.testing import Cluster


def _cluster_with_a_departure() -> Cluster:
    """a, b and c; a writes, removes one of its facts, leaves cleanly; b's write witnesses it."""
    cluster = Cluster(seed=5)
    for name in "abc":
        cluster.add(name)
    for x, y in ("ab", "bc", "ac"):
        cluster.connect(x, y)
    cluster.run(1)
    cluster.memory("a").set("facts").add("x")
    cluster.memory("a").set("facts").add("y")
    cluster.memory("c").doc("notes").get("t", type=pycrdt.Text).insert(0, "hello")  # Yjs reach, too
    assert cluster.run_until(lambda: cluster.converged() and cluster.synced(), timeout=60)
    cluster.memory("c").set("facts").remove("x")
    assert cluster.run_until(lambda: cluster.converged() and cluster.synced(), timeout=60)
    cluster.leave("a")
    cluster.memory("b").counter("turns").increment()
    assert cluster.run_until(lambda: cluster.converged() and cluster.synced(), timeout=60)
    assert cluster.node("b").retired(), "a's incarnation is pruned at b"
    return cluster


def _restart(old: Node, snapshot: Snapshot, journal: list[bytes]) -> Node:
    restored = recover(old.identity.peer_id, snapshot, journal)
    return Node(restored.memory, old.identity, old.keyring, rng=random.Random(1), seen=restored.seen,
                log_wires=restored.log_wires, index=restored.index)


def _knowledge(node: Node) -> dict:
    """What a node knows of the applied batches, with covered vectors read as checks read them."""
    causal, retirements = node._causal, node._retirements
    replicas = {r for vector in causal._covered.values() for r in vector} | set(retirements.pruned)
    return {
        "covered": {h: {r: retirements.seq_in(v, r) for r in sorted(replicas)} for h, v in causal._covered.items()},
        "heads": causal.heads(),
        "reach": causal._reach,
        "yjs_reach": causal._yjs_reach,
        "yjs_replicas": causal._yjs_replicas,
        "pruned": retirements.pruned,
        "finals": retirements.finals,
        "witnesses": retirements.witnesses,
        "seen": node.seen,
        "log": node.log_wires(),
    }


def _decodes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every batch wire the node decodes while restarting."""
    decoded: list[bytes] = []
    read_batch = departures.read_batch

    def counting(wire: bytes, **kwargs):
        decoded.append(wire)
        return read_batch(wire, **kwargs)

    monkeypatch.setattr(departures, "read_batch", counting)
    return decoded


def test_a_restart_from_the_index_knows_what_replaying_the_whole_journal_knows(monkeypatch) -> None:
    old = _cluster_with_a_departure().node("b")
    journal = old.log_wires()
    decoded = _decodes(monkeypatch)
    from_index = _restart(old, old.snapshot(), journal)
    assert decoded == []
    snapshot = old.snapshot()
    replayed = _restart(old, Snapshot(snapshot.memory, snapshot.seen), journal)  # a format-2 store's
    assert len(decoded) == len(journal)
    assert _knowledge(from_index) == _knowledge(replayed)
    assert from_index.memory.snapshot() == replayed.memory.snapshot() == old.memory.snapshot()


def test_only_the_batches_journaled_after_the_snapshot_are_decoded(monkeypatch) -> None:
    cluster = _cluster_with_a_departure()
    snapshot, reflected = cluster.node("b").snapshot(), len(cluster.node("b").log_wires())
    cluster.memory("c").set("facts").add("z")
    cluster.memory("c").doc("notes").get("t", type=pycrdt.Text).insert(5, "!")
    assert cluster.run_until(lambda: cluster.converged() and cluster.synced(), timeout=60)
    old = cluster.node("b")
    decoded = _decodes(monkeypatch)
    node = _restart(old, snapshot, old.log_wires())
    assert decoded and decoded == old.log_wires()[reflected:]
    assert _knowledge(node) == _knowledge(_restart(old, old.snapshot(), old.log_wires()))
    assert node.memory.set("facts").value == {"y", "z"}


def test_a_node_index_that_does_not_decode_is_a_corrupt_store() -> None:
    old = _cluster_with_a_departure().node("b")
    snapshot = old.snapshot()
    for index in (b"\x93\x01\x02", b"\xc1", NodeIndex.of(old.seen, old._causal, old._retirements).to_bytes()[:-3]):
        with pytest.raises(StoreError, match="corrupt"):
            recover(old.identity.peer_id, Snapshot(snapshot.memory, snapshot.seen, index), old.log_wires())


def test_a_sqlite_store_keeps_the_index_and_a_format_2_store_is_upgraded(tmp_path, monkeypatch) -> None:
    old = _cluster_with_a_departure().node("b")
    journal = [(*departures.peek_batch(wire), wire) for wire in old.log_wires()]
    path = tmp_path / "b.db"
    store = SqliteStore(path, old.identity.peer_id)
    store.append(journal)
    store.compact(old.snapshot())
    store.close()
    decoded = _decodes(monkeypatch)
    store = SqliteStore(path, old.identity.peer_id)
    restored = store.load()
    store.close()
    assert restored.index is not None and decoded == []

    # The same store as format 2 wrote it: no index column, its own checksum.
    store = SqliteStore(path, old.identity.peer_id)
    snapshot = old.snapshot()
    store.compact(Snapshot(snapshot.memory, snapshot.seen))
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE snapshot DROP COLUMN node_index")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'format'")
    db.close()
    store = SqliteStore(path, old.identity.peer_id)
    restored = store.load()
    assert restored.index is None
    assert store.peer_info()["format"] == str(STORE_FORMAT)
    store.compact(old.snapshot())
    store.close()
    store = SqliteStore(path, old.identity.peer_id, readonly=True)
    assert store.load().index is not None
    store.close()
    assert restored.memory.snapshot() == Memory.from_snapshot(old.replica_id, snapshot.memory).snapshot()
