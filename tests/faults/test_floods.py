"""Misbehaving clients at volume, over real websockets on 127.0.0.1 against a real Peer.

Each attack must be bounded by something the runtime enforces — a timeout, a size cap, a queue
cap — and the honest peers must keep converging while it runs. What bounds each one:

* garbage frames from a client that keeps reconnecting: every connection is refused at its
  first bad frame (``malformed-handshake``/``malformed-frame``) and dropped;
* a flood of validly tagged frames from a trusted peer: the per-connection receive budget
  (``LinkLimits(max_receive_messages_per_s=...)``) stops reading the flooder's connection, so TCP
  slows it down while honest traffic flows; the victim's replies to a peer that does not read
  are capped by ``LinkLimits(max_queue_bytes=...)`` (``test_hostile_clients`` covers that drop);
* a chunked message that never ends: the reassembly budget (``max_message_bytes``) refuses it
  (``oversized-message``); a single frame over the cap is refused by websockets (close 1009);
* half an HTTP upgrade, then silence: the websocket ``open_timeout``;
* a hello, then silence: the node's ``handshake_timeout`` (``handshake-timeout``);
* many connections at once: each is bounded in time by those timeouts (and by
  ``LinkLimits(hello_timeout=...)``), and their number by the strangers' budget
  ``LinkLimits(max_unauthenticated=...)`` (``too-many-unauthenticated``) while handshaking,
  by ``LinkLimits(max_connections=...)`` (``too-many-connections``) once authenticated.

``CRDTMEM_FLOOD_SCALE`` (default 1) multiplies flood durations and connection counts.
"""

from __future__ import annotations

import json
import os
import random
import time

import anyio
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from crdtmem import Peer
from crdtmem.clocks import CausalContext
from crdtmem.protocol.messages import Sync, encode_message
from crdtmem.protocol.node import NodeConfig
from crdtmem.runtime import LinkLimits, PeerOptions
from crdtmem.transports.websocket import WebSocketTransport

from ..inprocess import team
from ..runtime.test_hostile_clients import handshake, raw

pytestmark = pytest.mark.anyio

SCALE = float(os.environ.get("CRDTMEM_FLOOD_SCALE", "1") or 1)
STATS_PATH = os.environ.get("CRDTMEM_FLOOD_STATS")
CAP = 16 * 1024
MESSAGE_CAP = 256 * 1024
HANDSHAKE_TIMEOUT = 1.0
OPEN_TIMEOUT = 1.0
CONFIG = NodeConfig(gossip_interval=0.2, handshake_timeout=HANDSHAKE_TIMEOUT, max_frame_bytes=CAP,
                    max_message_bytes=MESSAGE_CAP)
RESULTS: dict[str, dict] = {}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", autouse=True)
def _write_stats():
    yield
    if STATS_PATH:
        with open(STATS_PATH, "w") as f:
            json.dump(RESULTS, f, indent=1, sort_keys=True)


def transport() -> WebSocketTransport:
    return WebSocketTransport(max_frame_bytes=CAP, open_timeout=OPEN_TIMEOUT, ping_interval=None)


class Trio:
    """A victim peer (listening), an honest peer dialing it, and a trusted-but-hostile identity."""

    def __init__(self, victim, honest, victim_mem, honest_mem, mallory, keyring) -> None:
        self.victim, self.honest = victim, honest
        self.victim_mem, self.honest_mem = victim_mem, honest_mem
        self.mallory, self.keyring = mallory, keyring
        self.written = 0

    async def honest_write_and_converge(self, timeout: float = 10.0) -> float:
        """One honest write on each side; seconds until both see both."""
        start = time.monotonic()
        self.written += 1
        self.honest_mem.counter("honest").increment()
        self.victim_mem.counter("victim").increment()
        await self.honest.flush()
        await self.victim.flush()
        n = self.written
        await self.victim.wait_for(lambda: self.victim_mem.counter("honest").value == n, timeout=timeout)
        await self.honest.wait_for(lambda: self.honest_mem.counter("victim").value == n, timeout=timeout)
        return time.monotonic() - start


