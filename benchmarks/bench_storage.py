"""Storage per write: how a peer's SQLite store grows when every signed batch is kept.

Run from the repo root::

    python benchmarks/bench_storage.py                       # 1,000,000 writes
    python benchmarks/bench_storage.py --writes 100000 --every 20000

One replica makes ``--writes`` small writes (a mix of set adds, counter increments and map
puts over ``--keys`` keys, as an agent's memory sees them), each flushed as its own signed
batch by a real :class:`~crdtmem.protocol.node.Node` and journaled to a real
:class:`~crdtmem.storage.SqliteStore`; the store is compacted (snapshot + every kept batch)
every ``--every`` writes, as the runtime does. After each compaction it prints one JSON line:

* ``db_bytes``: every file of the store (database, write-ahead log, lock); ``wal_bytes`` the
  write-ahead log alone; ``bytes_per_write`` = db_bytes / writes; ``growth_per_write``: the
  files' growth since the previous line, per write (the slope, free of fixed costs);
* ``log_bytes_per_write``: the signed batch wires alone, per write;
* ``snapshot_bytes``: the memory snapshot alone (the reference: what a store that kept no
  history would hold); ``history_share``: the part of the files that is not the snapshot;
* ``snapshot_seconds``: encoding the last snapshot (:meth:`Node.snapshot`, the live state);
  ``compact_seconds``: the store writing it (:meth:`SqliteStore.compact`); ``seconds``:
  everything so far;
* ``rss_growth_per_write``: the growth of the process's resident memory since the previous
  line, per write (the node keeps every signed batch in RAM to serve catch-up, plus the memory
  itself).

A last line, ``{"restart_seconds": ...}``, times a restart on the final store: opening it,
:func:`~crdtmem.protocol.recovery.restore` (every row read and checked, the journal after the
snapshot replayed) and building the node over the restored log.

``--every`` equal for two versions of the code gives comparable lines; the script runs against
another checkout with ``PYTHONPATH=/path/to/checkout``.
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
from crdtmem.protocol.recovery import restore
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


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


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
        last_n, last_size, last_rss = 0, _size(path), _rss()
        for n in range(1, args.writes + 1):
            _write(memory, rng, args.keys, n)
            node.flush(float(n))
            store.append([(e.author, e.seq, e.wire, e.index_entry) for e in node.take_events()
                          if isinstance(e, BatchApplied)])
            if n % args.every == 0 or n == args.writes:
                snapshot_started = time.perf_counter()
                encoded = node.snapshot()
                compact_started = time.perf_counter()
                store.compact(encoded)
                compact_seconds = time.perf_counter() - compact_started
                snapshot_seconds = compact_started - snapshot_started
                size = _size(path)
                wal = _size(path.with_name(path.name + "-wal"))
                snapshot = len(memory.snapshot())
                rss = _rss()
                print(json.dumps({
                    "writes": n,
                    "db_bytes": size,
                    "wal_bytes": wal,
                    "bytes_per_write": round(size / n, 1),
                    "growth_per_write": round((size - last_size) / (n - last_n), 1),
                    "log_bytes_per_write": round(sum(len(w) for w in node.log_wires()) / n, 1),
                    "snapshot_bytes": snapshot,
                    "history_share": round(1 - snapshot / size, 3),
                    "snapshot_seconds": round(snapshot_seconds, 3),
                    "compact_seconds": round(compact_seconds, 3),
                    "seconds": round(time.perf_counter() - started, 1),
                    "rss_growth_per_write": round((rss - last_rss) / (n - last_n), 1),
                }), flush=True)
                last_n, last_size, last_rss = n, size, rss
        store.close()
        started = time.perf_counter()
        with SqliteStore(path, identity.peer_id) as reopened:
            restored = restore(reopened)
        Node(restored.memory, identity, Keyring(), rng=random.Random(2), config=node.config,
             seen=restored.seen, log_wires=restored.log_wires, log_entries=restored.log_entries)
        print(json.dumps({"restart_seconds": round(time.perf_counter() - started, 2),
                          "batches": len(restored.log_wires)}), flush=True)


if __name__ == "__main__":
    main()
