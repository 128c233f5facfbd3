"""Bytes and round trips of reconciling two replicas after a partition, against pycrdt's state-vector sync.

Run from the repo root::

    python benchmarks/bench_antientropy.py                 # n = 100,000, d in 1, 10, 100, 1000
    python benchmarks/bench_antientropy.py --n 20000 --d 10 100

Setup: node A adds ``n`` ~100-byte strings to one OR-Set (``--per-batch`` per signed batch)
and node B receives them. Per case the link is cut and the two diverge in ``d`` writes, one
signed batch each: ``d // 10`` base elements removed (alternately on A and B), the rest new
elements added, half on each side. Then the link heals: the peers redo the handshake, exchange
``Sync`` version vectors and send each other the original signed batches the other lacks.

The reference, in the same run: two pycrdt documents holding the same strings as keys of a
``Map`` (value True), kept in step with the nodes, diverged by the same operations (one
transaction each) and reconciled the Yjs way: each side sends its state vector and answers
the other's with ``get_update(state_vector)`` (one round trip; no authentication, no
signatures).

One JSON line per case:

* ``bytes``: every frame both nodes sent from the heal until both are synced (handshake,
  ``Sync``, digests, batches, acks); ``handshake_bytes`` the handshake's share, paid on any
  new connection whatever differs; ``repair_bytes`` = bytes - handshake_bytes.
* ``payload_bytes``: the signed wires of the ``d`` batches made during the partition;
  ``ratio`` = bytes / payload_bytes (the handshake included), ``repair_ratio`` =
  repair_bytes / payload_bytes.
* ``flights``: the distinct instants at which either node sent something, from the heal until
  synced: one-way trips on the critical path (handshake included); ``round_trips`` = flights / 2.
* ``pycrdt_bytes``: both state vectors and both updates; ``vs_pycrdt`` = repair_bytes /
  pycrdt_bytes; ``pycrdt_round_trips``: 1.
* ``seconds``: simulated seconds until synced (a redial backoff and the ack delay included);
  ``converged``: both memories equal, and equal to the pycrdt documents' keys.
"""

from __future__ import annotations

import argparse
import json
import random

import pycrdt

from crdtmem.protocol.events import SendKind
from crdtmem.testing import Cluster


def element(tag: str, i: int) -> str:
    """A ~100-byte string."""
    head = f"{tag}-{i:07d}: "
    return head + "the agent noted an observation about the shared task " + "x" * (100 - len(head) - 53)


class PycrdtPair:
    """Two pycrdt documents kept holding the same keys as the two nodes' set."""

    def __init__(self, n: int) -> None:
        self.docs = {"a": pycrdt.Doc(client_id=1), "b": pycrdt.Doc(client_id=2)}
        base = self.docs["a"].get("s", type=pycrdt.Map)
        with self.docs["a"].transaction():
            for i in range(n):
                base[element("base", i)] = True
        self.docs["b"].apply_update(self.docs["a"].get_update())

    def add(self, side: str, key: str) -> None:
        with self.docs[side].transaction():
            self.docs[side].get("s", type=pycrdt.Map)[key] = True

    def remove(self, side: str, key: str) -> None:
        with self.docs[side].transaction():
            del self.docs[side].get("s", type=pycrdt.Map)[key]

    def sync(self) -> int:
        """State vectors both ways, then the updates they ask for; returns the bytes sent."""
        a, b = self.docs["a"], self.docs["b"]
        state_a, state_b = a.get_state(), b.get_state()
        update_for_a, update_for_b = b.get_update(state_a), a.get_update(state_b)
        a.apply_update(update_for_a)
        b.apply_update(update_for_b)
        return len(state_a) + len(state_b) + len(update_for_a) + len(update_for_b)

    def keys(self, side: str) -> set[str]:
        return set(self.docs[side].get("s", type=pycrdt.Map).keys())


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
    reference = PycrdtPair(args.n)
    base = list(range(args.n))
    rng.shuffle(base)
    for case, d in enumerate(args.d):
        cluster.cut("a", "b")
        logged = {n: cluster.node(n).log_size() for n in ("a", "b")}
        removals = d // 10
        for k in range(d):
            memory, name = (a, "a") if k % 2 == 0 else (b, "b")
            if k < removals:
                value = element("base", base.pop())
                memory.set("s").remove(value)
                reference.remove(name, value)
            else:
                value = element(f"new{case}{name}", k)
                memory.set("s").add(value)
                reference.add(name, value)
            cluster.node(name).flush(cluster.now)
        payload = sum(len(w) for n in ("a", "b") for w in cluster.node(n).log_wires()[logged[n]:])

        def sent(kind: SendKind | None = None) -> int:
            stats = [cluster.stats(n) for n in ("a", "b")]
            return sum(s.bytes_sent if kind is None else s.bytes_sent_by_kind.get(kind, 0) for s in stats)

        before, handshake_before = sent(), sent(SendKind.HANDSHAKE)
        sends: list[float] = []  # the instants at which something was sent
        counted = [before]

        def synced() -> bool:  # checked after every event
            if sent() != counted[0]:
                counted[0] = sent()
                if not sends or sends[-1] != cluster.now:
                    sends.append(cluster.now)
            return bool(cluster.node("a").peers()) and cluster.synced()

        start = cluster.now
        cluster.heal("a", "b")
        assert cluster.run_until(synced, timeout=60)
        total, handshake = sent() - before, sent(SendKind.HANDSHAKE) - handshake_before
        repair = total - handshake
        pycrdt_bytes = reference.sync()
        values = a.set("s").value
        print(json.dumps({
            "n": args.n, "d": d, "bytes": total, "handshake_bytes": handshake, "repair_bytes": repair,
            "payload_bytes": payload, "ratio": round(total / payload, 3), "repair_ratio": round(repair / payload, 3),
            "flights": len(sends), "round_trips": len(sends) / 2,
            "pycrdt_bytes": pycrdt_bytes, "vs_pycrdt": round(repair / pycrdt_bytes, 3), "pycrdt_round_trips": 1,
            "seconds": round(cluster.now - start, 3),
            "converged": values == b.set("s").value and set(values) == reference.keys("a") == reference.keys("b"),
        }), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