async def while_attacking(trio: Trio, attack, *, rounds_at_least: int = 3) -> dict:
    """Run ``attack`` and, alongside, honest write rounds until it ends; return their latencies."""
    latencies: list[float] = []
    done = anyio.Event()

    async def honest() -> None:
        while not done.is_set() or len(latencies) < rounds_at_least:
            latencies.append(await trio.honest_write_and_converge(timeout=10))

    async with anyio.create_task_group() as tg:
        tg.start_soon(honest)
        try:
            await attack()
        finally:
            done.set()
    return {"honest_rounds": len(latencies), "honest_max_s": round(max(latencies), 3),
            "honest_mean_s": round(sum(latencies) / len(latencies), 4)}


def trio_peers(receive_budget: float = LinkLimits.max_receive_messages_per_s):
    """The trio; ``receive_budget`` is the victim's ``max_receive_messages_per_s`` per connection."""
    (victim_id, honest_id, mallory), keyring, (victim_mem, honest_mem, _) = team(3)

    class _Ctx:
        async def __aenter__(self) -> Trio:
            capped = PeerOptions(limits=LinkLimits(max_queue_bytes=1024 * 1024,
                                                   max_receive_messages_per_s=receive_budget))
            self.victim = Peer(victim_mem, victim_id, keyring, capped, listen="ws://127.0.0.1:0", config=CONFIG,
                               transport=transport())
            await self.victim.__aenter__()
            self.honest = Peer(honest_mem, honest_id, keyring, connect=[self.victim.url], config=CONFIG,
                               transport=transport())
            await self.honest.__aenter__()
            await self.honest.wait_synced(timeout=10, peers=1)
            return Trio(self.victim, self.honest, victim_mem, honest_mem, mallory, keyring)

        async def __aexit__(self, *exc) -> None:
            await self.honest.__aexit__(*exc)
            await self.victim.__aexit__(*exc)

    return _Ctx()


async def drain(ws) -> None:
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


def open_links(peer: Peer) -> int:
    return len(peer._links)


# -- floods -------------------------------------------------------------------------------------


async def test_garbage_frames_from_a_reconnecting_client_are_refused_connection_by_connection() -> None:
    seconds = 2.0 * SCALE
    sent = connections = 0
    async with trio_peers() as trio:
        before = trio.victim_mem.snapshot()

        async def attack() -> None:
            nonlocal sent, connections
            rng = random.Random(7)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                ws = await raw(trio.victim.url)
                connections += 1
                try:
                    if connections % 2:  # before the handshake...
                        await ws.recv()
                    else:  # ...and after it
                        await handshake(ws, trio.mallory, trio.keyring)
                    for _ in range(50):
                        await ws.send(rng.randbytes(rng.randrange(1, CAP)))
                        sent += 1
                except ConnectionClosed:
                    pass
                with anyio.fail_after(5):  # the victim closes each connection at its first bad frame
                    await drain(ws)

        honest = await while_attacking(trio, attack)
        refusals = trio.victim.metrics()["refusals"]
        refused = sum(refusals.values())
        assert refused >= connections - 1  # the last one may still be closing
        assert trio.victim_mem.counter("honest").value == trio.written
        assert set(trio.victim_mem.names()) == {"honest", "victim"} and before is not None
        with anyio.fail_after(5):
            while open_links(trio.victim) > 1:
                await trio.victim.changed()
        RESULTS["garbage_flood"] = {"seconds": seconds, "connections": connections, "frames_sent": sent,
                                    "refusals": refusals, **honest}


