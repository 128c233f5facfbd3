"""The anyio runtime (a shell): a :class:`Peer` drives the sans-I/O Node over real transports,
with its store, timers, rate limits, health and Prometheus export."""

from .peer import Peer

__all__ = ["Peer"]
