"""Bounded numbers: a trusted peer's numbers can neither crash, wedge nor outrun an honest replica."""

from __future__ import annotations

import pytest

from crdtmem import Memory
from crdtmem.clocks import HybridClock
from crdtmem.crdt import GCounter, LWWRegister, PNCounter
from crdtmem.identity import Identity
from crdtmem.limits import MAX_COUNT, OutOfRangeError
from crdtmem.protocol.batch import seal_batch
from crdtmem.protocol.events import Refused
from crdtmem.protocol.messages import Batches
from crdtmem.testing import Cluster, RawSession
from crdtmem.values import encode_value

MALLORY = Identity.from_private_bytes(bytes(range(32)))
NOW = 1_700_000_000.0  # a wall clock: the cluster's clock starts here


def _honest() -> tuple[Cluster, RawSession]:
    cluster = Cluster(seed=7)
    cluster.now = NOW
    cluster.add("honest")
    cluster.add("peer")
    cluster.connect("honest", "peer")
    cluster.memory("honest").register("goal").assign("ship")
    cluster.memory("honest").pncounter("budget").increment(5)
    cluster.run(1)
    cluster.keyring.add(MALLORY)
    return cluster, cluster.open_raw("honest", MALLORY)


def _own_batch(deltas, seq: int = 1) -> Batches:
    return Batches((seal_batch(MALLORY, seq, deltas).wire,))


def _refusals(events) -> list[str]:
    return [e.reason for e in events if isinstance(e, Refused)]


def _still_converges(cluster: Cluster) -> None:
    """The honest replica writes on, flushes without error, and its peer gets the writes."""
    honest = cluster.memory("honest")
    honest.register("goal").assign("after")
    honest.map("board").put("k", "after")
    honest.pncounter("budget").decrement(1)
    honest.counter("done").increment(1)
    cluster.node("honest").flush(cluster.now)
    cluster.node("honest").check_writable()
    assert cluster.run_until(lambda: cluster.memory("peer").register("goal").value == "after", timeout=10)
    assert cluster.memory("peer").map("board").get("k") == "after"


@pytest.mark.parametrize("stamp", [2**64 - 1, MAX_COUNT + 1])
def test_register_timestamp_at_the_wire_limit_is_refused(stamp: int) -> None:
    cluster, mallory = _honest()
    before = cluster.memory("honest").snapshot()
    attack = LWWRegister(stamp, MALLORY.peer_id, encode_value("mine forever"))
    events = cluster.inject(mallory.conn, mallory.seal(_own_batch([("goal", attack)])))
    assert _refusals(events) == ["number-out-of-range"]
    assert cluster.memory("honest").snapshot() == before
    _still_converges(cluster)


def test_register_timestamp_beyond_the_skew_bound_is_refused() -> None:
    cluster, mallory = _honest()
    before = cluster.memory("honest").snapshot()
    an_hour_ahead = HybridClock.bound(cluster.now + 3600)
    attack = LWWRegister(an_hour_ahead, MALLORY.peer_id, encode_value("mine for an hour"))
    events = cluster.inject(mallory.conn, mallory.seal(_own_batch([("goal", attack)])))
    assert _refusals(events) == ["clock-skew"]
    assert cluster.memory("honest").snapshot() == before
    _still_converges(cluster)


def test_map_timestamp_beyond_the_skew_bound_is_refused() -> None:
    cluster, mallory = _honest()
    own = Memory(MALLORY.peer_id, clock=lambda: cluster.now + 3600)
    own.map("board").put("k", "mine for an hour")
    events = cluster.inject(mallory.conn, mallory.seal(_own_batch(own.take_deltas())))
    assert _refusals(events) == ["clock-skew"]
    _still_converges(cluster)


def test_timestamp_within_the_skew_bound_is_applied() -> None:
    cluster, mallory = _honest()
    own = Memory(MALLORY.peer_id, clock=lambda: cluster.now + 60)
    own.register("goal").assign("a minute ahead")
    events = cluster.inject(mallory.conn, mallory.seal(_own_batch(own.take_deltas())))
    assert _refusals(events) == []
    assert cluster.memory("honest").register("goal").value == "a minute ahead"
    _still_converges(cluster)  # a later honest write still orders after it