async def test_a_flood_of_valid_frames_does_not_hold_up_honest_peers() -> None:
    seconds = 2.0 * SCALE
    sent = 0
    # A budget the flood surely outruns however fast this machine reads it (one second's worth
    # may come at once: at the default 2,000 a victim reading under 3,000 frames/s for 2 s never
    # pauses, and a loaded 2-core machine reads about that many).
    budget = 500.0
    async with trio_peers(receive_budget=budget) as trio:
        async def attack() -> None:
            nonlocal sent
            ws = await raw(trio.victim.url)
            channel = await handshake(ws, trio.mallory, trio.keyring)
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain, ws)  # read the replies, so only the inbound flood is measured
                payload = encode_message(Sync(CausalContext(), reply=True))
                with anyio.move_on_after(seconds):  # a send blocks while the victim throttles us
                    while True:
                        for frame in channel.seal_message(payload):
                            await ws.send(frame)
                            sent += 1
                        if sent % 100 == 0:
                            await anyio.sleep(0)
                ws.transport.abort()  # leave at once; a close would queue behind the unread flood

        honest = await while_attacking(trio, attack)
        assert trio.victim_mem.counter("honest").value == trio.written
        throttled = trio.victim.metrics()["throttled_seconds"]
        assert throttled > 0  # the flood outran the budget, and only the flooder's link paused
        RESULTS["valid_frame_flood"] = {"seconds": seconds, "frames_sent": sent, "frames_per_s": round(sent / seconds),
                                        "budget_messages_per_s": budget, "victim_throttled_s": throttled, **honest}


async def test_a_message_that_never_ends_is_refused_at_the_reassembly_budget() -> None:
    async with trio_peers() as trio:
        sent = 0

        async def attack() -> None:
            nonlocal sent
            ws = await raw(trio.victim.url)
            channel = await handshake(ws, trio.mallory, trio.keyring)
            # chunks of honest size keep coming, each saying more follow, past what the budget holds
            per = CAP - 96 - 1
            count = MESSAGE_CAP // per + 50

            try:
                for _ in range(count):
                    await ws.send(channel.seal(b"\x01" + b"\0" * per))
                    sent += 1
            except ConnectionClosed:
                pass
            with anyio.fail_after(5):
                await drain(ws)

        honest = await while_attacking(trio, attack)
        refusals = trio.victim.metrics()["refusals"]
        assert refusals.get("oversized-message", 0) >= 1, refusals
        RESULTS["endless_message"] = {"budget_bytes": MESSAGE_CAP, "chunks_sent": sent,
                                      "refusals": refusals, **honest}


async def test_a_frame_over_the_cap_is_refused_before_it_is_buffered() -> None:
    async with trio_peers() as trio:
        async def attack() -> None:
            ws = await raw(trio.victim.url)
            await ws.recv()
            for _ in range(3):
                try:
                    await ws.send(b"\0" * (CAP * 8))
                except ConnectionClosed:
                    break
            with anyio.fail_after(5):
                await drain(ws)

        honest = await while_attacking(trio, attack)
        refusals = trio.victim.metrics()["refusals"]
        assert refusals.get("oversized-frame", 0) >= 1, refusals
        RESULTS["oversized_frame"] = {"frame_bytes": CAP * 8, "cap": CAP, **honest}


# -- stalls --------------------------------------------------------------------------------------


async def test_half_an_http_upgrade_then_silence_is_closed_by_the_open_timeout() -> None:
    async with trio_peers() as trio:
        host, port = trio.victim.url.removeprefix("ws://").rsplit(":", 1)
        closed_after: list[float] = []

        async def attack() -> None:
            for partial in (b"", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"):
                sock = await anyio.connect_tcp(host, int(port))
                start = time.monotonic()
                await sock.send(partial or b"G")
                with anyio.fail_after(OPEN_TIMEOUT + 5):
                    try:
                        while await sock.receive():
                            pass
                    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError, OSError):
                        pass
                closed_after.append(time.monotonic() - start)
                await sock.aclose()

        honest = await while_attacking(trio, attack)
        assert all(t <= OPEN_TIMEOUT + 3 for t in closed_after), closed_after
        RESULTS["half_http_upgrade"] = {"open_timeout_s": OPEN_TIMEOUT,
                                        "closed_after_s": [round(t, 2) for t in closed_after], **honest}


