"""Embedding crdtmem in an agent: one Memory, one Peer, a store, change listeners, a checkpoint.

Two agents run in this one process here and talk over the in-process ``memory://`` transport;
swap the URLs for ``ws://host:port`` to put them on different machines — nothing else changes.

Run: python examples/embed_peer.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import anyio

from crdtmem import Identity, Keyring, Memory, Peer, load_identity, save_identity


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="crdtmem-embed-"))

    # Each agent has a key (save it: the peer id names every write the agent makes).
    alice, bob = Identity.generate(), Identity.generate()
    save_identity(alice, workdir / "alice.key")
    keyring = Keyring()  # closed by default: only these two may connect
    keyring.add(alice, "alice")
    keyring.add(bob, "bob")

    mem_a = Memory(alice.peer_id, clock=time.time)
    mem_b = Memory(bob.peer_id, clock=time.time)
    mem_b.on_change(lambda name, origin: print(f"  bob sees {name!r} change (written by {origin[:6]}…)"))

    async with Peer(mem_a, alice, keyring, listen="memory://alice", store=workdir / "alice.db") as peer_a, \
            Peer(mem_b, bob, keyring, connect=["memory://alice"]) as peer_b:
        # Writes are local and instant; replication happens in the background.
        mem_a.set("facts").add("the build is green")
        mem_a.counter("tool_calls").increment(3)
        mem_a.register("goal").assign({"title": "ship 0.1", "due": "friday"})
        await peer_b.wait_synced(timeout=5, peers=1)
        print("bob reads:", mem_b.values())

        # A checkpoint lets an agent undo its own speculative work — the undo replicates too.
        checkpoint = mem_b.checkpoint()
        mem_b.set("facts").add("a hunch that turned out wrong")
        mem_b.rollback(checkpoint)
        await peer_a.wait_synced(timeout=5, peers=1)
        assert "a hunch that turned out wrong" not in mem_a.set("facts")
        print("metrics:", {k: peer_a.metrics()[k] for k in ("connected_peers", "deltas_sent", "deltas_received")})

    # alice's memory survives a restart from its store.
    restored = Memory(alice.peer_id, clock=time.time)
    async with Peer(restored, load_identity(workdir / "alice.key"), keyring, store=workdir / "alice.db"):
        print("alice after restart:", restored.values())
        assert restored.values() == mem_a.values()


if __name__ == "__main__":
    anyio.run(main)
