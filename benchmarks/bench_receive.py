"""CPU per delivered batch on the receive path: the load scenario's mesh, in one process, on a virtual clock.

``bench_load.py`` runs 20 real processes and is bounded by the CPU each delivered batch costs
across the mesh; this script measures that cost deterministically, without processes, sockets
or a shared machine's scheduling in the figure. Each run builds the load scenario's mesh in a
:class:`crdtmem.testing.Cluster` (real ``Node`` s, real handshakes, Ed25519-signed batches,
MAC'd frames, ``crdtmem peer``'s default timers; links of ``--latency`` seconds; the ring plus
one random chord per peer of ``tests/faults/test_load.py``), lets it connect and settle, then
has every peer increment its own counter ``--rate`` times a (virtual) second for
``--seconds``, phases staggered, and runs ``--drain`` more virtual seconds. Every write is its
own signed single-write batch, as at 10 writes/s in ``bench_load.py``. After the run every
replica must hold every write (checked, untimed).

Timed (``time.process_time``, the writing and draining phase): every ``Node.receive`` and
``Node.tick`` of every peer (flushes, relay rounds and acks run in ticks), each followed by the
``next_deadline()`` a runtime asks for after every input: ``us_per_delivery`` (per batch
applied at a peer other than its author), ``us_per_message`` (per frame delivered);
``harness_us_per_delivery`` is the rest (the virtual network, and the cluster asking every node
for its deadline at every step: not a peer's cost). Counted: ``messages_per_delivery`` (frames
delivered) and, from the nodes' counters, ``duplicates_per_delivery``; ``sent_per_delivery``: the messages the nodes sent, by
type (``Batches``, ``Sync``, ``SeenDigest``, ...), per delivery.

With ``--reference CHECKOUT`` each rep runs this code and then the other checkout's (each in a
child process whose ``crdtmem`` comes from that checkout), alternating, and ``ratios`` are this
/ reference (below 1: this code is cheaper). ``--profile FILE`` writes a cProfile (CPU clock)
of one run of this code and prints its top functions by own time per delivery.

Run: python benchmarks/bench_receive.py [--peers 20] [--rate 10] [--seconds 5] [--reps 5]
     [--reference /path/to/main] [--profile /tmp/receive.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def run_mesh(peers: int, rate: float, seconds: float, drain: float, latency: float, seed: int,
             profile: str | None = None, eager_tree: bool = False) -> dict[str, Any]:
    """One run of the scenario with whichever ``crdtmem`` this process imports; its figures."""
    import crdtmem
    import crdtmem.protocol.node as node_module
    from crdtmem.protocol.node import NodeConfig
    from crdtmem.testing import Cluster, LinkFaults

    sys.path.append(str(REPO))  # after crdtmem is imported: only the topology helper comes from here
    from tests.faults.test_load import topology

    sent: dict[str, int] = {}
    encode = node_module.encode_message
    node_cpu = [0.0]
    receive, tick = node_module.Node.receive, node_module.Node.tick

    def timed(method: Any) -> Any:
        def call(node: Any, *args: Any) -> None:  # an input, then the deadline a runtime asks for after it
            began = time.process_time()
            method(node, *args)
            node.next_deadline()
            node_cpu[0] += time.process_time() - began
        return call

    def counting_encode(message: Any) -> bytes:  # what the nodes send, by message type
        sent[type(message).__name__] = sent.get(type(message).__name__, 0) + 1
        return encode(message)

    cluster = Cluster(seed=seed, faults=LinkFaults(latency=latency), config=NodeConfig(eager_tree=eager_tree))
    names = [f"w{i}" for i in range(peers)]
    for name in names:
        cluster.add(name)
    for i, targets in enumerate(topology(peers, random.Random(seed))):
        for j in targets:
            cluster.connect(names[i], names[j])
    cluster.run(3.0)  # handshakes, first syncs, relay-tree adverts
    nodes = [cluster.node(name) for name in names]
    applied_before = sum(node.stats.batches_applied for node in nodes)
    duplicates_before = sum(node.stats.duplicate_batches for node in nodes)
    frames_before = cluster.delivered
    writes = int(rate * seconds)
    schedule = sorted((k / rate + i / (rate * peers), i) for i in range(peers) for k in range(writes))
    start = cluster.now
    node_module.encode_message = counting_encode
    node_module.Node.receive, node_module.Node.tick = timed(receive), timed(tick)
    profiler = cProfile.Profile(time.process_time) if profile else None
    cpu = time.process_time()
    if profiler:
        profiler.enable()
    for at, i in schedule:
        cluster.run(start + at - cluster.now)
        cluster.memory(names[i]).counter(names[i]).increment(1)
    cluster.run(drain)
    if profiler:
        profiler.disable()
    cpu = time.process_time() - cpu
    node_module.encode_message = encode
    node_module.Node.receive, node_module.Node.tick = receive, tick
    if profiler:
        profiler.dump_stats(profile)
    for name in names:
        values = [cluster.memory(name).counter(other).value for other in names]
        assert values == [writes] * peers, f"{name} holds {values}, not {writes} writes of every peer"
    deliveries = sum(node.stats.batches_applied for node in nodes) - applied_before
    assert deliveries == writes * peers * (peers - 1), deliveries
    frames = cluster.delivered - frames_before
    return {
        "crdtmem": str(Path(crdtmem.__file__).parent.parent),
        "cpu_s": cpu,
        "deliveries": deliveries,
        "us_per_delivery": 1e6 * node_cpu[0] / deliveries,
        "us_per_message": 1e6 * node_cpu[0] / frames,
        "harness_us_per_delivery": 1e6 * (cpu - node_cpu[0]) / deliveries,
        "messages_per_delivery": frames / deliveries,
        "duplicates_per_delivery": (sum(node.stats.duplicate_batches for node in nodes) - duplicates_before) / deliveries,
        "sent_per_delivery": {kind: round(count / deliveries, 3) for kind, count in sorted(sent.items())},
    }


def _child(code: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One run in a child process importing ``crdtmem`` from ``code``."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    argv = [sys.executable, __file__, "--one", "--peers", str(args.peers), "--rate", str(args.rate),
            "--seconds", str(args.seconds), "--drain", str(args.drain), "--latency", str(args.latency),
            "--seed", str(args.seed)]
    # Run from outside any checkout, so only PYTHONPATH decides which crdtmem is imported.
    out = subprocess.run(argv, env=env, cwd="/", check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    assert Path(result["crdtmem"]).resolve() == code.resolve(), (result["crdtmem"], code)
    return result


def _top(profile: str, deliveries: int, limit: int = 20) -> list[dict[str, Any]]:
    rows = sorted(pstats.Stats(profile).stats.items(), key=lambda item: item[1][2], reverse=True)[:limit]
    return [
        {"function": f"{Path(file).name}:{line}({name})", "own_us_per_delivery": round(1e6 * own / deliveries, 2),
         "cumulative_us_per_delivery": round(1e6 * cum / deliveries, 2), "calls_per_delivery": round(calls / deliveries, 2)}
        for (file, line, name), (_, calls, own, cum, _) in rows
    ]


def main(args: argparse.Namespace) -> dict[str, Any]:
    codes = {"this": REPO}
    if args.reference:
        codes["reference"] = Path(args.reference).resolve()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in codes}
    load_before = os.getloadavg()[0]
    for rep in range(args.reps):
        for name, code in codes.items():
            result = _child(code, args)
            runs[name].append(result)
            print(json.dumps({"code": name, "rep": rep, "us_per_delivery": round(result["us_per_delivery"], 1)}),
                  file=sys.stderr)
    out: dict[str, Any] = {"params": {k: getattr(args, k) for k in ("peers", "rate", "seconds", "drain", "latency",
                                                                    "seed", "reps")}}
    for name, results in runs.items():
        summary: dict[str, Any] = {}
        for key in ("us_per_delivery", "us_per_message", "harness_us_per_delivery", "messages_per_delivery",
                    "duplicates_per_delivery"):
            values = [r[key] for r in results]
            summary[key] = round(statistics.median(values), 3)
            summary[key + "_spread"] = [round(min(values), 3), round(max(values), 3)]
        summary["sent_per_delivery"] = results[0]["sent_per_delivery"]  # deterministic: the same every rep
        out[name] = summary
    if args.reference:
        out["ratios"] = {
            key: round(out["this"][key] / out["reference"][key], 3)
            for key in ("us_per_delivery", "messages_per_delivery")
        }
        pairs = [t["us_per_delivery"] / r["us_per_delivery"] for t, r in zip(runs["this"], runs["reference"])]
        out["ratios"]["us_per_delivery_per_rep"] = [round(p, 3) for p in pairs]
    if args.profile:
        profiled = run_mesh(args.peers, args.rate, args.seconds, args.drain, args.latency, args.seed, args.profile)
        out["profile_top_own_time"] = _top(args.profile, profiled["deliveries"])
    out["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    out["machine_cores"] = os.cpu_count()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=20)
    parser.add_argument("--rate", type=float, default=10.0, help="writes per virtual second per peer")
    parser.add_argument("--seconds", type=float, default=5.0, help="virtual seconds of writing")
    parser.add_argument("--drain", type=float, default=3.0, help="virtual seconds run after the last write")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="one-way link latency, virtual seconds (0.05: about the duplicates of the loaded 20-process run)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--reference", help="another checkout of crdtmem to run alternately (e.g. main's)")
    parser.add_argument("--profile", help="also profile one run of this code (cProfile, CPU clock) into this file")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one run, this crdtmem
    ns = parser.parse_args()
    if ns.one:
        print(json.dumps(run_mesh(ns.peers, ns.rate, ns.seconds, ns.drain, ns.latency, ns.seed)))
    else:
        print(json.dumps(main(ns), indent=1))
