"""Departed incarnations: retirement records, and pruning them from vectors and contexts.

Everything runs in the in-process :class:`~crdtmem.testing.Cluster` (real nodes, virtual
clock); hostile batches are signed by EVE, a member, and injected over a raw session.
"""

from __future__ import annotations

import pytest

from crdtmem import Memory
from crdtmem.clocks import CausalContext
from crdtmem.crdt import ORSet
from crdtmem.values import encode_value
from crdtmem.errors import RetiredWriterError
from crdtmem.identity import Identity
from crdtmem.protocol.batch import seal_batch
from crdtmem.protocol.events import Refused
from crdtmem.protocol.messages import Batches, Sync, encode_message
from crdtmem.protocol.messages import seen_digest
from crdtmem.protocol.retirement import RETIRED_NAME, Retirements, retirement
from crdtmem.testing import Cluster

EVE = Identity.from_private_bytes(bytes([9]) * 32)


def _mesh(*names: str, seed: int = 3) -> Cluster:
    cluster = Cluster(seed=seed)
    cluster.keyring.add(EVE)  # a member that signs hostile batches by hand
    for name in names:
        cluster.add(name)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            cluster.connect(a, b)
    cluster.run(1)
    return cluster


def _settle(cluster: Cluster) -> None:
    assert cluster.run_until(lambda: cluster.converged() and cluster.synced(), timeout=60)


def _context_replicas(memory: Memory) -> set[str]:
    """Every replica named by some object's causal context."""
    out: set[str] = set()
    for name in memory.names():
        ctx = getattr(memory.state(name), "ctx", None)
        if ctx is not None:
            out |= ctx.replicas()
    return out


def _refusals(cluster: Cluster, name: str, events: list) -> list[str]:
    return [e.reason for e in events if isinstance(e, Refused)]


def _eve_batch(seq: int, deltas: list, deps: tuple[bytes, ...] = (), incarnation: str | None = None):
    return seal_batch(EVE, seq, deltas, deps, author=incarnation or f"{EVE.peer_id}.eeeeeeee")


def _inject(cluster: Cluster, target: str, *wires: bytes) -> list[str]:
    """Hand ``wires`` to ``target`` over a raw session of EVE; the refusal reasons it raised."""
    raw = cluster.open_raw(target, EVE)
    events = cluster.inject(raw.conn, raw.seal(Batches(tuple(wires))))
    assert target in cluster.names and raw.conn in cluster.node(target).peers(), "the link is kept"
    return [e.reason for e in events if isinstance(e, Refused)]


def _departed(cluster: Cluster, writer: str = "a") -> str:
    """``writer`` adds two facts and a map key, then leaves cleanly; ``b`` writes after it."""
    cluster.memory(writer).set("facts").add("x")
    cluster.memory(writer).set("facts").add("y")
    cluster.memory(writer).map("notes").put("k", 1)
    _settle(cluster)
    incarnation = cluster.node(writer).replica_id
    cluster.leave(writer)
    cluster.memory("b").counter("turns").increment()  # anyone's next batch witnesses the departure
    _settle(cluster)
    return incarnation


def _x_removed_after_departure(cluster: Cluster, remover: str) -> tuple[str, bytes]:
    """``a`` departs (:func:`_departed`), then ``remover`` removes its x; a's incarnation and
    its first batch (the one that added x)."""
    cluster.memory("a").set("facts").add("x")
    _settle(cluster)
    first = cluster.node("a").log_wires()[0]
    gone = _departed(cluster)
    cluster.memory(remover).set("facts").remove("x")
    _settle(cluster)
    return gone, first


def test_a_departed_incarnation_is_pruned_everywhere_and_its_writes_stay() -> None:
    cluster = _mesh("a", "b", "c")
    gone = _departed(cluster)
    for name in ("b", "c"):
        node = cluster.node(name)
        assert gone in node.retired()
        assert gone not in node.seen.replicas()
        assert gone not in _context_replicas(node.memory)
        assert node.memory.set("facts").value == {"x", "y"}
        assert node.memory.map("notes").value == {"k": 1}
        assert node.batches_seen() == node.seen.size() + node.retired()[gone]
    assert len(cluster.merkle_roots()) == 1
    assert seen_digest(cluster.node("b").seen) == seen_digest(cluster.node("c").seen)


