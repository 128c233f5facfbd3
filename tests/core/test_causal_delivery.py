"""Observed-remove, for real: a batch removes only what its signed dependencies cover.

Every attack is a batch sealed with the project's encoder under a *trusted* key
(``MALLORY``), so only causal delivery stands between it and the victim's writes.
"""

from __future__ import annotations

import pycrdt
import pytest

from crdtmem.clocks import CausalContext, Dot
from crdtmem.crdt import Document, MVRegister, ORMap, ORSet
from crdtmem.crdt.document import yjs_client_id
from crdtmem.crdt.dotkernel import DotKernel
from crdtmem.identity import Identity
from crdtmem.protocol.batch import batch_hash, seal_batch
from crdtmem.protocol.events import Refused
from crdtmem.protocol.messages import Batches
from crdtmem.protocol.node import NodeConfig
from crdtmem.testing import Cluster
from crdtmem.values import encode_value

MALLORY = Identity.from_private_bytes(bytes(range(32)))


def _cluster(config: NodeConfig | None = None) -> Cluster:
    cluster = Cluster(seed=17, config=config)
    cluster.add("victim")
    cluster.add("honest")
    cluster.connect("victim", "honest")
    cluster.memory("victim").set("facts").add("x")
    cluster.memory("victim").map("board").put("k", 1)
    cluster.memory("victim").mvregister("plan").assign("v")
    cluster.run(1)
    cluster.keyring.add(MALLORY)
    return cluster


def _alone_with_mallory(seed: int, config: NodeConfig | None = None):
    """An honest peer, and MALLORY (trusted) connected to it raw."""
    cluster = Cluster(seed=seed, config=config)
    cluster.add("honest")
    cluster.keyring.add(MALLORY)
    return cluster, cluster.open_raw("honest", MALLORY)


def _victim(cluster: Cluster) -> str:
    return cluster.node("victim").replica_id


def _removal(kind: type, victim: str, upto: int):
    """A delta that removes ``victim``'s dots 1..``upto`` in one object (context only)."""
    return kind(DotKernel(ctx=CausalContext({victim: upto})))


def _refusals(events) -> list[str]:
    return [e.reason for e in events if isinstance(e, Refused)]


@pytest.mark.parametrize(("name", "kind"), [("facts", ORSet), ("board", ORMap), ("plan", MVRegister)])
def test_a_batch_cannot_remove_what_its_author_never_observed(name: str, kind: type) -> None:
    cluster = _cluster()
    honest = cluster.memory("honest")
    before = honest.snapshot()
    mallory = cluster.open_raw("honest", MALLORY)
    wire = seal_batch(MALLORY, 1, [(name, _removal(kind, _victim(cluster), 1))]).wire  # no dependencies
    events = cluster.inject(mallory.conn, mallory.seal(Batches((wire,))))
    assert _refusals(events) == ["unobserved-remove"]
    assert honest.snapshot() == before


def test_a_removal_naming_dots_not_made_yet_cannot_delete_later_adds() -> None:
    cluster = _cluster()
    victim = _victim(cluster)
    mallory = cluster.open_raw("honest", MALLORY)
    # mallory did observe the victim's first batch, and claims its dots far beyond it
    observed = batch_hash(cluster.node("victim").log_wires()[0])
    wire = seal_batch(MALLORY, 1, [("facts", _removal(ORSet, victim, 100))], deps=(observed,)).wire
    events = cluster.inject(mallory.conn, mallory.seal(Batches((wire,))))
    assert _refusals(events) == ["unobserved-remove"]
    cluster.memory("victim").set("facts").add("later")
    cluster.run(1)
    assert cluster.memory("honest").set("facts").value == {"x", "later"}


def test_a_removal_of_what_the_author_observed_applies() -> None:
    cluster = _cluster()
    mallory = cluster.open_raw("honest", MALLORY)
    observed = batch_hash(cluster.node("victim").log_wires()[0])
    element = encode_value("x")
    seen = cluster.memory("honest").state("facts").kernel.entries[element]
    wire = seal_batch(MALLORY, 1, [("facts", ORSet(DotKernel(ctx=CausalContext(cloud=set(seen)))))],
                      deps=(observed,)).wire
    events = cluster.inject(mallory.conn, mallory.seal(Batches((wire,))))
    assert _refusals(events) == []
    assert cluster.memory("honest").set("facts").value == set()


