"""The test cluster itself: replays by seed, redials broken links, keeps cut links down."""

from __future__ import annotations

from crdtmem.protocol.events import PeerConnected, Refused
from crdtmem.protocol.messages import SeenDigest
from crdtmem.testing import Cluster, LinkFaults


def _trio(seed: int, faults: LinkFaults | None = None) -> Cluster:
    cluster = Cluster(seed=seed, faults=faults)
    for name in ("a", "b", "c"):
        cluster.add(name)
    cluster.connect("a", "b")
    cluster.connect("b", "c")
    return cluster


def _history(seed: int) -> list:
    cluster = _trio(seed, LinkFaults(loss=0.05, duplicate=0.1, reorder=0.1))
    for i in range(20):
        cluster.memory("abc"[i % 3]).counter("n").increment()
        cluster.run(0.1)
    cluster.run(3)
    return [cluster.now, cluster.delivered, *(cluster.events(name) for name in cluster.names)]


def test_the_same_seed_replays_exactly() -> None:
    assert _history(3) == _history(3)


def test_writes_reach_every_member_through_relays() -> None:
    cluster = _trio(1)
    cluster.memory("a").counter("n").increment(5)
    assert cluster.run_until(cluster.converged, timeout=5)
    assert cluster.memory("c").counter("n").value == 5
    assert cluster.now < 1  # woken by frames and deadlines, not by a polling step


def test_a_dropped_connection_is_redialed() -> None:
    cluster = _trio(2)
    cluster.run(1)
    cluster.drop("a", "b")
    assert cluster.links_up() == 1
    cluster.run(1)
    assert cluster.links_up() == 2
    assert sum(isinstance(e, PeerConnected) for e in cluster.events("a")) == 2


def test_a_cut_link_stays_down_until_healed() -> None:
    cluster = _trio(3)
    cluster.run(1)
    cluster.cut("a", "b")
    cluster.memory("a").set("facts").add("alone")
    cluster.run(5)
    assert cluster.links_up() == 1 and not cluster.converged()
    cluster.heal("a", "b")
    assert cluster.run_until(cluster.converged, timeout=5)
    assert cluster.links_up() == 2


def test_a_disconnected_link_is_not_redialed() -> None:
    cluster = _trio(4)
    cluster.run(1)
    cluster.disconnect("a", "b")
    cluster.run(5)
    assert cluster.links_up() == 1
    assert cluster.node("a").peers() == {}


def test_a_partition_cuts_only_links_between_groups() -> None:
    cluster = _trio(5)
    cluster.run(1)
    cluster.partition(["a"], ["b", "c"])
    cluster.run(1)
    assert cluster.links_up() == 1
    assert list(cluster.node("b").peers().values()) == [cluster.node("c").identity.peer_id]
    cluster.heal_all()
    cluster.run(3)
    assert cluster.links_up() == 2


def test_injected_frames_reach_the_node_as_if_they_arrived() -> None:
    cluster = _trio(6)
    cluster.run(1)
    session = cluster.open_raw("a", cluster.node("c").identity)  # a second connection, speaking as c
    answered = len(session.received)
    events = cluster.inject(session.conn, session.seal(SeenDigest(b"\x00" * 8)))
    assert not [e for e in events if isinstance(e, Refused)]
    assert len(session.received) > answered  # a answered the differing digest with its Sync
    events = cluster.inject(session.conn, [b"not a frame"])
    assert [e.reason for e in events if isinstance(e, Refused)] == ["malformed-frame"]
    assert session.closed
