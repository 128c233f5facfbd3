"""Bytes and round trips of one anti-entropy session, against pycrdt's state-vector sync.

Run from the repo root::

    python benchmarks/bench_antientropy.py                 # n = 100,000, d in 1, 10, 100, 1000
    python benchmarks/bench_antientropy.py --n 20000 --d 10 100

Setup: replica A adds ``n`` ~100-byte strings to one OR-Set; B starts as a copy (snapshot).
Per case the two diverge in ``d`` entries: ``d // 10`` base elements removed (alternately on
A and B), the rest new elements added, half on each side. Then A and B run one
:class:`~crdtmem.protocol.antientropy.Reconciler` session, every message packed and unpacked.
The replicas are equal again after each case, so the next case diverges from there.

One JSON line per case:

* ``bytes``: every packed message both sides sent.
* ``payload_bytes``: the encoded differing entries alone (each side's leaf bytes for each
  differing entry it holds; causal contexts not counted); ``ratio`` = bytes / payload_bytes.
* ``round_trips``: flights / 2, rounded up.
* ``pycrdt_bytes``: a pycrdt ``Map`` (keys = the same strings, value True; built the same way,
  fresh per case) diverged by the same operations, synced by ``get_state()`` /
  ``get_update(state)`` both ways (two state vectors + two updates); ``vs_pycrdt`` = bytes /
  pycrdt_bytes.
* ``seconds``: wall time of the session (both sides, in one process), ``pycrdt_seconds`` the same
  for pycrdt; ``converged``: both Merkle roots equal afterwards.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time

import pycrdt

from crdtmem import Memory, codec
from crdtmem.merkle import MerkleIndex
from crdtmem.protocol.antientropy import Reconciler, Tuning
from crdtmem.values import encode_value

perf = time.perf_counter


def element(tag: str, i: int) -> str:
    """A ~100-byte string."""
    head = f"{tag}-{i:07d}: "
    return head + "the agent noted an observation about the shared task " + "x" * (100 - len(head) - 53)


def session(a: Memory, ia: MerkleIndex, b: Memory, ib: MerkleIndex, salt: int, tuning: Tuning) -> tuple:
    ra = Reconciler(a, ia, initiator=True, origin=b.replica_id, salt=salt, tuning=tuning)
    rb = Reconciler(b, ib, initiator=False, origin=a.replica_id, tuning=tuning)
    outgoing, receiver = ra.start(), rb
    while outgoing:
        replies = []
        for msg in outgoing:
            replies += receiver.receive(codec.unpack(codec.pack(msg)))
        outgoing, receiver = replies, (ra if receiver is rb else rb)
    assert ra.done and rb.done
    return ra, rb


def payload_bytes(a: Memory, ia: MerkleIndex, b: Memory, ib: MerkleIndex) -> int:
    ia.refresh()
    ib.refresh()
    total = 0
    for name, key in ia.diff(ib):
        if key == b"\xc1":  # META: the causal context is not an entry
            continue
        for m in (a, b):
            data = m.leaf_bytes(name, key)
            total += len(data) if data is not None else 0
    return total


def pycrdt_sync(n: int, removed_a: list[str], removed_b: list[str], added_a: list[str], added_b: list[str]):
    doc_a = pycrdt.Doc(client_id=1)
    base = doc_a.get("s", type=pycrdt.Map)
    with doc_a.transaction():
        for i in range(n):
            base[element("base", i)] = True
    doc_b = pycrdt.Doc(client_id=2)
    doc_b.apply_update(doc_a.get_update())
    map_b = doc_b.get("s", type=pycrdt.Map)
    for doc, m, removed, added in ((doc_a, base, removed_a, added_a), (doc_b, map_b, removed_b, added_b)):
        for key in removed:
            with doc.transaction():
                del m[key]
        for key in added:
            with doc.transaction():
                m[key] = True
    start = perf()
    state_a = doc_a.get_state()
    update_b = doc_b.get_update(state_a)
    state_b = doc_b.get_state()
    update_a = doc_a.get_update(state_b)
    doc_a.apply_update(update_b)
    doc_b.apply_update(update_a)
    seconds = perf() - start
    assert doc_a.get_state() == doc_b.get_state()
    return len(state_a) + len(update_b) + len(state_b) + len(update_a), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--bits", type=int, default=None, help="log2 of the Merkle fan-out")
    parser.add_argument("--fp-width", type=int, default=None)
    parser.add_argument("--id-width", type=int, default=None)
    parser.add_argument("--leaf-width", type=int, default=None)
    parser.add_argument("--leaf-list-max", type=int, default=None)
    parser.add_argument("--replica-ids", nargs=2, default=["peer-a-7f3e9c21", "peer-b-0d4a6b58"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-pycrdt", action="store_true")
    args = parser.parse_args(argv)

    defaults = Tuning()
    tuning = Tuning(
        fp_width=args.fp_width or defaults.fp_width,
        id_width=args.id_width or defaults.id_width,
        leaf_width=args.leaf_width or defaults.leaf_width,
        leaf_list_max=defaults.leaf_list_max if args.leaf_list_max is None else args.leaf_list_max,
    )
    index_args = {} if args.bits is None else {"bits": args.bits}
    rng = random.Random(args.seed)

    t0 = perf()
    a = Memory(args.replica_ids[0])
    s = a.set("s")
    for i in range(args.n):
        s.add(element("base", i))
    a.take_deltas()
    b = Memory.from_snapshot(args.replica_ids[1], a.snapshot())
    t1 = perf()
    ia, ib = MerkleIndex(a, **index_args), MerkleIndex(b, **index_args)
    t2 = perf()
    print(
        json.dumps(
            {"setup": {"n": args.n, "build_seconds": round(t1 - t0, 2), "index_seconds": round((t2 - t1) / 2, 2)},
             "tuning": {"bits": ia.bits, **tuning.__dict__}}
        ),
        flush=True,
    )

    removable = list(range(args.n))
    rng.shuffle(removable)
    serial = 0
    for d in args.d:
        removes = d // 10
        adds = d - removes
        removed_a = [element("base", removable.pop()) for _ in range((removes + 1) // 2)]
        removed_b = [element("base", removable.pop()) for _ in range(removes // 2)]
        added_a = [element(f"a{d}", i) for i in range((adds + 1) // 2)]
        added_b = [element(f"b{d}", i) for i in range(adds // 2)]
        for m, removed, added in ((a, removed_a, added_a), (b, removed_b, added_b)):
            handle = m.set("s")
            for value in removed:
                handle.remove(value)
            for value in added:
                handle.add(value)
            m.take_deltas()  # gossip lost them all: anti-entropy must repair
        payload = payload_bytes(a, ia, b, ib)
        serial += 1
        start = perf()
        ra, rb = session(a, ia, b, ib, salt=rng.getrandbits(64), tuning=tuning)
        seconds = perf() - start
        ia.refresh()
        ib.refresh()
        converged = ia.root() == ib.root()
        for value in removed_a + removed_b:
            assert encode_value(value) not in a.state("s") and encode_value(value) not in b.state("s")
        sent = ra.stats["bytes_sent"] + rb.stats["bytes_sent"]
        row = {
            "n": args.n,
            "d": d,
            "bytes": sent,
            "payload_bytes": payload,
            "ratio": round(sent / payload, 3) if payload else None,
            "round_trips": ra.stats["round_trips"],
            "round_trip_limit": math.ceil(math.log(args.n, 16)) + 2,
            "seconds": round(seconds, 4),
            "converged": converged,
        }
        if not args.no_pycrdt:
            py_bytes, py_seconds = pycrdt_sync(args.n, removed_a, removed_b, added_a, added_b)
            row.update(
                {"pycrdt_bytes": py_bytes, "vs_pycrdt": round(sent / py_bytes, 3), "pycrdt_seconds": round(py_seconds, 4)}
            )
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
