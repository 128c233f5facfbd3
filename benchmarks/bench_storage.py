"""Storage per write: how a peer's SQLite store grows when every signed batch is kept.

Run from the repo root::

    python benchmarks/bench_storage.py                       # 1,000,000 writes
    python benchmarks/bench_storage.py --writes 100000 --every 20000

One replica makes ``--writes`` small writes (a mix of set adds, counter increments and map
puts over ``--keys`` keys, as an agent's memory sees them), each flushed as its own signed
batch by a real :class:`~crdtmem.protocol.node.Node` and journaled to a real
:class:`~crdtmem.storage.SqliteStore`; the store is compacted (snapshot + every kept batch)
every ``--every`` writes, as the runtime does. After each compaction it prints one JSON line:
writes so far, the database file size, bytes per write, the snapshot's share, and the
seconds spent. The reference in the same run is the size of the memory snapshot alone (what a
store that kept no history would hold).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

from crdtmem import Memory
from crdtmem.identity import Identity, Keyring
from crdtmem.protocol.events import BatchApplied
from crdtmem.protocol.node import Node, NodeConfig
from crdtmem.storage import SqliteStore


def _write(memory: Memory, rng: random.Random, keys: int, n: int) -> None:
    roll = rng.random()
    key = rng.randrange(keys)
    if roll < 0.4:
        memory.set("facts").add(f"fact {n}: the build on branch {key} is green")
    elif roll < 0.7:
        memory.counter("tool_calls").increment()
    else:
        memory.map("board").put(f"task-{key}", {"owner": f"agent-{n % 7}", "status": "claimed"})


def _size(path: Path) -> int:
    return sum(os.path.getsize(p) for p in path.parent.glob(path.name + "*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=100_000, help="compact and report every N writes")
    parser.add_argument("--keys", type=int, default=1000)
    args = parser.parse_args()
    identity = Identity.from_private_bytes(random.Random(7).randbytes(32))
    memory = Memory(identity.peer_id, clock=lambda: 1_700_000_000.0)
    node = Node(memory, identity, Keyring(), rng=random.Random(1),
                config=NodeConfig(max_log_batches=args.writes + 1))
    rng = random.Random(3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "peer.db"
        store = SqliteStore(path, identity.peer_id)
        started = time.perf_counter()
        for n in range(1, args.writes + 1):
            _write(memory, rng, args.keys, n)
            node.flush(float(n))
            store.append([(e.author, e.seq, e.wire) for e in node.take_events() if isinstance(e, BatchApplied)])
            if n % args.every == 0 or n == args.writes:
                store.compact(node.snapshot())
                size = _size(path)
                wal = _size(path.with_name(path.name + "-wal"))
                snapshot = len(memory.snapshot())
                print(json.dumps({
                    "writes": n,
                    "db_bytes": size,
                    "wal_bytes": wal,
                    "bytes_per_write": round(size / n, 1),
                    "log_bytes_per_write": round(sum(len(w) for w in node.log_wires()) / n, 1),
                    "snapshot_bytes": snapshot,
                    "history_share": round(1 - snapshot / size, 3),
                    "seconds": round(time.perf_counter() - started, 1),
                }), flush=True)
        store.close()


if __name__ == "__main__":
    main()
