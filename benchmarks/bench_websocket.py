"""Two peers in two processes on loopback: replicated writes vs raw websockets, in one run.

Measures, and prints as one JSON object:

* ``writes_per_s``: sustained replicated writes per second — set additions made by one peer,
  signed and batched by its runtime, applied by the other peer, and acknowledged back (the
  clock stops when the writer knows the reader has applied every write);
* ``latency_p50_ms`` / ``latency_p99_ms``: write-to-visible latency, from the write call in
  one process to the moment the other process's memory reports the change (both processes
  read the same system-wide monotonic clock), one probe at a time;
* ``writer_cpu_us_per_write`` / ``reader_cpu_us_per_write``: each process's CPU time
  (``time.process_time``) over the throughput part, per write; ``*_gc_us_per_write``: the part
  of it spent in CPython's cyclic garbage collector; ``*_busy_share``: that CPU time over the
  elapsed time (what is left, each process waited: for the other, or for a core);
* ``raw_messages_per_s``: one-way message rate of a bare ``websockets`` connection between
  the same two processes (same library, same settings as the peers' transport: no
  compression on either side, a 1 MiB message cap; 128-byte messages);
* ``raw_rtt_p50_ms``: ping-pong round trip of a bare ``websockets`` connection;
* ``throughput_ratio`` = writes_per_s / raw_messages_per_s (target >= 1.0: coalesced writes
  share one signed batch and one frame, so more writes than raw messages per second is
  reachable) and
  ``latency_ratio`` = latency_p50_ms / raw_rtt_p50_ms (target <= 3).

Each of ``--reps`` runs measures both (alternating which goes first); the JSON gives the
median of every key over the runs (each ratio taken within its own run), with ``*_spread``
as [min, max] for the main ones.

Run: python benchmarks/bench_websocket.py [--reps 3] [--writes 50000] [--probes 300] [--raw 20000]
[--full-batch-writes N|none]
(``BENCH_PROFILE=DIR``: cProfile, CPU-timed, of the writer and the reader there)
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
from cpu_profile import profiled
from gc_timer import GcTimer


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


def _config(full_batch_writes: str):
    """The peers' node tunables: the defaults, but for ``--full-batch-writes`` when given."""
    from crdtmem.protocol.node import NodeConfig

    if full_batch_writes == "default":
        return NodeConfig()
    return NodeConfig(full_batch_writes=None if full_batch_writes == "none" else int(full_batch_writes))


def reader_main(pipe, secrets: list[bytes], full_batch_writes: str = "default") -> None:
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
        gc_time = GcTimer(time.process_time)
        gc_time.running = True
        async with Peer(memory, me, keyring, listen="ws://127.0.0.1:0", config=_config(full_batch_writes)) as peer:
            pipe.send(peer.url)
            while await anyio.to_thread.run_sync(pipe.recv) == "cpu":  # until the writer is done
                pipe.send((time.process_time(), gc_time.total))
            pipe.send({"seen": seen, "elements": len(memory.set("load").value), "stats": peer.node.stats.as_dict()})
            await anyio.to_thread.run_sync(pipe.recv)

    profiled(lambda: anyio.run(main), "reader")


async def _reader_cpu(pipe) -> tuple[float, float]:
    """The reader process's CPU seconds so far, and those of its garbage collections (asked
    over the pipe, outside any timed part)."""
    pipe.send("cpu")
    return await anyio.to_thread.run_sync(pipe.recv)


