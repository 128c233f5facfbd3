"""What departed agents leave behind, with retirement and pruning against without, in one run.

Two long-lived nodes (``hub``, ``peer``) in the in-process :class:`~crdtmem.testing.Cluster`
(real nodes, virtual clock) see ``--agents`` short-lived agents come and go one after the
other; each connects to the hub, adds a fact, removes the previous agent's fact, and leaves:

* ``retire``: cleanly (:meth:`Node.retire`, as a peer does on exit), so it is pruned;
* ``vanish``: killed, never restarted (the reference: nothing retires it).

Both runs do the same writes with the same seed; they alternate ``--reps`` times. Printed
(one JSON object), per mode, measured at ``peer`` at the end, medians over the reps:

* ``seen_entries``: replicas in its seen set (what every ``Sync`` and digest carries);
* ``sync_bytes``: the encoded ``Sync`` it sends;
* ``context_entries``: causal-context entries of all objects (:meth:`Memory.context_entries`);
* ``covered_entries``: entries of the covered vectors kept per applied batch, summed, and
  ``last_covered_entries``: those of the newest batch's (what the next ones join);
* ``snapshot_bytes``: the memory's snapshot (the retirement records are in it);
* ``cpu_seconds``: process time of the whole run (wall time is noisy on a shared machine),
  with ``min``/``max`` over the reps.

``ratios`` divide retire by vanish. ``python benchmarks/bench_retirement.py --agents 300 --reps 3``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from crdtmem.protocol.messages import Sync, encode_message
from crdtmem.testing import Cluster


def run(agents: int, retire: bool, seed: int) -> dict[str, float]:
    began = time.process_time()
    cluster = Cluster(seed=seed)
    cluster.add("hub")
    cluster.add("peer")
    cluster.connect("peer", "hub")
    cluster.run(1)
    for i in range(agents):
        name = f"agent{i}"
        cluster.add(name)
        cluster.connect(name, "hub")
        node = cluster.node(name)
        cluster.run_until(lambda node=node: bool(node.peers()) and node.synced(), timeout=10)  # it sees i - 1
        memory = cluster.memory(name)
        memory.set("facts").add(i)
        if i:
            memory.set("facts").remove(i - 1)
        cluster.run_until(node.synced, timeout=10)
        cluster.leave(name, retire=retire)
        cluster.memory("hub").counter("turns").increment()
        cluster.run(0.5)
    assert cluster.run_until(lambda: cluster.converged() and cluster.synced(), timeout=60)
    node = cluster.node("peer")
    covered = node._causal._covered  # noqa: SLF001 - the per-batch vectors are what we measure
    newest = covered[node._causal.heads()[0]]  # noqa: SLF001
    assert node.memory.set("facts").value == {agents - 1}
    return {
        "seen_entries": len(node.seen.replicas()),
        "sync_bytes": len(encode_message(Sync(node.seen))),
        "context_entries": node.memory.context_entries(),
        "covered_entries": sum(len(v) for v in covered.values()),
        "last_covered_entries": len(newest),
        "snapshot_bytes": len(node.memory.snapshot()),
        "pruned": len(node.retired()),
        "cpu_seconds": time.process_time() - began,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"retire": [], "vanish": []}
    for _ in range(args.reps):
        for mode in ("retire", "vanish"):
            results[mode].append(run(args.agents, mode == "retire", args.seed))
    out: dict[str, object] = {"agents": args.agents, "reps": args.reps}
    for mode, runs in results.items():
        summary = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        summary["cpu_seconds_min"] = min(r["cpu_seconds"] for r in runs)
        summary["cpu_seconds_max"] = max(r["cpu_seconds"] for r in runs)
        out[mode] = summary
    retire, vanish = out["retire"], out["vanish"]
    out["ratios"] = {key: round(retire[key] / vanish[key], 4) for key in retire if vanish.get(key)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
