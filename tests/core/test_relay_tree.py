"""The relay tree (``NodeConfig.eager_tree``): neighbours exchange their distance to the
smallest peer id (``TreeRoot``), fresh batches travel the resulting breadth-first tree, lazy
links get ``IHave`` and fetch what the tree did not bring, and the tree re-forms when a link
or the root goes."""

from __future__ import annotations

import pytest

from crdtmem.clocks import Dot
from crdtmem.codec import pack
from crdtmem.errors import DecodeError
from crdtmem.identity import Identity
from crdtmem.protocol.messages import (
    MAX_TREE_HOPS,
    MAX_WANTED,
    IHave,
    Sync,
    TreeRoot,
    decode_message,
    encode_message,
)
from crdtmem.protocol.node import NodeConfig
from crdtmem.protocol.relaytree import RelayTree
from crdtmem.testing import Cluster

from .test_reconcile_messages import _sent

BOB = Identity.from_private_bytes(bytes([5]) * 32)
NAMES = ("a", "b", "c", "d", "e")


def _mesh(eager_tree: bool, seed: int = 7) -> Cluster:
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


def _tree_links(cluster: Cluster) -> set[frozenset[str]]:
    """The eager links, as pairs of peer ids; each must be eager at both ends."""
    ends = {(cluster.node(n).identity.peer_id, peer) for n in cluster.names for peer in cluster.node(n).eager_peers()}
    assert all((b, a) in ends for a, b in ends)
    return {frozenset(end) for end in ends}


def _root(cluster: Cluster) -> str:
    return min(cluster.node(n).identity.peer_id for n in cluster.names)


def test_the_new_message_round_trips_and_malformed_ones_are_refused() -> None:
    for message in (TreeRoot("r1", 3, True), TreeRoot("r2", 0, False), IHave((Dot("r1", 3), Dot("r2", 1)))):
        assert decode_message(encode_message(message), max_size=1 << 20) == message
    too_many = IHave(tuple(Dot("r", i + 1) for i in range(MAX_WANTED + 1)))
    malformed = (
        encode_message(too_many), encode_message(IHave((Dot("r", 0),))), pack([7, [["r"]]]), pack([7, "r"]),
        pack([8, "r", MAX_TREE_HOPS, False]), pack([8, "r", -1, False]), pack([8, "r", 1, 1]), pack([8, "", 1, True]),
        pack([8, 5, 1, True]), pack([8, "r", 1]), pack([5]), pack([6]),  # 5 and 6 (prune, graft) are retired
    )
    for bad in malformed:
        with pytest.raises(DecodeError):
            decode_message(bad, max_size=1 << 20)


def test_the_smallest_id_becomes_the_root_and_each_peer_relays_through_its_nearest_neighbour() -> None:
    tree = RelayTree("m", hold_down=1.0)
    tree.link_up(1, "x")
    tree.link_up(2, "y")
    assert [advert for _, advert in tree.take_adverts()] == [TreeRoot("m", 0, False)] * 2
    tree.heard(1, TreeRoot("b", 3, False), 0.0)
    tree.heard(2, TreeRoot("b", 1, False), 0.0)
    assert (tree.root, tree.hops, tree.parent) == ("b", 2, 2)
    assert tree.take_adverts()[-2:] == [(1, TreeRoot("b", 2, False)), (2, TreeRoot("b", 2, True))]
    assert tree.eager(2) and not tree.eager(1)
    tree.heard(1, TreeRoot("m", 1, True), 0.0)  # it chose us: a child is eager, and never our parent
    assert tree.eager(1) and tree.parent == 2
    tree.heard(2, TreeRoot("b", 1, False), 0.0)  # nothing changed: nothing to tell
    assert tree.take_adverts() == [] and tree.parent_changes == 2  # none, then 1, then 2


def test_a_lost_parent_is_replaced_by_a_nearer_neighbour_only() -> None:
    tree = RelayTree("m", hold_down=1.0)
    for conn, peer in ((1, "x"), (2, "y"), (3, "z")):
        tree.link_up(conn, peer)
    tree.heard(1, TreeRoot("a", 1, False), 0.0)
    tree.heard(2, TreeRoot("a", 1, False), 0.0)
    tree.heard(3, TreeRoot("a", 2, False), 0.0)
    assert (tree.root, tree.hops, tree.parent) == ("a", 2, 1)
    tree.link_down(1, 0.1)
    assert (tree.root, tree.hops, tree.parent, tree.next_expiry()) == ("a", 2, 2, None)
    tree.heard(2, TreeRoot("a", 3, False), 0.2)  # y's way got longer: z is not nearer than we were either
    assert (tree.root, tree.hops, tree.parent, tree.next_expiry()) == ("m", 0, None, 1.2)


