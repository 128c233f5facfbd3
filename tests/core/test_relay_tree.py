"""The relay tree (``NodeConfig.eager_tree``, Plumtree): links that bring only duplicates are
pruned to lazy, a lazy link's ``IHave`` fetches what the tree did not bring, and losing an
eager link grafts the others back."""

from __future__ import annotations

import pytest

from crdtmem.clocks import Dot
from crdtmem.codec import pack
from crdtmem.errors import DecodeError
from crdtmem.identity import Identity
from crdtmem.protocol.messages import MAX_WANTED, Graft, IHave, Prune, Sync, decode_message, encode_message
from crdtmem.protocol.node import NodeConfig
from crdtmem.testing import Cluster

from .test_reconcile_messages import _sent

BOB = Identity.from_private_bytes(bytes([5]) * 32)
NAMES = ("a", "b", "c", "d")


def _square_with_diagonals(eager_tree: bool, seed: int = 7) -> Cluster:
    cluster = Cluster(seed=seed, config=NodeConfig(eager_tree=eager_tree))
    for name in NAMES:
        cluster.add(name)
    for i, a in enumerate(NAMES):
        for b in NAMES[i + 1 :]:
            cluster.connect(a, b)
    return cluster


def _write_everywhere(cluster: Cluster, rounds: int) -> None:
    for i in range(rounds):
        cluster.memory(NAMES[i % len(NAMES)]).counter("n").increment()
        assert cluster.run_until(cluster.converged, timeout=5)


def _eager_links(cluster: Cluster, name: str) -> int:
    return sum(s.eager for s in cluster.node(name)._sessions.values() if s.ready)


def test_the_new_messages_round_trip_and_malformed_ones_are_refused() -> None:
    for message in (Prune(), Graft(), IHave((Dot("r1", 3), Dot("r2", 1)))):
        assert decode_message(encode_message(message), max_size=1 << 20) == message
    too_many = IHave(tuple(Dot("r", i + 1) for i in range(MAX_WANTED + 1)))
    for bad in (encode_message(too_many), encode_message(IHave((Dot("r", 0),))), pack([5, 1]), pack([7, [["r"]]]), pack([7, "r"])):
        with pytest.raises(DecodeError):
            decode_message(bad, max_size=1 << 20)


def test_duplicates_prune_a_full_mesh_to_a_tree_and_writes_still_reach_everyone() -> None:
    cluster = _square_with_diagonals(eager_tree=True)
    _write_everywhere(cluster, 12)
    eager = sum(_eager_links(cluster, name) for name in NAMES)
    assert eager < 12  # of 6 links seen from both ends, some are lazy now
    assert all(_eager_links(cluster, name) >= 1 for name in NAMES)
    assert sum(cluster.node(name).stats.prunes_sent for name in NAMES) >= (12 - eager) // 2
    assert cluster.node("a").stats.as_dict().get("prunes_sent", 0) == cluster.node("a").stats.prunes_sent
    assert {cluster.memory(name).counter("n").value for name in NAMES} == {12}


def test_the_tree_brings_fewer_duplicates_than_random_relays() -> None:
    duplicates = {}
    for eager_tree in (False, True):
        cluster = _square_with_diagonals(eager_tree)
        _write_everywhere(cluster, 12)
        duplicates[eager_tree] = sum(cluster.node(name).stats.duplicate_batches for name in NAMES)
    assert duplicates[True] < duplicates[False]


def test_losing_an_eager_link_grafts_the_lazy_ones_and_nothing_is_lost() -> None:
    cluster = _square_with_diagonals(eager_tree=True)
    _write_everywhere(cluster, 12)
    lazy_before = sum(not s.eager for s in cluster.node("a")._sessions.values())
    peer = next(s.peer_id for s in cluster.node("a")._sessions.values() if s.eager)
    cut = next(name for name in NAMES if cluster.node(name).identity.peer_id == peer)
    cluster.cut("a", cut)
    assert lazy_before and all(s.eager for s in cluster.node("a")._sessions.values())
    assert cluster.node("a").stats.grafts_sent >= lazy_before
    cluster.memory("a").counter("n").increment()
    assert cluster.run_until(cluster.converged, timeout=5)


def test_an_announced_batch_the_tree_does_not_bring_is_asked_for_after_the_graft_timeout() -> None:
    cluster = Cluster(seed=31, config=NodeConfig(eager_tree=True, graft_timeout=0.1))
    cluster.add("alice")
    cluster.keyring.add(BOB)
    raw = cluster.open_raw("alice", BOB)
    sent = len(_sent(raw, 0))
    cluster.inject(raw.conn, raw.seal(Prune()))
    cluster.inject(raw.conn, raw.seal(IHave((Dot(BOB.peer_id, 1),))))
    cluster.run(0.05)
    assert _sent(raw, sent) == []  # still waiting for the tree to bring it
    assert cluster.node("alice").stats.announced_fetched == 0
    cluster.run(0.1)
    assert _sent(raw, sent) == [Sync(cluster.node("alice").seen, reply=True)]
    assert cluster.node("alice").stats.announced_fetched == 1
