"""Local writes held back for a neighbour's ack are signed and sent in the turn that brings the ack."""

from __future__ import annotations

import anyio
import pytest

from crdtmem import Peer
from crdtmem.protocol.node import NodeConfig
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


async def test_writes_joining_held_ones_do_not_wake_the_timer_each() -> None:
    transport = MemoryTransport(hub=MemoryHub())
    ids, keyring, (ma,) = team(1)
    async with Peer(ma, ids[0], keyring, listen="memory://alone", transport=transport, config=HOLD) as a:
        ticks: list[float] = []
        tick = a.node.tick
        a.node.tick = lambda now: ticks.append(now) or tick(now)  # type: ignore[method-assign]
        tasks = ma.set("tasks")
        tasks.add(0)
        with anyio.fail_after(10):
            while not a.node.writes_held:  # no neighbour: the write waits max_flush_delay
                await anyio.sleep(0)
        held_at = len(ticks)
        for i in range(1, 50):
            tasks.add(i)
            await anyio.sleep(0)
        assert a.node.writes_held and ma.has_pending_deltas()
        assert len(ticks) == held_at  # the 49 writes joined the held ones without a tick each
        await a.flush()
        assert not a.node.writes_held and not ma.has_pending_deltas()
