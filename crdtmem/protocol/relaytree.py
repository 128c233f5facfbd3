"""``RelayTree``: which links relay fresh batches, as one spanning tree rooted at the smallest peer id.

Plumtree (Leitão et al., 2007) shapes its tree from duplicates: a link that brings a batch
already held is pruned. With every peer writing, batches of different authors cross the tree
at once, the prunes cut it, repairs graft cycles back, and the tree that survives is deep
(about 10 hops at 100 peers, 24 at 1,000, on random 6-regular links). This tree is built
from distances instead, as a spanning-tree protocol does: every peer tells its neighbours
``TreeRoot(root, hops, parent)`` — the smallest peer id it knows of, its distance to it in
links, and whether the neighbour is its parent. A peer's parent is the neighbour with the
smallest ``(root, hops + 1, peer id)``; its eager links are its parent and the neighbours
that named it their parent. The result is a breadth-first tree from the root (at most
``2 x`` the root's eccentricity between any two peers), stable while the links are, with no
cycle to bring duplicates. Links to other neighbours stay lazy (``IHave`` only).

When the parent's link goes, the peer takes the next best neighbour; a stale root (one that
left) is forgotten by counting: each advertisement adds a hop, and one of
:data:`MAX_TREE_HOPS` or more is ignored, so a loop of stale advertisements dies out and the
next smallest id becomes the root. Meanwhile batches still arrive through ``IHave`` and gossip.

A neighbour's advertisement is its unsigned word, like a ``Sync``: a lying member can make
itself everyone's parent and then not relay, which delays batches by the ``IHave`` repair
(``graft_timeout``) and never loses one.

Usage (the :class:`~crdtmem.protocol.node.Node` drives it; everything here is pure state)::

    tree = RelayTree(own_id)
    tree.link_up(conn, peer_id)                 # a session became ready
    tree.heard(conn, advert)                    # its TreeRoot arrived
    tree.link_down(conn)                        # its connection closed
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
    """

    def __init__(self, own_id: str) -> None:
        self.own_id = own_id
        self.root = own_id
        self.hops = 0
        self.parent: Hashable | None = None
        self.parent_changes = 0
        """How often the parent changed: how much the tree churns."""
        self._links: dict[Hashable, _Link] = {}
        self._adverts: list[tuple[Hashable, TreeRoot]] = []

    def link_up(self, conn: Hashable, peer_id: str) -> None:
        """Call when a session to ``peer_id`` is ready: it is told where this peer stands."""
        self._links[conn] = _Link(peer_id)
        self._adverts.append((conn, self._advert(conn)))

    def heard(self, conn: Hashable, advert: TreeRoot) -> None:
        """Call with a neighbour's ``TreeRoot``; ignored for a link not (or no longer) up."""
        link = self._links.get(conn)
        if link is None:
            return
        link.root, link.hops, link.child = advert.root, advert.hops, advert.parent
        self._choose()

    def link_down(self, conn: Hashable) -> None:
        """Call when a session closed; a lost parent is replaced by the next best neighbour."""
        if self._links.pop(conn, None) is not None:
            self._choose()

    def eager(self, conn: Hashable) -> bool:
        """Whether fresh batches go over this link: it leads to our parent or to a child."""
        link = self._links.get(conn)
        return link is not None and (conn == self.parent or link.child)

    def take_adverts(self) -> list[tuple[Hashable, TreeRoot]]:
        """Call after each of the calls above: the advertisements to send, in order (then forgotten)."""
        adverts, self._adverts = self._adverts, []
        return adverts

    def _advert(self, conn: Hashable) -> TreeRoot:
        return TreeRoot(self.root, self.hops, conn == self.parent)

    def _choose(self) -> None:
        """Take the neighbour with the smallest (root, hops + 1, peer id) as parent, if it beats
        being our own root; tell every neighbour if anything changed."""
        best: tuple[str, int, str] = (self.own_id, 0, "")
        parent = None
        for conn, link in self._links.items():
            if link.root is None or link.child or link.hops + 1 >= MAX_TREE_HOPS:
                continue  # a child cannot be our parent (no two-link loop)
            candidate = (link.root, link.hops + 1, link.peer_id)
            if candidate < best:
                best, parent = candidate, conn
        if (best[0], best[1], parent) == (self.root, self.hops, self.parent):
            return
        if parent != self.parent:
            self.parent_changes += 1
        self.root, self.hops, self.parent = best[0], best[1], parent
        self._adverts.extend((conn, self._advert(conn)) for conn in self._links)
