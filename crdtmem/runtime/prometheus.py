"""Prometheus export of :meth:`Peer.metrics` (imported only when ``metrics_port`` is given).

The collector reads a metrics snapshot the runtime refreshes on its own thread about twice a
second, so a scrape never touches live protocol state from the HTTP server's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["PeerCollector"]


class PeerCollector:
    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.snapshot = snapshot

    def describe(self) -> list:
        return []

    def collect(self):
        m = self.snapshot()
        if not m:
            return
        peer = m["peer_id"]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=["peer"])
            g.add_metric([peer], value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=["peer"])
            c.add_metric([peer], value)
            return c

        yield gauge("crdtmem_connected_peers", "Peers with an open, authenticated session.", m["connected_peers"])
        yield gauge("crdtmem_synced", "1 when every connected peer has our writes and we theirs.", int(m["synced"]))
        yield counter("crdtmem_deltas_sent", "Delta batches made and signed here.", m["deltas_sent"])
        yield counter("crdtmem_deltas_received", "Delta batches from others applied here.", m["deltas_received"])
        yield counter("crdtmem_bytes_sent", "Frame bytes sent.", m["bytes_sent"])
        yield counter("crdtmem_bytes_received", "Frame bytes received.", m["bytes_received"])
        yield counter("crdtmem_repairs", "Anti-entropy sessions that changed something.", m["repairs"])
        yield counter("crdtmem_repair_bytes", "Bytes sent by anti-entropy repair.", m["repair_bytes"])
        lag = GaugeMetricFamily("crdtmem_lag_batches", "Our batches a connected peer is not known to have.",
                                labels=["peer", "remote"])
        for remote, n in sorted(m["lag"].items()):
            lag.add_metric([peer, remote], n)
        yield lag
        drift = GaugeMetricFamily("crdtmem_drift_seconds", "Seconds since we were last in sync with a peer.",
                                  labels=["peer", "remote"])
        for remote, seconds in sorted(m["drift_seconds"].items()):
            drift.add_metric([peer, remote], seconds)
        yield drift
        refused = CounterMetricFamily("crdtmem_refusals", "Refused input, by reason.", labels=["peer", "reason"])
        for reason, n in sorted(m["refusals"].items()):
            refused.add_metric([peer, reason], n)
        yield refused
        conflicts = GaugeMetricFamily("crdtmem_conflicts", "Conflicts seen: MV-register siblings now, "
                                      "near-simultaneous register writes so far.", labels=["peer", "kind"])
        for kind, n in sorted(m["conflicts"].items()):
            conflicts.add_metric([peer, kind], n)
        yield conflicts
        if m.get("store"):
            yield gauge("crdtmem_store_journal_rows", "Batches journaled since the last snapshot.",
                        m["store"]["journal_rows"])
