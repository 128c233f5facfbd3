"""Messages received in one turn of the event loop are journaled in one commit, before any answer is sent."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from crdtmem import Peer
from crdtmem.protocol.node import NodeConfig
from crdtmem.transports.memory import MemoryHub, MemoryTransport

from ..inprocess import team

pytestmark = pytest.mark.anyio

QUIET = NodeConfig(gossip_interval=60.0, anti_entropy_interval=60.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_burst_of_batches_is_journaled_in_one_commit_before_anything_is_sent(tmp_path: Path) -> None:
    transport = MemoryTransport(hub=MemoryHub())
    ids, keyring, (ma, mb) = team(2)
    async with Peer(ma, ids[0], keyring, listen="memory://a", transport=transport, config=QUIET,
                    store=tmp_path / "a.db") as a, \
            Peer(mb, ids[1], keyring, connect=["memory://a"], transport=transport, config=QUIET) as b:
        await a.wait_synced(timeout=10)
        await b.wait_synced(timeout=10)
        # Three signed batches from b, captured instead of sent, then handed to a in one turn.
        captured: list[bytes] = []
        send = b._links.send
        b._links.send = lambda key, frames: captured.extend(frames)
        for _ in range(3):
            mb.counter("c").increment()
            b.node.flush(b._now())
            b._pump()
        b._links.send = send
        assert len(captured) == 3
        (key,) = a.node.peers()

        order: list[str] = []
        append, a_send = a.store.append, a._links.send
        a.store.append = lambda entries: (order.append("commit"), append(entries))[1]
        a._links.send = lambda key, frames: (order.append("send"), a_send(key, frames))[1]
        commits = a.store.commits
        for frame in captured:
            a._link_received(key, frame, a._now())
        assert ma.counter("c").value == 3  # applied at once
        assert a.store.commits == commits  # journaled, and answered, once the turn's input is in
        with anyio.fail_after(10):
            await a.wait_for(lambda: a.store.commits > commits)
            await b.wait_synced(timeout=10)
        assert a.store.commits == commits + 1
        assert order[0] == "commit" and "send" in order  # the acks went out after the commit
