"""Transports move opaque frames between peers; the :class:`~crdtmem.peer.Peer` runtime drives them.

A transport connection carries whole messages (one frame each), in order. The interface is
three small pieces, implemented by :mod:`.websocket` (``ws://``, ``wss://``) and
:mod:`.memory` (``memory://``, in-process):

* :class:`Connection`: ``await send(data)``, ``await receive()`` (raises
  :class:`ConnectionClosed` when the connection ends), ``await close(reason, refused=...)``;
* :class:`Listener`: the bound ``url`` and ``await aclose()``;
* :class:`Transport`: ``await listen(url, handler, task_group)`` and ``await connect(url)``.

A relay (``nats://``, :mod:`.nats`) is not a connection but a broker's stream that every peer
publishes to and reads: :func:`relay_for` builds one from its URLs.

A listener runs ``handler(connection)`` for each incoming connection and closes the
connection when the handler returns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = [
    "Connection",
    "ConnectionClosed",
    "Listener",
    "Transport",
    "Handler",
    "transport_for",
    "relay_for",
]


class ConnectionClosed(Exception):
    """The connection ended. ``reason`` says why; ``refusal`` is set when the transport itself
    refused the peer's input (for instance ``"oversized-frame"``); ``refused_by_peer`` when the
    other side closed it as a refusal of ours, with the reason it gave (``"untrusted-key"``)."""

    def __init__(self, reason: str, refusal: str | None = None, *, refused_by_peer: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refusal = refusal
        self.refused_by_peer = refused_by_peer


class Connection(ABC):
    """One open transport connection carrying whole frames."""

    remote: str = "?"
    """The other end's address, for logs."""

    @abstractmethod
    async def send(self, data: bytes) -> None:
        """Send one frame. Raises ConnectionClosed if the connection is gone."""

    def send_now(self, data: bytes) -> bool:
        """Send one frame at once if the connection can take it without waiting; say whether it did.

        Call it only when no :meth:`send` is queued or in progress (frames stay in order);
        on False nothing was sent: :meth:`send` it. The default never can.
        """
        return False

    def send_now_many(self, frames: list[bytes]) -> int:
        """Send frames at once, in order, as far as the connection can take them without
        waiting; return how many of the first ones it sent (:meth:`send` the rest, in order).

        Call it as :meth:`send_now`. A transport that can hand several frames to the system
        in one write (websockets) overrides it; the default sends them one by one.
        """
        sent = 0
        for data in frames:
            if not self.send_now(data):
                break
            sent += 1
        return sent

    @abstractmethod
    async def receive(self) -> bytes:
        """The next frame. Raises ConnectionClosed when the connection ends."""

    @abstractmethod
    async def close(self, reason: str = "", *, refused: bool = False) -> None:
        """Close (idempotent). ``refused`` marks a close for misbehaviour (websocket code 1008)."""


class Listener(ABC):
    url: str
    """The address actually bound (an ephemeral port resolved)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop accepting and close the connections it accepted."""


Handler = Callable[[Connection], Awaitable[None]]


class Transport(ABC):
    @abstractmethod
    async def listen(self, url: str, handler: Handler, task_group: Any) -> Listener:
        """Start accepting connections at ``url``; ``handler`` runs once per connection."""

    @abstractmethod
    async def connect(self, url: str) -> Connection:
        """Open a connection to ``url``. Raises OSError (or TimeoutError) if it cannot."""


def transport_for(url: str, **options: Any) -> Transport:
    """The transport that serves ``url``'s scheme; ``options`` go to its constructor."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("ws", "wss"):
        from .websocket import WebSocketTransport

        return WebSocketTransport(**{k: v for k, v in options.items() if k in WebSocketTransport.OPTIONS})
    if scheme == "memory":
        from .memory import MemoryTransport

        return MemoryTransport(**{k: v for k, v in options.items() if k in MemoryTransport.OPTIONS})
    raise ValueError(f"no transport for {url!r}: use ws://, wss:// or memory://")


def relay_for(urls: list[str] | tuple[str, ...], name: str, **callbacks: Any) -> Any:
    """The relay that serves ``urls`` (servers of one broker); ``callbacks`` go to its constructor.

    Raises:
        ValueError: an unknown scheme or a malformed URL.
    """
    schemes = {url.split("://", 1)[0].lower() for url in urls}
    if schemes == {"nats"}:
        from .nats import NatsRelay, parse_relay_urls

        return NatsRelay(parse_relay_urls(urls), name, **callbacks)
    raise ValueError(f"no relay for {list(urls)!r}: use nats://HOST:PORT[/STREAM]")
