"""An incremental Merkle index over a :class:`~crdtmem.memory.Memory`'s anti-entropy leaves.

A leaf is one (object name, leaf key) pair. Its *position* is a 64-bit hash of the pair, so
leaves spread evenly over a sparse trie of fixed fan-out ``2**bits``; its *digest* is a 128-bit
hash of the pair and the leaf's canonical bytes. A node's summary is ``(count, total)``: how
many leaves lie under it and the sum of their digests mod 2**128. Sums update in place, so a
changed leaf costs one add per level and no child is ever rehashed; and the summary of a node
depends only on the leaves under it, never on how a replica happens to store the trie, so two
replicas compare any node directly.

Local writes only mark leaves dirty in the memory; call :meth:`MerkleIndex.refresh` (anti-entropy
does) to fold them in. The index is the only consumer of :meth:`Memory.take_dirty`.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable, Iterator
from hashlib import blake2b
from typing import TYPE_CHECKING

from . import codec

if TYPE_CHECKING:
    from .memory import Memory

__all__ = [
    "MerkleIndex",
    "Mark",
    "Summary",
    "LeafId",
    "DEFAULT_BITS",
    "POSITION_BITS",
    "leaf_position",
    "leaf_digest",
    "fingerprint",
    "leaf_fingerprint",
    "leaf_tag",
]

LeafId = tuple[str, Hashable]
"""(object name, leaf key)."""

Summary = tuple[int, int]
"""(leaf count, sum of leaf digests mod 2**128) of one trie node."""

POSITION_BITS = 64
DEFAULT_BITS = 3
"""Fan-out 8: within ~10% of fan-out 4 in bytes, one round trip fewer at 100,000 leaves
(benchmarks/bench_antientropy.py)."""

_MASK = (1 << 128) - 1
_BUCKET_TARGET = 2  # leaves per deepest stored node right after a (re)layout
_BUCKET_MAX = 8  # re-layout one level deeper once buckets average more than this
_LOG_TRIM_AT = 4096
_POS_PERSON = b"crdtmem.pos"
_LEAF_PERSON = b"crdtmem.leaf"
_EMPTY: Summary = (0, 0)


def _leaf_source(name: str, key: Hashable) -> bytes:
    return codec.pack([name, key])  # self-delimiting: no (name, key) pair is a prefix of another


def leaf_position(name: str, key: Hashable, *, source: bytes | None = None) -> int:
    """The 64-bit trie position of a leaf (replica-independent)."""
    source = source or _leaf_source(name, key)
    return int.from_bytes(blake2b(source, digest_size=8, person=_POS_PERSON).digest(), "big")


def leaf_digest(name: str, key: Hashable, data: bytes, *, source: bytes | None = None) -> int:
    """The 128-bit digest of a leaf holding canonical bytes ``data``."""
    h = blake2b(source or _leaf_source(name, key), digest_size=16, person=_LEAF_PERSON)
    h.update(data)
    return int.from_bytes(h.digest(), "big")


def fingerprint(summary: Summary, salt: int, width: int) -> bytes:
    """``width`` bytes standing for a node summary in one session (salted: a collision in one
    session is independent of the next)."""
    count, total = summary
    return blake2b(
        count.to_bytes(8, "big") + total.to_bytes(16, "big"), digest_size=width, key=salt.to_bytes(8, "big")
    ).digest()


def leaf_fingerprint(digest: int, salt: int, width: int) -> bytes:
    """``width`` bytes standing for one leaf digest (its content) in one session's leaf lists."""
    return blake2b(digest.to_bytes(16, "big"), digest_size=width, key=salt.to_bytes(8, "big"), person=b"leaf").digest()


def leaf_tag(position: int, salt: int, width: int) -> bytes:
    """``width`` bytes standing for one leaf's identity (its position) in one session's leaf lists."""
    return blake2b(position.to_bytes(8, "big"), digest_size=width, key=salt.to_bytes(8, "big"), person=b"id").digest()


class Mark:
    """A point in the index's change log, from :meth:`MerkleIndex.mark`."""

    __slots__ = ("position", "__weakref__")

    def __init__(self, position: int) -> None:
        self.position = position

    def __repr__(self) -> str:
        return f"Mark({self.position})"