def test_a_root_that_left_is_held_down_instead_of_counted_up_and_taken_back_while_advertised() -> None:
    tree = RelayTree("m", hold_down=1.0)
    tree.link_up(1, "x")
    tree.link_up(2, "y")
    tree.heard(1, TreeRoot("a", 1, False), 0.0)
    tree.heard(2, TreeRoot("a", 4, False), 0.0)
    tree.link_down(1, 0.5)  # y is farther than we were: its way to "a" may run through us
    assert (tree.root, tree.hops, tree.parent, tree.next_expiry()) == ("m", 0, None, 1.5)
    tree.heard(2, TreeRoot("a", 5, False), 0.6)  # a stale echo, ignored while "a" is held down
    assert tree.root == "m"
    tree.expire(1.0)
    assert tree.root == "m"  # not over yet
    tree.expire(1.5)
    assert (tree.root, tree.hops, tree.parent, tree.next_expiry()) == ("a", 6, 2, None)  # y still has a way
    tree.link_down(2, 2.0)
    tree.link_up(3, "z")
    tree.heard(3, TreeRoot("b", 0, False), 2.0)
    assert (tree.root, tree.hops, tree.parent) == ("b", 1, 3)


def test_a_mesh_relays_along_a_spanning_tree_rooted_at_the_smallest_id() -> None:
    cluster = _mesh(eager_tree=True)
    _write_everywhere(cluster, 10)
    links = _tree_links(cluster)
    assert len(links) == len(NAMES) - 1 and set().union(*links) == {cluster.node(n).identity.peer_id for n in NAMES}
    assert all(_root(cluster) in link for link in links)  # a full mesh: everyone's parent is the root
    assert {cluster.memory(name).counter("n").value for name in NAMES} == {10}
    assert sum(cluster.node(n).stats.tree_parent_changes for n in NAMES) == len(NAMES) - 1


def test_the_tree_brings_fewer_duplicates_than_random_relays() -> None:
    duplicates = {}
    for eager_tree in (False, True):
        cluster = _mesh(eager_tree)
        _write_everywhere(cluster, 12)
        duplicates[eager_tree] = sum(cluster.node(name).stats.duplicate_batches for name in NAMES)
    assert duplicates[True] < duplicates[False]


def test_when_the_root_goes_the_tree_reforms_and_nothing_is_lost() -> None:
    cluster = _mesh(eager_tree=True)
    _write_everywhere(cluster, 5)
    root = next(n for n in NAMES if cluster.node(n).identity.peer_id == _root(cluster))
    rest = [n for n in NAMES if n != root]
    for name in rest:
        cluster.cut(root, name)
    cluster.memory(rest[0]).counter("n").increment()
    assert cluster.run_until(lambda: {cluster.memory(n).counter("n").value for n in rest} == {6}, timeout=5)
    cluster.run(1.0)  # the last advertisements arrive
    links = {link for link in _tree_links(cluster) if not link & {cluster.node(root).identity.peer_id}}
    assert len(links) == len(rest) - 1  # a spanning tree of the others, rooted at the next smallest id
    for name in rest:
        cluster.heal(root, name)
    assert cluster.run_until(cluster.converged, timeout=10)


def test_an_announced_batch_the_tree_does_not_bring_is_asked_for_after_the_graft_timeout() -> None:
    cluster = Cluster(seed=31, config=NodeConfig(eager_tree=True, graft_timeout=0.1))
    cluster.add("alice")
    cluster.keyring.add(BOB)
    raw = cluster.open_raw("alice", BOB)
    assert cluster.node("alice").eager_peers() == set()  # BOB has not said where it stands: a lazy link
    sent = len(_sent(raw, 0))
    cluster.inject(raw.conn, raw.seal(IHave((Dot(BOB.peer_id, 1),))))
    cluster.run(0.05)
    assert _sent(raw, sent) == []  # still waiting for the tree to bring it
    assert cluster.node("alice").stats.announced_fetched == 0
    cluster.run(0.1)
    assert _sent(raw, sent) == [Sync(cluster.node("alice").seen, reply=True)]
    assert cluster.node("alice").stats.announced_fetched == 1


