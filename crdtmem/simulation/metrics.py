"""What a running simulation measures: divergence samples and the quantities behind them.

The engine takes a :class:`Sample` every ``sample_interval`` virtual seconds with
:func:`take_sample`; :mod:`.report` turns the series into the JSON report. Divergence is
exact, not sampled: see :func:`divergence_of`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from ..clocks import CausalContext, Dot
from .simpeer import SimPeer

__all__ = ["Sample", "Dissemination", "live_roots", "divergence_of", "take_sample", "gossip_bound_rounds"]


class Sample:
    """One point of the divergence series (``missing_*``: batches made anywhere that a live
    peer has not seen yet — the per-peer lag, as its maximum and mean)."""

    __slots__ = ("t", "divergence", "roots", "live", "links", "messages", "bytes", "missing_max", "missing_mean")

    def __init__(self, t: float, divergence: float, roots: int, live: int, links: int, messages: int, nbytes: int,
                 missing_max: int = 0, missing_mean: float = 0.0):
        self.t, self.divergence, self.roots, self.live = t, divergence, roots, live
        self.links, self.messages, self.bytes = links, messages, nbytes
        self.missing_max, self.missing_mean = missing_max, missing_mean


class Dissemination:
    """How long each batch took to reach every peer: its *spread*, from the moment its author
    signed it to the moment the last other peer applied it.

    The engine calls :meth:`signed` and :meth:`applied` for every ``BatchApplied`` event,
    :meth:`checkpoint_taken` for every ``CheckpointApplied`` one (a peer taking author A's
    checkpoint ``K(A, n)`` holds A's batches 1..n from then on, applied one by one or not),
    and :meth:`store_lost` when a peer starts empty; the report reads :meth:`summary`. Unlike
    the time to converge after the last write (one batch), this covers every batch of the run.

    A peer counts once per batch while it keeps its store: a batch a checkpoint stood for that
    it indexes later (the node applies such a batch, see ``_stood_for`` in
    :mod:`crdtmem.protocol.checkpointing`) is not counted again. A peer that lost its store
    counts again for the batches it applies anew.
    """

    def __init__(self) -> None:
        self._signed: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._peers: Counter[tuple[str, int]] = Counter()
        self._held: defaultdict[int, CausalContext] = defaultdict(CausalContext)  # per receiver

    def signed(self, author: str, seq: int, t: float) -> None:
        """Record that ``author`` signed (and applied) its batch ``seq`` at ``t``."""
        self._signed[(author, seq)] = t

    def applied(self, receiver: int, author: str, seq: int, t: float) -> None:
        """Record that peer ``receiver`` applied another's batch ``author#seq`` at ``t``."""
        if self._held[receiver].add(Dot(author, seq)):
            self._reached((author, seq), t)

    def checkpoint_taken(self, receiver: int, author: str, seq: int, t: float) -> None:
        """Record that peer ``receiver`` took ``author``'s checkpoint for its batches 1..``seq``
        at ``t``: each of them it had not applied counts as applied now."""
        held = self._held[receiver]
        for counter in range(held.vv.get(author, 0) + 1, seq + 1):
            if Dot(author, counter) not in held:
                self._reached((author, counter), t)
        held.join(CausalContext({author: seq}))

    def store_lost(self, receiver: int) -> None:
        """Peer ``receiver`` starts empty: what it applied before is counted again if it comes again."""
        self._held.pop(receiver, None)

    def receivers(self, author: str, seq: int) -> int:
        """How many peers (other than its author) applied batch ``author#seq`` so far."""
        return self._peers[(author, seq)]

    def _reached(self, key: tuple[str, int], t: float) -> None:
        self._last[key] = t
        self._peers[key] += 1

    def summary(self, receivers: int) -> dict[str, Any]:
        """Spreads, in seconds, of the batches that ``receivers`` peers (or more) applied.

        Returns:
            ``batches`` counted, ``incomplete`` (signed but applied by fewer peers), and the
            spread's ``median``, ``p90`` and ``max`` (None when no batch counted).
        """
        spreads = sorted(self._last[key] - signed for key, signed in self._signed.items()
                         if self._peers[key] >= receivers)
        out: dict[str, Any] = {"batches": len(spreads), "incomplete": len(self._signed) - len(spreads)}
        if not spreads:
            return out | {"median": None, "p90": None, "max": None}
        return out | {"median": spreads[len(spreads) // 2], "p90": spreads[int(0.9 * (len(spreads) - 1))],
                      "max": spreads[-1]}


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
