"""A late joiner receives every author's signed batches and verifies each one.

Run from the repo root::

    python benchmarks/bench_join.py                  # 10 authors x 10,000 writes
    python benchmarks/bench_join.py --authors 4 --writes 1000

Setup: each author adds ``writes`` ~100-byte strings to one OR-Set, one batch per write, and
every ``--every`` writes it first applies the other authors' batches made so far (so batches
depend on each other's heads). A fresh node then receives all batches over one authenticated
session, in messages of 256 wires, in author order (not causal order: the wait buffer
reorders). Prints one JSON line: batches, wire bytes, seconds, batches per second, and
whether the joiner's memory equals the authors'.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from crdtmem import Memory
from crdtmem.identity import Identity
from crdtmem.protocol.batch import apply_batch, seal_batch
from crdtmem.protocol.causal import CausalIndex
from crdtmem.protocol.messages import Batches
from crdtmem.protocol.node import NodeConfig
from crdtmem.testing import Cluster


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--authors", type=int, default=10)
    parser.add_argument("--writes", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=100)
    args = parser.parse_args()
    ids = [Identity.from_private_bytes(random.Random(i).randbytes(32)) for i in range(args.authors)]
    mems = [Memory(i.peer_id, clock=lambda: 1000.0) for i in ids]
    index = [CausalIndex() for _ in ids]
    applied = [0] * len(ids)
    made: list = []  # every batch, in creation order
    for w in range(args.writes):
        for a, (ident, mem) in enumerate(zip(ids, mems)):
            if w % args.every == 0:
                for batch in made[applied[a]:]:
                    if batch.author != ident.peer_id:
                        apply_batch(mem, batch)
                        index[a].record(batch)
                applied[a] = len(made)
            mem.set("notes").add(f"{a}-{w:07d}: the agent noted an observation about the shared task xxxxxxxxxx")
            batch = seal_batch(ident, w + 1, mem.take_deltas(), index[a].heads())
            index[a].record(batch)
            made.append(batch)
    by_author = {i.peer_id: n for n, i in enumerate(ids)}
    wires = [b.wire for b in sorted(made, key=lambda b: (by_author[b.author], b.seq))]
    cluster = Cluster(seed=1, config=NodeConfig(max_pending_batches=len(wires), max_pending_per_author=len(wires)))
    cluster.add("joiner")
    for ident in ids:
        cluster.keyring.add(ident)
    raw = cluster.open_raw("joiner", ids[0])
    start = time.perf_counter()
    for i in range(0, len(wires), 256):
        cluster.inject(raw.conn, raw.seal(Batches(tuple(wires[i:i + 256]))))
    seconds = time.perf_counter() - start
    joiner = cluster.memory("joiner")
    expected = set().union(*(m.set("notes").value for m in mems))
    print(json.dumps({
        "authors": args.authors, "writes_per_author": args.writes, "batches": len(wires),
        "wire_bytes": sum(map(len, wires)), "seconds": round(seconds, 2),
        "batches_per_second": round(len(wires) / seconds), "applied": cluster.node("joiner").stats.batches_applied,
        "buffered": cluster.node("joiner").stats.batches_buffered, "pending_after": cluster.node("joiner").pending_size(),
        "converged": joiner.set("notes").value == expected,
    }))


if __name__ == "__main__":
    main()
