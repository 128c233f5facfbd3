"""Frames go straight to an idle connection (no writer task hop), and stay in order when it is busy."""

from __future__ import annotations

import logging
import random

import anyio
import pytest

from crdtmem import Memory
from crdtmem.protocol.node import NodeConfig
from crdtmem.runtime import PeerOptions
from crdtmem.runtime.health import Health
from crdtmem.runtime.links import Links
from crdtmem.runtime.notices import Notices
from crdtmem.transports import Connection, ConnectionClosed, Transport
from crdtmem.transports.memory import MemoryHub, MemoryTransport
from crdtmem.transports.websocket import WebSocketTransport

pytestmark = pytest.mark.anyio


async def test_a_websocket_takes_frames_at_once_in_order_with_awaited_sends() -> None:
    received: list[bytes] = []
    done = anyio.Event()

    async def handler(conn: Connection) -> None:
        while len(received) < 6:
            received.append(await conn.receive())
        done.set()

    transport = WebSocketTransport()
    async with anyio.create_task_group() as tg:
        listener = await transport.listen("ws://127.0.0.1:0", handler, tg)
        conn = await transport.connect(listener.url)
        assert conn.send_now(b"one")
        await conn.send(b"two")
        assert conn.send_now(b"three")
        await conn.send(b"four")
        assert conn.send_now_many([b"five", b"six"]) == 2  # one write for both
        with anyio.fail_after(10):
            await done.wait()
        await conn.close("done")
        assert not conn.send_now(b"after close")
        assert conn.send_now_many([b"after", b"close"]) == 0
        await listener.aclose()
    assert received == [b"one", b"two", b"three", b"four", b"five", b"six"]


async def test_a_memory_connection_declines_when_its_buffer_is_full_or_closed() -> None:
    hub = MemoryHub()
    transport = MemoryTransport(hub=hub, buffer=1)
    accepted: list[Connection] = []
    ready = anyio.Event()

    async def handler(conn: Connection) -> None:
        accepted.append(conn)
        ready.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        listener = await transport.listen("memory://direct", handler, tg)
        conn = await transport.connect(listener.url)
        with anyio.fail_after(10):
            await ready.wait()
        assert conn.send_now(b"one")
        assert not conn.send_now(b"two")  # the one-frame buffer is full: nothing sent
        assert await accepted[0].receive() == b"one"
        assert conn.send_now(b"three")
        assert await accepted[0].receive() == b"three"
        assert conn.send_now_many([b"four", b"five"]) == 1  # as far as the buffer takes them
        assert await accepted[0].receive() == b"four"
        await conn.close("done")
        assert not conn.send_now(b"after close")
        tg.cancel_scope.cancel()


class _GatedConnection(Connection):
    """Takes frames at once only while ``open_now`` is set; awaited sends wait for ``gate``."""

    def __init__(self) -> None:
        self.open_now = False
        self.gate = anyio.Event()
        self.sending = anyio.Event()
        self.sent: list[tuple[str, bytes]] = []
        self.changed = anyio.Event()
        self.closed = anyio.Event()

    def _record(self, how: str, data: bytes) -> None:
        self.sent.append((how, data))
        self.changed.set()
        self.changed = anyio.Event()

    def send_now(self, data: bytes) -> bool:
        if self.open_now:
            self._record("now", data)
        return self.open_now

    async def send(self, data: bytes) -> None:
        self.sending.set()
        await self.gate.wait()
        self._record("awaited", data)

    async def receive(self) -> bytes:
        await self.closed.wait()
        raise ConnectionClosed("closed")

    async def close(self, reason: str = "", *, refused: bool = False) -> None:
        self.closed.set()


class _OneConnection(Transport):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def listen(self, url, handler, task_group):  # pragma: no cover - never listens
        raise OSError("dial only")

    async def connect(self, url: str) -> Connection:
        return self.conn


async def test_links_queue_behind_a_frame_being_sent_and_write_directly_once_idle() -> None:
    conn = _GatedConnection()
    opened: list[str] = []
    is_open = anyio.Event()

    def on_open(key: str, dialer: bool, now: float) -> None:
        opened.append(key)
        is_open.set()

    links = Links(
        "me", PeerOptions(), NodeConfig(), health=Health(Memory("me"), "me", conflict_window=1.0),
        jitter=random.Random(1), transport=_OneConnection(conn), notices=Notices(logging.getLogger("test")),
        on_refused_by_peer=lambda address, reason: None, on_open=on_open,
        on_receive=lambda key, data, now: None, on_close=lambda key, reason, now: None,
    )

    async def sent(count: int) -> None:
        while len(conn.sent) < count:
            await conn.changed.wait()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(links.dial_forever, "test://peer")
            await is_open.wait()
            key = opened[0]
            links.send(key, [b"1"])  # declined at once: queued, the writer blocks sending it
            await conn.sending.wait()
            conn.open_now = True
            links.send(key, [b"2"])  # the connection could take it, but "1" is still being sent
            links.send(key, [b"3"])
            conn.gate.set()
            await sent(3)
            links.send(key, [b"4", b"5"])  # idle again: written directly
            await sent(5)
            await links.stop()
    assert conn.sent == [("awaited", b"1"), ("awaited", b"2"), ("awaited", b"3"), ("now", b"4"), ("now", b"5")]