def test_vectors_without_pruned_entries_read_through_a_chain_of_witnesses() -> None:
    retirements = Retirements()
    every_batch_applied = lambda incarnation, final: True  # noqa: E731
    assert retirements.note("X", 3, {"X": 3}, [("X", 3)], every_batch_applied) == []  # no witness yet
    assert retirements.note("A", 5, {"X": 3, "A": 5}, [], every_batch_applied) == ["X"]  # A#5 covers X#3
    assert retirements.note("A", 7, {"X": 3, "A": 7}, [("A", 7)], every_batch_applied) == []
    assert retirements.note("B", 2, {"A": 7, "B": 2}, [], every_batch_applied) == ["A"]
    assert retirements.witnesses == {"X": ("A", 5), "A": ("B", 2)}
    assert retirements.seq_in({"B": 2}, "X") == 3  # B#2 covers A#7, which covers A#5, which covers X#3
    assert retirements.seq_in({"B": 1}, "X") == 0
    assert retirements.seq_in({"A": 4}, "X") == 0 and retirements.seq_in({"A": 6}, "X") == 3
    assert retirements.seq_in({"X": 2, "B": 2}, "X") == 2  # an explicit entry is exact
    covered = {"X": 3, "A": 7, "B": 2, "C": 1}
    retirements.shrink(covered)
    assert covered == {"B": 2, "C": 1}
    assert retirements.seq_in(covered, "X") == 3 and retirements.seq_in(covered, "A") == 7
    kept = {"X": 3, "A": 4}  # built before the witnesses: it covers neither, so it stays explicit
    retirements.shrink(kept)
    assert kept == {"X": 3, "A": 4}
    assert retirements.holder_of_all(CausalContext({"B": 2}))("X")
    assert not retirements.holder_of_all(CausalContext())("X")  # a late joiner gets X's batches
    assert not retirements.holder_of_all(CausalContext({"B": 1}))("A")


def test_writing_after_retiring_is_refused_with_a_clear_error() -> None:
    cluster = _mesh("a", "b")
    cluster.memory("a").set("facts").add("x")
    cluster.node("a").retire(cluster.now)
    with pytest.raises(RetiredWriterError, match="retired"):
        cluster.memory("a").counter("turns").increment()
    with pytest.raises(RetiredWriterError, match="not snapshotted"):  # it shows a write no batch carries
        cluster.memory("a").snapshot()
    cluster.node("a").retire(cluster.now)  # twice is harmless
    final = cluster.node("a").seen.max(cluster.node("a").replica_id)
    assert retirement(cluster.node("a").replica_id, final) in cluster.memory("a").gset(RETIRED_NAME).value


def test_an_incarnation_that_never_wrote_retires_without_a_record() -> None:
    cluster = _mesh("a", "b")
    cluster.node("a").retire(cluster.now)
    cluster.run(1)
    assert not cluster.memory("b").gset(RETIRED_NAME).value
    with pytest.raises(RetiredWriterError):
        cluster.memory("a").set("facts").add("x")


def test_a_removal_concurrent_with_the_retirement_converges() -> None:
    cluster = _mesh("a", "b", "c")
    cluster.memory("a").set("facts").add("x")
    cluster.memory("a").set("facts").add("y")
    _settle(cluster)
    cluster.cut("b", "a")
    cluster.cut("b", "c")
    cluster.memory("b").set("facts").remove("x")  # b saw x; a is retiring meanwhile
    cluster.run(1)
    cluster.leave("a")
    cluster.memory("c").counter("turns").increment()
    cluster.run(1)
    cluster.heal_all()
    _settle(cluster)
    for name in ("b", "c"):
        assert cluster.memory(name).set("facts").value == {"y"}
        assert cluster.node(name).retired()
    assert len(cluster.merkle_roots()) == 1


