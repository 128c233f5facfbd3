"""``Health``: a peer's metrics, kept up to date from events and computed only when asked.

Nothing here rescans the memory. Counters move when something happens — a node event
(refusal, type clash), a link event (dial failure, throttled read, refused connection), a store
compaction, a memory change notification (register writes, MV-register siblings) — and
:meth:`Health.snapshot` assembles the plain-data view from them, the node's counters and its
per-connection queries, only when someone asks (``Peer.metrics()``, a Prometheus scrape).

The node's counters are read in one place, :func:`node_figures`; everything else in the
snapshot comes from this module's own counters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..memory import Memory
from ..protocol.events import Refused, TypeClash
from ..protocol.node import Node
from ..protocol.recovery import Store
from ..protocol.stats import NodeStats

__all__ = ["Health", "node_figures"]


def node_figures(stats: NodeStats) -> dict[str, Any]:
    """The snapshot's figures taken from the node's counters (``Node.stats``).

    Call it only from :meth:`Health.snapshot`: this is the one place that knows how the node
    names its counters.
    """
    return {
        "deltas_sent": stats.batches_created,
        "deltas_received": stats.batches_applied,
        "bytes_sent": stats.bytes_sent,
        "bytes_received": stats.bytes_received,
        "anti_entropy_sessions": stats.anti_entropy_sessions,
        "refusals": {str(reason): n for reason, n in stats.refusals.items()},
        "stats": stats.as_dict(),
    }


class Health:
    """One peer's health counters and its metrics snapshot.

    The peer creates one per run and feeds it: :meth:`watch` once its memory is restored,
    :meth:`record` for node events, :meth:`count` and :meth:`refused` from links and the store,
    :meth:`sample_sync` from its timer loop. :meth:`snapshot` is the ``Peer.metrics()`` view.

    Args:
        memory: the replica whose changes are watched for conflicts.
        peer_id: this peer's id, reported in the metrics (its own writes, under the memory's
            current incarnation, are not conflicts with itself).
        conflict_window: register writes by two replicas this close in time (seconds) count
            as ``concurrent_register_writes``.
    """

    def __init__(self, memory: Memory, peer_id: str, *, conflict_window: float) -> None:
        self._memory = memory
        self._peer_id = peer_id
        self._conflict_window_ms = conflict_window * 1000
        self._counters: dict[str, float] = {}
        self._refusals: dict[str, int] = {}
        self._refused_by_peers: dict[str, int] = {}
        self._last_in_sync: dict[str, float] = {}
        self._registers: dict[str, tuple[int, str]] = {}  # last-writer-wins: last (stamp, replica) seen
        self._siblings: dict[str, int] = {}  # MV-registers holding more than one value: extra values
        self._unsubscribe: Callable[[], None] | None = None

    # -- feeding ----------------------------------------------------------------------------

    def watch(self) -> None:
        """Start following memory changes; call once, after the store is restored into it.

        Counts the MV-register siblings already there (the only full pass over the memory).
        """
        for name in self._memory.names():
            if self._memory.type_of(name) == "mvregister":
                self._recount_siblings(name, "mvregister")
        self._unsubscribe = self._memory.on_change(self._on_change)

    def unwatch(self) -> None:
        """Stop following memory changes (the peer is shutting down)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def count(self, key: str, n: float = 1) -> None:
        """Add ``n`` to a runtime counter (``dial_failures``, ``throttled_seconds``, ``compactions``...)."""
        self._counters[key] = self._counters.get(key, 0) + n

    def refused(self, reason: str) -> None:
        """Count input refused outside the node (by a transport, or admission), by reason."""
        self._refusals[reason] = self._refusals.get(reason, 0) + 1

    def refused_by_peer(self, reason: str) -> None:
        """Count a connection of ours that a peer closed as a refusal, by the reason it gave."""
        self._refused_by_peers[reason] = self._refused_by_peers.get(reason, 0) + 1

    def record(self, event: Refused | TypeClash) -> None:
        """Count a node event that health reports: a refusal or a type clash."""
        if isinstance(event, Refused):
            self.refused(event.reason)
        else:
            self.count("type_clashes")

    def sample_sync(self, synced_with: Mapping[str, bool], now: float) -> None:
        """Note which connected peers are in sync at ``now``; drift is measured from these samples.

        Call it regularly (the peer's timer loop does, twice a second) and before a snapshot.
        """
        for peer_id, ok in synced_with.items():
            if ok:
                self._last_in_sync[peer_id] = now
            else:
                self._last_in_sync.setdefault(peer_id, now)

    def _on_change(self, name: str, origin: str) -> None:
        tag = self._memory.type_of(name)
        if tag == "mvregister" or name in self._siblings:
            self._recount_siblings(name, tag)
        if origin == self._memory.replica_id:
            if name in self._registers:
                state = self._memory.state(name)
                self._registers[name] = (state.stamp, state.replica)
        elif tag == "lwwregister":
            self._note_register(name)

    def _recount_siblings(self, name: str, tag: str | None) -> None:
        extra = 0
        if tag == "mvregister":
            extra = max(0, len(self._memory.mvregister(name).values) - 1)
        if extra:
            self._siblings[name] = extra
        else:
            self._siblings.pop(name, None)

    def _note_register(self, name: str) -> None:
        """Count near-simultaneous register writes by different replicas (a likely conflict)."""
        state = self._memory.state(name)
        before = self._registers.get(name)
        self._registers[name] = (state.stamp, state.replica)
        if before is not None and before[1] != state.replica:
            gap_ms = (state.stamp >> 16) - (before[0] >> 16)
            if gap_ms <= self._conflict_window_ms:
                self.count("concurrent_register_writes")

    # -- reading ----------------------------------------------------------------------------

    def snapshot(self, node: Node | None, *, now: float, url: str | None,
                 store: Store | None = None) -> dict[str, Any]:
        """The metrics view ``Peer.metrics()`` returns (see there for the keys).

        Args:
            node: the running node (None before the peer started: zeros).
            now: the runtime's monotonic clock.
            url: the address the peer listens on.
            store: the open store, or None.
        """
        figures = node_figures(node.stats if node is not None else NodeStats())
        refusals = figures["refusals"]
        for reason, n in self._refusals.items():
            if reason not in refusals or reason == "oversized-frame":
                refusals[reason] = max(refusals.get(reason, 0), n)
        in_sync = node.synced_with() if node is not None else {}
        self.sample_sync(in_sync, now)
        drift = {peer_id: 0.0 if ok else round(now - self._last_in_sync.get(peer_id, now), 3)
                 for peer_id, ok in in_sync.items()}
        peers = sorted(set(node.peers().values())) if node is not None else []
        stored = None
        if store is not None:
            stored = {
                "path": str(getattr(store, "path", store)),
                "journal_rows": store.journal_rows,
                "journal_bytes": getattr(store, "journal_bytes", 0),
                "commits": getattr(store, "commits", 0),
                "compactions": self._counters.get("compactions", 0),
            }
        return {
            "peer_id": self._peer_id,
            "url": url,
            "connected_peers": len(peers),
            "peers": peers,
            "deltas_sent": figures["deltas_sent"],
            "deltas_received": figures["deltas_received"],
            "bytes_sent": figures["bytes_sent"],
            "bytes_received": figures["bytes_received"],
            "anti_entropy_sessions": figures["anti_entropy_sessions"],
            "lag": node.lag() if node is not None else {},
            "drift_seconds": drift,
            "synced": bool(peers) and node.synced(),
            "refusals": refusals,
            "refused_by_peers": dict(self._refused_by_peers),
            "conflicts": {
                "mv_register_siblings": sum(self._siblings.values()),
                "concurrent_register_writes": self._counters.get("concurrent_register_writes", 0),
                "type_clashes": self._counters.get("type_clashes", 0),
            },
            "dial_failures": self._counters.get("dial_failures", 0),
            "throttled_seconds": round(self._counters.get("throttled_seconds", 0), 3),
            "replica_id": self._memory.replica_id,
            "store": stored,
            "stats": figures["stats"],
        }
