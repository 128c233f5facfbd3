"""Local writes go out at once when the link is idle and coalesce while a batch is unacknowledged."""

from __future__ import annotations

import pycrdt

from crdtmem.clocks import CausalContext
from crdtmem.identity import Identity
from crdtmem.protocol.messages import Sync
from crdtmem.protocol.node import NodeConfig
from crdtmem.testing import Cluster, LinkFaults

LATENCY = 0.01


def _pair(config: NodeConfig | None = None) -> Cluster:
    cluster = Cluster(seed=3, config=config, faults=LinkFaults(latency=LATENCY))
    cluster.add("a")
    cluster.add("b")
    cluster.connect("a", "b")
    assert cluster.run_until(lambda: cluster.node("a").peers() and cluster.synced(), timeout=5)
    return cluster


def _type(cluster: Cluster, name: str, text: str) -> None:
    doc = cluster.memory(name).doc("notes")
    content = doc.get("text", type=pycrdt.Text)
    for char in text:
        with doc.transaction():
            content += char


def test_a_write_on_an_idle_link_is_sent_at_once() -> None:
    cluster = _pair()
    cluster.memory("a").counter("n").increment()
    assert cluster.node("a").next_deadline() <= cluster.now
    cluster.run(LATENCY)
    assert cluster.memory("b").counter("n").value == 1


def test_writes_made_while_a_batch_is_in_flight_join_one_batch() -> None:
    cluster = _pair()
    a = cluster.node("a")
    start = cluster.now
    _type(cluster, "a", "x")
    cluster.run(0)  # batch 1 leaves; b has not acknowledged it yet
    before = a.stats.batches_created
    _type(cluster, "a", "hello")
    cluster.run(0)
    assert a.stats.batches_created == before  # held while batch 1 is unacknowledged
    assert cluster.run_until(lambda: cluster.memory("b").doc("notes").get("text", type=pycrdt.Text).to_py() == "xhello",
                             timeout=1)
    assert a.stats.batches_created == before + 1  # the five edits went out as one batch
    assert cluster.now - start < 5 * LATENCY  # after b's acknowledgement, not after max_flush_delay


def test_held_writes_go_out_after_max_flush_delay_when_no_ack_comes() -> None:
    cluster = Cluster(seed=4, config=NodeConfig(max_flush_delay=0.05))
    a = cluster.add("a")
    silent = Identity.from_private_bytes(bytes(range(32)))
    cluster.keyring.add(silent)
    raw = cluster.open_raw("a", silent)  # a neighbour that never acknowledges anything
    cluster.inject(raw.conn, raw.seal(Sync(CausalContext())))
    assert a.peers()
    _type(cluster, "a", "x")
    cluster.run(0)
    start, before = cluster.now, a.stats.batches_created
    _type(cluster, "a", "y")
    cluster.run(0)  # the tick holds the write
    assert a.stats.batches_created == before and a.next_deadline() == start + 0.05
    cluster.run(0.05)
    assert a.stats.batches_created == before + 1


def test_a_flush_window_of_two_lets_a_second_batch_go_before_the_first_is_acknowledged() -> None:
    cluster = _pair(NodeConfig(flush_window=2))
    a = cluster.node("a")
    before = a.stats.batches_created
    _type(cluster, "a", "x")
    cluster.run(0)
    _type(cluster, "a", "y")
    cluster.run(0)
    assert a.stats.batches_created == before + 2
    _type(cluster, "a", "z")
    cluster.run(0)
    assert a.stats.batches_created == before + 2


def test_writes_held_tells_when_pending_writes_wait_for_an_acknowledgement() -> None:
    cluster = _pair()
    a = cluster.node("a")
    _type(cluster, "a", "x")
    cluster.run(0)  # batch 1 leaves: nothing pending, nothing held
    assert not a.writes_held
    _type(cluster, "a", "y")
    assert not a.writes_held  # not until a tick finds the write held back
    cluster.run(0)
    assert a.writes_held and a.memory.has_pending_deltas()
    assert cluster.run_until(lambda: not a.writes_held, timeout=1)  # b's acknowledgement released it
    assert cluster.run_until(lambda: cluster.memory("b").doc("notes").get("text", type=pycrdt.Text).to_py() == "xy",
                             timeout=1)


def _slow_neighbour(config: NodeConfig) -> tuple[Cluster, object]:
    """Node "a" with one neighbour played by the test, which acknowledges only when told."""
    cluster = Cluster(seed=4, config=config)
    cluster.add("a")
    slow = Identity.from_private_bytes(bytes(range(32)))
    cluster.keyring.add(slow)
    raw = cluster.open_raw("a", slow)
    cluster.inject(raw.conn, raw.seal(Sync(CausalContext())))
    return cluster, raw


