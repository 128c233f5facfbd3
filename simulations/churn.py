"""Churn: agents that live about a minute each, and how large version vectors grow.

``--alive`` peers run at all times; each one stops after 45-75 s and starts again at once
with its store, which — like every start — makes it a new incarnation of its key: the shape of
a team whose short-lived sub-agents come and go. Each incarnation writes a few times during
its life. Every virtual minute the script samples, over the live peers: the incarnations
alive, the incarnations that ever wrote, the entries of each peer's version vector (``seen``)
and the bytes of the ``Sync`` message that carries it.

No departed incarnation is pruned yet (tracked in the issues), so this measures the problem:
vectors track the incarnations that ever wrote, not those alive.

    python simulations/churn.py                     # 50 alive, 20 virtual minutes: 1,000+ incarnations
    python simulations/churn.py --alive 100 --minutes 100   # 10,000 (long: gossip digests grow with the vectors)
"""

from __future__ import annotations

import argparse
import random
import time

from _common import HERE, write_json

from crdtmem.protocol.messages import Sync, encode_message
from crdtmem.simulation import Crash, NodeConfig, Scenario, Simulation
from crdtmem.simulation.plot import _pyplot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alive", type=int, default=50)
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    duration = 60.0 * args.minutes
    crashes = []
    for peer in range(args.alive):
        t = rng.uniform(45, 75)
        while t < duration:
            crashes.append(Crash(peer, t, t + 0.01, "kept"))
            t += 0.01 + rng.uniform(45, 75)
    scenario = Scenario(peers=args.alive, seed=args.seed, crashes=crashes, writes=args.alive * 3 / 60,
                        write_until=duration, duration=duration,
                        node=NodeConfig(gossip_interval=5.0, anti_entropy_interval=60.0))
    sim = Simulation(scenario)
    began = time.perf_counter()
    samples = []
    for minute in range(1, args.minutes + 1):
        sim.run_until(60.0 * minute)
        live = sim.live_peers()
        entries = [len(p.node.seen.replicas()) for p in live]
        sync_bytes = [len(encode_message(Sync(p.node.seen))) for p in live]
        ever = set().union(*(p.node.seen.replicas() for p in live))
        samples.append({"minute": minute, "alive": len(live), "ever_wrote": len(ever),
                        "vector_entries_mean": round(sum(entries) / len(entries), 1),
                        "sync_bytes_mean": round(sum(sync_bytes) / len(sync_bytes))})
        print(samples[-1], flush=True)
    result = {"alive": args.alive, "minutes": args.minutes, "seed": args.seed,
              "incarnations_started": args.alive + len(crashes), "samples": samples,
              "wall_seconds": round(time.perf_counter() - began, 1)}
    write_json("churn", result)
    plt = _pyplot()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    minutes = [s["minute"] for s in samples]
    ax.plot(minutes, [s["ever_wrote"] for s in samples], label="incarnations that ever wrote")
    ax.plot(minutes, [s["vector_entries_mean"] for s in samples], "--", label="version-vector entries (mean per peer)")
    ax.plot(minutes, [s["alive"] for s in samples], label="incarnations alive")
    ax.set_ylabel("count")
    ax.legend()
    ax.set_title(f"{args.alive} agents alive, each living ~1 minute (no pruning yet)")
    ax2.plot(minutes, [s["sync_bytes_mean"] / 1024 for s in samples])
    ax2.set_ylabel("Sync message KiB")
    ax2.set_xlabel("virtual minutes")
    fig.tight_layout()
    fig.savefig(HERE / "churn.png", dpi=110)


if __name__ == "__main__":
    main()