def test_a_batch_that_skips_its_authors_previous_batch_is_refused() -> None:
    cluster = _cluster()
    mallory = cluster.open_raw("honest", MALLORY)
    own = ORSet()
    wire = seal_batch(MALLORY, 1, [("mine", own.add(MALLORY.peer_id, encode_value("a")))]).wire
    second = seal_batch(MALLORY, 2, [("mine", own.add(MALLORY.peer_id, encode_value("b")))]).wire  # no deps
    events = cluster.inject(mallory.conn, mallory.seal(Batches((wire, second))))
    assert _refusals(events) == ["bad-dependencies"]


def test_a_batch_waits_for_its_dependencies_and_applies_after_them() -> None:
    cluster, mallory = _alone_with_mallory(19)
    own = ORSet()
    first = seal_batch(MALLORY, 1, [("mine", own.add(MALLORY.peer_id, encode_value("a")))])
    second = seal_batch(MALLORY, 2, [("mine", own.remove(encode_value("a")))], deps=(first.hash,))
    node = cluster.node("honest")
    events = cluster.inject(mallory.conn, mallory.seal(Batches((second.wire,))))
    assert _refusals(events) == [] and node.pending_size() == 1
    assert node.stats.batches_buffered == 1 and Dot(MALLORY.peer_id, 2) not in node.seen
    cluster.inject(mallory.conn, mallory.seal(Batches((first.wire,))))
    assert node.pending_size() == 0
    assert Dot(MALLORY.peer_id, 2) in node.seen
    assert cluster.memory("honest").set("mine").value == set()


def test_the_wait_buffer_is_bounded_and_counts_what_it_drops() -> None:
    cluster, mallory = _alone_with_mallory(19, NodeConfig(max_pending_batches=1))
    own = ORSet()
    first = seal_batch(MALLORY, 1, [("mine", own.add(MALLORY.peer_id, encode_value("a")))])
    second = seal_batch(MALLORY, 2, [("mine", own.add(MALLORY.peer_id, encode_value("b")))], deps=(first.hash,))
    third = seal_batch(MALLORY, 3, [("mine", own.add(MALLORY.peer_id, encode_value("c")))], deps=(second.hash,))
    events = cluster.inject(mallory.conn, mallory.seal(Batches((third.wire, second.wire))))
    node = cluster.node("honest")
    assert _refusals(events) == [] and node.pending_size() == 1
    assert node.stats.pending_dropped == 1


ALICE = Identity.from_private_bytes(bytes(range(1, 33)))


def _never(n: int) -> bytes:
    """A hash no batch will ever have."""
    return batch_hash(b"never sealed %d" % n)


def test_a_flood_naming_hashes_that_never_exist_displaces_only_its_author() -> None:
    budget = 5
    # Without the per-author budget, MALLORY's flood alone would fill the whole buffer.
    cluster = Cluster(seed=29, config=NodeConfig(max_pending_batches=budget + 2, max_pending_per_author=budget))
    cluster.add("honest")
    cluster.keyring.add(MALLORY)
    cluster.keyring.add(ALICE)
    node = cluster.node("honest")
    mallory = cluster.open_raw("honest", MALLORY)
    alice = cluster.open_raw("honest", ALICE)
    junk = ORSet()
    flood = [
        seal_batch(MALLORY, n, [("junk", junk.add(MALLORY.peer_id, encode_value(n)))], deps=(_never(n),))
        for n in range(1, 4 * budget + 1)
    ]
    own = ORSet()
    first = seal_batch(ALICE, 1, [("notes", own.add(ALICE.peer_id, encode_value("a")))])
    second = seal_batch(ALICE, 2, [("notes", own.add(ALICE.peer_id, encode_value("b")))], deps=(first.hash,))
    for batch in flood:
        assert _refusals(cluster.inject(mallory.conn, mallory.seal(Batches((batch.wire,))))) == []
        assert node.pending_size(MALLORY.peer_id) <= budget
    assert node.pending_size(MALLORY.peer_id) == budget
    # after the flood, ALICE's second batch arrives before her first: it still finds room
    assert _refusals(cluster.inject(alice.conn, alice.seal(Batches((second.wire,))))) == []
    assert node.pending_size(ALICE.peer_id) == 1 and Dot(ALICE.peer_id, 2) not in node.seen
    assert node.stats.pending_dropped == len(flood) - budget  # MALLORY's oldest, each time
    # the dropped ones left no trace behind: only the newest batches' missing hashes are waited on
    assert set(node._waiting) == {_never(n) for n in range(len(flood) - budget + 1, len(flood) + 1)} | {first.hash}
    cluster.inject(alice.conn, alice.seal(Batches((first.wire,))))
    assert Dot(ALICE.peer_id, 1) in node.seen and Dot(ALICE.peer_id, 2) in node.seen
    assert cluster.memory("honest").set("notes").value == {"a", "b"}
    assert node.pending_size(ALICE.peer_id) == 0 and node.pending_size() == budget
    assert first.hash not in node._waiting


