"""Short-lived peers over real websockets leave no trace in vectors and contexts once they exit."""

from __future__ import annotations

import time

import anyio
import pytest

from crdtmem import Memory, Peer
from crdtmem.protocol.node import NodeConfig

from ..inprocess import team

pytestmark = pytest.mark.anyio

FAST = NodeConfig(gossip_interval=0.1, anti_entropy_interval=30.0)


async def test_a_sub_agent_that_exits_cleanly_is_pruned_and_its_writes_stay(tmp_path) -> None:
    ids, keyring, (main, other, _) = team(3)
    async with Peer(main, ids[0], keyring, listen="ws://127.0.0.1:0", config=FAST) as hub, \
            Peer(other, ids[1], keyring, connect=[hub.url], config=FAST) as peer:
        await peer.wait_synced(timeout=10)
        departed = []
        for run in range(3):  # a sub-agent key started three times, with its store
            sub = Memory(ids[2].peer_id, clock=time.time)
            async with Peer(sub, ids[2], keyring, connect=[hub.url], store=tmp_path / "sub.db", config=FAST) as agent:
                sub.set("findings").add(f"run {run}")
                await agent.wait_synced(timeout=10)
                departed.append(agent.node.replica_id)
        await hub.wait_for(lambda: all(r in hub.node.seen.replicas() or r in hub.node.retired() for r in departed))
        main.counter("turns").increment()  # the hub's next batch covers every departure
        with anyio.fail_after(10):
            while not set(departed) <= set(peer.node.retired()):
                await peer.changed()
        for node in (hub.node, peer.node):
            assert not set(departed) & node.seen.replicas()
            assert node.memory.set("findings").value == {"run 0", "run 1", "run 2"}
        assert other.context_entries() == 0  # nobody else wrote to the set or any context