class MerkleIndex:
    """Summaries of every trie node over ``memory``'s leaves, kept up to date incrementally.

    A node is ``(level, prefix)``: the leaves whose position starts with the ``level * bits``
    bits ``prefix``. The root is ``(0, 0)``; the children of ``(l, p)`` are
    ``(l + 1, p * fanout + i)``.

    Args:
        memory: the replica to index; built from :meth:`Memory.leaves` at once.
        bits: log2 of the fan-out, 1..8. Both sides of a session must agree.
    """

    def __init__(self, memory: Memory, *, bits: int = DEFAULT_BITS) -> None:
        if not 1 <= bits <= 8:
            raise ValueError("bits must be 1..8 (fan-out 2..256)")
        self.memory = memory
        self.bits = bits
        self.fanout = 1 << bits
        self.max_level = POSITION_BITS // bits
        self._leaves: dict[LeafId, tuple[int, int]] = {}  # leaf → (position, digest)
        self._log: list[LeafId] = []
        self._log_base = 0
        self._marks: weakref.WeakSet[Mark] = weakref.WeakSet()
        memory.take_dirty()  # everything is read below
        leaves = self._leaves
        for name, key in memory.leaves():
            data = memory.leaf_bytes(name, key)
            if data is not None:
                source = _leaf_source(name, key)
                leaves[(name, key)] = (leaf_position(name, key, source=source), leaf_digest(name, key, data, source=source))
        self._layout()

    def __len__(self) -> int:
        return len(self._leaves)

    def __repr__(self) -> str:
        return f"MerkleIndex({len(self._leaves)} leaves, fan-out {self.fanout}, stored depth {self._depth})"

    # -- layout -------------------------------------------------------------------------------

    def _layout(self) -> None:
        """Store every level down to one where nodes hold about two leaves, then fill it."""
        depth, n = 1, len(self._leaves)
        while depth < self.max_level and (self.fanout**depth) * _BUCKET_TARGET < n:
            depth += 1
        self._depth = depth
        shift = self._shift(depth)
        deepest: dict[int, list[int]] = {}
        buckets: dict[int, set[LeafId]] = {}
        for leaf, (pos, digest) in self._leaves.items():
            prefix = pos >> shift
            node = deepest.get(prefix)
            if node is None:
                deepest[prefix] = [1, digest]
                buckets[prefix] = {leaf}
            else:
                node[0] += 1
                node[1] += digest
                buckets[prefix].add(leaf)
        levels = [deepest]
        for _ in range(depth):  # roll each level up into its parents
            parents: dict[int, list[int]] = {}
            for prefix, (count, total) in levels[-1].items():
                node = parents.get(prefix >> self.bits)
                if node is None:
                    parents[prefix >> self.bits] = [count, total]
                else:
                    node[0] += count
                    node[1] += total
            levels.append(parents)
        for nodes in levels:
            for node in nodes.values():
                node[1] &= _MASK
        self._levels: list[dict[int, list[int]]] = levels[::-1]
        self._buckets = buckets

    def _shift(self, level: int) -> int:
        return POSITION_BITS - level * self.bits

    def _insert(self, leaf: LeafId, pos: int, digest: int) -> None:
        shift, bits = POSITION_BITS, self.bits
        for nodes in self._levels:
            prefix = pos >> shift
            node = nodes.get(prefix)
            if node is None:
                nodes[prefix] = [1, digest]
            else:
                node[0] += 1
                node[1] = (node[1] + digest) & _MASK
            shift -= bits
        bucket_key = pos >> (shift + bits)
        bucket = self._buckets.get(bucket_key)
        if bucket is None:
            self._buckets[bucket_key] = {leaf}
        else:
            bucket.add(leaf)

    def _remove(self, leaf: LeafId, pos: int, digest: int) -> None:
        shift, bits = POSITION_BITS, self.bits
        for nodes in self._levels:
            prefix = pos >> shift
            node = nodes[prefix]
            node[0] -= 1
            if node[0] == 0:
                del nodes[prefix]
            else:
                node[1] = (node[1] - digest) & _MASK
            shift -= bits
        bucket_key = pos >> (shift + bits)
        bucket = self._buckets[bucket_key]
        bucket.discard(leaf)
        if not bucket:
            del self._buckets[bucket_key]

    def _adjust(self, pos: int, delta: int) -> None:
        shift, bits = POSITION_BITS, self.bits
        for nodes in self._levels:
            node = nodes[pos >> shift]
            node[1] = (node[1] + delta) & _MASK
            shift -= bits

    # -- keeping up ---------------------------------------------------------------------------

    def refresh(self) -> int:
        """Fold in every leaf the memory marked dirty since the last refresh; return how many changed.

        Cost is O(depth) per dirty leaf. Call before reading summaries (anti-entropy does).
        """
        changed = self._fold(self.memory.take_dirty())
        if changed:
            if len(self._leaves) > (self.fanout**self._depth) * _BUCKET_MAX and self._depth < self.max_level:
                self._layout()
            if len(self._log) > _LOG_TRIM_AT:
                self._trim_log()
        return changed

    def _fold(self, dirty: set[LeafId]) -> int:
        memory, leaves, changed = self.memory, self._leaves, 0
        for leaf in dirty:
            name, key = leaf
            data = memory.leaf_bytes(name, key)
            old = leaves.get(leaf)
            if data is None:
                if old is None:
                    continue
                del leaves[leaf]
                self._remove(leaf, *old)
            else:
                source = _leaf_source(name, key)
                digest = leaf_digest(name, key, data, source=source)
                if old is None:
                    pos = leaf_position(name, key, source=source)
                    leaves[leaf] = (pos, digest)
                    self._insert(leaf, pos, digest)
                elif old[1] != digest:
                    leaves[leaf] = (old[0], digest)
                    self._adjust(old[0], digest - old[1])
                else:
                    continue
            self._log.append(leaf)
            changed += 1
        return changed

    def _trim_log(self) -> None:
        end = self._log_base + len(self._log)
        keep_from = min((m.position for m in self._marks), default=end)
        drop = keep_from - self._log_base
        if drop > 0:
            del self._log[:drop]
            self._log_base = keep_from

    @property
    def version(self) -> int:
        """How many leaf changes the index has folded in since it was built."""
        return self._log_base + len(self._log)

    def mark(self) -> Mark:
        """Refresh, then return a token for :meth:`changed_since` (call when a session starts).

        The change log is kept from the oldest live mark on; drop or :meth:`release` marks
        when done with them.
        """
        self.refresh()
        mark = Mark(self.version)
        self._marks.add(mark)
        return mark

    def release(self, mark: Mark) -> None:
        """Forget ``mark`` so the change log before it can be trimmed."""
        self._marks.discard(mark)

    def changed_since(self, mark: Mark) -> set[LeafId]:
        """Refresh, then return every leaf whose bytes changed since ``mark`` was taken."""
        self.refresh()
        start = mark.position - self._log_base
        if start < 0 or mark not in self._marks:
            raise ValueError("unknown or released mark")
        return set(self._log[start:])

    # -- reading ------------------------------------------------------------------------------

    def root(self) -> Summary:
        """The summary of the whole memory (as of the last refresh)."""
        node = self._levels[0].get(0)
        return (node[0], node[1]) if node else _EMPTY

    def digest(self, name: str, key: Hashable) -> int | None:
        """The indexed digest of a leaf, or None if absent (as of the last refresh)."""
        entry = self._leaves.get((name, key))
        return None if entry is None else entry[1]

    def position(self, name: str, key: Hashable) -> int | None:
        entry = self._leaves.get((name, key))
        return None if entry is None else entry[0]

    def summary(self, level: int, prefix: int) -> Summary:
        """The summary of node ``(level, prefix)``; ``(0, 0)`` when no leaf lies under it."""
        if level <= self._depth:
            node = self._levels[level].get(prefix)
            return (node[0], node[1]) if node else _EMPTY
        count = total = 0
        for _, digest in self._bucket_filter(level, prefix):
            count += 1
            total += digest
        return (count, total & _MASK)

    def children(self, level: int, prefix: int) -> list[Summary]:
        """The summaries of the ``fanout`` children of ``(level, prefix)``, in order."""
        if level >= self.max_level:
            raise ValueError("a node at the deepest level has no children")
        base = prefix << self.bits
        if level + 1 <= self._depth:
            nodes = self._levels[level + 1]
            out = []
            for i in range(self.fanout):
                node = nodes.get(base + i)
                out.append((node[0], node[1]) if node else _EMPTY)
            return out
        sums = [[0, 0] for _ in range(self.fanout)]
        shift, mask = self._shift(level + 1), self.fanout - 1
        for leaf in self._buckets.get(prefix >> ((level - self._depth) * self.bits), ()):
            pos, digest = self._leaves[leaf]
            if pos >> shift >> self.bits == prefix:
                slot = sums[(pos >> shift) & mask]
                slot[0] += 1
                slot[1] += digest
        return [(c, t & _MASK) for c, t in sums]

    def leaves_under(self, level: int, prefix: int) -> list[tuple[LeafId, int, int]]:
        """Every ``(leaf, position, digest)`` under ``(level, prefix)``, in position order.

        Meant for small nodes; on a big node it costs O(leaves under it).
        """
        leaves = self._leaves
        if level >= self._depth:
            found = [(leaf, leaves[leaf][0], digest) for leaf, digest in self._bucket_filter(level, prefix)]
        else:
            found = []
            for bucket_key in self._walk(level, prefix):
                found.extend((leaf, *leaves[leaf]) for leaf in self._buckets[bucket_key])
        found.sort(key=lambda item: (item[1], item[2]))
        return found

    def _walk(self, level: int, prefix: int) -> Iterator[int]:
        """Prefixes at the stored depth of the non-empty descendants of ``(level, prefix)``."""
        if level == self._depth:
            if prefix in self._buckets:
                yield prefix
            return
        stack = [(level, prefix)]
        levels, bits, fanout, depth = self._levels, self.bits, self.fanout, self._depth
        while stack:
            lvl, p = stack.pop()
            if lvl == depth:
                yield p
                continue
            nodes, base = levels[lvl + 1], p << bits
            for i in range(fanout - 1, -1, -1):
                if base + i in nodes:
                    stack.append((lvl + 1, base + i))

    def _bucket_filter(self, level: int, prefix: int) -> Iterator[tuple[LeafId, int]]:
        shift = self._shift(level)
        leaves = self._leaves
        for leaf in self._buckets.get(prefix >> ((level - self._depth) * self.bits), ()):
            pos, digest = leaves[leaf]
            if pos >> shift == prefix:
                yield leaf, digest

    def items(self) -> Iterator[tuple[LeafId, int]]:
        """Every indexed ``(leaf, digest)``."""
        for leaf, (_, digest) in self._leaves.items():
            yield leaf, digest

    # -- local diff ---------------------------------------------------------------------------

    def diff(self, other: MerkleIndex, *, leaf_list_at: int = 8) -> set[LeafId]:
        """The leaves whose digest differs between two indexes (absent on one side counts).

        Exact (full 128-bit sums, no truncation); descends only into differing nodes. Both
        indexes must use the same ``bits``. Mostly for tests and tools: two replicas in
        different processes reconcile by exchanging ``Sync`` version vectors instead.
        """
        if other.bits != self.bits:
            raise ValueError("indexes of different fan-out cannot be compared")
        found: set[LeafId] = set()
        stack = [(0, 0)]
        while stack:
            level, prefix = stack.pop()
            mine, theirs = self.summary(level, prefix), other.summary(level, prefix)
            if mine == theirs:
                continue
            if level == self.max_level or min(mine[0], theirs[0]) <= leaf_list_at:
                a = {leaf: digest for leaf, _, digest in self.leaves_under(level, prefix)}
                b = {leaf: digest for leaf, _, digest in other.leaves_under(level, prefix)}
                found.update(leaf for leaf in a.keys() | b.keys() if a.get(leaf) != b.get(leaf))
                continue
            base = prefix << self.bits
            stack.extend((level + 1, base + i) for i in range(self.fanout))
        return found
