"""Duplicate deliveries per useful one, with and without the relay tree, at fanout 3.

100 and 1,000 peers on random 6-regular links, 20 ms latency, gossip every 1 s to 3 peers.
Peers write 5 times a second network-wide for 10 s; each run ends at 15 s. Every size runs
three times per seed, in one process: ``random``, the default (``eager_tree`` off: relay
fresh batches to 3 random neighbours that may lack them, own writes to every neighbour;
``relay_delay`` 50 ms); ``random-20ms``, the same with ``relay_delay`` 20 ms; and ``tree``
(``eager_tree`` on, ``relay_delay`` 20 ms: relay over one breadth-first spanning tree rooted
at the smallest peer id, ``IHave`` over the other links, a batch's first two hops also over
lazy links where the tree may detour). A *useful* delivery applies a batch (``batches_applied``); a *duplicate* brings
one already held (``duplicate_batches``), summed over every peer. Rounds to converge: time
from the last write until the last replica changed, in gossip intervals (the simulator's
report). Spread: per batch, from its signing until the last peer applied it (median over the
run's batches). Eccentricity: the most links a batch crosses from its author to the farthest
peer, over the mesh (any shortest path) and over the relay tree (median over 50 authors).

    python simulations/gossip_duplicates.py          # gossip_duplicates.json, gossip_duplicates.png
"""

import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from statistics import median

from _common import HERE, write_json

from crdtmem.simulation import NodeConfig, Scenario, Simulation
from crdtmem.simulation.report import build_report

SIZES = {100: (1, 2, 3, 4, 5), 1000: (1, 2, 3)}
MODES = {
    "random": NodeConfig(fanout=3),
    "random-20ms": NodeConfig(fanout=3, relay_delay=0.02),
    "tree": NodeConfig(fanout=3, eager_tree=True, relay_delay=0.02),
}
COLOURS = {"random": "tab:red", "random-20ms": "tab:orange", "tree": "tab:green"}


def one_run(peers: int, seed: int, mode: str) -> dict:
    config = MODES[mode]
    eager_tree = config.eager_tree
    scenario = Scenario(peers=peers, seed=seed, topology="regular:6", writes=5.0, write_until=10.0, duration=15.0,
                        node=config)
    started = time.process_time()
    sim = Simulation(scenario)
    sim.run()
    report = build_report(sim)
    stats = report["node_stats"]
    mesh, tree = _links(sim)
    return {
        "peers": peers,
        "seed": seed,
        "mode": mode,
        "eager_tree": eager_tree,
        "relay_delay": config.relay_delay,
        "cpu_seconds": round(time.process_time() - started, 1),
        "converged": report["converged"],
        "rounds_to_converge": report["convergence"]["rounds_to_converge"],
        "duplicate_batches": stats.get("duplicate_batches", 0),
        "batches_applied": stats.get("batches_applied", 0),
        "duplicates_per_useful": stats.get("duplicate_batches", 0) / max(1, stats.get("batches_applied", 0)),
        "spread_median": report["dissemination"]["median"],
        "spread_p90": report["dissemination"]["p90"],
        "mesh_eccentricity_hops": _eccentricity(mesh),
        "relay_eccentricity_hops": _eccentricity(tree) if eager_tree else None,
        "tree_parent_changes": stats.get("tree_parent_changes", 0),
        "announced_fetched": stats.get("announced_fetched", 0),
        "messages": report["messages"],
        "bytes": report["bytes"],
    }


def _links(sim: Simulation) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Every peer's neighbours, and the neighbours it relays fresh batches to, at the end of the run."""
    mesh: dict[str, set[str]] = {}
    relay: dict[str, set[str]] = {}
    for peer in sim.live_peers():
        mesh[peer.peer_id] = set(peer.node.peers().values())
        relay[peer.peer_id] = peer.node.eager_peers()
    return mesh, relay


