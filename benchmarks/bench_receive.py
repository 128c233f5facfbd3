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
replica must hold every write (checked, untimed). The same seed gives the same messages.

Timed (``time.process_time``, the writing and draining phase): every ``Node.receive`` and
``Node.tick`` of every peer (flushes, relay rounds and acks run in ticks), each followed by the
``next_deadline()`` a runtime asks for after every input: ``us_per_delivery`` (per batch
applied at a peer other than its author), ``us_per_message`` (per frame delivered);
``harness_us_per_delivery`` is the rest (the virtual network, and the cluster asking every node
for its deadline at every step: not a peer's cost). Counted: ``messages_per_delivery`` (frames
delivered) and, from the nodes' counters, ``duplicates_per_delivery``; ``sent_per_delivery``:
the messages the nodes sent, by type (``Batches``, ``Sync``, ``SeenDigest``, ...), per delivery;
``virtual_p50_s`` / ``virtual_p99_s`` / ``virtual_max_s``: write-to-visible in virtual time
(from a write to the moment another peer's counter shows it), which no CPU time delays here:
what the protocol's timers and hops alone cost.

With ``--reference CHECKOUT`` each rep runs this code and then the other checkout's (each in a
child process whose ``crdtmem`` comes from that checkout), alternating, and ``ratios`` are this
/ reference (below 1: this code is cheaper). ``--profile`` adds one more run of this code under
a statistical profiler (a ``SIGPROF`` sample every 0.2 ms of CPU, or every kernel tick where
that is coarser, while a node works; unlike cProfile it adds no cost per call, so many small
calls are not overstated): each function's share of the samples, alone and with its callees.

Run: python benchmarks/bench_receive.py [--peers 20] [--rate 10] [--seconds 5] [--reps 5]
     [--reference /path/to/main] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class Sampler:
    """Counts, every ``interval`` seconds of CPU, the function running and those it was called
    from, while :attr:`active` (the main thread only)."""

    def __init__(self, interval: float = 0.0002) -> None:
        self.interval = interval
        self.active = False
        self.own: collections.Counter[str] = collections.Counter()
        self.inclusive: collections.Counter[str] = collections.Counter()

    def _sample(self, _signum: int, frame: Any) -> None:
        if not self.active:
            return
        seen: set[str] = set()
        self.own[_name(frame)] += 1
        while frame is not None:
            name = _name(frame)
            if name not in seen:
                seen.add(name)
                self.inclusive[name] += 1
            frame = frame.f_back

    def __enter__(self) -> Sampler:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)

    def top(self, limit: int = 25) -> dict[str, Any]:
        total = max(1, sum(self.own.values()))
        return {
            "samples": total,
            "own_share": {name: round(n / total, 3) for name, n in self.own.most_common(limit)},
            "inclusive_share": {name: round(n / total, 3) for name, n in self.inclusive.most_common(limit + 15)},
        }


def _name(frame: Any) -> str:
    code = frame.f_code
    return f"{Path(code.co_filename).name}:{code.co_name}"


