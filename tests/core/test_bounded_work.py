"""Bounded work: a trusted peer's numbers (dot ranges, context gaps, replica-id counts) cost an
honest replica no more than the bytes that carry them, now or on any later write."""

from __future__ import annotations

import gc
import time

from crdtmem import Memory, codec
from crdtmem.clocks import CausalContext, Dot
from crdtmem.crdt import ORSet
from crdtmem.identity import Identity
from crdtmem.limits import MAX_CONTEXT_REPLICAS
from crdtmem.protocol.batch import batch_hash, seal_batch
from crdtmem.protocol.events import Refused
from crdtmem.protocol.messages import Batches
from crdtmem.protocol.node import NodeConfig
from crdtmem.testing import Cluster, RawSession
from crdtmem.values import encode_value

MALLORY = Identity.from_private_bytes(bytes(range(32)))


def _honest(config: NodeConfig | None = None) -> tuple[Cluster, RawSession]:
    cluster = Cluster(seed=11, config=config)
    cluster.add("honest")
    for i in range(50):
        cluster.memory("honest").set("facts").add(f"fact-{i}")
    cluster.run(1)
    cluster.keyring.add(MALLORY)
    return cluster, cluster.open_raw("honest", MALLORY)


def _refusals(events) -> list[str]:
    return [e.reason for e in events if isinstance(e, Refused)]


_LAST: dict[int, bytes] = {}  # per cluster: MALLORY's latest batch, which her next one depends on


def _inject(cluster: Cluster, mallory: RawSession, seq: int, delta: ORSet) -> list[str]:
    previous = _LAST.get(id(cluster)) if seq > 1 else None
    wire = seal_batch(MALLORY, seq, [("facts", delta)], (batch_hash(previous),) if previous else ()).wire
    _LAST[id(cluster)] = wire
    return _refusals(cluster.inject(mallory.conn, mallory.seal(Batches((wire,)))))


def _claiming(dots: CausalContext, element: str | None = None, dot: Dot | None = None) -> ORSet:
    """An OR-Set delta of MALLORY's own whose context is ``dots``."""
    delta = ORSet()
    if element is not None:
        delta.kernel.entries[encode_value(element)] = {dot: None}
    delta.kernel.ctx = dots
    return delta


def _seconds_per_add(memory: Memory, n: int = 400) -> float:
    """CPU seconds per add, without the cyclic GC (whose pauses grow with the whole suite's heap)."""
    facts = memory.set("facts")
    gc.disable()
    try:
        start = time.process_time()
        for i in range(n):
            facts.add(f"probe-{i}-{start}")
        memory.take_deltas()
        return (time.process_time() - start) / n
    finally:
        gc.enable()


def test_a_batch_claiming_a_trillion_of_its_own_dots_reaches_a_late_peer_at_once() -> None:
    cluster, mallory = _honest()
    trillion = 10**12
    claim = _claiming(CausalContext({MALLORY.peer_id: trillion}), "mine", Dot(MALLORY.peer_id, trillion))
    assert len(codec.encode_state(claim)) < 100
    assert _inject(cluster, mallory, 1, claim) == []
    cluster.memory("honest").set("facts").add("newer")
    cluster.run(1)
    cluster.add("late")  # a peer that lacks it all and must reconcile
    cluster.connect("late", "honest")
    start = time.process_time()
    assert cluster.run_until(cluster.converged, timeout=30)
    assert time.process_time() - start < 5
    assert "mine" in cluster.memory("late").set("facts")


def test_gapped_dots_left_in_a_context_do_not_slow_later_adds() -> None:
    cluster, mallory = _honest()
    honest = cluster.memory("honest")
    _seconds_per_add(honest)  # warm up
    clean = _seconds_per_add(honest)
    gaps = CausalContext({}, {Dot(MALLORY.peer_id, 2 * i) for i in range(1, 20_001)})
    assert _inject(cluster, mallory, 1, _claiming(gaps, "gapped", Dot(MALLORY.peer_id, 40_000))) == []
    after = _seconds_per_add(honest)
    assert after < 10 * clean + 20e-6, (clean, after)


