"""Prometheus export of ``Peer.metrics()`` (imported only when ``metrics_port`` is given).

A scrape asks for a fresh snapshot: the HTTP server's thread hands the call to the peer's event
loop through a :class:`~anyio.from_thread.BlockingPortal` and waits for it, so the metrics are
computed on demand, never touch live protocol state from another thread, and cost nothing
between scrapes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["PeerCollector", "MetricsServer"]

log = logging.getLogger("crdtmem.peer")


class MetricsServer:
    """An HTTP endpoint serving one peer's metrics to Prometheus, while entered.

    Enter it (``async with``) on the peer's event loop; it serves until it exits.

    Args:
        metrics: returns the snapshot (``Peer.metrics``); called on the event loop per scrape.
        host, port: where to listen (port 0: any free port, see :attr:`url`).
    """

    def __init__(self, metrics: Callable[[], dict[str, Any]], host: str, port: int) -> None:
        self._metrics, self._host, self._port = metrics, host, port
        self._portal = BlockingPortal()
        self._server: Any = None
        self.url: str | None = None
        """Where Prometheus scrapes (set on entry)."""

    async def __aenter__(self) -> MetricsServer:
        await self._portal.__aenter__()
        try:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(PeerCollector(lambda: self._portal.call(self._metrics)))
            self._server, _ = start_http_server(self._port, addr=self._host, registry=registry)
        except BaseException:
            await self._portal.__aexit__(None, None, None)
            raise
        self.url = f"http://{self._host}:{self._server.server_address[1]}/metrics"
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        """Stop serving (in a worker thread: a scrape in progress still gets its answer)."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._server.shutdown)
        self._server.server_close()
        await self._portal.__aexit__(*exc_info)


class PeerCollector:
    """A Prometheus collector over a metrics snapshot, taken once per scrape.

    Args:
        snapshot: returns ``Peer.metrics()``; safe to call from the HTTP server's thread.
    """

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.snapshot = snapshot

    def describe(self) -> list:
        return []

    def collect(self):
        try:
            m = self.snapshot()
        except RuntimeError as exc:  # the portal has stopped: the peer is shutting down
            log.debug("metrics scrape after shutdown: %s", exc)
            return
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
        refused_by = CounterMetricFamily("crdtmem_refused_by_peers", "Our connections that peers closed as "
                                         "refusals, by the reason they gave.", labels=["peer", "reason"])
        for reason, n in sorted(m["refused_by_peers"].items()):
            refused_by.add_metric([peer, reason], n)
        yield refused_by
        conflicts = GaugeMetricFamily("crdtmem_conflicts", "Conflicts seen: MV-register siblings now, "
                                      "near-simultaneous register writes and type clashes so far.", labels=["peer", "kind"])
        for kind, n in sorted(m["conflicts"].items()):
            conflicts.add_metric([peer, kind], n)
        yield conflicts
        if m.get("store"):
            yield gauge("crdtmem_store_journal_rows", "Batches journaled since the last snapshot.",
                        m["store"]["journal_rows"])