def _eccentricity(links: dict[str, set[str]], authors: int = 50) -> float | None:
    """Median over evenly spaced authors of the hops to the farthest peer; None if one is unreachable."""
    peers = sorted(links)
    eccentricities = []
    for author in peers[:: max(1, len(peers) // authors)]:
        hops = {author: 0}
        queue = deque([author])
        while queue:
            peer = queue.popleft()
            for neighbour in links[peer]:
                if neighbour not in hops:
                    hops[neighbour] = hops[peer] + 1
                    queue.append(neighbour)
        if len(hops) < len(peers):
            return None
        eccentricities.append(max(hops.values()))
    return median(eccentricities)


def run_all() -> list[dict]:
    """Every run, two at a time (the machine has two cores); the two modes alternate per seed."""
    jobs = [(peers, seed, mode) for peers, seeds in SIZES.items() for seed in seeds for mode in MODES]
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(one_run, peers, seed, mode) for peers, seed, mode in jobs]
        runs = [future.result() for future in futures]
    for r in runs:
        print({k: r[k] for k in ("peers", "seed", "mode", "converged", "rounds_to_converge", "duplicates_per_useful",
                                 "spread_median", "relay_eccentricity_hops", "cpu_seconds")})
    return runs


def summarise(runs: list[dict]) -> list[dict]:
    """Per size and mode: medians and ranges over the seeds."""
    rows = []
    for peers in SIZES:
        for mode in MODES:
            mine = [r for r in runs if r["peers"] == peers and r["mode"] == mode]
            ratios = [r["duplicates_per_useful"] for r in mine]
            rounds = [r["rounds_to_converge"] for r in mine if r["converged"]]
            spreads = [r["spread_median"] for r in mine if r["spread_median"] is not None]
            rows.append({
                "peers": peers,
                "mode": mode,
                "runs": len(mine),
                "converged": all(r["converged"] for r in mine),
                "duplicates_per_useful_median": median(ratios),
                "duplicates_per_useful_range": [min(ratios), max(ratios)],
                "rounds_to_converge_median": median(rounds) if rounds else None,
                "rounds_to_converge_range": [min(rounds), max(rounds)] if rounds else None,
                "spread_median": median(spreads) if spreads else None,
                "spread_range": [min(spreads), max(spreads)] if spreads else None,
                "mesh_eccentricity_hops": median(r["mesh_eccentricity_hops"] for r in mine),
                "relay_eccentricity_hops": (median(r["relay_eccentricity_hops"] for r in mine)
                                            if all(r["relay_eccentricity_hops"] is not None for r in mine) else None),
                "bytes_median": median(r["bytes"] for r in mine),
                "cpu_seconds_total": round(sum(r["cpu_seconds"] for r in mine), 1),
                "messages_median": median(r["messages"] for r in mine),
            })
    return rows


def plot(rows: list[dict], runs: list[dict]) -> None:
    """Duplicates per useful delivery, rounds to converge and the batches' spread, per size and mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    panels = (("duplicates_per_useful", "duplicate deliveries per useful one"),
              ("rounds_to_converge", "rounds to converge after the last write"),
              ("spread_median", "median spread of a batch (s)"))
    for ax, (key, label) in zip(axes, panels):
        for offset, mode in enumerate(MODES):
            xs = [i + (offset - 1) * 0.27 for i in range(len(SIZES))]
            row_key = key if key == "spread_median" else key + "_median"
            heights = [next(r for r in rows if r["peers"] == p and r["mode"] == mode)[row_key] or 0 for p in SIZES]
            config = MODES[mode]
            legend = f"{mode} (eager_tree={config.eager_tree}, relay_delay={config.relay_delay * 1000:g} ms)"
            ax.bar(xs, heights, width=0.27, color=COLOURS[mode], alpha=0.6, label=legend)
            for x, peers in zip(xs, SIZES):
                dots = [r[key] for r in runs if r["peers"] == peers and r["mode"] == mode and r[key] is not None]
                ax.plot([x] * len(dots), dots, "k.", markersize=4)
        ax.set_xticks(range(len(SIZES)), [f"{p:,} peers" for p in SIZES])
        ax.set_ylabel(label)
    axes[0].axhline(0.5, color="grey", linestyle="--", linewidth=1, label="target 0.5")
    axes[0].legend(fontsize=8)
    fig.suptitle("fanout 3, 6-regular, 20 ms links, 5 writes/s: median of seeds (dots: each run)")
    fig.tight_layout()
    fig.savefig(HERE / "gossip_duplicates.png", dpi=110)


def main() -> None:
    runs = run_all()
    rows = summarise(runs)
    for row in rows:
        print(row)
    write_json("gossip_duplicates", {"topology": "regular:6", "fanout": 3, "writes_per_s": 5.0, "rows": rows, "runs": runs})
    plot(rows, runs)


if __name__ == "__main__":
    main()