def _acknowledged_after(cluster: Cluster, raw, delay: float) -> None:
    """"a" sends a batch; the test's neighbour acknowledges it ``delay`` seconds later."""
    _type(cluster, "a", "x")
    cluster.run(0)
    cluster.run(delay)
    cluster.inject(raw.conn, raw.seal(Sync(cluster.node("a").seen.copy(), reply=True)))


def _hold(cluster: Cluster) -> float:
    """"a" sends a batch at once, then holds the next write for its ack: how long that may wait."""
    a = cluster.node("a")
    _type(cluster, "a", "y")
    cluster.run(0)
    start, before = cluster.now, a.stats.batches_created
    _type(cluster, "a", "z")
    cluster.run(0)
    assert a.writes_held and a.stats.batches_created == before
    return a.next_deadline() - start


def test_held_writes_wait_a_few_measured_round_trips_for_a_late_ack() -> None:
    cluster, raw = _slow_neighbour(NodeConfig(max_flush_delay=0.05, ack_wait_rtts=4.0))
    _acknowledged_after(cluster, raw, 0.003)
    wait = _hold(cluster)
    assert abs(wait - 4 * 0.003) < 1e-9  # four round trips, not max_flush_delay
    before = cluster.node("a").stats.batches_created
    cluster.run(wait)
    assert cluster.node("a").stats.batches_created == before + 1  # sent without the ack


def test_the_round_trip_estimate_follows_the_fast_acks_not_a_stall() -> None:
    cluster, raw = _slow_neighbour(NodeConfig(max_flush_delay=0.05, ack_wait_rtts=4.0))
    for delay in (0.002, 0.040, 0.002):  # one stalled acknowledgement among fast ones
        _acknowledged_after(cluster, raw, delay)
    assert _hold(cluster) <= 4 * 0.002 + 1e-9


def test_without_ack_wait_rtts_held_writes_wait_max_flush_delay() -> None:
    cluster, raw = _slow_neighbour(NodeConfig(max_flush_delay=0.05, ack_wait_rtts=None))
    _acknowledged_after(cluster, raw, 0.003)
    assert abs(_hold(cluster) - 0.05) < 1e-9


def test_writes_waiting_for_a_neighbour_to_connect_are_not_held_for_an_ack() -> None:
    cluster = Cluster(seed=5, config=NodeConfig(max_flush_delay=0.05))
    a = cluster.add("a")
    _type(cluster, "a", "x")
    cluster.run(0)  # no one connected: the write coalesces for max_flush_delay
    assert a.memory.has_pending_deltas() and a.next_deadline() > cluster.now
    assert not a.writes_held  # each later write still asks for a tick (no ack will come to release it)


def test_a_full_batch_of_held_writes_goes_before_the_acknowledgement() -> None:
    cluster, _ = _slow_neighbour(NodeConfig(max_flush_delay=0.05, full_batch_writes=3, max_unacked_batches=2))
    a, counter = cluster.node("a"), cluster.memory("a").counter("n")
    counter.increment()
    cluster.run(0)  # batch 1 leaves at once; the neighbour never acknowledges it
    before = a.stats.batches_created
    counter.increment()
    counter.increment()
    cluster.run(0)
    assert a.writes_held and a.stats.batches_created == before  # two writes: not a full batch yet
    counter.increment()
    assert not a.writes_held  # three: the runtime wakes the timer for them
    assert a.next_deadline() <= cluster.now
    cluster.run(0)
    assert a.stats.batches_created == before + 1 and not a.memory.has_pending_deltas()


def test_full_batches_wait_once_max_unacked_batches_are_in_flight() -> None:
    cluster, raw = _slow_neighbour(NodeConfig(max_flush_delay=0.05, full_batch_writes=2, max_unacked_batches=2))
    a, counter = cluster.node("a"), cluster.memory("a").counter("n")
    counter.increment()
    cluster.run(0)
    counter.increment()
    counter.increment()
    cluster.run(0)  # batch 2, full, goes while batch 1 is unacknowledged
    before = a.stats.batches_created
    for _ in range(5):
        counter.increment()
    cluster.run(0)
    assert a.writes_held and a.stats.batches_created == before  # two in flight: even a full batch waits
    assert a.memory.pending_writes == 5
    cluster.inject(raw.conn, raw.seal(Sync(a.seen.copy(), reply=True)))  # the neighbour acknowledges both
    cluster.run(0)
    assert a.stats.batches_created == before + 1 and not a.memory.has_pending_deltas()