def test_the_global_wait_bound_stays_the_last_resort_across_authors() -> None:
    cluster = Cluster(seed=31, config=NodeConfig(max_pending_batches=3, max_pending_per_author=2))
    cluster.add("honest")
    cluster.keyring.add(MALLORY)
    cluster.keyring.add(ALICE)
    node = cluster.node("honest")
    raw = cluster.open_raw("honest", MALLORY)
    wires = []
    for author in (MALLORY, ALICE):
        junk = ORSet()
        wires += [
            seal_batch(author, n, [("junk", junk.add(author.peer_id, encode_value(n)))], deps=(_never(n),)).wire
            for n in (1, 2)
        ]
    assert _refusals(cluster.inject(raw.conn, raw.seal(Batches(tuple(wires))))) == []
    assert node.pending_size() == 3
    assert node.pending_size(MALLORY.peer_id) == 2 and node.pending_size(ALICE.peer_id) == 1
    assert node.stats.pending_dropped == 1


def test_replaying_a_recorded_old_batch_resurrects_nothing() -> None:
    cluster = _cluster()
    recorded = cluster.node("victim").log_wires()[0]  # the add of "x"
    cluster.memory("victim").set("facts").remove("x")
    cluster.run(1)
    mallory = cluster.open_raw("honest", MALLORY)
    events = cluster.inject(mallory.conn, mallory.seal(Batches((recorded,))))
    assert _refusals(events) == []
    assert "x" not in cluster.memory("honest").set("facts").value


def test_two_batches_signed_under_one_number_are_refused_as_equivocation_without_a_drop() -> None:
    cluster, mallory = _alone_with_mallory(23)
    own = ORSet()
    first = seal_batch(MALLORY, 1, [("mine", own.add(MALLORY.peer_id, encode_value("a")))])
    other = seal_batch(MALLORY, 1, [("mine", ORSet().add(MALLORY.peer_id, encode_value("b")))])
    cluster.inject(mallory.conn, mallory.seal(Batches((first.wire,))))
    before = cluster.memory("honest").snapshot()
    events = cluster.inject(mallory.conn, mallory.seal(Batches((other.wire,))))
    assert _refusals(events) == ["equivocation"]
    assert cluster.memory("honest").snapshot() == before
    assert cluster.node("honest").peers()  # the evidence is against the author: no drop


def test_an_equivocating_author_never_blocks_honest_authors_who_built_on_either_version() -> None:
    # r2 - r1 - c: mallory signs two batches #1, one reaches r1 (and r2), the other c. Honest
    # batches made on each side depend on that side's version; a Sync cannot fetch the other
    # version of a number already held, so they would wait for good. Asked for by hash
    # (Want), the other version is refused as equivocation yet vouches for them.
    cluster = Cluster(seed=29, config=NodeConfig(anti_entropy_interval=2.0))
    for name in ("r1", "r2", "c"):
        cluster.add(name)
    cluster.keyring.add(MALLORY)
    cluster.connect("r2", "r1")
    cluster.connect("r1", "c")
    cluster.run(1)
    cluster.cut("r1", "c")
    first = seal_batch(MALLORY, 1, [("mine", ORSet().add(MALLORY.peer_id, encode_value("a")))])
    other = seal_batch(MALLORY, 1, [("mine", ORSet().add(MALLORY.peer_id, encode_value("b")))])
    for target, version in (("r1", first), ("c", other)):
        raw = cluster.open_raw(target, MALLORY)
        assert _refusals(cluster.inject(raw.conn, raw.seal(Batches((version.wire,))))) == []
    cluster.run(1)
    cluster.memory("r1").set("facts").add("from r1")
    cluster.memory("c").set("facts").add("from c")
    cluster.run(1)
    cluster.heal("r1", "c")
    assert cluster.run_until(
        lambda: all(cluster.memory(n).set("facts").value == {"from r1", "from c"} for n in ("r1", "r2", "c")),
        timeout=30,
    )
    assert all(cluster.node(n).pending_size() == 0 for n in ("r1", "r2", "c"))
    for name in ("r1", "r2", "c"):  # every replica saw the other version, refused it and counts it
        assert cluster.stats(name).refusals.get("equivocation") == 1
        assert cluster.node(name).peers()
    # The equivocator's own object keeps the version each side applied first (documented).
    assert cluster.memory("r2").set("mine").value == {"a"} and cluster.memory("c").set("mine").value == {"b"}


