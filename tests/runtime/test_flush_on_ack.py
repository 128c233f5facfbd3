"""Local writes held back for a neighbour's ack are signed and sent in the turn that brings the ack."""

from __future__ import annotations

import anyio
import pytest

from crdtmem import Peer
from crdtmem.protocol.node import Node, NodeConfig
from crdtmem.transports.memory import MemoryHub, MemoryTransport

from ..inprocess import team

pytestmark = pytest.mark.anyio

# Held writes never go out on the timer alone here: only an ack can release them.
HOLD = NodeConfig(max_flush_delay=60.0, gossip_interval=60.0, anti_entropy_interval=60.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_writes_held_for_an_ack_go_out_when_the_ack_is_received() -> None:
    transport = MemoryTransport(hub=MemoryHub())
    ids, keyring, (ma, mb) = team(2)
    async with Peer(ma, ids[0], keyring, listen="memory://a", transport=transport, config=HOLD) as a, \
            Peer(mb, ids[1], keyring, connect=["memory://a"], transport=transport, config=HOLD) as b:
        await a.wait_synced(timeout=10)
        pending_before_and_after: list[tuple[bool, bool]] = []
        deliver = a._links._on_receive

        def on_receive(key: str, data: bytes, now: float) -> None:
            before = ma.has_pending_deltas()
            deliver(key, data, now)
            pending_before_and_after.append((before, ma.has_pending_deltas()))

        a._links._on_receive = on_receive
        tasks = ma.set("tasks")
        tasks.add("first")
        await a.flush()  # batch 1 is out and not acknowledged yet
        tasks.add("second")  # held: it waits for b's ack of batch 1
        await a.wait_synced(timeout=10)
        await b.wait_for(lambda: mb.set("tasks").value == {"first", "second"}, timeout=10)
    # The message that found the write held (b's ack) left nothing pending behind it.
    assert (True, False) in pending_before_and_after
    assert (True, True) not in pending_before_and_after
    assert a.node.stats.batches_created >= 2


async def test_a_local_write_wakes_the_timer_unless_writes_are_held_for_an_ack(monkeypatch) -> None:
    transport = MemoryTransport(hub=MemoryHub())
    ids, keyring, (ma,) = team(1)
    async with Peer(ma, ids[0], keyring, listen="memory://alone", transport=transport, config=HOLD) as a:
        wakes: list[str] = []
        monkeypatch.setattr(a, "_wake_timer", lambda: wakes.append("woken"))
        a._woken = False
        monkeypatch.setattr(Node, "writes_held", property(lambda node: True))
        ma.set("tasks").add(1)
        assert wakes == []  # it joins the held writes: the ack (or their deadline) releases them all
        monkeypatch.setattr(Node, "writes_held", property(lambda node: False))
        ma.set("tasks").add(2)
        assert wakes == ["woken"]
