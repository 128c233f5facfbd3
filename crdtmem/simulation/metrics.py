"""What a running simulation measures: divergence samples and the quantities behind them.

The engine takes a :class:`Sample` every ``sample_interval`` virtual seconds with
:func:`take_sample`; :mod:`.report` turns the series into the JSON report. Divergence is
exact, not sampled: see :func:`divergence_of`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from .simpeer import SimPeer

__all__ = ["Sample", "live_roots", "divergence_of", "take_sample", "gossip_bound_rounds"]


class Sample:
    """One point of the divergence series (``missing_*``: batches made anywhere that a live
    peer has not seen yet — the per-peer lag, as its maximum and mean)."""

    __slots__ = ("t", "divergence", "roots", "live", "links", "messages", "bytes", "missing_max", "missing_mean")

    def __init__(self, t: float, divergence: float, roots: int, live: int, links: int, messages: int, nbytes: int,
                 missing_max: int = 0, missing_mean: float = 0.0):
        self.t, self.divergence, self.roots, self.live = t, divergence, roots, live
        self.links, self.messages, self.bytes = links, messages, nbytes
        self.missing_max, self.missing_mean = missing_max, missing_mean


def live_roots(peers: Iterable[SimPeer]) -> dict[int, Any]:
    """Each live peer's Merkle root (after folding in its pending changes)."""
    out = {}
    for peer in peers:
        if peer.alive:
            index = peer.node.index
            index.refresh()
            out[peer.index] = index.root()
    return out


def divergence_of(roots: dict[int, Any]) -> tuple[float, int, int]:
    """(share of live peer pairs whose roots differ, distinct roots, live peers).

    Exact, not sampled: pairs that agree are counted per distinct root, sum of C(k, 2).
    """
    counts = Counter(roots.values())
    live = sum(counts.values())
    pairs = live * (live - 1) // 2
    if pairs == 0:
        return 0.0, len(counts), live
    agree = sum(k * (k - 1) // 2 for k in counts.values())
    return (pairs - agree) / pairs, len(counts), live


def take_sample(
    now: float,
    peers: Sequence[SimPeer],
    links_up: int,
    batches_created: int,
    messages: Counter[str],
    nbytes: Counter[str],
) -> Sample:
    """Measure the peers now: divergence, links up, traffic so far and how far each lags."""
    div, roots, live = divergence_of(live_roots(peers))
    missing = [batches_created - p.node.batches_seen() for p in peers if p.alive]
    return Sample(
        now, div, roots, live, links_up, sum(messages.values()), sum(nbytes.values()),
        max(missing, default=0), sum(missing) / len(missing) if missing else 0.0,
    )


def gossip_bound_rounds(n: int) -> float:
    """Push-pull gossip needs about log2(n) + ln(n) rounds to reach n peers."""
    return math.log2(n) + math.log(n) if n > 1 else 0.0