def test_a_redelivered_old_batch_of_a_pruned_incarnation_brings_nothing_back() -> None:
    cluster = _mesh("a", "b", "c")
    gone, first = _x_removed_after_departure(cluster, "b")
    assert gone in cluster.node("c").retired()
    duplicates = cluster.stats("c").duplicate_batches
    assert _inject(cluster, "c", first) == []
    assert cluster.stats("c").duplicate_batches == duplicates + 1
    assert cluster.memory("c").set("facts").value == {"y"}
    assert gone not in cluster.node("c").seen.replicas()


def test_removals_of_a_pruned_incarnations_items_are_judged_alike_at_pruned_and_unpruned_replicas() -> None:
    cluster = _mesh("a", "b", "c")
    cluster.memory("a").set("facts").add("x")
    _settle(cluster)
    gone = cluster.node("a").replica_id
    cluster.node("a").retire(cluster.now)  # a stays connected: it never prunes itself
    _settle(cluster)
    cluster.memory("b").counter("turns").increment()  # the witness
    assert cluster.run_until(lambda: _same_values(cluster), timeout=60)
    assert gone in cluster.node("c").retired() and not cluster.node("a").retired()
    (dot,) = cluster.memory("a").state("facts").entries[encode_value("x")]
    heads = cluster.node("c")._causal.heads()

    def removal(seq: int, deps: tuple[bytes, ...]) -> bytes:
        """EVE's batch removing x: an OR-Set delta whose context names a's dot."""
        return _eve_batch(seq, [("facts", ORSet.build({}, CausalContext.of_dot(*dot)))], deps).wire

    forged = removal(1, ())  # depends on nothing: eve never observed x
    for name in ("a", "b", "c"):
        assert _inject(cluster, name, forged) == ["unobserved-remove"], name
    observed = _eve_batch(1, [], heads).wire  # a second #1 would equivocate: observe first, then remove
    legit = removal(2, (_hash(observed),))
    for name in ("a", "b", "c"):
        assert _inject(cluster, name, observed, legit) == [], name
        assert cluster.memory(name).set("facts").value == frozenset(), name
    assert cluster.run_until(lambda: _same_values(cluster), timeout=60)


def _same_values(cluster: Cluster) -> bool:
    """Equal values everywhere (an unpruned replica's contexts still name what others pruned)."""
    values = [m.values() for m in cluster.memories().values()]
    return all(v == values[0] for v in values)


def _hash(wire: bytes) -> bytes:
    from crdtmem.protocol.batch import batch_hash

    return batch_hash(wire)


def test_a_retirement_of_another_keys_incarnation_is_refused() -> None:
    cluster = _mesh("a", "b")
    cluster.memory("a").set("facts").add("x")
    _settle(cluster)
    victim = cluster.node("a").replica_id
    heads = cluster.node("b")._causal.heads()
    eve = Memory(f"{EVE.peer_id}.eeeeeeee")
    eve.gset(RETIRED_NAME).add(retirement(victim, 1))
    assert _inject(cluster, "b", _eve_batch(1, eve.take_deltas(), heads).wire) == ["bad-retirement"]
    assert not cluster.node("b")._retirements.finals


def test_a_retirement_beyond_what_its_batch_covers_is_refused() -> None:
    cluster = _mesh("a", "b")
    earlier = f"{EVE.peer_id}.aaaaaaaa"
    first = _eve_batch(1, [], incarnation=earlier)
    eve = Memory(f"{EVE.peer_id}.eeeeeeee")
    eve.gset(RETIRED_NAME).add(retirement(earlier, 2))  # it made one batch, not two
    assert _inject(cluster, "b", first.wire, _eve_batch(1, eve.take_deltas(), (first.hash,)).wire) == [
        "bad-retirement"]
    again = Memory(f"{EVE.peer_id}.ffffffff")
    again.gset(RETIRED_NAME).add(retirement(f"{EVE.peer_id}.ffffffff", 2))  # itself, but in its batch #1
    assert _inject(cluster, "b", _eve_batch(1, again.take_deltas(), incarnation=again.replica_id).wire) == [
        "bad-retirement"]


