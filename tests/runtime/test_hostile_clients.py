"""Hostile clients over a real socket (a raw ``websockets`` client, no crdtmem runtime).

Each attack is refused with a logged reason, the peer keeps serving its honest peer, and its
state is unchanged by the attack.
"""

from __future__ import annotations

import logging
import random

import anyio
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from crdtmem import Memory, Peer
from crdtmem.clocks import CausalContext
from crdtmem.crdt import GCounter
from crdtmem.identity import Identity, Keyring
from crdtmem.protocol.batch import seal_batch
from crdtmem.protocol.framing import FrameChannel
from crdtmem.protocol.handshake import Handshake
from crdtmem.protocol.messages import Batches, Sync, encode_message
from crdtmem.protocol.node import NodeConfig
from crdtmem.runtime import LinkLimits, PeerOptions

from ..inprocess import same_state, team

pytestmark = pytest.mark.anyio

CAP = 16 * 1024
CONFIG = NodeConfig(gossip_interval=0.2, handshake_timeout=0.5, max_frame_bytes=CAP)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def raw(url: str):
    return await ws_connect(url, max_size=None, compression=None, proxy=None, ping_interval=None)


async def handshake(ws, identity: Identity, keyring) -> FrameChannel:
    """Do the real handshake by hand; return the attacker's frame channel."""
    hs = Handshake(identity, keyring, random.randbytes(32), random.randbytes(32))
    for data in hs.start():
        await ws.send(data)
    while not hs.done:
        for reply in hs.receive(await ws.recv()):
            await ws.send(reply)
    return FrameChannel(hs.keys, peer_id=hs.peer_id, max_frame_bytes=CAP)


async def closed_by_peer(ws) -> None:
    """Wait (bounded) until the peer closes the connection, draining what it sends."""
    with anyio.fail_after(5):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass


def flip_tag(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0x01])  # the tag is the frame's last field


def sync_frame(channel: FrameChannel) -> bytes:
    (frame,) = channel.seal_message(encode_message(Sync(CausalContext())))
    return frame


async def attack_garbage_handshake(url, mallory, keyring, victim_id):
    ws = await raw(url)
    await ws.recv()  # the victim's hello
    await ws.send(b"\x00\x01 garbage, not msgpack \xff\xfe")
    await closed_by_peer(ws)


async def attack_garbage_frame(url, mallory, keyring, victim_id):
    ws = await raw(url)
    await handshake(ws, mallory, keyring)
    await ws.send(random.Random(1).randbytes(300))
    await closed_by_peer(ws)


async def attack_broken_tag(url, mallory, keyring, victim_id):
    ws = await raw(url)
    channel = await handshake(ws, mallory, keyring)
    await ws.send(flip_tag(sync_frame(channel)))
    await closed_by_peer(ws)


async def attack_replayed_frame(url, mallory, keyring, victim_id):
    ws = await raw(url)
    channel = await handshake(ws, mallory, keyring)
    frame = sync_frame(channel)
    await ws.send(frame)
    await ws.send(frame)  # refused and dropped; a stale copy is harmless, so the link may stay up
    await ws.close()


async def attack_unknown_key(url, mallory, keyring, victim_id):
    ws = await raw(url)
    stranger = Identity.generate()
    hs = Handshake(stranger, keyring, random.randbytes(32), random.randbytes(32))
    await ws.recv()
    for data in hs.start():
        await ws.send(data)
    await closed_by_peer(ws)


async def attack_oversized_frame(url, mallory, keyring, victim_id):
    ws = await raw(url)
    await handshake(ws, mallory, keyring)
    await ws.send(b"\x00" * (CAP + 1))
    await closed_by_peer(ws)


async def attack_silent_handshake(url, mallory, keyring, victim_id):
    ws = await raw(url)
    await ws.recv()  # the victim's hello; never answer
    await closed_by_peer(ws)  # bounded: the victim's handshake timeout closes it


async def attack_forged_author(url, mallory, keyring, victim_id):
    """A trusted peer signs a batch that writes the victim's own counter slot."""
    ws = await raw(url)
    channel = await handshake(ws, mallory, keyring)
    forged = GCounter()
    forged.slots[victim_id] = 1000
    batch = seal_batch(mallory, 1, [("tasks", forged)])
    for frame in channel.seal_message(encode_message(Batches((batch.wire,)))):
        await ws.send(frame)
    await closed_by_peer(ws)