async def test_a_hello_then_silence_is_closed_by_the_handshake_timeout() -> None:
    async with trio_peers() as trio:
        closed_after = 0.0

        async def attack() -> None:
            nonlocal closed_after
            from crdtmem.protocol.handshake import Handshake

            ws = await raw(trio.victim.url)
            start = time.monotonic()
            await ws.recv()
            await ws.send(Handshake(trio.mallory, trio.keyring, random.randbytes(32), random.randbytes(32)).start()[0])
            with anyio.fail_after(HANDSHAKE_TIMEOUT + 5):
                await drain(ws)  # gets the victim's auth, then the close
            closed_after = time.monotonic() - start

        honest = await while_attacking(trio, attack)
        assert trio.victim.metrics()["refusals"].get("handshake-timeout", 0) >= 1
        assert closed_after <= HANDSHAKE_TIMEOUT + 3
        RESULTS["hello_then_stall"] = {"handshake_timeout_s": HANDSHAKE_TIMEOUT,
                                       "closed_after_s": round(closed_after, 2), **honest}


async def test_many_stalled_connections_are_all_timed_out() -> None:
    """Each stalled connection is closed by the handshake timeout or, beyond the strangers'
    budget (``max_unauthenticated``, 16), at once; honest peers keep going.
    """
    n = int(150 * SCALE)
    peak = 0
    async with trio_peers() as trio:
        fds_before = len(os.listdir("/proc/self/fd"))
        sockets = []

        async def attack() -> None:
            nonlocal peak
            start = time.monotonic()
            for _ in range(n):
                ws = await ws_connect(trio.victim.url, compression=None, proxy=None, ping_interval=None,
                                      open_timeout=5)
                sockets.append(ws)
                peak = max(peak, open_links(trio.victim))
            opened = time.monotonic() - start
            with anyio.fail_after(opened + HANDSHAKE_TIMEOUT + 10):
                while open_links(trio.victim) > 1:
                    peak = max(peak, open_links(trio.victim))
                    await trio.victim.changed()

        honest = await while_attacking(trio, attack)
        for ws in sockets:
            await ws.close()
        refusals = trio.victim.metrics()["refusals"]
        timeouts = refusals.get("handshake-timeout", 0)
        assert timeouts + refusals.get("too-many-unauthenticated", 0) >= n
        assert open_links(trio.victim) == 1
        with anyio.fail_after(10):
            while len(os.listdir("/proc/self/fd")) > fds_before + 5:
                await trio.victim.changed()  # a closing link, or the next timer tick, wakes the peer
        RESULTS["many_connections"] = {"connections": n, "peak_links": peak, "handshake_timeouts": timeouts,
                                       "connection_cap": 256, **honest}
        assert peak >= 10


@pytest.mark.anyio
async def test_a_connection_beyond_the_stranger_budget_closes_the_oldest_handshaking_one() -> None:
    identities, keyring, memories = team(1)
    async with Peer(memories[0], identities[0], keyring, PeerOptions(limits=LinkLimits(max_unauthenticated=2)),
                    listen="ws://127.0.0.1:0") as peer:
        held = [await raw(peer.url) for _ in range(2)]  # silent clients, still handshaking
        await peer.wait_for(lambda: open_links(peer) == 2, timeout=5)
        extra = await raw(peer.url)
        with anyio.fail_after(10):
            with pytest.raises(ConnectionClosed):
                while True:
                    await held[0].recv()
            await extra.recv()  # the newcomer is served: the victim's hello
        assert peer.metrics()["refusals"].get("too-many-unauthenticated") == 1
        for ws in [*held, extra]:
            await ws.close()