def test_a_refused_signed_batch_never_drops_the_peer_that_sent_it() -> None:
    from crdtmem.protocol.events import PeerDisconnected

    cluster = _cluster()
    mallory = cluster.open_raw("honest", MALLORY)
    # Signed by its author, but it may have been relayed by an honest peer: refuse it, keep the link.
    wire = seal_batch(MALLORY, 1, [("facts", _removal(ORSet, _victim(cluster), 1))]).wire
    events = cluster.inject(mallory.conn, mallory.seal(Batches((wire,))))
    assert _refusals(events) == ["unobserved-remove"]
    assert not any(isinstance(e, PeerDisconnected) for e in events)
    assert mallory.conn in cluster.node("honest").peers()


# --- Yjs documents: a delete set may delete only what the batch's dependencies inserted ---


def _delete_only(client: int, clock: int, length: int) -> Document:
    """A Yjs v1 update with no structs, deleting ``client``'s items ``clock .. clock+length-1``."""
    out = bytearray()
    for value in (0, 1, client, 1, clock, length):  # no struct groups; one client, one range
        while value > 0x7F:
            out.append(0x80 | (value & 0x7F))
            value >>= 7
        out.append(value)
    return Document.from_update(bytes(out))


def _text(cluster: Cluster, name: str) -> pycrdt.Text:
    return cluster.memory(name).doc("notes").get("notes", type=pycrdt.Text)


def _doc_cluster() -> Cluster:
    cluster = Cluster(seed=29)
    cluster.add("victim")
    cluster.add("honest")
    cluster.connect("victim", "honest")
    text = _text(cluster, "victim")
    text += "hello"
    cluster.run(1)
    cluster.keyring.add(MALLORY)
    return cluster


def test_a_delete_only_yjs_update_cannot_erase_text_its_author_never_observed() -> None:
    cluster = _doc_cluster()
    assert str(_text(cluster, "honest")) == "hello"
    before = cluster.memory("honest").snapshot()
    mallory = cluster.open_raw("honest", MALLORY)
    victim = yjs_client_id(_victim(cluster))
    wire = seal_batch(MALLORY, 1, [("notes", _delete_only(victim, 0, 5))]).wire  # no dependencies
    events = cluster.inject(mallory.conn, mallory.seal(Batches((wire,))))
    assert _refusals(events) == ["unobserved-remove"]
    assert cluster.memory("honest").snapshot() == before
    assert str(_text(cluster, "honest")) == "hello"


def test_a_yjs_delete_set_naming_clocks_not_typed_yet_cannot_erase_later_text() -> None:
    cluster = _doc_cluster()
    victim = yjs_client_id(_victim(cluster))
    observed = batch_hash(cluster.node("victim").log_wires()[0])  # the batch that typed "hello"
    text = _text(cluster, "victim")
    text += " world"
    cluster.run(1)
    mallory = cluster.open_raw("honest", MALLORY)
    # observed "hello" (clocks 0..4) only, and claims clocks far beyond: " world" and text to come
    wire = seal_batch(MALLORY, 1, [("notes", _delete_only(victim, 0, 100))], deps=(observed,)).wire
    events = cluster.inject(mallory.conn, mallory.seal(Batches((wire,))))
    assert _refusals(events) == ["unobserved-remove"]
    text += "!"
    cluster.run(1)
    assert str(_text(cluster, "honest")) == "hello world!"
    assert str(_text(cluster, "victim")) == "hello world!"


def test_a_yjs_delete_of_observed_text_applies() -> None:
    cluster = _doc_cluster()
    victim = yjs_client_id(_victim(cluster))
    observed = batch_hash(cluster.node("victim").log_wires()[0])
    mallory = cluster.open_raw("honest", MALLORY)
    wire = seal_batch(MALLORY, 1, [("notes", _delete_only(victim, 0, 5))], deps=(observed,)).wire
    events = cluster.inject(mallory.conn, mallory.seal(Batches((wire,))))
    assert _refusals(events) == []
    assert str(_text(cluster, "honest")) == ""


def test_honest_concurrent_edits_deleting_each_others_observed_text_converge() -> None:
    cluster = _doc_cluster()
    mine, theirs = _text(cluster, "victim"), _text(cluster, "honest")
    theirs += " there"
    cluster.run(1)
    assert str(mine) == "hello there"
    # concurrently: the victim deletes the honest replica's " there", the honest one deletes
    # the victim's "hello" and types over it
    del mine[5:11]
    mine += "!"
    del theirs[0:5]
    theirs.insert(0, "bye")
    cluster.run(2)
    assert str(mine) == str(theirs) == "bye!"
    for name in ("victim", "honest"):
        assert cluster.node(name).stats.refusals == {}
    assert cluster.memory("victim").snapshot() == cluster.memory("honest").snapshot()
