"""Who links to whom: full mesh, random k-regular, ring, star, clusters joined by bridges.

A topology is a list of undirected edges ``(i, j)`` with ``i < j`` between peer indices
``0 .. n-1``; peer ``i`` dials peer ``j``. Specs are short strings for the CLI::

    mesh                  every pair (n(n-1)/2 links: costly beyond a few hundred peers)
    regular:6             random 6-regular graph (the default; k*n must be even)
    ring                  i -- i+1, closed
    star                  peer 0 is the hub
    clusters:4            4 clusters (random 6-regular inside, or a mesh when small),
                          consecutive clusters (and the last and first) joined by 2 bridges
    clusters:4:3          the same with 3 bridge links per joined pair of clusters
    clusters:4:3:8        ... and degree 8 inside clusters
    none                  no links at all (peers meet only through a broker: Scenario.broker)

Clusters hold contiguous peer indices, like partition groups, so ``--groups`` equal to the
cluster count cuts exactly the bridges. Everything random is drawn from the given
``random.Random``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Topology", "random_regular", "blocks"]

Edge = tuple[int, int]


def blocks(n: int, count: int) -> list[range]:
    """``count`` contiguous, balanced index ranges covering ``0 .. n-1`` (sizes differ by <= 1)."""
    if count < 1:
        raise ValueError("need at least one block")
    count = min(count, n) if n else 1
    base, extra = divmod(n, count)
    out, start = [], 0
    for i in range(count):
        size = base + (1 if i < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out


def _mesh(nodes: list[int]) -> list[Edge]:
    return [(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1 :]]


def random_regular(nodes: list[int], k: int, rng: random.Random) -> list[Edge]:
    """A random ``k``-regular simple graph on ``nodes``, connected (for k >= 2 and enough nodes).

    Built as a circulant lattice (each node to its k/2 nearest on each side, plus the
    opposite node when k is odd) and then randomised with ``10 * edges`` degree-preserving
    double-edge swaps, which converge on a uniform random regular graph. Always succeeds.

    Raises:
        ValueError: ``k`` is not below the node count, or ``k * n`` is odd.
    """
    n = len(nodes)
    if n <= k + 1:
        return _mesh(nodes)
    if k < 1:
        return []
    if (k * n) % 2:
        raise ValueError(f"a {k}-regular graph needs an even k * n (n={n})")
    edges: list[Edge] = []
    for i in range(n):
        for d in range(1, k // 2 + 1):
            edges.append(_ordered(i, (i + d) % n))
    if k % 2:
        edges += [_ordered(i, i + n // 2) for i in range(n // 2)]
    present = set(edges)
    count = len(edges)
    for _ in range(10 * count):
        x, y = rng.randrange(count), rng.randrange(count)
        if x == y:
            continue
        a, b = edges[x]
        c, d = edges[y]
        if rng.random() < 0.5:
            c, d = d, c
        if len({a, b, c, d}) < 4:
            continue
        e1, e2 = _ordered(a, d), _ordered(c, b)
        if e1 in present or e2 in present:
            continue
        present.discard(edges[x])
        present.discard(edges[y])
        present.add(e1)
        present.add(e2)
        edges[x], edges[y] = e1, e2
    if k >= 2 and not _connected(n, edges):  # astronomically rare for k >= 3; the lattice is connected
        return random_regular(nodes, k, rng)
    return sorted((nodes[a], nodes[b]) if nodes[a] < nodes[b] else (nodes[b], nodes[a]) for a, b in edges)


def _ordered(a: int, b: int) -> Edge:
    return (a, b) if a < b else (b, a)


def _connected(n: int, edges: list[Edge]) -> bool:
    adjacent: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        adjacent[a].append(b)
        adjacent[b].append(a)
    seen = {0}
    stack = [0]
    while stack:
        for nxt in adjacent[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return len(seen) == n


@dataclass(frozen=True)
class Topology:
    """A parsed topology spec; :meth:`edges` builds the links for ``n`` peers."""

    kind: str = "regular"
    degree: int = 6
    clusters: int = 0
    bridges: int = 2

    @classmethod
    def parse(cls, spec: str) -> Topology:
        """Read a spec (see the module docstring). Raises ValueError on anything else."""
        parts = [p.strip() for p in spec.strip().lower().split(":")]
        kind, args = parts[0], parts[1:]
        try:
            numbers = [int(a) for a in args]
        except ValueError:
            raise ValueError(f"bad topology {spec!r}: arguments must be integers") from None
        if any(x < 0 for x in numbers):
            raise ValueError(f"bad topology {spec!r}: arguments must not be negative")
        if kind in ("mesh", "full", "full-mesh", "fullmesh") and not numbers:
            return cls("mesh")
        if kind == "none" and not numbers:
            return cls("none")  # no links: peers reach each other only through a broker
        if kind in ("ring", "star") and not numbers:
            return cls(kind)
        if kind in ("regular", "k-regular", "kregular", "random") and len(numbers) <= 1:
            return cls("regular", numbers[0] if numbers else 6)
        if kind in ("clusters", "cluster") and 1 <= len(numbers) <= 3:
            clusters = numbers[0]
            bridges = numbers[1] if len(numbers) > 1 else 2
            degree = numbers[2] if len(numbers) > 2 else 6
            if clusters < 1:
                raise ValueError(f"bad topology {spec!r}: need at least one cluster")
            return cls("clusters", degree, clusters, bridges)
        raise ValueError(
            f"bad topology {spec!r}: use mesh, ring, star, regular:K, clusters:C[:BRIDGES[:K]], none"
        )

    def __str__(self) -> str:
        if self.kind == "regular":
            return f"regular:{self.degree}"
        if self.kind == "clusters":
            return f"clusters:{self.clusters}:{self.bridges}:{self.degree}"
        return self.kind

    def edges(self, n: int, rng: random.Random) -> list[Edge]:
        """The undirected links among ``n`` peers, sorted, each as (dialer, acceptor)."""
        nodes = list(range(n))
        if n < 2 or self.kind == "none":
            return []
        if self.kind == "mesh":
            return _mesh(nodes)
        if self.kind == "ring":
            return sorted({_ordered(i, (i + 1) % n) for i in range(n)})
        if self.kind == "star":
            return [(0, i) for i in range(1, n)]
        if self.kind == "regular":
            degree = self.degree
            if (degree * n) % 2 and degree < n - 1:
                degree += 1  # k*n odd has no k-regular graph: use k+1 (documented in the report)
            return random_regular(nodes, degree, rng)
        if self.kind == "clusters":
            groups = blocks(n, self.clusters)
            edges: set[Edge] = set()
            for group in groups:
                members = list(group)
                degree = self.degree
                if (degree * len(members)) % 2 and degree < len(members) - 1:
                    degree += 1
                edges.update(random_regular(members, degree, rng))
            if len(groups) > 1:
                pairs = [(i, i + 1) for i in range(len(groups) - 1)]
                if len(groups) > 2:
                    pairs.append((len(groups) - 1, 0))
                for x, y in pairs:
                    for _ in range(self.bridges):
                        a, b = rng.choice(groups[x]), rng.choice(groups[y])
                        edges.add(_ordered(a, b))
            return sorted(edges)
        raise ValueError(f"unknown topology kind {self.kind!r}")
