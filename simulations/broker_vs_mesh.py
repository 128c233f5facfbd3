"""One broker against the gossip mesh, at 1,000 and 10,000 agents: rounds, bytes, and a partition.

Both setups run the same writes (1 write/s network-wide until t = 10 s) and the same cut from
t = 5 s to t = 10 s:

* **mesh**: random 6-regular websocket links, gossip every 1 s to 3 peers; the cut splits the
  peers into two halves (a network partition);
* **broker**: no links at all (topology ``none``); every peer publishes to and reads one
  modelled JetStream broker (20 µs to store a message, 1 µs per subscriber to deliver it,
  1 h retention); the cut is the broker itself becoming unreachable (every peer is cut off).

Measured: convergence time after the cut ends (and in gossip rounds of 1 s), bytes per write
per peer (every byte peers sent, plus every byte the broker delivered, divided by writes and
peers; a mesh's idle gossip and handshakes count too), and the broker's queueing.

    python simulations/broker_vs_mesh.py                 # ~10 min: writes broker_vs_mesh.json/.png
    python simulations/broker_vs_mesh.py --sizes 1000    # ~1 min
"""

from __future__ import annotations

import argparse
import json
import sys

from _common import HERE, run, write_json

from crdtmem.simulation import BrokerOutage, NodeConfig, Partition, Scenario


def scenario(mode: str, peers: int) -> Scenario:
    common = dict(peers=peers, seed=1, writes=1.0, write_until=10.0, duration=14.0, sample_interval=0.5,
                  node=NodeConfig(anti_entropy_interval=300.0))
    if mode == "mesh":
        return Scenario(**common, partitions=[Partition(at=5.0, heal_at=10.0, groups=2)])
    return Scenario(**common, topology="none", broker="publish=20us,deliver=1us,retention=60m",
                    broker_outages=[BrokerOutage(at=5.0, up_at=10.0)])


def summarise(report: dict) -> dict:
    writes, peers = max(1, report["writes"]["made"]), report["peers"]
    conv = report["convergence"]
    return {
        "converged": report["converged"],
        "convergence_after_cut_s": conv["convergence_time_after_heal"],
        "rounds_to_converge": conv["rounds_to_converge"],
        "gossip_bound_rounds": conv["gossip_bound_rounds"],
        "writes": writes,
        "bytes_per_write_per_peer": round(report["bytes"] / writes / peers, 1),
        "messages_per_write_per_peer": round(report["messages"] / writes / peers, 2),
        "bytes_by_kind": report["bytes_by_kind"],
        "broker": report["broker"],
        "cpu_s": report["wall"]["cpu_s"],
    }


def plot(results: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({int(k.split("_")[1]) for k in results})
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.38
    for offset, mode in ((-width / 2, "mesh"), (width / 2, "broker")):
        xs = [i + offset for i in range(len(sizes))]
        left.bar(xs, [results[f"{mode}_{n}"]["bytes_per_write_per_peer"] for n in sizes], width, label=mode)
        right.bar(xs, [results[f"{mode}_{n}"]["convergence_after_cut_s"] or 0 for n in sizes], width, label=mode)
    for ax, title in ((left, "bytes per write per peer"), (right, "seconds to converge after the cut")):
        ax.set_xticks(range(len(sizes)), [f"{n:,} agents" for n in sizes])
        ax.set_title(title)
        ax.legend()
    fig.suptitle("one broker vs the gossip mesh (cut from 5 s to 10 s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from broker_vs_mesh.json")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads((HERE / "broker_vs_mesh.json").read_text()), HERE / "broker_vs_mesh.png")
        return
    sizes = [int(x) for x in args.sizes.split(",")]
    results = {}
    for peers in sizes:
        for mode in ("broker", "mesh"):
            name = f"broker_vs_mesh_{mode}_{peers}"
            report = run(name, scenario(mode, peers), title=f"{mode}, {peers:,} agents: cut 5-10 s", plot=False)
            (HERE / f"{name}.json").unlink()  # the summary below keeps what matters
            results[f"{mode}_{peers}"] = summarise(report)
            print(f"   {mode} {peers}: {results[f'{mode}_{peers}']}", file=sys.stderr)
    write_json("broker_vs_mesh", results)
    plot(results, HERE / "broker_vs_mesh.png")


if __name__ == "__main__":
    main()