def test_a_neighbour_that_names_this_peer_its_parent_gets_fresh_batches() -> None:
    cluster = Cluster(seed=31, config=NodeConfig(eager_tree=True))
    cluster.add("alice")
    cluster.keyring.add(BOB)
    raw = cluster.open_raw("alice", BOB)
    cluster.inject(raw.conn, raw.seal(TreeRoot(cluster.node("alice").identity.peer_id, 1, True)))
    assert cluster.node("alice").eager_peers() == {BOB.peer_id}


def test_a_root_that_is_not_a_member_is_not_taken() -> None:
    cluster = Cluster(seed=31, config=NodeConfig(eager_tree=True))
    cluster.add("alice")
    cluster.keyring.add(BOB)
    raw = cluster.open_raw("alice", BOB)
    cluster.inject(raw.conn, raw.seal(TreeRoot("0000000000000000", 0, False)))  # smaller than any key id
    assert cluster.node("alice").eager_peers() == set()
    assert BOB.peer_id < cluster.node("alice").identity.peer_id
    cluster.inject(raw.conn, raw.seal(TreeRoot(BOB.peer_id, 0, False)))  # a member: taken
    assert cluster.node("alice").eager_peers() == {BOB.peer_id}


RING = tuple(f"r{i}" for i in range(8))


def _ring() -> Cluster:
    """Eight peers in a ring: the tree is the ring less one link, across from the root."""
    cluster = Cluster(seed=11, config=NodeConfig(eager_tree=True))
    for name in RING:
        cluster.add(name)
    for i, name in enumerate(RING):
        cluster.connect(name, RING[(i + 1) % len(RING)])
    cluster.run(1.0)  # the advertisements settle
    return cluster


def _far_end(cluster: Cluster) -> tuple[str, str, str]:
    """The peer farthest from the root, its parent and the neighbour it has a lazy link to."""
    far = max(RING, key=lambda name: cluster.node(name)._tree.hops)
    i = RING.index(far)
    ids = {cluster.node(name).identity.peer_id: name for name in RING}
    (parent,) = {ids[p] for p in cluster.node(far).eager_peers()}
    (lazy,) = {RING[i - 1], RING[(i + 1) % len(RING)]} - {parent}
    return far, parent, lazy


def test_in_a_full_mesh_the_tree_takes_no_shortcut_and_brings_no_duplicate() -> None:
    cluster = _mesh(eager_tree=True)
    cluster.run(1.0)  # the advertisements settle (until then links not yet placed get batches directly)
    _write_everywhere(cluster, 12)
    assert sum(cluster.node(name).stats.duplicate_batches for name in NAMES) == 0


def test_an_own_batch_goes_straight_to_a_lazy_neighbour_the_tree_reaches_through_the_root() -> None:
    cluster = _ring()
    far, _, lazy = _far_end(cluster)
    assert cluster.node(far)._tree.hops == len(RING) // 2  # the tree's way to ``lazy`` is 7 links
    cluster.memory(far).counter("n").increment()
    cluster.run(0.015)  # one link's latency (10 ms) and a half
    assert cluster.memory(lazy).counter("n").value == 1


def test_a_batch_straight_from_its_author_takes_a_shortcut_at_its_second_hop() -> None:
    cluster = _ring()
    far, parent, lazy = _far_end(cluster)
    cluster.memory(parent).counter("n").increment()  # to ``far`` over the tree, then on to ``lazy``
    cluster.run(0.025)  # two links (the tree: six)
    assert cluster.memory(lazy).counter("n").value == 1
    assert cluster.run_until(cluster.converged, timeout=5)
    assert sum(cluster.node(name).stats.duplicate_batches for name in RING) <= 2


def test_a_write_right_after_connecting_goes_out_before_the_tree_is_known() -> None:
    cluster = Cluster(seed=3, config=NodeConfig(eager_tree=True))
    cluster.add("a")
    cluster.add("b")
    cluster.connect("a", "b")
    assert cluster.run_until(lambda: bool(cluster.node("a").peers()), timeout=5)
    assert cluster.node("a").eager_peers() == set()  # b has not said where it stands yet
    cluster.memory("a").counter("n").increment()
    cluster.run(0.015)  # a link's latency (10 ms), not the graft timeout (100 ms)
    assert cluster.memory("b").counter("n").value == 1
