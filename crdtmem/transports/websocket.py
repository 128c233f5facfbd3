"""The websocket transport (the ``websockets`` library, asyncio implementation).

One websocket binary message is one frame. ``max_size`` is set to the node's frame cap, so a
larger message is refused by the library before it is buffered (close code 1009) and reported
as the refusal ``oversized-frame``. Compression is off: frames are signed msgpack, and
permessage-deflate would cost CPU and open a decompression-bomb surface. HTTP proxies from the
environment are ignored: peers dial each other directly.
"""

from __future__ import annotations

import logging
import ssl as ssl_module
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake, InvalidURI
from websockets.protocol import State

from . import Connection, ConnectionClosed, Handler, Listener, Transport

__all__ = ["WebSocketTransport", "WebSocketConnection", "WebSocketListener", "parse_ws_url"]

log = logging.getLogger("crdtmem.transport")

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009


def parse_ws_url(url: str) -> tuple[bool, str, int]:
    """(secure, host, port) of a ``ws://`` or ``wss://`` URL; port 0 asks for an ephemeral port."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"{url!r} is not a ws:// or wss:// URL")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    secure = parts.scheme == "wss"
    port = parts.port if parts.port is not None else (443 if secure else 80)
    return secure, parts.hostname, port


def _closed(exc: WsConnectionClosed) -> ConnectionClosed:
    if exc.sent is not None and exc.sent.code == CLOSE_TOO_BIG:
        return ConnectionClosed(f"refused an oversized frame ({exc.sent.reason})", refusal="oversized-frame")
    frame = exc.rcvd or exc.sent
    if frame is None:
        return ConnectionClosed("connection lost")
    side = "peer" if exc.rcvd is not None else "us"
    refused = (frame.reason or "refused") if exc.rcvd is not None and frame.code == CLOSE_POLICY else None
    return ConnectionClosed(f"closed by {side}: {frame.code} {frame.reason}".rstrip(), refused_by_peer=refused)


class WebSocketConnection(Connection):
    def __init__(self, ws: ServerConnection | ClientConnection) -> None:
        self.ws = ws
        address = ws.remote_address
        self.remote = f"{address[0]}:{address[1]}" if address else "?"

    async def send(self, data: bytes) -> None:
        try:
            await self.ws.send(data)
        except WsConnectionClosed as exc:
            raise _closed(exc) from None

    def send_now(self, data: bytes) -> bool:
        """Write the frame to the socket now, as ``send`` would, when nothing waits to be written.

        Saves the task switch to a writer: the protocol frames it and the transport takes the
        bytes at once. Declines (False) while the connection is not open or the transport
        still buffers earlier bytes (``send`` then waits for it to drain).
        """
        return self.send_now_many([data]) == 1

    def send_now_many(self, frames: list[bytes]) -> int:
        """Write all the frames to the socket now, in one write, when nothing waits to be
        written (else none: 0): several messages to one peer cost one system call."""
        ws = self.ws
        transport, protocol = ws.transport, ws.protocol
        if protocol.state is not State.OPEN or transport.is_closing() or transport.get_write_buffer_size():
            return 0
        for data in frames:
            protocol.send_binary(data)
        transport.write(b"".join(protocol.data_to_send()))
        return len(frames)

    async def receive(self) -> bytes:
        try:
            data = await self.ws.recv()
        except WsConnectionClosed as exc:
            raise _closed(exc) from None
        # A text message is not a frame; hand its bytes on so the node refuses it with a reason.
        return data.encode("utf-8", "replace") if isinstance(data, str) else data

    async def close(self, reason: str = "", *, refused: bool = False) -> None:
        try:
            await self.ws.close(CLOSE_POLICY if refused else CLOSE_NORMAL, reason[:120])
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


class WebSocketListener(Listener):
    def __init__(self, server: Server, url: str) -> None:
        self.server = server
        self.url = url

    async def aclose(self) -> None:
        self.server.close()
        await self.server.wait_closed()


class WebSocketTransport(Transport):
    """``ws://`` and ``wss://``.

    Args:
        max_frame_bytes: the largest message accepted (the node's frame cap).
        ssl: server-side context for ``wss://`` listeners.
        client_ssl: client-side context for ``wss://`` dials (default: the system's
            verified default context).
        open_timeout: seconds allowed for the TCP/TLS/HTTP opening handshake.
        ping_interval: websocket keepalive pings (None: off).
    """

    OPTIONS = ("max_frame_bytes", "ssl", "client_ssl", "open_timeout", "ping_interval")

    def __init__(
        self,
        *,
        max_frame_bytes: int = 1024 * 1024,
        ssl: ssl_module.SSLContext | None = None,
        client_ssl: ssl_module.SSLContext | None = None,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
    ) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.ssl = ssl
        self.client_ssl = client_ssl
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval

    def _common(self) -> dict[str, Any]:
        return {
            "max_size": self.max_frame_bytes,
            "compression": None,
            "open_timeout": self.open_timeout,
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_interval,
            "close_timeout": 2,
            "max_queue": 64,
        }

    async def listen(self, url: str, handler: Handler, task_group: Any = None) -> WebSocketListener:
        secure, host, port = parse_ws_url(url)
        if secure and self.ssl is None:
            raise ValueError(f"listening on {url} needs a server ssl.SSLContext (ssl=...)")
        if not secure and self.ssl is not None:
            raise ValueError(f"an ssl context was given but {url} is not wss://")

        async def on_connection(ws: ServerConnection) -> None:
            await handler(WebSocketConnection(ws))

        server = await serve(on_connection, host, port, ssl=self.ssl if secure else None, **self._common())
        bound = server.sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        return WebSocketListener(server, f"{'wss' if secure else 'ws'}://{shown}:{bound[1]}")

    async def connect(self, url: str) -> WebSocketConnection:
        secure, _, _ = parse_ws_url(url)
        options = self._common()
        if secure:
            options["ssl"] = self.client_ssl or ssl_module.create_default_context()
        try:
            ws = await ws_connect(url, proxy=None, **options)
        except (InvalidHandshake, InvalidURI) as exc:
            raise OSError(f"websocket handshake with {url} failed: {exc}") from None
        return WebSocketConnection(ws)