def run_mesh(peers: int, rate: float, seconds: float, drain: float, latency: float, seed: int,
             sampler: Sampler | None = None) -> dict[str, Any]:
    """One run of the scenario with whichever ``crdtmem`` this process imports; its figures."""
    import crdtmem
    import crdtmem.protocol.node as node_module
    from crdtmem.testing import Cluster, LinkFaults

    sys.path.append(str(REPO))  # after crdtmem is imported: only the topology helper comes from here
    from tests.faults.test_load import topology

    cluster = Cluster(seed=seed, faults=LinkFaults(latency=latency))
    names = [f"w{i}" for i in range(peers)]
    for name in names:
        cluster.add(name)
    for i, targets in enumerate(topology(peers, random.Random(seed))):
        for j in targets:
            cluster.connect(names[i], names[j])
    cluster.run(3.0)  # handshakes and first syncs
    nodes = [cluster.node(name) for name in names]
    applied_before = sum(node.stats.batches_applied for node in nodes)
    duplicates_before = sum(node.stats.duplicate_batches for node in nodes)
    frames_before = cluster.delivered
    writes = int(rate * seconds)
    schedule = sorted((k / rate + i / (rate * peers), i) for i in range(peers) for k in range(writes))
    start = cluster.now

    node_cpu = [0.0]
    sent: collections.Counter[str] = collections.Counter()
    receive, tick, encode = node_module.Node.receive, node_module.Node.tick, node_module.encode_message
    take_events = node_module.Node.take_events
    writer = {node.replica_id: names[i] for i, node in enumerate(nodes)}
    shown: dict[tuple[str, str], int] = {}  # (viewer, writer) -> the writer's writes it shows
    latencies: list[float] = []

    def watching(node: Any) -> list:  # like `crdtmem peer`'s watchers: when each write shows, per peer
        events = take_events(node)
        for event in events:
            name = writer.get(getattr(event, "author", None))
            if name is None or event.local:
                continue
            value, before = node.memory.counter(name).value, shown.get((node.replica_id, name), 0)
            phase = names.index(name) / (rate * peers)  # write n of this writer was made at (n - 1) / rate + phase
            latencies.extend(cluster.now - start - (n - 1) / rate - phase for n in range(before + 1, value + 1))
            shown[(node.replica_id, name)] = max(before, value)
        return events

    def timed(method: Callable[..., None]) -> Callable[..., None]:
        def call(node: Any, *args: Any) -> None:  # an input, then the deadline a runtime asks for after it
            began = time.process_time()
            if sampler:
                sampler.active = True
            method(node, *args)
            node.next_deadline()
            if sampler:
                sampler.active = False
            node_cpu[0] += time.process_time() - began
        return call

    def counting_encode(message: Any) -> bytes:  # what the nodes send, by message type
        sent[type(message).__name__] += 1
        return encode(message)

    node_module.Node.receive, node_module.Node.tick = timed(receive), timed(tick)
    node_module.Node.take_events = watching
    node_module.encode_message = counting_encode
    cpu = time.process_time()
    try:
        for at, i in schedule:
            cluster.run(start + at - cluster.now)
            cluster.memory(names[i]).counter(names[i]).increment(1)
        cluster.run(drain)
    finally:
        cpu = time.process_time() - cpu
        node_module.Node.receive, node_module.Node.tick = receive, tick
        node_module.Node.take_events = take_events
        node_module.encode_message = encode

    for name in names:
        values = [cluster.memory(name).counter(other).value for other in names]
        assert values == [writes] * peers, f"{name} holds {values}, not {writes} writes of every peer"
    deliveries = sum(node.stats.batches_applied for node in nodes) - applied_before
    assert deliveries == writes * peers * (peers - 1), deliveries
    frames = cluster.delivered - frames_before
    assert len(latencies) == deliveries, (len(latencies), deliveries)
    latencies.sort()
    return {
        "crdtmem": str(Path(crdtmem.__file__).parent.parent),
        "deliveries": deliveries,
        "us_per_delivery": 1e6 * node_cpu[0] / deliveries,
        "us_per_message": 1e6 * node_cpu[0] / frames,
        "harness_us_per_delivery": 1e6 * (cpu - node_cpu[0]) / deliveries,
        "virtual_p50_s": latencies[len(latencies) // 2],
        "virtual_p99_s": latencies[int(len(latencies) * 0.99)],
        "virtual_max_s": latencies[-1],
        "messages_per_delivery": frames / deliveries,
        "duplicates_per_delivery": (sum(node.stats.duplicate_batches for node in nodes) - duplicates_before) / deliveries,
        "sent_per_delivery": {kind: round(count / deliveries, 3) for kind, count in sorted(sent.items())},
    }


_SCENARIO = ("peers", "rate", "seconds", "drain", "latency", "seed")
_FIGURES = ("us_per_delivery", "us_per_message", "harness_us_per_delivery", "messages_per_delivery",
            "duplicates_per_delivery", "virtual_p50_s", "virtual_p99_s", "virtual_max_s")


def _child(code: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One run in a child process importing ``crdtmem`` from ``code``."""
    argv = [sys.executable, __file__, "--one", *(f"--{key}={getattr(args, key)}" for key in _SCENARIO)]
    # Run from outside any checkout, so only PYTHONPATH decides which crdtmem is imported.
    out = subprocess.run(argv, env={**os.environ, "PYTHONPATH": str(code)}, cwd="/", check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out)
    assert Path(result["crdtmem"]).resolve() == code.resolve(), (result["crdtmem"], code)
    return result


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
    out: dict[str, Any] = {"params": {key: getattr(args, key) for key in (*_SCENARIO, "reps")}}
    for name, results in runs.items():
        summary: dict[str, Any] = {}
        for key in _FIGURES:
            values = [r[key] for r in results]
            summary[key] = round(statistics.median(values), 3)
            summary[key + "_spread"] = [round(min(values), 3), round(max(values), 3)]
        summary["sent_per_delivery"] = results[0]["sent_per_delivery"]  # deterministic: the same every rep
        out[name] = summary
    if args.reference:
        out["ratios"] = {key: round(out["this"][key] / out["reference"][key], 3)
                         for key in ("us_per_delivery", "messages_per_delivery")}
        out["ratios"]["us_per_delivery_per_rep"] = [
            round(t["us_per_delivery"] / r["us_per_delivery"], 3) for t, r in zip(runs["this"], runs["reference"])
        ]
    if args.profile:
        with Sampler() as sampler:
            run_mesh(*(getattr(args, key) for key in _SCENARIO), sampler=sampler)
        out["profile"] = sampler.top()
    out["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    out["machine_cores"] = os.cpu_count()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, kind, default, what in (
        ("--peers", int, 20, "peers: a ring plus one random chord each"),
        ("--rate", float, 10.0, "writes per virtual second per peer"),
        ("--seconds", float, 5.0, "virtual seconds of writing"),
        ("--drain", float, 3.0, "virtual seconds run after the last write"),
        ("--latency", float, 0.05, "one-way link latency in virtual seconds (0.05: about the duplicates "
                                   "per delivery of the loaded 20-process run)"),
        ("--seed", int, 1, "seeds the topology, the keys and every node"),
        ("--reps", int, 5, "runs of each code, alternating"),
    ):
        parser.add_argument(flag, type=kind, default=default, help=what)
    parser.add_argument("--reference", help="another checkout of crdtmem to run alternately (e.g. main's)")
    parser.add_argument("--profile", action="store_true", help="add a sampled profile of one run of this code")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one run, this crdtmem
    ns = parser.parse_args()
    if ns.one:
        print(json.dumps(run_mesh(*(getattr(ns, key) for key in _SCENARIO))))
    else:
        print(json.dumps(main(ns), indent=1))
