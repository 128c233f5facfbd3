"""A child process for the crash tests: journal signed batches to a SqliteStore, compacting often.

Run as ``python compacting_writer.py DB``. It restores from ``DB``, then forever: signs one
batch (``ELEMENTS`` ~500-byte strings and one counter increment), journals it, prints
``durable SEQ`` once :meth:`SqliteStore.append` returned, and every ``COMPACT_EVERY`` batches
prints ``compacting SEQ`` right before :meth:`SqliteStore.compact` and ``compacted SEQ``
after it. The memory grows by ~10 KB a batch, so a compaction writes megabytes and takes long
enough to be killed in the middle.
"""

from __future__ import annotations

import sys

from crdtmem.clocks import Dot
from crdtmem.identity import Identity
from crdtmem.protocol.batch import seal_batch
from crdtmem.protocol.recovery import Snapshot
from crdtmem.storage import SqliteStore

WRITER = Identity.from_private_bytes(bytes([9]) * 32)
ELEMENTS = 20
COMPACT_EVERY = 10


def main(path: str) -> None:
    store = SqliteStore(path, WRITER.peer_id)
    restored = store.load()
    memory, seen = restored.memory, restored.seen
    seq = seen.max(WRITER.peer_id)
    print("ready", seq, flush=True)
    while True:
        seq += 1
        for i in range(ELEMENTS):
            memory.set("facts").add(f"{seq:08d}-{i:02d} " + "an observation worth keeping " * 17)
        memory.counter("writes").increment()
        batch = seal_batch(WRITER, seq, memory.take_deltas())
        store.append([(WRITER.peer_id, seq, batch.wire, b"")])
        seen.add(Dot(WRITER.peer_id, seq))
        print("durable", seq, flush=True)
        if seq % COMPACT_EVERY == 0:
            snapshot = Snapshot.of(memory, seen)
            print("compacting", seq, flush=True)
            store.compact(snapshot)
            print("compacted", seq, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