ATTACKS = [
    (attack_garbage_handshake, "malformed-handshake"),
    (attack_garbage_frame, "malformed-frame"),
    (attack_broken_tag, "bad-tag"),
    (attack_replayed_frame, "replayed-frame"),
    (attack_unknown_key, "untrusted-key"),
    (attack_oversized_frame, "oversized-frame"),
    (attack_silent_handshake, "handshake-timeout"),
    (attack_forged_author, "forged-author"),
]


@pytest.mark.parametrize("attack,reason", ATTACKS, ids=[reason for _, reason in ATTACKS])
async def test_hostile_client_is_refused_and_honest_peers_keep_converging(attack, reason, caplog) -> None:
    caplog.set_level(logging.WARNING)
    (victim_id, honest_id, mallory), keyring, (victim_mem, honest_mem, _) = team(3)
    async with Peer(victim_mem, victim_id, keyring, listen="ws://127.0.0.1:0", config=CONFIG) as victim:
        async with Peer(honest_mem, honest_id, keyring, connect=[victim.url], config=CONFIG) as honest:
            victim_mem.counter("tasks").increment(2)
            honest_mem.set("facts").add("before")
            await honest.wait_synced(timeout=10, peers=1)
            await victim.wait_synced(timeout=10, peers=1)
            before = victim_mem.snapshot()

            await attack(victim.url, mallory, keyring, victim_id.peer_id)

            await victim.wait_for(lambda: victim.metrics()["refusals"].get(reason, 0) >= 1, timeout=5)
            assert victim_mem.snapshot() == before, "the attack changed the victim's state"
            assert any(reason in record.getMessage() for record in caplog.records), f"no log line names {reason}"
            assert honest_id.peer_id in victim.connected_peers()

            honest_mem.set("facts").add("after")
            victim_mem.counter("tasks").increment(1)
            await honest.wait_synced(timeout=10, peers=1)
            await victim.wait_for(lambda: same_state(victim_mem, honest_mem), timeout=10)
            assert victim_mem.counter("tasks").value == 3
            assert victim_mem.set("facts").value == {"before", "after"}


async def test_a_client_that_stops_reading_is_dropped_instead_of_buffered_forever() -> None:
    (victim_id, _, mallory), keyring, (victim_mem, _, _) = team(3)
    async with Peer(victim_mem, victim_id, keyring, PeerOptions(limits=LinkLimits(max_queue_bytes=256 * 1024)),
                    listen="ws://127.0.0.1:0", config=CONFIG) as victim:
        ws = await raw(victim.url)
        await handshake(ws, mallory, keyring)  # then never read again
        await victim.wait_connected(1, timeout=5)
        big = "x" * 8000
        with anyio.fail_after(30):
            i = 0
            while mallory.peer_id in victim.connected_peers():
                victim_mem.register(f"r{i % 50}").assign(f"{i}{big}")  # local writes never block
                i += 1
                if i % 20 == 0:
                    await victim.flush()
                    await anyio.sleep(0)
        assert victim_mem.register("r0").value.endswith(big)
        await ws.close()


# -- admission: strangers get their own small budget ----------------------------------------------

SLOW_NODE = NodeConfig(gossip_interval=0.2, handshake_timeout=60.0, max_frame_bytes=CAP)


async def test_idle_stranger_sockets_fill_only_the_stranger_budget_and_a_trusted_peer_still_connects() -> None:
    (victim_id, honest_id, _), keyring, (victim_mem, honest_mem, _) = team(3)
    limits = LinkLimits(max_connections=16, max_unauthenticated=16, hello_timeout=60.0)
    async with Peer(victim_mem, victim_id, keyring, PeerOptions(limits=limits), listen="ws://127.0.0.1:0",
                    config=SLOW_NODE) as victim:
        idle = [await raw(victim.url) for _ in range(16)]  # a stranger's sockets, never answering
        await victim.wait_for(lambda: len(victim._links) == 16, timeout=5)
        victim_mem.counter("tasks").increment(2)
        async with Peer(honest_mem, honest_id, keyring, connect=[victim.url], config=SLOW_NODE) as honest:
            await honest.wait_synced(timeout=10, peers=1)
            assert honest_mem.counter("tasks").value == 2
            assert victim.connected_peers() == [honest_id.peer_id]
        refusals = victim.metrics()["refusals"]
        assert refusals.get("too-many-unauthenticated") == 1 and "too-many-connections" not in refusals
        await closed_by_peer(idle[0])  # the oldest idle socket made room for the peer's handshake
        for ws in idle:
            await ws.close()


