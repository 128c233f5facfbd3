"""Simulator scale and speed: a partition-and-heal run at 100, 1,000 and 10,000 peers.

Run from the repo root::

    python benchmarks/bench_simulation.py                  # 100, 1000, 10000 peers
    python benchmarks/bench_simulation.py --sizes 100,1000 # a subset

Prints one JSON line per size::

    {"peers": 1000, "wall_s": ..., "deliveries_per_s": ..., "rounds_to_converge": ...,
     "gossip_bound_rounds": ..., "converged": true, ...}

The scenario (the same at every size, seed 1): random 6-regular links, 20 ms one-way latency,
websocket-like stream transport, no loss. Every peer boots at t=0 and dials its links; at
t=3 s the network splits into two halves; from 3.2 s until the heal at 6 s agents write
2 times per second network-wide (about 6 signed batches, on both sides); the run stops at the
first 0.5 s sample after the heal where every replica holds the same Merkle root.

* ``rounds_to_converge``: (time of the last change to any replica - heal time) / gossip
  interval (1 s). The time is exact (every replica change is observed), not sampled.
* ``gossip_bound_rounds``: log2 N + ln N, the push-pull gossip bound; target: within 2x.
* ``deliveries_per_s``: frames handed to ``Node.receive`` per wall second of the run.
* ``cpu_s`` is this process's CPU time: on a shared machine it is the fairer figure.
* ``wall_s`` covers setup (key generation, topology) and the run; ``in_node_s`` is the part
  spent inside Node calls (the real protocol, its MACs and batch signatures included).

Node tuning for large N (reported in each line): periodic anti-entropy is set to 300 s so it
does not fire during the short run — anti-entropy still runs on every (re)connection, as the
protocol requires.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crdtmem.simulation import NodeConfig, Partition, Scenario, Simulation
from crdtmem.simulation.report import build_report


def scenario(peers: int, seed: int = 1) -> Scenario:
    return Scenario(
        peers=peers,
        seed=seed,
        topology="regular:6",
        latency="20ms",
        partitions=[Partition(at=3.0, heal_at=6.0, groups=2)],
        writes=2.0,
        write_from=3.2,
        duration=120.0,
        sample_interval=0.5,
        stop_when_converged=True,
        node=NodeConfig(anti_entropy_interval=300.0),
    )


def bench(peers: int, seed: int = 1) -> dict:
    started, cpu_started = time.perf_counter(), time.process_time()
    sim = Simulation(scenario(peers, seed))
    sim.run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    report = build_report(sim)
    conv = report["convergence"]
    return {
        "peers": peers,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "deliveries_per_s": report["wall"]["deliveries_per_s"],
        "rounds_to_converge": conv["rounds_to_converge"],
        "gossip_bound_rounds": conv["gossip_bound_rounds"],
        "converged": report["converged"],
        "within_2x_bound": conv["within_2x_gossip_bound"],
        "convergence_time_after_heal_s": conv["convergence_time_after_heal"],
        "virtual_s": report["virtual_time"],
        "links": report["topology"]["links"],
        "deliveries": report["network"].get("delivered", 0),
        "messages": report["messages"],
        "bytes": report["bytes"],
        "messages_by_kind": report["messages_by_kind"],
        "writes": report["writes"]["made"],
        "setup_s": report["wall"]["setup_s"],
        "in_node_s": report["wall"]["in_node_s"],
        "sampling_s": report["wall"]["sampling_s"],
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated peer counts")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.getLogger("crdtmem").setLevel(logging.ERROR)
    for size in (int(s) for s in args.sizes.split(",")):
        print(json.dumps(bench(size, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
