"""The peer's lifecycle with its links and health, over the in-process memory transport."""

from __future__ import annotations

import time
import urllib.request

import anyio
import pytest

from crdtmem import Memory, Peer
from crdtmem.protocol.node import NodeConfig
from crdtmem.runtime import LinkLimits, PeerOptions
from crdtmem.runtime.health import Health
from crdtmem.storage import SqliteStore
from crdtmem.transports.memory import MemoryHub, MemoryTransport

from ..inprocess import team

pytestmark = pytest.mark.anyio

QUICK = NodeConfig(gossip_interval=0.05, anti_entropy_interval=30.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_an_idle_peer_computes_no_metrics_until_asked(monkeypatch) -> None:
    asked = []
    snapshot = Health.snapshot
    monkeypatch.setattr(Health, "snapshot", lambda self, *a, **kw: asked.append(1) or snapshot(self, *a, **kw))
    transport = MemoryTransport(hub=MemoryHub())
    ids, keyring, (ma, mb) = team(2)
    async with Peer(ma, ids[0], keyring, listen="memory://a", transport=transport, config=QUICK) as a, \
            Peer(mb, ids[1], keyring, connect=["memory://a"], transport=transport, config=QUICK) as b:
        await b.wait_synced(timeout=5, peers=1)
        ma.mvregister("plan").assign("x")
        with anyio.fail_after(5):
            until = time.monotonic() + 1.2  # more than two of the old 0.5 s metrics refreshes
            while time.monotonic() < until:
                await a.changed()  # gossip rounds every 0.05 s wake the peers
        assert asked == []
        assert a.metrics()["connected_peers"] == 1
        assert asked == [1]


async def test_a_scrape_sees_the_state_of_the_moment() -> None:
    transport = MemoryTransport(hub=MemoryHub())
    ids, keyring, (ma, mb) = team(2)
    async with Peer(ma, ids[0], keyring, PeerOptions(listen="memory://a", metrics_port=0), transport=transport,
                    config=QUICK) as a, \
            Peer(mb, ids[1], keyring, connect=["memory://a"], transport=transport, config=QUICK) as b:
        await b.wait_synced(timeout=5, peers=1)
        mb.mvregister("plan").assign("x")
        ma.mvregister("plan").assign("y")
        await a.wait_for(lambda: len(ma.mvregister("plan").values) == 2, timeout=5)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore any HTTP proxy
        with anyio.fail_after(10):
            body = await anyio.to_thread.run_sync(lambda: opener.open(a.metrics_url, timeout=5).read())
    text = body.decode()
    assert f'crdtmem_conflicts{{kind="mv_register_siblings",peer="{ids[0].peer_id}"}} 1.0' in text
    assert f'crdtmem_connected_peers{{peer="{ids[0].peer_id}"}} 1.0' in text


async def test_a_connection_beyond_the_cap_is_refused_and_counted() -> None:
    transport = MemoryTransport(hub=MemoryHub())
    ids, keyring, mems = team(3)
    capped = PeerOptions(listen="memory://a", limits=LinkLimits(max_connections=1))
    async with Peer(mems[0], ids[0], keyring, capped, transport=transport, config=QUICK) as a, \
            Peer(mems[1], ids[1], keyring, connect=["memory://a"], transport=transport, config=QUICK) as b:
        await b.wait_connected(1, timeout=5)
        async with Peer(mems[2], ids[2], keyring, connect=["memory://a"], transport=transport, config=QUICK):
            await a.wait_for(lambda: a.metrics()["refusals"].get("too-many-connections", 0) >= 1, timeout=5)
            assert a.connected_peers() == [ids[1].peer_id]


async def test_an_isolated_peer_drops_its_links_and_rejoins_on_request() -> None:
    transport = MemoryTransport(hub=MemoryHub())
    ids, keyring, (ma, mb) = team(2)
    redial = PeerOptions(connect=("memory://a",), reconnect_min=0.01, reconnect_max=0.05)
    async with Peer(ma, ids[0], keyring, listen="memory://a", transport=transport, config=QUICK) as a, \
            Peer(mb, ids[1], keyring, redial, transport=transport, config=QUICK) as b:
        await b.wait_connected(1, timeout=5)
        b.isolate()
        await a.wait_for(lambda: a.connected_peers() == [], timeout=5)
        mb.counter("offline").increment(2)
        b.rejoin()
        await b.wait_synced(timeout=5, peers=1)
        await a.wait_for(lambda: ma.counter("offline").value == 2, timeout=5)


async def test_exiting_closes_every_link_and_journals_the_last_writes(tmp_path) -> None:
    transport = MemoryTransport(hub=MemoryHub())
    ids, keyring, (ma, mb) = team(2)
    async with Peer(ma, ids[0], keyring, listen="memory://a", transport=transport, config=QUICK) as a:
        async with Peer(mb, ids[1], keyring, connect=["memory://a"], store=tmp_path / "b.db", transport=transport,
                        config=QUICK) as b:
            await b.wait_connected(1, timeout=5)
            mb.counter("last").increment(4)  # not flushed yet: the exit flushes and snapshots it
        assert len(b._links) == 0
        await a.wait_for(lambda: a.connected_peers() == [], timeout=5)
    restored = Memory(ids[1].peer_id, clock=time.time)
    async with Peer(restored, ids[1], keyring, store=tmp_path / "b.db"):
        assert restored.counter("last").value == 4


async def test_an_open_store_is_used_as_it_was_opened(tmp_path) -> None:
    ids, keyring, (memory,) = team(1)
    store = SqliteStore(tmp_path / "me.db", ids[0].peer_id)
    peer = Peer(memory, ids[0], keyring, store=store)
    assert peer.options.store.path is None  # nothing to open: the store is already open
    async with peer:
        assert peer.store is store
        memory.counter("c").increment(2)
        await peer.flush()
    with SqliteStore(tmp_path / "me.db", None, readonly=True) as reader:
        assert reader.load().memory.counter("c").value == 2
