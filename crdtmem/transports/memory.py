"""An in-process transport over anyio memory object streams (``memory://NAME``).

For tests and for several agents in one process: no sockets, same frames, same runtime. A
:class:`MemoryHub` is the namespace of listeners (one shared default hub per process).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from . import Connection, ConnectionClosed, Handler, Listener, Transport

__all__ = ["MemoryTransport", "MemoryHub", "MemoryConnection", "DEFAULT_HUB"]

_ids = itertools.count(1)


class MemoryConnection(Connection):
    def __init__(self, send: ObjectSendStream, receive: ObjectReceiveStream, remote: str, max_frame_bytes: int) -> None:
        self._send, self._receive = send, receive
        self.remote = remote
        self.max_frame_bytes = max_frame_bytes
        self._closed_reason: str | None = None

    async def send(self, data: bytes) -> None:
        if self._closed_reason is not None:
            raise ConnectionClosed(self._closed_reason)
        try:
            await self._send.send(bytes(data))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise ConnectionClosed("closed by peer") from None

    def send_now(self, data: bytes) -> bool:
        if self._closed_reason is not None:
            return False
        try:
            self._send.send_nowait(bytes(data))
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False  # full, or gone: ``send`` waits for room or reports the close
        return True

    async def receive(self) -> bytes:
        try:
            message = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise ConnectionClosed(self._closed_reason or "closed by peer") from None
        if isinstance(message, tuple):  # the other side's close notice
            _, reason, refused = message
            raise ConnectionClosed(f"closed by peer: {reason}", refused_by_peer=(reason or "refused") if refused else None)
        if len(message) > self.max_frame_bytes:
            await self.close("frame too big", refused=True)
            raise ConnectionClosed("refused an oversized frame", refusal="oversized-frame")
        return message

    async def close(self, reason: str = "", *, refused: bool = False) -> None:
        if self._closed_reason is not None:
            return
        self._closed_reason = f"closed by us: {reason}"
        try:
            self._send.send_nowait(("close", reason, refused))
        except Exception:  # noqa: BLE001 - peer gone or buffer full: closing the stream suffices
            pass
        await self._send.aclose()
        await self._receive.aclose()


class MemoryListener(Listener):
    def __init__(self, hub: MemoryHub, name: str, handler: Handler, task_group: Any, max_frame_bytes: int) -> None:
        self.hub, self.name, self.handler, self.task_group = hub, name, handler, task_group
        self.url = f"memory://{name}"
        self.max_frame_bytes = max_frame_bytes
        self.connections: set[MemoryConnection] = set()

    async def _serve(self, conn: MemoryConnection) -> None:
        self.connections.add(conn)
        try:
            await self.handler(conn)
        finally:
            self.connections.discard(conn)
            await conn.close("handler returned")

    async def aclose(self) -> None:
        self.hub._listeners.pop(self.name, None)
        for conn in list(self.connections):
            await conn.close("listener closed")


class MemoryHub:
    """Where ``memory://`` listeners are registered; transports sharing a hub can reach each other."""

    def __init__(self) -> None:
        self._listeners: dict[str, MemoryListener] = {}


DEFAULT_HUB = MemoryHub()


class MemoryTransport(Transport):
    OPTIONS = ("hub", "max_frame_bytes", "buffer")

    def __init__(self, *, hub: MemoryHub | None = None, max_frame_bytes: int = 1024 * 1024, buffer: float = math.inf) -> None:
        self.hub = hub or DEFAULT_HUB
        self.max_frame_bytes = max_frame_bytes
        self.buffer = buffer

    async def listen(self, url: str, handler: Handler, task_group: Any) -> MemoryListener:
        name = url.split("://", 1)[1] or f"peer-{next(_ids)}"
        if name in self.hub._listeners:
            raise OSError(f"memory://{name} is already bound")
        listener = MemoryListener(self.hub, name, handler, task_group, self.max_frame_bytes)
        self.hub._listeners[name] = listener
        return listener

    async def connect(self, url: str) -> MemoryConnection:
        name = url.split("://", 1)[1]
        listener = self.hub._listeners.get(name)
        if listener is None:
            raise ConnectionRefusedError(f"nothing listens at memory://{name}")
        a_send, b_receive = anyio.create_memory_object_stream(self.buffer)
        b_send, a_receive = anyio.create_memory_object_stream(self.buffer)
        serial = next(_ids)
        ours = MemoryConnection(a_send, a_receive, f"memory://{name}", self.max_frame_bytes)
        theirs = MemoryConnection(b_send, b_receive, f"memory-client-{serial}", listener.max_frame_bytes)
        listener.task_group.start_soon(listener._serve, theirs)
        return ours
