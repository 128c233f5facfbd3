"""The relay tree through faults, against the random relays it replaced, over several seeds.

The fault scenarios of ``partition_heal.py`` (100 peers), ``loss_30.py`` (stream transport),
``flapping_link.py`` and ``crash_restart.py``, each with seeds 1-3, run twice in one process:
``random``, the default (``eager_tree`` off, ``relay_delay`` 50 ms), and ``tree``
(``eager_tree`` on, ``relay_delay`` 20 ms, as in ``gossip_duplicates.py``). Per run: converged or not, the time from the heal (last flap, last write, heal) to the
last change of any replica, duplicate batch deliveries per useful one, bytes and messages.

    python simulations/tree_faults.py        # tree_faults.json
"""

from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from statistics import median

from _common import write_json

from crdtmem.simulation import Crash, LinkFault, NodeConfig, Partition, Scenario, Simulation
from crdtmem.simulation.report import build_report

SEEDS = (1, 2, 3)
MODES = {"random": {}, "tree": {"eager_tree": True, "relay_delay": 0.02}}


def scenario(name: str, seed: int) -> Scenario:
    """The named fault scenario of the scripts next to this one, with ``seed``."""
    if name == "partition_heal_100":
        return Scenario(peers=100, seed=seed, partitions=[Partition(at=5.0, heal_at=15.0, groups=2)], writes=5.0,
                        duration=25.0, sample_interval=0.25, node=NodeConfig(anti_entropy_interval=30.0))
    if name == "loss_30_stream":
        return Scenario(peers=30, seed=seed, loss=0.3, transport="stream", writes=5.0, write_until=20.0, duration=40.0,
                        node=NodeConfig(anti_entropy_interval=10.0))
    if name == "flapping_link":
        base = Scenario(peers=40, seed=seed, topology="clusters:2:1", writes=4.0, write_until=24.0, duration=40.0,
                        node=NodeConfig(anti_entropy_interval=10.0))
        bridge = next((a, b) for a, b in Simulation(base).links() if (a < 20) != (b < 20))
        return replace(base, link_faults=[LinkFault(bridge[0], bridge[1], float(t), t + 1.0) for t in range(4, 24, 2)])
    crashes = [Crash(p, 8.0, 12.0, "kept") for p in (2, 9, 20)] + [Crash(p, 8.0, 12.0, "lost") for p in (4, 17, 25)]
    return Scenario(peers=30, seed=seed, partitions=[Partition(5.0, 16.0)], crashes=crashes, writes=5.0,
                    duration=30.0, node=NodeConfig(anti_entropy_interval=10.0))


NAMES = ("partition_heal_100", "loss_30_stream", "flapping_link", "crash_restart")


def one_run(name: str, seed: int, mode: str) -> dict:
    base = scenario(name, seed)
    sim = Simulation(replace(base, node=replace(base.node, **MODES[mode])))
    sim.run()
    report = build_report(sim)
    stats = report["node_stats"]
    return {
        "scenario": name, "seed": seed, "mode": mode, "converged": report["converged"],
        "converged_after_s": report["convergence"]["convergence_time_after_heal"],
        "duplicates_per_useful": stats.get("duplicate_batches", 0) / max(1, stats.get("batches_applied", 0)),
        "bytes": report["bytes"], "messages": report["messages"],
    }


def main() -> None:
    jobs = [(name, seed, mode) for name in NAMES for seed in SEEDS for mode in MODES]
    with ProcessPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(one_run, *zip(*jobs)))
    rows = []
    for name in NAMES:
        for mode in MODES:
            mine = [r for r in runs if r["scenario"] == name and r["mode"] == mode]
            times = [r["converged_after_s"] for r in mine if r["converged"]]
            rows.append({
                "scenario": name, "mode": mode, "converged": all(r["converged"] for r in mine),
                "converged_after_s": [r["converged_after_s"] for r in mine],
                "converged_after_median_s": median(times) if times else None,
                "duplicates_per_useful_median": median(r["duplicates_per_useful"] for r in mine),
                "bytes_median": median(r["bytes"] for r in mine),
                "messages_median": median(r["messages"] for r in mine),
            })
            print(rows[-1])
    write_json("tree_faults", {"seeds": SEEDS, "rows": rows, "runs": runs})


if __name__ == "__main__":
    main()
