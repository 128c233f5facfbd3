"""What a :class:`~crdtmem.runtime.peer.Peer` is told to do, grouped by concern.

Three frozen dataclasses, validated when built (a bad value fails here, not on the first
connection hours later):

* :class:`PeerOptions`: where to listen and whom to dial, TLS, redial backoff, metrics export,
  the conflict heuristic — and the two groups below;
* :class:`LinkLimits`: what connections may cost this peer (their number, unsent bytes, how
  fast one connection is read);
* :class:`StoreOptions`: the SQLite file, its durability and when it is compacted.

The defaults are the ones ``crdtmem peer`` uses; the CLI builds these from its flags::

    options = PeerOptions(listen="ws://0.0.0.0:8765", connect=("ws://10.0.0.2:8765",),
                          store=StoreOptions(path="me.db", fsync=True),
                          limits=LinkLimits(max_connections=64))
    async with Peer(memory, identity, keyring, options) as peer: ...

Derive a variant with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import os
import ssl as ssl_module
from dataclasses import dataclass, field

__all__ = ["PeerOptions", "LinkLimits", "StoreOptions"]


@dataclass(frozen=True)
class LinkLimits:
    """Bounds on what connections may cost this peer, so a stranger or a flooding peer slows
    only itself.

    Attributes:
        max_connections: connections that finished the handshake (peers in the keyring),
            at most this many; a connection accepted or authenticated beyond it is closed at
            once (counted as refusal ``too-many-connections``).
        max_unauthenticated: accepted connections still handshaking, at most this many: the
            strangers' own budget, so idle sockets never take a keyring peer's slot. A new one
            beyond it closes the oldest handshaking one (refusal ``too-many-unauthenticated``),
            so a keyring peer, done in one round trip, always gets in.
        hello_timeout: an accepted connection that has not finished the handshake this many
            seconds after it opened is closed (refusal ``hello-timeout``); a keyring peer needs
            one round trip. Shorter than the node's general ``handshake_timeout``.
        max_queue_bytes: drop a connection whose unsent frames exceed this (a stalled peer
            catches up after reconnecting instead of growing our memory).
        max_receive_messages_per_s, max_receive_bytes_per_s: per connection, what is read on
            average (one second's worth may come at once); beyond it the connection is not read
            until the budget refills (counted as ``throttled_seconds``). None: unlimited.
    """

    max_connections: int = 256
    max_unauthenticated: int = 16
    hello_timeout: float = 3.0
    max_queue_bytes: int = 64 * 1024 * 1024
    max_receive_messages_per_s: float | None = 2000.0
    max_receive_bytes_per_s: float | None = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections!r}")
        if self.max_unauthenticated < 1:
            raise ValueError(f"max_unauthenticated must be at least 1, got {self.max_unauthenticated!r}")
        if not self.hello_timeout > 0:
            raise ValueError(f"hello_timeout must be positive, got {self.hello_timeout!r}")
        if self.max_queue_bytes < 1:
            raise ValueError(f"max_queue_bytes must be positive, got {self.max_queue_bytes!r}")
        for name in ("max_receive_messages_per_s", "max_receive_bytes_per_s"):
            rate = getattr(self, name)
            if rate is not None and not rate > 0:
                raise ValueError(f"{name} must be positive or None (unlimited), got {rate!r}")


@dataclass(frozen=True)
class StoreOptions:
    """Where and how a peer persists its memory.

    Attributes:
        path: the SQLite file to restore from and persist to; None keeps nothing on disk.
        fsync: make every store commit survive power loss, not only a process crash.
        compact_every: compact the store once the journal holds this many batches.
    """

    path: str | os.PathLike[str] | None = None
    fsync: bool = False
    compact_every: int = 10_000

    def __post_init__(self) -> None:
        if self.compact_every < 1:
            raise ValueError(f"compact_every must be at least 1, got {self.compact_every!r}")


@dataclass(frozen=True)
class PeerOptions:
    """Everything a peer is told besides its memory, key, keyring and the node's tunables.

    Attributes:
        listen: where to accept connections (``ws://HOST:PORT``, ``wss://...``,
            ``memory://NAME``); port 0 picks a free port (see ``Peer.url``). None: dial only.
        connect: addresses to dial and keep dialing (any iterable; stored as a tuple).
        relay: a broker to publish to and consume from (``nats://HOST:PORT[/STREAM]``; several
            addresses name servers of one cluster; stored as a tuple). Empty: no relay.
        ssl: server context for a ``wss://`` listener.
        client_ssl: context for ``wss://`` dials.
        reconnect_min, reconnect_max: redial backoff bounds in seconds (with jitter).
        metrics_port: also export metrics for Prometheus on this port (0: any free port, see
            ``Peer.metrics_url``); None: no export.
        metrics_host: the address the metrics server binds.
        conflict_window: register writes by two replicas this close in time (seconds) are
            counted as ``conflicts["concurrent_register_writes"]`` (a heuristic: timestamps
            cannot prove concurrency).
        limits: what connections may cost (see :class:`LinkLimits`).
        store: persistence (see :class:`StoreOptions`).
    """

    listen: str | None = None
    connect: tuple[str, ...] = ()
    relay: tuple[str, ...] = ()
    ssl: ssl_module.SSLContext | None = None
    client_ssl: ssl_module.SSLContext | None = None
    reconnect_min: float = 0.1
    reconnect_max: float = 10.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    conflict_window: float = 1.0
    limits: LinkLimits = field(default_factory=LinkLimits)
    store: StoreOptions = field(default_factory=StoreOptions)

    def __post_init__(self) -> None:
        if isinstance(self.connect, str):
            raise TypeError("connect takes a list of addresses, not one string")
        object.__setattr__(self, "connect", tuple(self.connect))
        object.__setattr__(self, "relay", (self.relay,) if isinstance(self.relay, str) else tuple(self.relay))
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ValueError(
                f"need 0 < reconnect_min <= reconnect_max, got {self.reconnect_min!r} and {self.reconnect_max!r}"
            )
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be a port number (0: any), got {self.metrics_port!r}")
        if self.conflict_window < 0:
            raise ValueError(f"conflict_window must not be negative, got {self.conflict_window!r}")
        if not isinstance(self.limits, LinkLimits):
            raise TypeError(f"limits must be a LinkLimits, got {type(self.limits).__name__}")
        if not isinstance(self.store, StoreOptions):
            raise TypeError(f"store must be a StoreOptions, got {type(self.store).__name__}")
