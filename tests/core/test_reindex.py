"""Journaled index entries: a restart re-indexes every batch without decoding its deltas.

A restart that reads the entries must know exactly what one decoding every batch knows
(covered vectors read alike, heads, reach, Yjs clients, prunings), or the two would judge a
removal differently. Checked on a cluster where an incarnation wrote, removed, edited a
document, departed and was pruned; the journal is built from the node's own
:class:`BatchApplied` events, as a shell journals them.
"""

from __future__ import annotations

import random
import sqlite3

import pycrdt
import pytest

from crdtmem.errors import DecodeError
from crdtmem.protocol import departures
from crdtmem.protocol.events import BatchApplied
from crdtmem.protocol.node import Node
from crdtmem.protocol.recovery import StoreError, recover
from crdtmem.protocol.reindex import read_index_entry
from crdtmem.storage import SqliteStore
from crdtmem.storage.sqlite import STORE_FORMAT
from crdtmem.testing import Cluster


def _settle(cluster: Cluster) -> None:
    assert cluster.run_until(lambda: cluster.converged() and cluster.synced(), timeout=60)


def _cluster_with_a_departure() -> Cluster:
    """a, b and c; a writes and leaves cleanly, c removes one of a's facts and edits a document,
    and b's write witnesses a's departure."""
    cluster = Cluster(seed=5)
    for name in "abc":
        cluster.add(name)
    for x, y in ("ab", "bc", "ac"):
        cluster.connect(x, y)
    cluster.run(1)
    cluster.memory("a").set("facts").add("x")
    cluster.memory("a").set("facts").add("y")
    cluster.memory("c").doc("notes").get("t", type=pycrdt.Text).insert(0, "hello")
    _settle(cluster)
    cluster.memory("c").set("facts").remove("x")
    _settle(cluster)
    cluster.leave("a")
    cluster.memory("b").counter("turns").increment()
    _settle(cluster)
    assert cluster.node("b").retired(), "a's incarnation is pruned at b"
    return cluster


def _journal(cluster: Cluster, name: str) -> list[BatchApplied]:
    """What a shell would have journaled for ``name``: its BatchApplied events, in order."""
    return [e for e in cluster.events(name) if isinstance(e, BatchApplied)]


def _restart(old: Node, journal: list[BatchApplied], *, entries: bool = True) -> Node:
    restored = recover(old.identity.peer_id, old.snapshot(), [e.wire for e in journal],
                       index_entries=[e.index_entry for e in journal] if entries else ())
    return Node(restored.memory, old.identity, old.keyring, rng=random.Random(1), seen=restored.seen,
                log_wires=restored.log_wires, log_entries=restored.log_entries)


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


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every batch wire whose deltas a restarting node decodes."""
    wires: list[bytes] = []
    read_batch = departures.read_batch

    def counting(wire: bytes, **kwargs):
        wires.append(wire)
        return read_batch(wire, **kwargs)

    monkeypatch.setattr(departures, "read_batch", counting)
    return wires


def test_a_restart_from_index_entries_knows_what_decoding_every_batch_knows(decoded) -> None:
    cluster = _cluster_with_a_departure()
    old, journal = cluster.node("b"), _journal(cluster, "b")
    assert [e.wire for e in journal] == old.log_wires()
    from_entries = _restart(old, journal)
    assert decoded == []
    decoding = _restart(old, journal, entries=False)
    assert len(decoded) == len(journal)
    assert _knowledge(from_entries) == _knowledge(decoding)
    assert _knowledge(from_entries)["yjs_reach"] and _knowledge(from_entries)["pruned"]


def test_a_batch_without_a_readable_entry_is_decoded_whole(decoded) -> None:
    cluster = _cluster_with_a_departure()
    old, journal = cluster.node("b"), _journal(cluster, "b")
    restored = recover(old.identity.peer_id, old.snapshot(), [e.wire for e in journal],
                       index_entries=[b"", b"\xc1", *(e.index_entry for e in journal[2:-1])])
    node = Node(restored.memory, old.identity, old.keyring, rng=random.Random(1), seen=restored.seen,
                log_wires=restored.log_wires, log_entries=restored.log_entries)
    assert decoded == [journal[0].wire, journal[1].wire, journal[-1].wire]  # empty, malformed, missing
    assert _knowledge(node) == _knowledge(_restart(old, journal, entries=False))


@pytest.mark.parametrize("entry", [b"", b"\x90", b"\x93\x90\x90", b"\x93\x91\x92\x01\x02\x90\x90", b"\x93\x90\x90\x91\xa1x"])
def test_a_malformed_index_entry_is_refused(entry: bytes) -> None:
    with pytest.raises(DecodeError):
        read_index_entry(entry)


def test_a_sqlite_store_keeps_each_entry_with_its_row_and_checks_it(tmp_path, decoded) -> None:
    cluster = _cluster_with_a_departure()
    old, journal = cluster.node("b"), _journal(cluster, "b")
    path = tmp_path / "b.db"
    with SqliteStore(path, old.identity.peer_id) as store:
        store.append([(e.author, e.seq, e.wire, e.index_entry) for e in journal])
        store.compact(old.snapshot())
    with SqliteStore(path, old.identity.peer_id) as store:
        restored = store.load()
    assert restored.log_entries == [e.index_entry for e in journal]
    with sqlite3.connect(path) as db:
        db.execute("UPDATE journal SET index_entry = x'93909090' WHERE id = 2")
    db.close()
    with SqliteStore(path, old.identity.peer_id) as store, pytest.raises(StoreError, match="row 2 fails its checksum"):
        store.load()


def test_a_format_2_store_is_upgraded_and_its_old_rows_are_decoded(tmp_path, decoded) -> None:
    cluster = _cluster_with_a_departure()
    old, journal = cluster.node("b"), _journal(cluster, "b")
    path = tmp_path / "b.db"
    with SqliteStore(path, old.identity.peer_id) as store:
        store.append([(e.author, e.seq, e.wire, b"") for e in journal])  # format 2 rows: no entry
    with sqlite3.connect(path) as db:  # the table as format 2 created it
        db.execute("ALTER TABLE journal DROP COLUMN index_entry")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'format'")
    db.close()
    with SqliteStore(path, old.identity.peer_id, readonly=True) as store:
        assert store.load().log_entries == [b""] * len(journal)
    with SqliteStore(path, old.identity.peer_id) as store:
        assert store.peer_info()["format"] == str(STORE_FORMAT)
        restored = store.load()
    node = Node(restored.memory, old.identity, old.keyring, rng=random.Random(1), seen=restored.seen,
                log_wires=restored.log_wires, log_entries=restored.log_entries)
    assert len(decoded) == len(journal)
    assert _knowledge(node) == _knowledge(_restart(old, journal))


def test_the_testing_cluster_restarts_from_its_journal_with_index_entries(decoded) -> None:
    cluster = _cluster_with_a_departure()
    for round_ in range(2):  # the second restart reads the journal the first one carried on
        cluster.restart("b", keep_store=True)
        assert decoded == [], "a kept store's batches are re-indexed from their entries"
        assert [e.wire for e in cluster._journals["b"]] == cluster.node("b").log_wires()
        cluster.memory("b").set("facts").add(f"after restart {round_}")
        _settle(cluster)
    assert "after restart 1" in cluster.memory("c").set("facts").value
    cluster.restart("b")  # a lost store: the journal starts again
    assert cluster._journals["b"] == []
    _settle(cluster)