def test_without_full_batch_writes_held_writes_wait_for_the_acknowledgement() -> None:
    cluster, _ = _slow_neighbour(NodeConfig(max_flush_delay=0.05, full_batch_writes=None))
    a, counter = cluster.node("a"), cluster.memory("a").counter("n")
    counter.increment()
    cluster.run(0)
    before = a.stats.batches_created
    for _ in range(5000):
        counter.increment()
    cluster.run(0)
    assert a.writes_held and a.stats.batches_created == before


# -- bursts: an acknowledgement that finds a few writes held lets more of their burst join them ----------


def _burst_held(cluster: Cluster, held: str) -> float:
    """"a" sends a batch, then ``held`` is typed one character per millisecond while it is in
    flight; returns when the first held write was found held."""
    _type(cluster, "a", "x")
    cluster.run(0)  # batch 1 leaves
    since = cluster.now
    for char in held:
        _type(cluster, "a", char)
        cluster.run(0.001)
    assert cluster.node("a").writes_held
    return since


def _acknowledged(cluster: Cluster) -> None:
    """Run until "b"'s acknowledgement of "a"'s batch arrived, and "a"'s tick on it."""
    a = cluster.node("a")
    sent = a.seen.max(a.replica_id)
    assert cluster.run_until(lambda: a.lag() == {p: 0 for p in a.peers().values()}
                             and a.stats.batches_created == sent, timeout=1)
    cluster.run(0)


def test_writes_an_acknowledgement_releases_wait_for_more_of_their_burst() -> None:
    cluster = _pair(NodeConfig(burst_batch_writes=8))
    a = cluster.node("a")
    since = _burst_held(cluster, "ab")
    before = a.stats.batches_created
    _acknowledged(cluster)  # two writes held: fewer than 8
    acked = cluster.now
    assert a.stats.batches_created == before and a.writes_held
    waited = acked - since
    assert abs(a.next_deadline() - (acked + waited)) < 1e-9  # six more at the rate of two: as long again, at most
    _type(cluster, "a", "cdefg")
    assert a.writes_held  # seven: still waiting
    _type(cluster, "a", "h")
    assert not a.writes_held and a.next_deadline() <= cluster.now  # eight: the runtime wakes the timer for them
    cluster.run(0)
    assert a.stats.batches_created == before + 1 and not a.memory.has_pending_deltas()
    assert cluster.run_until(lambda: cluster.memory("b").doc("notes").get("text", type=pycrdt.Text).to_py() == "xabcdefgh",
                             timeout=1)


def test_a_burst_that_stops_goes_when_its_wait_runs_out() -> None:
    cluster = _pair(NodeConfig(burst_batch_writes=4))
    a = cluster.node("a")
    since = _burst_held(cluster, "abc")
    before = a.stats.batches_created
    _acknowledged(cluster)
    acked = cluster.now
    wait = (acked - since) / 3  # the one missing write at the rate of three
    assert abs(a.next_deadline() - (acked + wait)) < 1e-9
    cluster.run(wait * 0.99)
    assert a.stats.batches_created == before
    cluster.run(wait * 0.02)
    assert a.stats.batches_created == before + 1 and not a.memory.has_pending_deltas()


def test_a_single_held_write_goes_with_the_acknowledgement() -> None:
    cluster = _pair(NodeConfig(burst_batch_writes=8))
    a = cluster.node("a")
    _burst_held(cluster, "a")
    before = a.stats.batches_created
    _acknowledged(cluster)
    assert a.stats.batches_created == before + 1  # one write is no burst


def test_without_burst_batch_writes_held_writes_go_with_the_acknowledgement() -> None:
    cluster = _pair(NodeConfig(burst_batch_writes=None))
    a = cluster.node("a")
    _burst_held(cluster, "abc")
    before = a.stats.batches_created
    _acknowledged(cluster)
    assert a.stats.batches_created == before + 1


def test_a_burst_never_waits_past_the_bound_on_waiting_for_an_acknowledgement() -> None:
    cluster = _pair(NodeConfig(burst_batch_writes=8, max_flush_delay=0.03))
    a = cluster.node("a")
    since = _burst_held(cluster, "ab")
    _acknowledged(cluster)  # after 2 * LATENCY: as long again would end past max_flush_delay
    assert a.writes_held and abs(a.next_deadline() - (since + 0.03)) < 1e-9
