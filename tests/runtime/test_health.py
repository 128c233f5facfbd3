"""Health: counters follow events and change notifications; the snapshot is made when asked."""

from __future__ import annotations

import random
import time

import pytest

from crdtmem import Memory
from crdtmem.errors import RefusalReason
from crdtmem.protocol.events import Refused, TypeClash
from crdtmem.protocol.node import Node
from crdtmem.protocol.stats import NodeStats
from crdtmem.runtime.health import Health

from ..inprocess import team


def _snapshot(health: Health, node: Node | None = None, now: float = 0.0) -> dict:
    return health.snapshot(node, now=now, url=None)


def _conflict(mine: Memory, theirs: Memory, name: str) -> None:
    """Two concurrent assignments to ``name``; ``theirs`` reaches ``mine`` as a remote change."""
    theirs.mvregister(name).assign(f"{theirs.replica_id} says")
    mine.mvregister(name).assign(f"{mine.replica_id} says")
    mine.apply_delta(name, theirs.state(name), theirs.replica_id)


def test_siblings_follow_changes_without_rescanning_the_memory(monkeypatch) -> None:
    _, _, (mine, theirs) = team(2)
    health = Health(mine, mine.replica_id, conflict_window=1.0)
    health.watch()
    monkeypatch.setattr(mine, "names", lambda: pytest.fail("the snapshot rescanned the memory"))
    _conflict(mine, theirs, "plan")
    _conflict(mine, theirs, "owner")
    assert _snapshot(health)["conflicts"]["mv_register_siblings"] == 2
    mine.mvregister("plan").assign("settled")  # a local overwrite resolves the conflict
    assert _snapshot(health)["conflicts"]["mv_register_siblings"] == 1


def test_siblings_already_in_the_memory_are_counted_when_watching_starts() -> None:
    _, _, (mine, theirs) = team(2)
    _conflict(mine, theirs, "plan")
    health = Health(mine, mine.replica_id, conflict_window=1.0)
    health.watch()
    assert _snapshot(health)["conflicts"]["mv_register_siblings"] == 1


def test_register_writes_by_two_replicas_close_in_time_count_as_a_likely_conflict() -> None:
    now = [100.0]
    mine, theirs, third = (Memory(name, clock=lambda: now[0]) for name in ("mine", "theirs", "third"))
    health = Health(mine, "mine", conflict_window=1.0)
    health.watch()

    def write(writer: Memory, at: float) -> None:
        now[0] = at
        writer.register("goal").assign(f"{writer.replica_id} at {at}")
        mine.apply_delta("goal", writer.state("goal"), writer.replica_id)

    write(theirs, 100.0)
    write(theirs, 100.2)  # one writer overwriting itself: no conflict
    assert _snapshot(health)["conflicts"]["concurrent_register_writes"] == 0
    write(third, 100.5)  # another writer, 0.3 s later
    assert _snapshot(health)["conflicts"]["concurrent_register_writes"] == 1
    write(theirs, 105.0)  # another writer, but 4.5 s later
    assert _snapshot(health)["conflicts"]["concurrent_register_writes"] == 1


def test_changes_after_unwatch_are_not_followed() -> None:
    _, _, (mine, theirs) = team(2)
    health = Health(mine, mine.replica_id, conflict_window=1.0)
    health.watch()
    health.unwatch()
    _conflict(mine, theirs, "plan")
    assert _snapshot(health)["conflicts"]["mv_register_siblings"] == 0


def test_refusals_and_runtime_counters_show_in_the_snapshot() -> None:
    _, _, (mine,) = team(1)
    health = Health(mine, mine.replica_id, conflict_window=1.0)
    health.record(Refused("in-1", RefusalReason.BAD_TAG, "frame MAC does not verify"))
    health.refused("too-many-connections")
    health.refused("too-many-connections")
    health.count("dial_failures")
    health.count("throttled_seconds", 0.25)
    health.count("throttled_seconds", 0.5)
    m = _snapshot(health)
    assert m["refusals"] == {"bad-tag": 1, "too-many-connections": 2}
    assert m["dial_failures"] == 1 and m["throttled_seconds"] == 0.75


def test_the_snapshot_keys_are_the_peer_metrics_keys() -> None:
    ids, keyring, (mine,) = team(1)
    node = Node(mine, ids[0], keyring, rng=random.Random(1))
    health = Health(mine, mine.replica_id, conflict_window=1.0)
    assert list(health.snapshot(node, now=time.monotonic(), url="ws://h:1")) == [
        "peer_id", "url", "connected_peers", "peers", "deltas_sent", "deltas_received", "bytes_sent",
        "bytes_received", "anti_entropy_sessions", "lag", "drift_seconds", "synced",
        "refusals", "refused_by_peers", "conflicts", "dial_failures", "throttled_seconds", "replica_id",
        "store", "stats",
    ]


def test_node_counters_map_onto_the_metrics_keys() -> None:
    _, _, (mine,) = team(1)
    health = Health(mine, mine.replica_id, conflict_window=1.0)
    node = _NodeQueries()
    node.stats = NodeStats(batches_created=3, batches_applied=5, bytes_sent=700, bytes_received=900,
                           anti_entropy_sessions=2,
                           refusals={RefusalReason.BAD_BATCH_SIGNATURE: 2})
    health.refused("too-many-connections")
    m = _snapshot(health, node)
    assert (m["deltas_sent"], m["deltas_received"], m["bytes_sent"], m["bytes_received"]) == (3, 5, 700, 900)
    assert m["anti_entropy_sessions"] == 2
    assert m["refusals"] == {str(RefusalReason.BAD_BATCH_SIGNATURE): 2, "too-many-connections": 1}
    assert m["stats"] == node.stats.as_dict()


class _NodeQueries:
    """The node's read-only queries a snapshot makes, with sync states a test sets."""

    def __init__(self) -> None:
        self.stats = NodeStats()
        self.in_sync: dict[str, bool] = {}

    def synced_with(self) -> dict[str, bool]:
        return dict(self.in_sync)

    def synced(self) -> bool:
        return all(self.in_sync.values())

    def peers(self) -> dict[str, str]:
        return {f"conn-{p}": p for p in self.in_sync}

    def lag(self) -> dict[str, int]:
        return {p: 0 for p in self.in_sync}


def test_drift_is_the_time_since_a_peer_was_last_seen_in_sync() -> None:
    _, _, (mine,) = team(1)
    health = Health(mine, mine.replica_id, conflict_window=1.0)
    node = _NodeQueries()
    node.in_sync = {"b": True, "c": False}
    health.sample_sync(node.synced_with(), now=10.0)
    node.in_sync = {"b": False, "c": False}
    health.sample_sync(node.synced_with(), now=12.0)
    assert _snapshot(health, node, now=13.5)["drift_seconds"] == {"b": 3.5, "c": 3.5}
    node.in_sync = {"b": True, "c": False}
    assert _snapshot(health, node, now=14.0)["drift_seconds"] == {"b": 0.0, "c": 4.0}


def test_type_clashes_are_counted_as_conflicts() -> None:
    _, _, (mine,) = team(1)
    health = Health(mine, mine.replica_id, conflict_window=1.0)
    assert _snapshot(health)["conflicts"]["type_clashes"] == 0
    health.record(TypeClash("status", ("lwwregister", "ormap")))
    assert _snapshot(health)["conflicts"]["type_clashes"] == 1
