"""Bytes of reconciling two replicas after a partition: batch-level, every batch verified.

Run from the repo root::

    python benchmarks/bench_antientropy.py                 # n = 100,000, d in 1, 10, 100, 1000
    python benchmarks/bench_antientropy.py --n 20000 --d 10 100

Setup: node A adds ``n`` ~100-byte strings to one OR-Set (``--per-batch`` per signed batch)
and node B receives them. Per case the link is cut and the two diverge in ``d`` writes, one
signed batch each: ``d // 10`` base elements removed (alternately on A and B), the rest new
elements added, half on each side. Then the link heals: the peers exchange ``Sync`` version
vectors and send each other the original signed batches the other lacks.

One JSON line per case:

* ``bytes``: every frame both nodes sent from the heal until both are synced (handshake,
  ``Sync``, digests, batches).
* ``payload_bytes``: the signed wires of the ``d`` batches made during the partition;
  ``ratio`` = bytes / payload_bytes.
* ``seconds``: simulated seconds until synced; ``converged``: both memories equal.
"""

from __future__ import annotations

import argparse
import json
import random

from crdtmem.testing import Cluster


def element(tag: str, i: int) -> str:
    """A ~100-byte string."""
    head = f"{tag}-{i:07d}: "
    return head + "the agent noted an observation about the shared task " + "x" * (100 - len(head) - 53)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--per-batch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    cluster = Cluster(seed=args.seed)
    cluster.add("a")
    cluster.add("b")
    cluster.connect("a", "b")
    a, b = cluster.memory("a"), cluster.memory("b")
    for i in range(args.n):
        a.set("s").add(element("base", i))
        if (i + 1) % args.per_batch == 0:
            cluster.node("a").flush(cluster.now)
    assert cluster.run_until(lambda: bool(cluster.node("a").peers()) and cluster.synced(), timeout=600)
    base = list(range(args.n))
    rng.shuffle(base)
    for case, d in enumerate(args.d):
        cluster.cut("a", "b")
        logged = {n: cluster.node(n).log_size() for n in ("a", "b")}
        removals = d // 10
        for k in range(d):
            memory, name = (a, "a") if k % 2 == 0 else (b, "b")
            if k < removals:
                memory.set("s").remove(element("base", base.pop()))
            else:
                memory.set("s").add(element(f"new{case}{name}", k))
            cluster.node(name).flush(cluster.now)
        payload = sum(len(w) for n in ("a", "b") for w in cluster.node(n).log_wires()[logged[n]:])
        before = sum(cluster.stats(n).bytes_sent for n in ("a", "b"))
        start = cluster.now
        cluster.heal("a", "b")
        assert cluster.run_until(lambda: bool(cluster.node("a").peers()) and cluster.synced(), timeout=60)
        sent = sum(cluster.stats(n).bytes_sent for n in ("a", "b")) - before
        print(json.dumps({
            "n": args.n, "d": d, "bytes": sent, "payload_bytes": payload,
            "ratio": round(sent / payload, 3), "seconds": round(cluster.now - start, 3),
            "converged": a.set("s").value == b.set("s").value,
        }), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
