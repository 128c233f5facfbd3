"""The descent: finding where two Merkle tries differ, one trie level per flight.

A differing node is expanded by the side that received its fingerprint: as ``fanout`` child
fingerprints, or, where that side holds few leaves, as a leaf list of (salted id, salted
digest) pairs. The other side answers each fingerprint and each listed leaf with one bit and
expands, in turn, the nodes whose fingerprints differed. Leaf lists end the descent, and ids
tell a side with certainty that the peer holds no leaf of that id. Fingerprints are salted and
truncated; a collision can only hide a difference, never invent one, and the root fingerprint
at the end tells one side whether the session converged (:attr:`Reconciler.converged`). Pass
a fresh ``salt`` to every session and a missed leaf is found by the next one.

:class:`Descent` is one side's half of that exchange over its
:class:`~crdtmem.merkle.MerkleIndex`; the :class:`~crdtmem.protocol.antientropy.Reconciler`
puts its output in messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ...errors import DecodeError
from ...merkle import LeafId, MerkleIndex, fingerprint, leaf_fingerprint, leaf_tag
from .wire import MAX_LIST, ROOT_WIDTH, pack_bits, unpack_bits

__all__ = ["Tuning", "Descent"]

Node = tuple[int, int]
"""A trie node: (level, prefix)."""


@dataclass(frozen=True)
class Tuning:
    """Wire widths and the leaf-list threshold; the initiator's widths bind both sides.

    Attributes:
        fp_width: bytes of a child fingerprint.
        id_width: bytes of a leaf's salted id in a leaf list.
        leaf_width: bytes of a leaf's salted digest in a leaf list.
        leaf_list_max: expand a node as a leaf list when this side holds at most this many
            leaves under it (local choice, not sent).
    """

    fp_width: int = 3
    id_width: int = 2
    leaf_width: int = 2
    leaf_list_max: int = 8

    def __post_init__(self) -> None:
        for name in ("fp_width", "id_width", "leaf_width"):
            if not 1 <= getattr(self, name) <= 16:
                raise ValueError(f"{name} must be 1..16 bytes")
        if self.leaf_list_max < 0:
            raise ValueError("leaf_list_max must be >= 0")


class Descent:
    """One side of the descent: what it sent last, and how it reads and answers the peer.

    Args:
        index: this replica's Merkle index.
        salt: salts every fingerprint, id and digest of the session.
        widths: (fingerprint, leaf id, leaf digest) widths in bytes.
        leaf_list_max: expand a node as a leaf list when at most this many leaves lie under it.

    Attributes:
        sent_fp: the nodes whose child fingerprints my last message held.
        sent_leaves: the leaves my last message listed, in order.
    """

    def __init__(self, index: MerkleIndex, salt: int, widths: tuple[int, int, int], leaf_list_max: int) -> None:
        self.index = index
        self.salt = salt
        self.widths = widths
        self.leaf_list_max = leaf_list_max
        self.sent_fp: list[Node] = []
        self.sent_leaves: list[LeafId] = []

    def root_fingerprint(self) -> bytes:
        """The salted fingerprint of the whole index (after folding in pending changes)."""
        self.index.refresh()
        return fingerprint(self.index.root(), self.salt, ROOT_WIDTH)

    def forget(self) -> None:
        """Call when a message that expands nothing is sent: no answer to it is expected."""
        self.sent_fp, self.sent_leaves = [], []

    def expand(self, nodes: list[Node]) -> list:
        """My expansions of ``nodes`` as ``[kinds, counts, blob]``; remembers what they hold."""
        items = [self._expansion(node) for node in nodes]
        kinds = pack_bits([is_list for _, is_list, _, _, _ in items])
        counts = [count for _, is_list, _, count, _ in items if is_list]
        blob = b"".join(payload for _, _, payload, _, _ in items)
        self.sent_fp = [node for node, is_list, _, _, _ in items if not is_list]
        self.sent_leaves = [leaf for _, is_list, _, _, leaves in items if is_list for leaf in leaves]
        return [kinds, counts, blob]

    def _expansion(self, node: Node) -> tuple:
        """My expansion of a differing node: child fingerprints, or a leaf list if small."""
        level, prefix = node
        index = self.index
        if level < index.max_level and index.summary(level, prefix)[0] > self.leaf_list_max:
            fp_w = self.widths[0]
            blob = b"".join(fingerprint(s, self.salt, fp_w) for s in index.children(level, prefix))
            return (node, False, blob, 0, ())
        under = index.leaves_under(level, prefix)
        pairs = self._leaf_pairs(under)
        return (node, True, b"".join(i + d for i, d in pairs), len(pairs), [leaf for leaf, _, _ in under])

    def _leaf_pairs(self, leaves: Iterable[tuple[LeafId, int, int]]) -> list[tuple[bytes, bytes]]:
        """(salted id, salted digest) of each leaf: the id says which leaf, the digest its content."""
        _, id_w, leaf_w = self.widths
        salt = self.salt
        return [(leaf_tag(pos, salt, id_w), leaf_fingerprint(digest, salt, leaf_w)) for _, pos, digest in leaves]

    def decode(self, nodes: list[Node], kinds: Any, counts: Any, blob: Any) -> list[tuple]:
        """The peer's expansions of ``nodes``, checked against the widths; raises DecodeError."""
        flags = unpack_bits(kinds, len(nodes), "item kinds")
        if not isinstance(counts, list) or len(counts) != sum(flags):
            raise DecodeError("malformed leaf-list counts")
        if not isinstance(blob, bytes):
            raise DecodeError("malformed item blob")
        fp_w, id_w, leaf_w = self.widths
        fanout, pair_w = self.index.fanout, id_w + leaf_w
        items, pos, counts_iter = [], 0, iter(counts)
        for node, is_list in zip(nodes, flags, strict=True):
            if is_list:
                count = next(counts_iter)
                if type(count) is not int or not 0 <= count <= MAX_LIST:
                    raise DecodeError("malformed leaf-list count")
                end = pos + count * pair_w
                chunk = blob[pos:end]
                pairs = [(chunk[i : i + id_w], chunk[i + id_w : i + pair_w]) for i in range(0, len(chunk), pair_w)]
                items.append((node, True, pairs))
            else:
                if node[0] >= self.index.max_level:
                    raise DecodeError("child fingerprints for a node at the deepest level")
                end = pos + fanout * fp_w
                chunk = blob[pos:end]
                items.append((node, False, [chunk[i : i + fp_w] for i in range(0, len(chunk), fp_w)]))
            if end > len(blob):
                raise DecodeError("item blob too short")
            pos = end
        if pos != len(blob):
            raise DecodeError("item blob too long")
        return items

    def resolve(self, items: list[tuple]) -> tuple[list[bool], list[bool], list[bool], list[Node], dict]:
        """Compare the peer's items with my index (read-only).

        Returns the answer bits for its fingerprints, for its listed leaves, "absent here" bits
        for the listed leaves that differ, the nodes I now expand, and my differing leaves.
        """
        fp_w = self.widths[0]
        fanout, salt, index = self.index.fanout, self.salt, self.index
        fp_bits: list[bool] = []
        leaf_bits: list[bool] = []
        absent_bits: list[bool] = []
        expand: list[Node] = []
        found: dict[LeafId, bool] = {}
        for (level, prefix), is_list, entries in items:
            if not is_list:
                mine = index.children(level, prefix)
                for i, (theirs, summary) in enumerate(zip(entries, mine, strict=True)):
                    differs = theirs != fingerprint(summary, salt, fp_w)
                    fp_bits.append(differs)
                    if differs:
                        expand.append((level + 1, (prefix * fanout) + i))
                continue
            leaves = index.leaves_under(level, prefix)
            pairs = self._leaf_pairs(leaves)
            my_pairs, my_ids = set(pairs), {i for i, _ in pairs}
            their_pairs, their_ids = set(entries), {i for i, _ in entries}
            for pair in entries:
                differs = pair not in my_pairs
                leaf_bits.append(differs)
                if differs:
                    absent_bits.append(pair[0] not in my_ids)
            for (leaf, _, _), pair in zip(leaves, pairs, strict=True):
                if pair not in their_pairs:
                    found[leaf] = pair[0] not in their_ids
        return fp_bits, leaf_bits, absent_bits, expand, found

    def answered(self, fp_bits: Any) -> list[Node]:
        """Decode the peer's answer to my last fingerprints: the nodes it expanded, in order."""
        fanout = self.index.fanout
        fp_flags = unpack_bits(fp_bits, len(self.sent_fp) * fanout, "fingerprint answer")
        return [
            (level + 1, prefix * fanout + i)
            for n, (level, prefix) in enumerate(self.sent_fp)
            for i in range(fanout)
            if fp_flags[n * fanout + i]
        ]

    def answered_leaves(self, leaf_bits: Any, absent_bits: Any) -> dict[LeafId, bool]:
        """Decode the peer's answer to my last leaf lists: my differing leaves → absent there."""
        leaf_flags = unpack_bits(leaf_bits, len(self.sent_leaves), "leaf answer")
        absent_flags = iter(unpack_bits(absent_bits, sum(leaf_flags), "absent answer"))
        return {leaf: next(absent_flags) for leaf, flag in zip(self.sent_leaves, leaf_flags, strict=True) if flag}
