"""Gossip fanout against convergence time and bytes.

200 peers, random 8-regular, 20 ms latency. The network splits in two at t=4 s, both sides
write (4/s) until the heal at t=10 s; each run ends at t=20 s. The same scenario at fanout
1, 2, 3, 4, 6 and 8, each with seeds 11, 12 and 13 (the plot shows the mean and each run).
A row's convergence time is the mean over its runs that converged; ``runs_converged`` says
how many did (``converged`` is true only if all of them did).
Fanout sets how many neighbours a peer relays fresh batches to and how many it syncs with
per gossip round: more fanout, fewer peers left waiting for a round, more duplicate bytes.

    python simulations/fanout_sweep.py        # fanout_sweep.json, fanout_sweep.png
"""

from statistics import mean

from _common import HERE, run, write_json

from crdtmem.simulation import NodeConfig, Partition, Scenario
from crdtmem.simulation.plot import plot_sweep

FANOUTS, SEEDS = (1, 2, 3, 4, 6, 8), (11, 12, 13)
runs = []
for fanout in FANOUTS:
    for seed in SEEDS:
        name = f"fanout_{fanout}_seed_{seed}"
        report = run(
            name,
            Scenario(peers=200, seed=seed, topology="regular:8", partitions=[Partition(4.0, 10.0)],
                     writes=4.0, duration=20.0, node=NodeConfig(fanout=fanout, anti_entropy_interval=30.0)),
            plot=False,
        )
        (HERE / f"{name}.json").unlink()  # keep one combined report
        runs.append({
            "fanout": fanout,
            "seed": seed,
            "converged": report["converged"],
            "convergence_time_after_heal": report["convergence_time_after_heal"],
            "rounds_to_converge": report["convergence"]["rounds_to_converge"],
            "messages": report["messages"],
            "bytes": report["bytes"],
            "bytes_by_kind": report["bytes_by_kind"],
            "duplicate_batches": report["node_stats"].get("duplicate_batches", 0),
            "batches_applied": report["node_stats"].get("batches_applied", 0),
        })
rows = []
for fanout in FANOUTS:
    mine = [r for r in runs if r["fanout"] == fanout]
    # A run that did not converge has no convergence time: average the ones that did.
    times = [r["convergence_time_after_heal"] for r in mine
             if r["converged"] and r["convergence_time_after_heal"] is not None]
    rows.append({
        "fanout": fanout,
        "converged": all(r["converged"] for r in mine),
        "runs_converged": len(times),
        "convergence_time_after_heal": mean(times) if times else None,
        "bytes": mean(r["bytes"] for r in mine),
        "messages": mean(r["messages"] for r in mine),
        "duplicates_per_applied_batch": sum(r["duplicate_batches"] for r in mine) / max(1, sum(r["batches_applied"] for r in mine)),
        "runs": [{k: r[k] for k in ("seed", "converged", "convergence_time_after_heal", "bytes")} for r in mine],
    })
write_json("fanout_sweep", {"peers": 200, "topology": "regular:8", "seeds": list(SEEDS), "rows": rows, "runs": runs})
plot_sweep(rows, "fanout", HERE / "fanout_sweep.png", title="200 peers, 8-regular, partition 4-10 s: mean of 3 seeds (dots: each run)",
           xlabel="gossip fanout")
for row in rows:
    print({k: v for k, v in row.items() if k != "runs"})