@pytest.mark.parametrize("count", [2**64 - 1, MAX_COUNT + 1])
def test_counter_slot_at_the_wire_limit_is_refused(count: int) -> None:
    cluster, mallory = _honest()
    before = cluster.memory("honest").snapshot()
    attack = PNCounter(GCounter({MALLORY.peer_id: count}))
    events = cluster.inject(mallory.conn, mallory.seal(_own_batch([("budget", attack)])))
    assert _refusals(events) == ["number-out-of-range"]
    assert cluster.memory("honest").snapshot() == before
    _still_converges(cluster)


def test_batch_sequence_number_at_the_wire_limit_is_refused() -> None:
    cluster, mallory = _honest()
    own = Memory(MALLORY.peer_id)
    own.counter("done").increment(1)
    events = cluster.inject(mallory.conn, mallory.seal(_own_batch(own.take_deltas(), seq=2**64 - 1)))
    assert _refusals(events) == ["number-out-of-range"]
    _still_converges(cluster)


def test_rollback_over_the_largest_remote_increment_still_replicates() -> None:
    cluster, mallory = _honest()
    honest = cluster.memory("honest")
    saved = honest.checkpoint()
    huge = PNCounter(GCounter({MALLORY.peer_id: MAX_COUNT}))
    assert _refusals(cluster.inject(mallory.conn, mallory.seal(_own_batch([("budget", huge)])))) == []
    honest.rollback(saved)  # this replica's decrement slot reaches the bound, and still encodes
    cluster.node("honest").flush(cluster.now)
    cluster.node("honest").check_writable()
    assert cluster.run_until(lambda: cluster.memory("peer").pncounter("budget").value == 5, timeout=10)
    before = honest.snapshot()
    with pytest.raises(OutOfRangeError):
        honest.pncounter("budget").decrement(1)
    assert honest.snapshot() == before and not honest.has_pending_deltas()


def test_local_increment_past_the_bound_is_refused_before_anything_changes() -> None:
    memory = Memory("me")
    memory.counter("c").increment(MAX_COUNT)
    memory.take_deltas()
    with pytest.raises(OutOfRangeError):
        memory.counter("c").increment(1)
    with pytest.raises(OutOfRangeError):
        memory.pncounter("p").decrement(MAX_COUNT + 1)
    assert memory.counter("c").value == MAX_COUNT and not memory.has_pending_deltas()


def test_unencodable_local_write_never_escapes_flush() -> None:
    cluster, _ = _honest()
    honest, node = cluster.memory("honest"), cluster.node("honest")
    honest.register("goal").assign("fine")
    honest.counter("weird")
    honest._local("weird", GCounter({honest.replica_id: 2**64}))  # as a buggy custom type would
    node.flush(cluster.now)  # must not raise
    with pytest.raises(Exception, match="'weird'"):
        node.check_writable()
    node.check_writable()  # reported once
    assert cluster.run_until(lambda: cluster.memory("peer").register("goal").value == "fine", timeout=10)
    _still_converges(cluster)


def test_a_flush_of_only_unencodable_writes_leaves_no_gap_in_the_batch_numbers() -> None:
    cluster, _ = _honest()
    honest, node = cluster.memory("honest"), cluster.node("honest")
    honest.counter("weird")
    honest._local("weird", GCounter({honest.replica_id: 2**64}))  # as a buggy custom type would
    node.flush(cluster.now)  # nothing encodes: no batch, and no batch number taken
    with pytest.raises(Exception, match="'weird'"):
        node.check_writable()
    _still_converges(cluster)  # the next batch follows the last one sealed, so peers accept it


def test_a_batch_with_one_skewed_timestamp_applies_none_of_its_deltas() -> None:
    cluster, mallory = _honest()
    before = cluster.memory("honest").snapshot()
    own = Memory(MALLORY.peer_id, clock=lambda: cluster.now)
    own.counter("done").increment(1)
    own.set("facts").add("fine")
    skewed = LWWRegister(HybridClock.bound(cluster.now + 3600), MALLORY.peer_id, encode_value("ahead"))
    events = cluster.inject(mallory.conn, mallory.seal(_own_batch([*own.take_deltas(), ("goal", skewed)])))
    assert _refusals(events) == ["clock-skew"]
    assert cluster.memory("honest").snapshot() == before
