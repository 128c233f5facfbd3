"""Verified single-operation deltas applied per second, when writes arrive in signed batches.

Run from the repo root (any venv with crdtmem and pycrdt installed)::

    python benchmarks/bench_verify.py            # 100,000 ops in batches of 1,000, 5 reps
    python benchmarks/bench_verify.py --quick    # 10x fewer ops, 3 reps (smoke test)

Setup (untimed): one author writes ``--ops`` single operations through its ``Memory``, rotating
over four kinds: an OR-Set add, an OR-Map put, a G-Counter increment and, every tenth op, an
OR-Set remove of an element it added earlier (a delta whose causal context names its dots).
It drains ``take_deltas()`` after every op (a drain joins the writes it holds), and every
``--per-batch`` ops puts those single-op deltas in one batch, and seals them with ``protocol.batch.seal_batch`` (a real Ed25519
signature), its dependency the previous batch, exactly as a node's flush chains them.

Timed, each repeated ``--reps`` times on a fresh receiver (median reported):

* ``pipeline``: for every wire, what ``Node`` does with a received batch: ``open_batch``
  (msgpack decode, signature verification, strict decoding of every delta, the
  forged-author check), ``check_stamps``, ``CausalIndex.check``, ``apply_batch`` into a fresh
  ``Memory``, ``CausalIndex.record``.
* ``grouped_pipeline``: the same ops, but each batch's deltas joined per object first
  (as ``Memory.take_deltas`` drains them, exactly what ``Node.flush`` signs): the wire a real peer sends.
* ``node``: the same (ungrouped) wires handed to a fresh real ``Node`` over an authenticated session of
  the in-memory ``Cluster`` (frame MACs, the delta log and events included), 16 wires a
  message.
* references, same run: ``verify_only`` (just the Ed25519 verifications of the same batches:
  what signatures cost once per batch) and ``pycrdt``: a pycrdt ``Doc`` applying the same
  number of unsigned single-op updates (a Map key set per op) one ``apply_update`` each.

Every rep checks the receiver ends equal to the author (same snapshot bytes). Ratios are
ours / pycrdt's (> 1: we apply faster); ``cpu_*`` keys use ``time.process_time``;
``signature_share`` is the fraction of the pipeline's time spent verifying signatures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from bench_types import environment
from pycrdt import Doc, Map

from crdtmem import Memory
from crdtmem.identity import Identity, Keyring, verify
from crdtmem.protocol.batch import _signed_part, apply_batch, check_stamps, open_batch, seal_batch
from crdtmem.protocol.causal import CausalIndex
from crdtmem.protocol.messages import Batches
from crdtmem.protocol.node import NodeConfig
from crdtmem.testing import Cluster

perf = time.perf_counter
cpu = time.process_time
MAX_BYTES = 64 * 1024 * 1024


def _write(memory: Memory, i: int) -> None:
    kind = i % 10
    if kind == 9:
        memory.set("facts").remove(f"fact-{i - 9}")
    elif kind % 3 == 0:
        memory.set("facts").add(f"fact-{i}")
    elif kind % 3 == 1:
        memory.map("notes").put(f"key-{i % 5000}", i)
    else:
        memory.counter("steps").increment(1)


def make_batches(author: Identity, ops: int, per_batch: int, grouped: bool = False) -> tuple[list[bytes], bytes]:
    """The author's signed wires, ``per_batch`` single-op deltas each, and its final snapshot.

    With ``grouped``, each batch's deltas are joined per object, as ``Memory.take_deltas``
    drains them for ``Node.flush``: the same ops, one delta per object name.
    """
    memory = Memory(author.peer_id)  # a logical clock, like a receiver at time 0
    causal = CausalIndex()
    wires = []
    for start in range(0, ops, per_batch):
        deltas = []
        for i in range(start, min(start + per_batch, ops)):
            _write(memory, i)
            if not grouped:
                deltas += memory.take_deltas()  # a drain joins what it holds: drain each op alone
        if grouped:
            deltas = memory.take_deltas()
        batch = seal_batch(author, len(wires) + 1, deltas, causal.heads())
        causal.record(batch)
        wires.append(batch.wire)
    return wires, memory.snapshot()


def receive_pipeline(wires: list[bytes], keyring: Keyring, expected: bytes) -> dict[str, float]:
    memory, causal = Memory("receiver", clock=lambda: 0.0), CausalIndex()
    bound = memory.stamp_bound(NodeConfig().max_clock_skew)
    wall, now_cpu = perf(), cpu()
    for wire in wires:
        batch = open_batch(wire, keyring, verify, max_size=MAX_BYTES)
        check_stamps(batch, bound)
        covered = causal.check(batch)
        apply_batch(memory, batch)
        causal.record(batch, covered)
    out = {"s": perf() - wall, "cpu_s": cpu() - now_cpu}
    assert memory.snapshot() == expected, "the receiver diverged from the author"
    return out


def receive_node(wires: list[bytes], author: Identity, expected: bytes) -> dict[str, float]:
    cluster = Cluster(seed=1, config=NodeConfig(max_message_bytes=MAX_BYTES))
    cluster.add("receiver")
    cluster.keyring.add(author)
    raw = cluster.open_raw("receiver", author)
    frames = [raw.seal(Batches(tuple(wires[i:i + 16]))) for i in range(0, len(wires), 16)]
    wall, now_cpu = perf(), cpu()
    for frame in frames:
        cluster.inject(raw.conn, frame)
    out = {"s": perf() - wall, "cpu_s": cpu() - now_cpu}
    node = cluster.node("receiver")
    assert node.stats.batches_applied == len(wires), node.stats
    assert cluster.memory("receiver").snapshot() == expected, "the node diverged from the author"
    return out


def verify_only(wires: list[bytes], keyring: Keyring) -> dict[str, float]:
    import msgpack

    parts = [msgpack.unpackb(w, raw=False) for w in wires]
    signed = [(keyring.public_key(p[0]), p[4], _signed_part(p[0], p[1], p[2], p[3])) for p in parts]
    wall, now_cpu = perf(), cpu()
    for key, signature, data in signed:
        assert verify(key, signature, data)
    return {"s": perf() - wall, "cpu_s": cpu() - now_cpu}


def pycrdt_updates(ops: int) -> list[bytes]:
    doc = Doc()
    facts = doc.get("facts", type=Map)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for i in range(ops):
        facts[f"fact-{i}"] = i
    return updates


def pycrdt_apply(updates: list[bytes]) -> dict[str, float]:
    doc = Doc()
    facts = doc.get("facts", type=Map)
    wall, now_cpu = perf(), cpu()
    for update in updates:
        doc.apply_update(update)
    out = {"s": perf() - wall, "cpu_s": cpu() - now_cpu}
    assert len(facts) == len(updates)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("--ops", 100_000), ("--per-batch", 1000), ("--reps", 5)):  # --per-batch: deltas a batch
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--quick", action="store_true", help="10x fewer ops and 3 reps")
    parser.add_argument("--skip-node", action="store_true", help="time only the pipeline, not a real Node")
    args = parser.parse_args(argv)
    if args.quick:
        args.ops, args.reps = args.ops // 10, min(args.reps, 3)

    author = Identity.from_private_bytes(random.Random(7).randbytes(32))
    keyring = Keyring()
    keyring.add(author)
    wires, expected = make_batches(author, args.ops, args.per_batch)
    updates = pycrdt_updates(args.ops)

    grouped_wires, _ = make_batches(author, args.ops, args.per_batch, grouped=True)

    runs: dict[str, list[dict[str, float]]] = {
        "pipeline": [], "grouped_pipeline": [], "node": [], "verify_only": [], "pycrdt": [],
    }  # fmt: skip
    for _ in range(args.reps):  # interleaved so machine noise hits every variant alike
        runs["pipeline"].append(receive_pipeline(wires, keyring, expected))
        runs["grouped_pipeline"].append(receive_pipeline(grouped_wires, keyring, expected))
        if not args.skip_node:
            runs["node"].append(receive_node(wires, author, expected))
        runs["verify_only"].append(verify_only(wires, keyring))
        runs["pycrdt"].append(pycrdt_apply(updates))

    result: dict[str, Any] = {}
    for name, reps in runs.items():
        if not reps:
            continue
        wall = statistics.median(r["s"] for r in reps)
        result[f"{name}_ops_per_s"] = args.ops / wall
        result[f"{name}_cpu_ops_per_s"] = args.ops / statistics.median(r["cpu_s"] for r in reps)
        result[f"{name}_spread"] = [round(args.ops / r["s"]) for r in sorted(reps, key=lambda r: r["s"])]
    result["pipeline_ratio"] = result["pipeline_ops_per_s"] / result["pycrdt_ops_per_s"]
    result["grouped_pipeline_ratio"] = result["grouped_pipeline_ops_per_s"] / result["pycrdt_ops_per_s"]
    result["cpu_pipeline_ratio"] = result["pipeline_cpu_ops_per_s"] / result["pycrdt_cpu_ops_per_s"]
    if runs["node"]:
        result["node_ratio"] = result["node_ops_per_s"] / result["pycrdt_ops_per_s"]
    result["signature_share"] = result["pipeline_ops_per_s"] / result["verify_only_ops_per_s"]
    result["params"] = {
        "ops": args.ops,
        "per_batch": args.per_batch,
        "batches": len(wires),
        "wire_bytes_per_op": sum(map(len, wires)) / args.ops,
        "reps": args.reps,
        "statistic": "median",
        "ratios": "ours / pycrdt applying unsigned single-op updates (>1: we apply faster)",
    }
    result["env"] = environment()
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
