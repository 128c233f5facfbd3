"""``RelayTree``: which links relay fresh batches, as one spanning tree rooted at the smallest peer id.

Plumtree (Leitão et al., 2007) shapes its tree from duplicates: a link that brings a batch
already held is pruned. With every peer writing, batches of different authors cross the tree
at once, the prunes cut it, repairs graft cycles back, and the tree that survives is deep
(its eccentricity: about 10 links at 100 peers, 24 at 1,000, on random 6-regular links). This tree is built
from distances instead, as a spanning-tree protocol does: every peer tells its neighbours
``TreeRoot(root, hops, parent)`` — the smallest peer id it knows of, its distance to it in
links, and whether the neighbour is its parent. A peer's parent is the neighbour with the
smallest ``(root, hops + 1, peer id)``; its eager links are its parent and the neighbours
that named it their parent. The result is a breadth-first tree from the root (at most
``2 x`` the root's eccentricity between any two peers), stable while the links are, with no
cycle to bring duplicates. Links to other neighbours stay lazy (``IHave``), except for a
batch's first two hops: a path through the tree runs up to a common ancestor and down
again (7 links for the median author at 100 peers on random 6-regular links, against 4 for
the mesh), so the :class:`~crdtmem.protocol.node.Node` sends a fresh batch over a lazy link
too where the two ends' hops to the root (:meth:`RelayTree.hops_of`) add up to a detour.

Losing the way to the root must not count to infinity (stale distances bouncing around a
loop, each adding a hop): a peer only takes a neighbour as its way to its current root if that
neighbour is nearer to it than this peer has ever been since adopting that root (the
*feasibility condition* of loop-free distance-vector routing, as in EIGRP and Babel), so no
neighbour whose way runs through this peer is ever chosen. A peer left with no such neighbour
gives the root up: for ``hold_down`` seconds it takes no way to that root from anyone; its
new advertisement makes its children give the root up in turn, and the part of the tree that
lost its way forms its own tree meanwhile (rooted at its smallest id). After the hold-down the root is taken back from any
neighbour that still advertises it (a root that left is then advertised by no one). Meanwhile
batches still arrive through ``IHave`` and gossip.

A neighbour's advertisement is its unsigned word, like a ``Sync``. A root that is not a member
in good standing is not taken (so no one can invent a smaller id), but a lying member can
still claim to be one link from the root, become its neighbours' parent and then not relay:
that delays batches by the ``IHave`` repair (``graft_timeout``) and never loses one.

Usage (the :class:`~crdtmem.protocol.node.Node` drives it; everything here is pure state)::

    tree = RelayTree(own_id, hold_down=1.0)
    tree.link_up(conn, peer_id)                 # a session became ready
    tree.heard(conn, advert, now)               # its TreeRoot arrived
    tree.link_down(conn, now)                   # its connection closed
    tree.expire(now)                            # at tree.next_expiry()
    for conn, advert in tree.take_adverts():    # after each call: what to tell whom
        ...
    tree.eager(conn)                            # relay fresh batches over this link?
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from .messages import MAX_TREE_HOPS, TreeRoot

__all__ = ["RelayTree"]


@dataclass
class _Link:
    peer_id: str
    root: str | None = None  # None until its first advertisement
    hops: int = 0
    child: bool = False  # it named us its parent


class RelayTree:
    """A peer's place in the relay tree (see the module docstring).

    Args:
        own_id: this peer's id (its key id, the same across restarts), a candidate root.
        hold_down: seconds a root given up is not taken back (``NodeConfig.tree_hold_down``).
    """

    def __init__(self, own_id: str, *, hold_down: float) -> None:
        self.own_id = own_id
        self.hold_down = hold_down
        self.root = own_id
        self.hops = 0
        self.parent: Hashable | None = None
        self._feasible = 0  # the fewest hops to ``root`` since adopting it
        self._held: dict[str, float] = {}  # roots given up, until when
        self.parent_changes = 0
        """How often the parent changed: how much the tree churns."""
        self._links: dict[Hashable, _Link] = {}
        self._adverts: list[tuple[Hashable, TreeRoot]] = []

    def link_up(self, conn: Hashable, peer_id: str) -> None:
        """Call when a session to ``peer_id`` is ready: it is told where this peer stands."""
        self._links[conn] = _Link(peer_id)
        self._adverts.append((conn, self._advert(conn)))

    def heard(self, conn: Hashable, advert: TreeRoot, now: float, *, member_root: bool = True) -> None:
        """Call with a neighbour's ``TreeRoot``; ignored for a link not (or no longer) up.

        Args:
            member_root: whether ``advert.root`` is a member in good standing; if not, no way
                to a root is taken through this neighbour (it may still name us its parent).
        """
        link = self._links.get(conn)
        if link is None:
            return
        link.root, link.hops, link.child = (advert.root if member_root else None), advert.hops, advert.parent
        self._choose(now)

    def link_down(self, conn: Hashable, now: float) -> None:
        """Call when a session closed; a lost parent is replaced by a feasible neighbour, if any."""
        if self._links.pop(conn, None) is not None:
            self._choose(now)

    def next_expiry(self) -> float | None:
        """When a held-down root may be taken back (call :meth:`expire` then); None: none is held."""
        return min(self._held.values(), default=None)

    def expire(self, now: float) -> None:
        """Call at :meth:`next_expiry`: end the hold-downs that are over and choose again."""
        if any(until <= now for until in self._held.values()):
            self._choose(now)

    def eager(self, conn: Hashable) -> bool:
        """Whether fresh batches go over this link: it leads to our parent or to a child."""
        link = self._links.get(conn)
        return link is not None and (conn == self.parent or link.child)

    def hops_of(self, conn: Hashable | None) -> int | None:
        """This peer's hops to its root (``conn`` None) or a neighbour's, as it advertised them;
        None for a neighbour that has not, or whose root is another."""
        if conn is None:
            return self.hops
        link = self._links.get(conn)
        return link.hops if link is not None and link.root == self.root else None

    def take_adverts(self) -> list[tuple[Hashable, TreeRoot]]:
        """Call after each of the calls above: the advertisements to send, the latest one per
        link (then forgotten)."""
        latest = dict(self._adverts)
        self._adverts = []
        return list(latest.items())

    def _advert(self, conn: Hashable) -> TreeRoot:
        return TreeRoot(self.root, self.hops, conn == self.parent)

    def _choose(self, now: float) -> None:
        """Take the feasible neighbour with the smallest (root, hops + 1, peer id) as parent, if
        it beats being our own root; tell every neighbour if anything changed."""
        self._held = {root: until for root, until in self._held.items() if until > now}
        best, parent = self._best()
        if self.root != self.own_id and best[0] > self.root:  # no feasible way to our root is left
            self._held[self.root] = now + self.hold_down
            best, parent = self._best()
        if (best[0], best[1], parent) == (self.root, self.hops, self.parent):
            return
        if parent != self.parent:
            self.parent_changes += 1
        if best[0] != self.root:
            self._feasible = best[1]
        self.root, self.hops, self.parent = best[0], best[1], parent
        self._feasible = min(self._feasible, self.hops)
        self._adverts.extend((conn, self._advert(conn)) for conn in self._links)

    def _best(self) -> tuple[tuple[str, int, str], Hashable | None]:
        best: tuple[str, int, str] = (self.own_id, 0, "")
        parent = None
        for conn, link in self._links.items():
            if link.root is None or link.child or link.root in self._held or link.hops + 1 >= MAX_TREE_HOPS:
                continue  # a child cannot be our parent (no two-link loop)
            if link.root == self.root != self.own_id and link.hops >= self._feasible:
                continue  # its way to our root may run through us
            candidate = (link.root, link.hops + 1, link.peer_id)
            if candidate < best:
                best, parent = candidate, conn
        return best, parent
