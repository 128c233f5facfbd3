"""``crdtmem demo``: three agents share one memory over real websockets on loopback.

1. Three peers (alice, bob, carol) connect and write concurrently: a counter of tasks done, a
   set of facts, a status register and a shared notes document (pycrdt text).
2. carol is cut off (her connections dropped); both sides keep writing, including conflicting
   ones: carol removes a fact that alice re-adds (add wins), both assign the register.
3. The link heals: carol redials, the peers compare version vectors and send each other the
   signed batches the other missed, each verified against its author's key.
4. Each peer's memory is printed, with whether they agree and what healing cost.

What carol missed comes back as the original signed batches, each verified against its
author's key. Exit code 0 only if every peer converged.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from typing import Any

import anyio
import pycrdt
from rich.console import Console

from ..identity import Identity, Keyring
from ..memory import Memory
from ..runtime import Peer, PeerOptions
from ..protocol.node import NodeConfig

__all__ = ["run_demo"]

NAMES = ("alice", "bob", "carol")


def run_demo(seed: int | None = None, quiet: bool = False, *, phase_seconds: float = 1.0) -> int:
    """Run the demo; return the exit code (0 = converged)."""
    code, verdict = anyio.run(_demo, seed, _PipeSafeConsole(quiet=quiet), phase_seconds, backend="asyncio")
    if quiet:
        print(verdict, flush=True)
    return code


class _PipeSafeConsole(Console):
    """A console whose reader may go away (``crdtmem demo | head``): the demo then runs on
    silently and still exits with its verdict, instead of dying in the middle of its peers."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


async def _agent(name: str, memory: Memory, rng: random.Random, until: float, phase: str) -> int:
    """One agent's work loop: small writes at random intervals. Returns how many it made."""
    notes = memory.doc("notes").get("text", type=pycrdt.Text)
    writes = 0
    while time.monotonic() < until:
        roll = rng.random()
        if roll < 0.4:
            memory.counter("tasks_done").increment(1)
        elif roll < 0.7:
            memory.set("facts").add(f"{name}: {phase} fact {writes}")
        elif roll < 0.85:
            memory.register("status").assign(f"{name} is {phase} (write {writes})")
        else:
            notes += f"{name}/{phase}/{writes}; "
        writes += 1
        await anyio.sleep(rng.uniform(0.002, 0.01))  # pacing: the agent "thinks" between writes
    return writes