async def test_a_stranger_that_never_finishes_the_handshake_is_closed_after_the_hello_timeout() -> None:
    (victim_id, _, _), keyring, (victim_mem, _, _) = team(3)
    limits = LinkLimits(hello_timeout=0.3)
    async with Peer(victim_mem, victim_id, keyring, PeerOptions(limits=limits), listen="ws://127.0.0.1:0",
                    config=SLOW_NODE) as victim:
        ws = await raw(victim.url)
        await ws.recv()  # the victim's hello; never answer
        await closed_by_peer(ws)  # within 5 s although the node's handshake timeout is 60 s
        await victim.wait_for(lambda: victim.metrics()["refusals"].get("hello-timeout", 0) == 1, timeout=5)
        assert "handshake-timeout" not in victim.metrics()["refusals"]


async def test_a_trusted_peer_writing_a_name_as_another_type_keeps_its_link_and_is_counted_as_a_clash() -> None:
    (victim_id, honest_id, mallory), keyring, (victim_mem, honest_mem, _) = team(3)
    async with Peer(victim_mem, victim_id, keyring, listen="ws://127.0.0.1:0", config=CONFIG) as victim:
        async with Peer(honest_mem, honest_id, keyring, connect=[victim.url], config=CONFIG) as honest:
            victim_mem.counter("tasks").increment(2)
            await honest.wait_synced(timeout=10, peers=1)
            ws = await raw(victim.url)
            channel = await handshake(ws, mallory, keyring)
            own = Memory(mallory.peer_id)
            own.set("tasks").add("hijack?")
            batch = seal_batch(mallory, 1, own.take_deltas())
            for frame in channel.seal_message(encode_message(Batches((batch.wire,)))):
                await ws.send(frame)
            await victim.wait_for(lambda: victim.metrics()["conflicts"]["type_clashes"] == 1, timeout=5)
            await honest.wait_for(lambda: honest_mem.conflicts() == {"tasks": ["gcounter", "orset"]}, timeout=10)
            assert victim.metrics()["refusals"] == {}
            assert mallory.peer_id in victim.connected_peers() and honest_id.peer_id in victim.connected_peers()
            assert victim_mem.counter("tasks").value == 2 and victim_mem.value("tasks") == 2
            await ws.close()


async def test_a_peer_with_a_stale_keyring_keeps_its_relay_and_applies_parked_writes_once_it_trusts_the_author() -> None:
    (victim_id, relay_id, newcomer), keyring, (victim_mem, relay_mem, newcomer_mem) = team(3)
    stale = Keyring()
    for identity in (victim_id, relay_id):
        stale.add(identity)
    async with Peer(victim_mem, victim_id, stale, listen="ws://127.0.0.1:0", config=CONFIG) as victim, \
            Peer(relay_mem, relay_id, keyring, listen="ws://127.0.0.1:0", connect=[victim.url],
                 config=CONFIG) as relay:
        async with Peer(newcomer_mem, newcomer, keyring, connect=[relay.url], config=CONFIG):
            newcomer_mem.set("facts").add("from the newcomer")
            relay_mem.set("facts").add("from the relay")
            await victim.wait_for(lambda: "from the relay" in victim_mem.set("facts").value, timeout=10)
            await victim.wait_for(lambda: victim.node.parked() >= 1, timeout=10)
            assert victim.metrics()["refusals"] == {}
            assert relay_id.peer_id in victim.connected_peers()
            victim.trust(keyring)
            assert victim.node.parked() == 0 and victim.metrics()["stats"]["batches_parked"] >= 1
            assert victim_mem.set("facts").value == {"from the relay", "from the newcomer"}
