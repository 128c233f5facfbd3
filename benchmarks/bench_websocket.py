"""Two peers in two processes on loopback: replicated writes vs raw websockets, in one run.

Measures, and prints as one JSON object:

* ``writes_per_s``: sustained replicated writes per second — set additions made by one peer,
  signed and batched by its runtime, applied by the other peer, and acknowledged back (the
  clock stops when the writer knows the reader has applied every write);
* ``latency_p50_ms`` / ``latency_p99_ms``: write-to-visible latency, from the write call in
  one process to the moment the other process's memory reports the change (both processes
  read the same system-wide monotonic clock), one probe at a time;
* ``raw_messages_per_s``: one-way message rate of a bare ``websockets`` connection between
  the same two processes (same library, same settings, 128-byte messages);
* ``raw_rtt_p50_ms``: ping-pong round trip of a bare ``websockets`` connection;
* ``throughput_ratio`` = writes_per_s / raw_messages_per_s (target >= 0.5) and
  ``latency_ratio`` = latency_p50_ms / raw_rtt_p50_ms (target <= 3).

Run: python benchmarks/bench_websocket.py [--writes 50000] [--probes 300] [--raw 20000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time

import anyio


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# -- raw websockets ----------------------------------------------------------------------------------


def raw_server(pipe) -> None:
    async def main() -> None:
        from websockets.asyncio.server import serve

        async def handler(ws) -> None:
            mode = await ws.recv()
            if mode == "echo":
                async for message in ws:
                    await ws.send(message)
            else:  # "count N": receive N messages, then say so
                n = int(mode.split()[1])
                for _ in range(n):
                    await ws.recv()
                await ws.send("done")

        async with serve(handler, "127.0.0.1", 0, compression=None, max_size=1 << 20) as server:
            pipe.send(server.sockets[0].getsockname()[1])
            await anyio.to_thread.run_sync(pipe.recv)  # until told to stop

    anyio.run(main)


async def measure_raw(port: int, messages: int, pings: int) -> dict[str, float]:
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{port}"
    payload = os.urandom(128)
    async with connect(url, compression=None, proxy=None, max_size=1 << 20) as ws:
        await ws.send(f"count {messages}")
        start = time.perf_counter()
        for _ in range(messages):
            await ws.send(payload)
        assert await ws.recv() == "done"
        rate = messages / (time.perf_counter() - start)
    async with connect(url, compression=None, proxy=None, max_size=1 << 20) as ws:
        await ws.send("echo")
        rtts = []
        for _ in range(pings):
            t0 = time.perf_counter()
            await ws.send(payload)
            await ws.recv()
            rtts.append((time.perf_counter() - t0) * 1000)
    return {"raw_messages_per_s": rate, "raw_rtt_p50_ms": _percentile(rtts, 0.5), "raw_rtt_p99_ms": _percentile(rtts, 0.99)}


# -- crdtmem peers -------------------------------------------------------------------------------------


def reader_main(pipe, secrets: list[bytes]) -> None:
    async def main() -> None:
        from crdtmem import Identity, Keyring, Memory, Peer

        me, other = (Identity.from_private_bytes(s) for s in secrets)
        keyring = Keyring()
        keyring.add(me)
        keyring.add(other)
        memory = Memory(me.peer_id, clock=time.time)
        seen: dict[int, float] = {}

        def on_change(name: str, origin: str) -> None:
            if name == "probe":
                seen[memory.register("probe").value] = time.monotonic()

        memory.on_change(on_change)
        async with Peer(memory, me, keyring, listen="ws://127.0.0.1:0") as peer:
            pipe.send(peer.url)
            await anyio.to_thread.run_sync(pipe.recv)  # until the writer is done
            pipe.send({"seen": seen, "elements": len(memory.set("load").value), "stats": peer.node.stats.as_dict()})
            await anyio.to_thread.run_sync(pipe.recv)

    _profiled(lambda: anyio.run(main), "reader")


def _profiled(fn, role: str):
    """Run ``fn``; with BENCH_PROFILE=DIR set, write a cProfile dump per process there."""
    directory = os.environ.get("BENCH_PROFILE")
    if not directory:
        return fn()
    import cProfile

    profile = cProfile.Profile()
    try:
        return profile.runcall(fn)
    finally:
        profile.dump_stats(os.path.join(directory, f"{role}.prof"))


async def measure_peers(url: str, secrets: list[bytes], writes: int, probes: int, pipe) -> dict[str, float]:
    from crdtmem import Identity, Keyring, Memory, Peer

    me, other = (Identity.from_private_bytes(s) for s in secrets)
    keyring = Keyring()
    keyring.add(me)
    keyring.add(other)
    memory = Memory(me.peer_id, clock=time.time)
    async with Peer(memory, me, keyring, connect=[url]) as peer:
        await peer.wait_connected(1, timeout=10)
        await peer.wait_synced(timeout=10)

        # throughput: write as fast as the application can, yielding now and then so the
        # runtime flushes (it signs whatever accumulated as one batch)
        load = memory.set("load")
        start = time.perf_counter()
        for i in range(writes):
            load.add(i)
            if i % 100 == 99:
                await anyio.sleep(0)
        await peer.wait_synced(timeout=300)
        elapsed = time.perf_counter() - start
        batches = peer.node.stats.batches_created
        sent_bytes = peer.node.stats.bytes_sent

        # latency: one probe at a time, stamped with the shared monotonic clock
        stamps: dict[int, float] = {}
        probe = memory.register("probe")
        for i in range(probes):
            stamps[i] = time.monotonic()
            probe.assign(i)
            await peer.wait_synced(timeout=10)
        pipe.send("report")
        report = await anyio.to_thread.run_sync(pipe.recv)
        pipe.send("stop")
    latencies = [(report["seen"][i] - stamps[i]) * 1000 for i in range(probes) if i in report["seen"]]
    assert report["elements"] == writes, f"reader holds {report['elements']} of {writes} writes"
    return {
        "writes": writes,
        "writes_per_s": writes / elapsed,
        "batches": batches,
        "writes_per_batch": writes / max(1, batches),
        "bytes_per_write": sent_bytes / writes,
        "probes": len(latencies),
        "latency_p50_ms": statistics.median(latencies),
        "latency_p99_ms": _percentile(latencies, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=50_000)
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--raw", type=int, default=20_000, help="raw one-way messages")
    parser.add_argument("--pings", type=int, default=300)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")

    here, there = ctx.Pipe()
    server = ctx.Process(target=raw_server, args=(there,))
    server.start()
    port = here.recv()
    raw = anyio.run(measure_raw, port, args.raw, args.pings)
    here.send("stop")
    server.join(10)

    from crdtmem import Identity

    secrets = [Identity.generate().private_bytes() for _ in range(2)]
    here, there = ctx.Pipe()
    reader = ctx.Process(target=reader_main, args=(there, [secrets[1], secrets[0]]))
    reader.start()
    url = here.recv()
    peers = _profiled(lambda: anyio.run(measure_peers, url, [secrets[0], secrets[1]], args.writes, args.probes, here),
                      "writer")
    reader.join(10)

    result = {
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in peers.items()},
        **{k: round(v, 3) for k, v in raw.items()},
        "throughput_ratio": round(peers["writes_per_s"] / raw["raw_messages_per_s"], 3),
        "latency_ratio": round(peers["latency_p50_ms"] / raw["raw_rtt_p50_ms"], 3),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    result["throughput_target_met"] = result["throughput_ratio"] >= 0.5
    result["latency_target_met"] = result["latency_ratio"] <= 3
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