async def _demo(seed: int | None, console: Any, phase_seconds: float) -> tuple[int, str]:
    from rich.table import Table

    rng = random.Random(seed)
    started = time.monotonic()
    identities = {name: Identity.generate() for name in NAMES}
    keyring = Keyring()
    for name, identity in identities.items():
        keyring.add(identity, name)
    memories = {name: Memory(identities[name].peer_id, clock=time.time) for name in NAMES}
    config = NodeConfig(gossip_interval=0.2, anti_entropy_interval=60.0, handshake_timeout=5.0)
    options = PeerOptions(listen="ws://127.0.0.1:0", reconnect_min=0.05, reconnect_max=0.5)
    who = {identities[n].peer_id: n for n in NAMES}

    console.rule("[bold]crdtmem demo: three agents, one memory, no leader")
    async with Peer(memories["alice"], identities["alice"], keyring, options, config=config,
                    rng=random.Random(rng.random())) as alice, \
            Peer(memories["bob"], identities["bob"], keyring, options, config=config, connect=[alice.url],
                 rng=random.Random(rng.random())) as bob, \
            Peer(memories["carol"], identities["carol"], keyring, options, config=config,
                 connect=[alice.url, bob.url], rng=random.Random(rng.random())) as carol:
        peers = {"alice": alice, "bob": bob, "carol": carol}
        for peer in peers.values():
            await peer.wait_connected(2, timeout=10)
        console.print("peers up: " + ", ".join(f"{n} {p.url} ({p.peer_id})" for n, p in peers.items()))

        # 1. everyone writes concurrently
        memories["alice"].set("facts").add("the sky is blue")
        counts = await _write_phase(memories, rng, "together", phase_seconds)
        for peer in peers.values():
            await peer.wait_synced(timeout=10, peers=2)
        console.print(f"[green]phase 1[/]: {sum(counts.values())} concurrent writes, all three in sync")

        # 2. carol is cut off; both sides keep writing, with conflicts
        carol.isolate()
        await alice.wait_for(lambda: carol.peer_id not in alice.connected_peers(), timeout=5)
        await bob.wait_for(lambda: carol.peer_id not in bob.connected_peers(), timeout=5)
        memories["carol"].set("facts").remove("the sky is blue")
        memories["alice"].set("facts").add("the sky is blue")  # a concurrent re-add: add wins
        memories["carol"].register("status").assign("carol is offline")
        counts = await _write_phase(memories, rng, "partitioned", phase_seconds)
        await alice.wait_synced(timeout=10)
        await bob.wait_synced(timeout=10)
        diverged = memories["carol"].snapshot() != memories["alice"].snapshot()
        console.print(f"[yellow]phase 2[/]: carol cut off; {sum(counts.values())} writes on both sides; "
                      f"memories {'diverged' if diverged else 'did not diverge'}")

        # 3. heal: the missed signed batches flow
        before = {n: p.node.stats.as_dict() for n, p in peers.items()}
        healed_at = time.monotonic()
        carol.rejoin()
        converged = True
        try:
            with anyio.fail_after(20):
                for peer in peers.values():
                    await peer.wait_synced(timeout=20, peers=2)
                while len({m.snapshot() for m in memories.values()}) != 1:
                    await _any_changed(peers.values())
        except TimeoutError:
            converged = False
        heal_seconds = time.monotonic() - healed_at
        after = {n: p.node.stats.as_dict() for n, p in peers.items()}

        def delta(key: str) -> int:
            return sum(after[n].get(key, 0) - before[n].get(key, 0) for n in NAMES)

        # 4. report
        values = {n: memories[n].values() for n in NAMES}
        for name in NAMES:
            table = Table(title=f"{name}'s memory ({peers[name].peer_id})", title_justify="left")
            table.add_column("object", style="bold")
            table.add_column("value", overflow="fold")
            for key, value in values[name].items():
                table.add_row(key, _show(key, value, who))
            console.print(table)
        agree = converged and all(values[n] == values["alice"] for n in NAMES) \
            and len({memories[n].snapshot() for n in NAMES}) == 1
        cost = Table(title="what healing cost", title_justify="left")
        cost.add_column("measure")
        cost.add_column("value", justify="right")
        cost.add_row("time from rejoin to agreement", f"{heal_seconds * 1000:.0f} ms")
        cost.add_row("signed batches applied (all peers)", f"{delta('batches_applied'):,}")
        cost.add_row("batches that waited for their dependencies", f"{delta('batches_buffered'):,}")
        cost.add_row("catch-up bytes (signed batches)", f"{delta('bytes_sent_catch-up'):,}")
        cost.add_row("total bytes on the wire", f"{delta('bytes_sent'):,}")
        console.print(cost)
        if agree:
            verdict = (f"CONVERGED: all three peers hold identical memory ({len(values['alice'])} objects, "
                       f"counter = {values['alice'].get('tasks_done')}); 'the sky is blue' survived carol's "
                       f"concurrent remove: {'the sky is blue' in values['alice'].get('facts', ())}")
            console.print(f"[bold green]{verdict}")
        else:
            verdict = "NOT CONVERGED: the peers hold different memories"
            console.print(f"[bold red]{verdict}")
        console.print(f"demo took {time.monotonic() - started:.1f} s")
        return (0 if agree else 1), verdict


async def _write_phase(memories: dict[str, Memory], rng: random.Random, phase: str, seconds: float) -> dict[str, int]:
    until = time.monotonic() + seconds
    counts: dict[str, int] = {}

    async def run(name: str) -> None:
        counts[name] = await _agent(name, memories[name], random.Random(rng.random()), until, phase)

    async with anyio.create_task_group() as tg:
        for name in NAMES:
            tg.start_soon(run, name)
    return counts


async def _any_changed(peers: Any) -> None:
    """Return after the next event on any of ``peers``."""
    async with anyio.create_task_group() as tg:

        async def one(peer: Peer) -> None:
            await peer.changed()
            tg.cancel_scope.cancel()

        for peer in peers:
            tg.start_soon(one, peer)


def _show(name: str, value: Any, who: dict[str, str]) -> str:
    if isinstance(value, frozenset):
        items = sorted(map(str, value))
        shown = ", ".join(items[:4]) + (f", … ({len(items)} in all)" if len(items) > 4 else "")
        return "{" + shown + "}"
    if isinstance(value, dict) and "text" in value:
        text = str(value["text"])
        return (text[:120] + f"… ({len(text)} chars)") if len(text) > 120 else text
    return str(value)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``crdtmem demo`` to the subcommands."""
    p = sub.add_parser("demo", parents=[common], help="three agents over websockets: partition, heal, catch up", description=(
        "Three agents as peers over real websockets on loopback write concurrently to counters, a "
        "fact set, a register and shared notes; one is cut off, both sides keep writing, the link "
        "heals, the missed signed batches flow, and each peer's converged memory is printed. Exits 0 only if "
        "all peers converged."))
    p.add_argument("--seed", type=int, default=None, help="seed the agents' choices")
    p.add_argument("--quiet", action="store_true", help="print only the verdict")
    p.set_defaults(func=lambda args: run_demo(seed=args.seed, quiet=args.quiet))