async def measure_peers(url: str, secrets: list[bytes], writes: int, probes: int, pipe,
                        full_batch_writes: str = "default") -> dict[str, float]:
    from crdtmem import Identity, Keyring, Memory, Peer

    me, other = (Identity.from_private_bytes(s) for s in secrets)
    keyring = Keyring()
    keyring.add(me)
    keyring.add(other)
    memory = Memory(me.peer_id, clock=time.time)
    async with Peer(memory, me, keyring, connect=[url], config=_config(full_batch_writes)) as peer:
        await peer.wait_connected(1, timeout=10)
        await peer.wait_synced(timeout=10)

        # throughput: write as fast as the application can, yielding now and then so the
        # runtime flushes (it signs whatever accumulated as one batch)
        load = memory.set("load")
        reader_cpu, reader_gc = await _reader_cpu(pipe)
        cpu = time.process_time()
        start = time.perf_counter()
        with GcTimer(time.process_time) as gc_time:
            for i in range(writes):
                load.add(i)
                if i % 100 == 99:
                    await anyio.sleep(0)
            await peer.wait_synced(timeout=300)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        reader_cpu_after, reader_gc_after = await _reader_cpu(pipe)
        reader_cpu, reader_gc = reader_cpu_after - reader_cpu, reader_gc_after - reader_gc
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
        "writer_cpu_us_per_write": cpu / writes * 1e6,
        "reader_cpu_us_per_write": reader_cpu / writes * 1e6,
        "elapsed_us_per_write": elapsed / writes * 1e6,
        "writer_busy_share": cpu / elapsed,
        "reader_busy_share": reader_cpu / elapsed,
        "writer_gc_us_per_write": gc_time.total / writes * 1e6,
        "reader_gc_us_per_write": reader_gc / writes * 1e6,
        "probes": len(latencies),
        "latency_p50_ms": statistics.median(latencies),
        "latency_p99_ms": _percentile(latencies, 0.99),
    }


def _raw_rep(ctx, args) -> dict[str, float]:
    """One measurement of the bare websockets reference (a server process, this one the client)."""
    here, there = ctx.Pipe()
    server = ctx.Process(target=raw_server, args=(there,))
    server.start()
    port = here.recv()
    raw = anyio.run(measure_raw, port, args.raw, args.pings)
    here.send("stop")
    server.join(10)
    return raw


def _peers_rep(ctx, args) -> dict[str, float]:
    """One measurement of two crdtmem peers (the reader a second process, this one the writer)."""
    from crdtmem import Identity

    secrets = [Identity.generate().private_bytes() for _ in range(2)]
    here, there = ctx.Pipe()
    reader = ctx.Process(target=reader_main, args=(there, [secrets[1], secrets[0]], args.full_batch_writes))
    reader.start()
    url = here.recv()
    peers = profiled(lambda: anyio.run(measure_peers, url, [secrets[0], secrets[1]], args.writes, args.probes, here,
                                       args.full_batch_writes),
                      "writer")
    reader.join(10)
    return peers


_SPREAD_KEYS = ("writes_per_s", "raw_messages_per_s", "throughput_ratio", "latency_p50_ms", "raw_rtt_p50_ms",
                "latency_ratio")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=50_000)
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--raw", type=int, default=20_000, help="raw one-way messages")
    parser.add_argument("--pings", type=int, default=300)
    parser.add_argument("--reps", type=int, default=3, help="runs of both, alternating which goes first")
    parser.add_argument("--full-batch-writes", default="default",
                        help="NodeConfig.full_batch_writes of both peers: a number, or none (held writes wait for "
                             "the ack)")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")

    runs = []
    for rep in range(args.reps):
        if rep % 2 == 0:
            raw, peers = _raw_rep(ctx, args), _peers_rep(ctx, args)
        else:
            peers, raw = _peers_rep(ctx, args), _raw_rep(ctx, args)
        run = {**peers, **raw}
        run["throughput_ratio"] = peers["writes_per_s"] / raw["raw_messages_per_s"]
        run["latency_ratio"] = peers["latency_p50_ms"] / raw["raw_rtt_p50_ms"]
        runs.append(run)
        print(f"# rep {rep + 1}: " + json.dumps({k: round(v, 3) for k, v in run.items()}), file=sys.stderr)

    result: dict = {"reps": args.reps}
    for key in runs[0]:
        values = [run[key] for run in runs]
        result[key] = round(statistics.median(values), 3)
        if key in _SPREAD_KEYS:
            result[f"{key}_spread"] = [round(min(values), 3), round(max(values), 3)]
    result["throughput_target_met"] = result["throughput_ratio"] >= 1.0
    result["latency_target_met"] = result["latency_ratio"] <= 3
    result.update({"python": platform.python_version(), "cpus": os.cpu_count(), "loadavg": round(os.getloadavg()[0], 2)})
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
