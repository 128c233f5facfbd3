"""Peers over real websockets on 127.0.0.1 (ephemeral ports), and over the memory transport."""

from __future__ import annotations

import random
import urllib.request

import anyio
import pycrdt
import pytest

from crdtmem import Peer
from crdtmem.runtime import PeerOptions
from crdtmem.protocol.node import NodeConfig
from crdtmem.transports.memory import MemoryHub, MemoryTransport

from ..inprocess import free_port, make_tls, same_state, team

pytestmark = pytest.mark.anyio

FAST = NodeConfig(gossip_interval=0.2, anti_entropy_interval=30.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write(memory, tag: str, n: int = 3) -> None:
    for i in range(n):
        memory.counter("tasks").increment(1)
        memory.set("facts").add(f"{tag}-{i}")
        memory.register("goal").assign(f"{tag}-goal-{i}")
        memory.map("board").put(f"{tag}-task-{i}", {"owner": tag})
    notes = memory.doc("notes").get("text", type=pycrdt.Text)
    notes += f"[{tag}]"


async def test_two_peers_over_websockets_converge() -> None:
    ids, keyring, (ma, mb) = team(2)
    async with Peer(ma, ids[0], keyring, listen="ws://127.0.0.1:0", config=FAST) as a:
        assert a.url.startswith("ws://127.0.0.1:") and not a.url.endswith(":0")
        async with Peer(mb, ids[1], keyring, connect=[a.url], config=FAST) as b:
            write(ma, "a")
            write(mb, "b")
            await b.wait_synced(timeout=10, peers=1)
            await a.wait_synced(timeout=10, peers=1)
            assert same_state(ma, mb)
            assert ma.counter("tasks").value == 6
            metrics = a.metrics()
            assert metrics["connected_peers"] == 1 and metrics["deltas_received"] >= 1
            assert metrics["bytes_sent"] > 0 and metrics["refusals"] == {}


async def test_a_peer_that_never_writes_still_runs_its_timers() -> None:
    # The listener only reads. Its ack timer, armed by the batch it receives, is the only way
    # the writer can learn the batch arrived: gossip rounds are a minute apart.
    quiet = NodeConfig(gossip_interval=60.0, anti_entropy_interval=60.0)
    ids, keyring, (reader, writer) = team(2)
    async with Peer(reader, ids[0], keyring, listen="ws://127.0.0.1:0", config=quiet) as listener:
        async with Peer(writer, ids[1], keyring, connect=[listener.url], config=quiet) as dialer:
            await dialer.wait_synced(timeout=10, peers=1)
            for i in range(3):
                writer.register("probe").assign(i)
                await dialer.wait_synced(timeout=5)
                assert reader.register("probe").value == i


async def test_three_peers_in_a_line_converge_through_relay() -> None:
    ids, keyring, mems = team(3)
    async with Peer(mems[0], ids[0], keyring, listen="ws://127.0.0.1:0", config=FAST) as a:
        async with Peer(mems[1], ids[1], keyring, listen="ws://127.0.0.1:0", connect=[a.url], config=FAST) as b:
            async with Peer(mems[2], ids[2], keyring, connect=[b.url], config=FAST) as c:  # c never meets a
                for tag, memory in zip("abc", mems):
                    write(memory, tag)
                await b.wait_synced(timeout=10, peers=2)
                await a.wait_for(lambda: same_state(*mems), timeout=10)
                await c.wait_for(lambda: same_state(*mems), timeout=10)
                assert mems[0].counter("tasks").value == 9
                assert ids[0].peer_id not in c.connected_peers()


async def test_wss_with_a_generated_certificate_converges(tmp_path) -> None:
    server_ctx, client_ctx = make_tls(tmp_path)
    ids, keyring, (ma, mb) = team(2)
    async with Peer(ma, ids[0], keyring, PeerOptions(listen="wss://127.0.0.1:0", ssl=server_ctx), config=FAST) as a:
        assert a.url.startswith("wss://")
        async with Peer(mb, ids[1], keyring, PeerOptions(connect=[a.url], client_ssl=client_ctx), config=FAST) as b:
            write(ma, "a")
            write(mb, "b")
            await b.wait_synced(timeout=10, peers=1)
            await a.wait_synced(timeout=10, peers=1)
            assert same_state(ma, mb)


async def test_wss_refuses_a_server_with_an_untrusted_certificate(tmp_path) -> None:
    server_ctx, _ = make_tls(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_client = make_tls(tmp_path / "other")  # trusts a different certificate
    ids, keyring, (ma, mb) = team(2)
    async with Peer(ma, ids[0], keyring, PeerOptions(listen="wss://127.0.0.1:0", ssl=server_ctx), config=FAST) as a:
        async with Peer(mb, ids[1], keyring, PeerOptions(connect=[a.url], client_ssl=other_client), config=FAST) as b:
            await b.wait_for(lambda: b.metrics()["dial_failures"] >= 1, timeout=10)
            assert b.connected_peers() == []


async def test_an_unreachable_peer_never_blocks_local_writes() -> None:
    ids, keyring, (ma, _) = team(2)
    dead = f"ws://127.0.0.1:{free_port()}"
    async with Peer(ma, ids[0], keyring, PeerOptions(reconnect_min=0.01, reconnect_max=0.05), connect=[dead],
                    config=FAST) as a:
        with anyio.fail_after(1):
            for i in range(1000):
                ma.counter("c").increment()
            await a.flush()
        assert ma.counter("c").value == 1000
        await a.wait_for(lambda: a.metrics()["dial_failures"] >= 3, timeout=10)
        await a.wait_synced(timeout=1, peers=0)  # no peer expected: nothing to wait for


async def test_a_dialer_reconnects_after_the_listener_restarts() -> None:
    ids, keyring, (ma, mb) = team(2)
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    redial = PeerOptions(connect=[url], reconnect_min=0.02, reconnect_max=0.2)
    async with Peer(mb, ids[1], keyring, redial, config=FAST) as b:
        async with Peer(ma, ids[0], keyring, listen=url, config=FAST) as a:
            await b.wait_connected(1, timeout=10)
        mb.counter("while-down").increment(5)  # the listener is gone: the write stays local
        assert b.connected_peers() == []
        async with Peer(ma, ids[0], keyring, listen=url, config=FAST) as a:
            await a.wait_for(lambda: ma.counter("while-down").value == 5, timeout=10)
            await b.wait_synced(timeout=10, peers=1)


async def test_isolated_peer_catches_up_after_rejoining() -> None:
    # Signed batches are the only proof of history (a repaired state proves no one's writes),
    # so the peers keep their logs and the rejoining peer gets the batches it lacks.
    config = NodeConfig(gossip_interval=0.2, anti_entropy_interval=60.0)
    ids, keyring, mems = team(3)
    quick = PeerOptions(reconnect_min=0.02, reconnect_max=0.1)
    async with Peer(mems[0], ids[0], keyring, quick, listen="ws://127.0.0.1:0", config=config) as a, \
            Peer(mems[1], ids[1], keyring, quick, listen="ws://127.0.0.1:0", connect=[a.url], config=config) as b, \
            Peer(mems[2], ids[2], keyring, quick, connect=[a.url, b.url], config=config) as c:
        await c.wait_synced(timeout=10, peers=2)
        c.isolate()
        await a.wait_for(lambda: ids[2].peer_id not in a.connected_peers(), timeout=5)
        write(mems[0], "a-alone")
        write(mems[2], "c-alone")
        mems[2].set("facts").add("only-c")
        await a.wait_for(lambda: mems[1].counter("tasks").value == 3, timeout=10)
        assert not same_state(*mems)
        c.rejoin()
        await c.wait_synced(timeout=10, peers=2)
        await a.wait_for(lambda: same_state(*mems), timeout=10)
        assert "only-c" in mems[1].set("facts")


async def test_peers_over_the_memory_transport_converge() -> None:
    hub = MemoryHub()
    transport = MemoryTransport(hub=hub)
    ids, keyring, mems = team(3)
    async with Peer(mems[0], ids[0], keyring, listen="memory://a", transport=transport, config=FAST) as a, \
            Peer(mems[1], ids[1], keyring, listen="memory://b", connect=["memory://a"], transport=transport,
                 config=FAST) as b, \
            Peer(mems[2], ids[2], keyring, connect=["memory://a", "memory://b"], transport=transport,
                 config=FAST, rng=random.Random(3)) as c:
        for tag, memory in zip("abc", mems):
            write(memory, tag)
        for peer in (a, b, c):
            await peer.wait_synced(timeout=10, peers=2)
        assert same_state(*mems)


async def test_metrics_are_exported_for_prometheus() -> None:
    ids, keyring, (ma, mb) = team(2)
    async with Peer(ma, ids[0], keyring, PeerOptions(listen="ws://127.0.0.1:0", metrics_port=0), config=FAST) as a:
        async with Peer(mb, ids[1], keyring, connect=[a.url], config=FAST):
            mb.mvregister("plan").assign("x")
            ma.mvregister("plan").assign("y")  # concurrent: two siblings
            await a.wait_for(lambda: len(ma.mvregister("plan").values) == 2, timeout=10)
            await a.wait_for(lambda: a.metrics()["connected_peers"] == 1
                             and a.metrics()["conflicts"]["mv_register_siblings"] == 1, timeout=10)
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore any HTTP proxy
            body = await anyio.to_thread.run_sync(lambda: opener.open(a.metrics_url, timeout=5).read())
    text = body.decode()
    assert "crdtmem_connected_peers" in text and "crdtmem_drift_seconds" in text
    assert 'crdtmem_conflicts{kind="mv_register_siblings"' in text
    assert "crdtmem_bytes_sent_total" in text and "crdtmem_lag_batches" in text


async def test_a_late_joiner_over_websockets_takes_the_writers_checkpoint_and_keeps_it(tmp_path) -> None:
    """A writer types alone; a joiner connecting later gets one checkpoint, journals it in its
    SQLite store, and after a restart from that store takes the writer's next batch on top."""
    ids, keyring, (ma, mb) = team(2)
    async with Peer(ma, ids[0], keyring, listen="ws://127.0.0.1:0", config=FAST) as a:
        text = ma.doc("notes").get("text", type=pycrdt.Text)
        for i in range(8):
            text += f"line {i}\n"
            ma.set("facts").add(f"fact {i}")
            await a.flush()
        store = tmp_path / "joiner.db"
        async with Peer(mb, ids[1], keyring, connect=[a.url], config=FAST, store=store) as b:
            await b.wait_synced(timeout=10, peers=1)
            assert same_state(ma, mb)
            assert b.node.stats.checkpoints_applied == 1 and b.node.stats.batches_applied == 0
            assert a.node.stats.checkpoints_sent == 1
        text += "after the joiner left\n"
        mc = type(mb)(ids[1].peer_id)
        async with Peer(mc, ids[1], keyring, connect=[a.url], config=FAST, store=store) as c:
            assert str(mc.doc("notes").get("text", type=pycrdt.Text)).startswith("line 0\n")  # from the store
            await c.wait_synced(timeout=10, peers=1)
            assert same_state(ma, mc) and c.node.stats.checkpoints_applied == 0 and c.metrics()["refusals"] == {}