def _retired_then_beyond():
    """EVE's batch #1, retiring its incarnation at #1, and its #2 after it, adding "late"."""
    eve = Memory(f"{EVE.peer_id}.eeeeeeee")
    eve.gset(RETIRED_NAME).add(retirement(eve.replica_id, 1))
    last = _eve_batch(1, eve.take_deltas())
    eve.set("facts").add("late")
    return last, _eve_batch(2, eve.take_deltas(), (last.hash,))


def test_a_batch_beyond_a_retired_incarnations_final_number_is_refused_and_the_link_kept() -> None:
    cluster = _mesh("a", "b")
    last, beyond = _retired_then_beyond()
    assert _inject(cluster, "b", last.wire, beyond.wire) == ["retired-author"]
    assert cluster.memory("b").set("facts").value == frozenset()


def test_a_batch_beyond_the_final_number_that_a_member_built_on_is_kept() -> None:
    cluster = _mesh("a", "b")
    last, beyond = _retired_then_beyond()
    member = cluster.node("a").identity  # another process of a's key applied eve's #2, then wrote
    built_on = seal_batch(member, 1, [], (beyond.hash,), author=f"{member.peer_id}.mmmmmmmm")
    assert _inject(cluster, "b", last.wire, beyond.wire, built_on.wire) == ["retired-author"]
    assert cluster.memory("b").set("facts").value == {"late"}  # applied after all, as everywhere
    assert built_on.hash in cluster.node("b")._causal


def test_a_late_joiner_gets_every_batch_and_prunes_too() -> None:
    cluster = _mesh("a", "b", "c")
    gone = _departed(cluster)
    cluster.add("d")
    cluster.connect("d", "c")
    _settle(cluster)
    assert cluster.memory("d").set("facts").value == {"x", "y"}
    assert gone in cluster.node("d").retired()
    assert gone not in cluster.node("d").seen.replicas()


def test_a_restart_after_pruning_resurrects_nothing_and_stays_pruned() -> None:
    cluster = _mesh("a", "b", "c")
    gone, first = _x_removed_after_departure(cluster, "c")
    node = cluster.restart("b", keep_store=True)
    assert gone in node.retired()
    assert gone not in node.seen.replicas() and gone not in _context_replicas(node.memory)
    assert node.memory.set("facts").value == {"y"}
    _settle(cluster)
    assert _inject(cluster, "b", first) == []
    assert cluster.memory("b").set("facts").value == {"y"}


def test_a_killed_incarnation_is_retired_by_the_next_start_of_its_key() -> None:
    cluster = _mesh("a", "b", "c")
    cluster.memory("a").set("facts").add("x")
    _settle(cluster)
    killed = cluster.node("a").replica_id
    cluster.restart("a", keep_store=True)  # no retire(): a kill
    _settle(cluster)
    for name in ("a", "b", "c"):
        assert killed in cluster.node(name).retired(), name
        assert killed not in cluster.node(name).seen.replicas()
    cluster.memory("a").set("facts").add("z")
    _settle(cluster)
    assert cluster.memory("b").set("facts").value == {"x", "z"}


def test_sync_messages_shrink_as_departed_agents_are_pruned() -> None:
    cluster = _mesh("b", "c")
    sizes = []
    for i in range(12):
        name = f"agent{i}"
        cluster.add(name)
        cluster.connect(name, "b")
        cluster.run(0.5)
        cluster.memory(name).set("facts").add(i)
        _settle(cluster)
        sizes.append(len(encode_message(Sync(cluster.node("c").seen))))
        cluster.leave(name)
    cluster.memory("b").counter("turns").increment()
    _settle(cluster)
    node = cluster.node("c")
    assert len(node.retired()) == 12
    assert node.seen.replicas() == {cluster.node("b").replica_id}  # c never wrote; every agent is pruned
    unpruned = CausalContext({**node.seen.vv, **node.retired()})
    assert len(encode_message(Sync(node.seen))) * 5 < len(encode_message(Sync(unpruned)))
    assert max(sizes) < len(encode_message(Sync(unpruned)))  # pruned as they went, not only at the end
    assert node.memory.context_entries() <= 2
    assert node.memory.set("facts").value == set(range(12))