def test_made_up_replica_ids_are_refused_in_time_linear_in_the_batch() -> None:
    cluster, mallory = _honest()
    gaps = CausalContext({}, {Dot(MALLORY.peer_id, 2 * i) for i in range(1, 5_001)})
    assert _inject(cluster, mallory, 1, _claiming(gaps, "gapped", Dot(MALLORY.peer_id, 10_000))) == []
    made_up = CausalContext({f"made-up-{i}": 1 for i in range(5_000)})
    clean = Memory("clean")
    clean.set("facts").add("x")
    start = time.process_time()
    clean.apply_delta("facts", _claiming(made_up.copy()), MALLORY.peer_id)
    baseline = time.process_time() - start
    start = time.process_time()
    # Dots of replicas no batch ever created are not observed: refused, in time linear in the batch.
    assert _inject(cluster, mallory, 2, _claiming(made_up)) == ["unobserved-remove"]
    assert time.process_time() - start < 20 * baseline + 0.2, baseline


def test_a_small_batch_after_many_gapped_dots_joins_in_constant_time() -> None:
    cluster, mallory = _honest()
    gaps = CausalContext({}, {Dot(MALLORY.peer_id, 2 * i) for i in range(2, 20_001)})
    assert _inject(cluster, mallory, 1, _claiming(gaps, "gapped", Dot(MALLORY.peer_id, 40_000))) == []
    honest = cluster.memory("honest")
    start = time.process_time()
    for seq in range(2, 202):  # each fills one gap at the bottom
        delta = _claiming(CausalContext({MALLORY.peer_id: 2 * seq - 1}))
        honest.apply_delta("facts", delta, MALLORY.peer_id)
    per_join = (time.process_time() - start) / 200
    assert per_join < 1e-3, per_join


def test_a_context_listing_more_replica_ids_than_the_bound_is_refused() -> None:
    cluster, mallory = _honest()
    before = cluster.memory("honest").snapshot()
    crowd = CausalContext({f"r{i}": 1 for i in range(MAX_CONTEXT_REPLICAS + 1)})
    assert _inject(cluster, mallory, 1, _claiming(crowd)) == ["oversized-context"]
    assert cluster.memory("honest").snapshot() == before


def test_a_sync_repeated_on_purpose_costs_what_was_logged_since_not_the_log(monkeypatch) -> None:
    """A trusted peer may send ``Sync``s as fast as its budget allows (an empty one asks for the
    whole log each time): a connection's first is answered from the whole log, every later one
    from what was logged since the last, whatever it claims."""
    from crdtmem.protocol.deltalog import DeltaLog
    from crdtmem.protocol.events import SendKind
    from crdtmem.protocol.messages import Sync

    cluster, mallory = _honest()
    honest = cluster.node("honest")
    walks, tails = [], []
    missing, since = DeltaLog.missing, DeltaLog.since
    monkeypatch.setattr(DeltaLog, "missing", lambda self, *a, **k: walks.append(1) or missing(self, *a, **k))
    monkeypatch.setattr(DeltaLog, "since", lambda self, p: tails.append(since(self, p)) or tails[-1])
    def empty() -> list[bytes]:
        return mallory.seal(Sync(CausalContext(), reply=True))

    cluster.inject(mallory.conn, empty())
    caught_up = honest.stats.messages_sent_by_kind.get(SendKind.CATCH_UP, 0)
    assert walks == [1] and caught_up, "the first one is answered with the whole log"
    for _ in range(200):
        cluster.inject(mallory.conn, empty())
    assert walks == [1] and tails == [[]] * 200, "repeats walk nothing"
    for i in range(1, 51):  # each claiming something else
        cluster.inject(mallory.conn, mallory.seal(Sync(CausalContext({"made-up.replica": i}), reply=True)))
    assert walks == [1] and tails[200:] == [[]] * 50
    assert honest.stats.messages_sent_by_kind.get(SendKind.CATCH_UP, 0) == caught_up
    cluster.memory("honest").set("facts").add("new")
    cluster.run(0.1)
    cluster.inject(mallory.conn, empty())
    assert walks == [1] and [dot.replica for dot, _ in tails[-1]] == [honest.replica_id]
    assert tails[-1][0][0] in cluster.node("honest")._sessions[mallory.conn].in_flight, "and it is sent to her"
