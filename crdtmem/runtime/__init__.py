"""The anyio runtime (a shell): a :class:`Peer` drives the sans-I/O Node over real transports.

One concept a module:

* :mod:`.peer` — :class:`Peer`: lifecycle, the timer loop, pumping the node, store journaling;
* :mod:`.options` — :class:`PeerOptions`, :class:`LinkLimits`, :class:`StoreOptions`: what a
  peer is told, validated when built;
* :mod:`.links` — its transport connections: listen, dial, read, write, admission;
* :mod:`.ratelimit` — the per-connection receive budget;
* :mod:`.health` — metrics kept from events, computed when asked;
* :mod:`.prometheus` — their export on a scrape.
"""

from .options import LinkLimits, PeerOptions, StoreOptions
from .peer import Peer

__all__ = ["Peer", "PeerOptions", "LinkLimits", "StoreOptions"]
