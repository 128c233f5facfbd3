"""Local write throughput, full-state merge time and encoded size: crdtmem vs a pycrdt Map.

Run from the repo root (any venv with crdtmem and pycrdt installed)::

    python benchmarks/bench_types.py            # full run, prints one JSON object
    python benchmarks/bench_types.py --quick    # 10x fewer ops, 3 repetitions (smoke test)

What is measured, each repeated ``--reps`` times (median reported, ``time.perf_counter``):

* writes through the public API: ``--adds`` set adds (``m.set("s").add(f"fact-{i}")``),
  ``--removes`` removes of the first elements, ``--increments`` counter increments
  (``m.counter("c").increment(1)``). Delta production is included: ``m.take_deltas()`` is
  called every ``--batch`` ops, as the sync layer would. ``encoded_*`` keys repeat this and
  also encode each drain the way ``Node.flush`` does (``group_deltas`` then one msgpack body;
  signing excluded), since pycrdt's deltas are already bytes.
* the same writes on pycrdt: a ``Map`` used as a set (key -> True, ``del`` to remove) and a Map
  key used as a counter, one transaction per op; deltas are the ``doc.observe`` update bytes.
* full-state merge of two replicas with ``--merge-size`` distinct adds each: ``a.merge(b)``
  versus ``doc_a.apply_update(doc_b.get_update())``.
* encoded bytes per live set element after the adds and removes: ``codec.encode_state`` of the
  set (and ``Memory.snapshot()``) versus ``len(doc.get_update())``.

Ratios are always ours / pycrdt's: ``write_ratio`` > 1 means we write faster, ``merge_ratio``
and ``bytes_ratio`` < 1 mean we merge faster / encode smaller. ``cpu_*`` keys are the same
figures from ``time.process_time`` (fairer on a shared, busy machine); ``gc_share`` is the
fraction of the write phases spent in CPython's cyclic garbage collector.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import pycrdt
from gc_timer import GcTimer
from pycrdt import Doc, Map

import crdtmem
from crdtmem import Memory, codec

perf = time.perf_counter
cpu = time.process_time


GC = GcTimer()


class _Phases:
    """Wall and CPU seconds of consecutive phases: ``mark(name)`` closes the current one."""

    def __init__(self) -> None:
        self.out: dict[str, float] = {}
        self.restart()

    def restart(self) -> None:
        self._wall, self._cpu = perf(), cpu()

    def mark(self, name: str) -> None:
        wall, now_cpu = perf(), cpu()
        self.out[f"{name}_s"] = wall - self._wall
        self.out[f"{name}_cpu_s"] = now_cpu - self._cpu
        self._wall, self._cpu = wall, now_cpu


# -- crdtmem ------------------------------------------------------------------------------------


try:  # the sync layer's flush: one delta group per name, encoded once (crdtmem.protocol.batch)
    from crdtmem.memory import group_deltas
except ImportError:  # older checkouts: ship each delta alone
    group_deltas = None


def _drain_ours(m: Memory, encode: bool) -> int:
    deltas = m.take_deltas()
    if not encode:
        return len(deltas)
    if group_deltas is None:
        return sum(len(codec.encode_state(delta)) for _, delta in deltas)
    return len(codec.pack([[name, *codec.state_to_plain(delta)] for name, delta in group_deltas(deltas)]))


def ours_writes(keys: list[str], removes: int, increments: int, batch: int, encode: bool) -> dict[str, Any]:
    """One repetition of the write workload on crdtmem; returns seconds per phase and sizes."""
    m = Memory("alice")
    gc.collect()
    t = _Phases()
    with GC as gc_time:
        t.restart()
        for i, key in enumerate(keys, 1):
            m.set("s").add(key)
            if i % batch == 0:
                _drain_ours(m, encode)
        _drain_ours(m, encode)
        t.mark("add")
        for i in range(removes):
            m.set("s").remove(keys[i])
            if (i + 1) % batch == 0:
                _drain_ours(m, encode)
        _drain_ours(m, encode)
        t.mark("remove")
    set_gc = gc_time.total

    c = Memory("alice")
    gc.collect()
    with GC as gc_time:
        t.restart()
        for i in range(1, increments + 1):
            c.counter("c").increment(1)
            if i % batch == 0:
                _drain_ours(c, encode)
        _drain_ours(c, encode)
        t.mark("increment")

    live = len(m.set("s"))
    assert live == len(keys) - removes, live
    assert c.counter("c").value == increments
    return {
        **t.out,
        "gc_s": set_gc + gc_time.total,
        "live": live,
        "state_bytes": len(codec.encode_state(m.state("s"))),
        "snapshot_bytes": len(m.snapshot()),
    }


def ours_merge(size: int) -> dict[str, float]:
    a, b = Memory("alice"), Memory("bob")
    for i in range(size):
        a.set("s").add(f"fact-a-{i}")
        b.set("s").add(f"fact-b-{i}")
    a.take_deltas(), b.take_deltas()
    gc.collect()
    t = _Phases()
    a.merge(b)
    t.mark("merge")
    assert len(a.set("s")) == 2 * size
    return t.out


# -- pycrdt -------------------------------------------------------------------------------------


def theirs_writes(keys: list[str], removes: int, increments: int, batch: int) -> dict[str, Any]:
    """The same workload on pycrdt: Map as a set, a Map key as a counter, one transaction per op."""
    doc = Doc()
    s = doc.get("s", type=Map)
    updates: list[bytes] = []
    sub = doc.observe(lambda event: updates.append(event.update))
    gc.collect()
    t = _Phases()
    with GC as gc_time:
        t.restart()
        for i, key in enumerate(keys, 1):
            s[key] = True
            if i % batch == 0:
                updates.clear()
        updates.clear()
        t.mark("add")
        for i in range(removes):
            del s[keys[i]]
            if (i + 1) % batch == 0:
                updates.clear()
        updates.clear()
        t.mark("remove")
    set_gc = gc_time.total
    doc.unobserve(sub)

    cdoc = Doc()
    c = cdoc.get("c", type=Map)
    cupdates: list[bytes] = []
    csub = cdoc.observe(lambda event: cupdates.append(event.update))
    gc.collect()
    with GC as gc_time:
        t.restart()
        for i in range(1, increments + 1):
            c["c"] = c.get("c", 0) + 1
            if i % batch == 0:
                cupdates.clear()
        cupdates.clear()
        t.mark("increment")
    cdoc.unobserve(csub)

    live = len(s)
    assert live == len(keys) - removes, live
    assert c["c"] == increments
    return {
        **t.out,
        "gc_s": set_gc + gc_time.total,
        "live": live,
        "state_bytes": len(doc.get_update()),
    }


def theirs_merge(size: int) -> dict[str, float]:
    doc_a, doc_b = Doc(), Doc()
    ma, mb = doc_a.get("s", type=Map), doc_b.get("s", type=Map)
    with doc_a.transaction():
        for i in range(size):
            ma[f"fact-a-{i}"] = True
    with doc_b.transaction():
        for i in range(size):
            mb[f"fact-b-{i}"] = True
    gc.collect()
    t = _Phases()
    update = doc_b.get_update()
    t.mark("get_update")
    doc_a.apply_update(update)
    t.mark("apply_update")
    assert len(ma) == 2 * size
    out = t.out
    out["merge_s"] = out["get_update_s"] + out["apply_update_s"]
    out["merge_cpu_s"] = out["get_update_cpu_s"] + out["apply_update_cpu_s"]
    return out


# -- driver -------------------------------------------------------------------------------------


def _median(runs: list[dict[str, Any]], key: str | Callable[[dict[str, Any]], float]) -> float:
    pick = key if callable(key) else (lambda r: r[key])
    return statistics.median(pick(r) for r in runs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adds", type=int, default=100_000)
    parser.add_argument("--removes", type=int, default=50_000)
    parser.add_argument("--increments", type=int, default=100_000)
    parser.add_argument("--merge-size", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000, help="ops between take_deltas() drains")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10x fewer ops and 3 reps")
    parser.add_argument("--no-encoded", action="store_true", help="skip the *_encoded variant")
    args = parser.parse_args(argv)
    if args.quick:
        args.adds, args.removes, args.increments = args.adds // 10, args.removes // 10, args.increments // 10
        args.merge_size //= 10
        args.reps = min(args.reps, 3)
    if args.removes > args.adds:
        parser.error("--removes cannot exceed --adds")

    keys = [f"fact-{i}" for i in range(args.adds)]
    ours: list[dict[str, Any]] = []
    ours_enc: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    ours_m: list[dict[str, float]] = []
    theirs_m: list[dict[str, float]] = []
    for _ in range(args.reps):  # interleave the two libraries so machine noise hits both alike
        ours.append(ours_writes(keys, args.removes, args.increments, args.batch, encode=False))
        theirs.append(theirs_writes(keys, args.removes, args.increments, args.batch))
        if not args.no_encoded:
            ours_enc.append(ours_writes(keys, args.removes, args.increments, args.batch, encode=True))
        ours_m.append(ours_merge(args.merge_size))
        theirs_m.append(theirs_merge(args.merge_size))

    total_ops = args.adds + args.removes + args.increments

    def rates(runs: list[dict[str, Any]], prefix: str) -> dict[str, float]:
        def writes(r: dict[str, Any], suffix: str = "_s") -> float:
            return r["add" + suffix] + r["remove" + suffix] + r["increment" + suffix]

        return {
            f"{prefix}cpu_write_ops_per_s": total_ops / _median(runs, lambda r: writes(r, "_cpu_s")),
            f"{prefix}cpu_add_ops_per_s": args.adds / _median(runs, "add_cpu_s"),
            f"{prefix}gc_share": _median(runs, lambda r: r["gc_s"] / writes(r)),
            f"{prefix}write_ops_per_s": total_ops / _median(runs, lambda r: r["add_s"] + r["remove_s"] + r["increment_s"]),
            f"{prefix}add_ops_per_s": args.adds / _median(runs, "add_s"),
            f"{prefix}remove_ops_per_s": args.removes / _median(runs, "remove_s") if args.removes else 0.0,
            f"{prefix}increment_ops_per_s": args.increments / _median(runs, "increment_s"),
            f"{prefix}add_us": 1e6 * _median(runs, "add_s") / args.adds,
            f"{prefix}remove_us": 1e6 * _median(runs, "remove_s") / args.removes if args.removes else 0.0,
            f"{prefix}increment_us": 1e6 * _median(runs, "increment_s") / args.increments,
        }

    result: dict[str, Any] = {}
    result.update(rates(ours, ""))
    result.update(rates(theirs, "pycrdt_"))
    if ours_enc:
        result.update(rates(ours_enc, "encoded_"))
    result["write_ratio"] = result["write_ops_per_s"] / result["pycrdt_write_ops_per_s"]
    if ours_enc:
        result["encoded_write_ratio"] = result["encoded_write_ops_per_s"] / result["pycrdt_write_ops_per_s"]
    for op in ("add", "remove", "increment"):
        theirs_rate = result[f"pycrdt_{op}_ops_per_s"]
        result[f"{op}_ratio"] = result[f"{op}_ops_per_s"] / theirs_rate if theirs_rate else 0.0
    result["cpu_write_ratio"] = result["cpu_write_ops_per_s"] / result["pycrdt_cpu_write_ops_per_s"]
    result["cpu_add_ratio"] = result["cpu_add_ops_per_s"] / result["pycrdt_cpu_add_ops_per_s"]

    result["merge_s"] = _median(ours_m, "merge_s")
    result["pycrdt_merge_s"] = _median(theirs_m, "merge_s")
    result["pycrdt_merge_get_update_s"] = _median(theirs_m, "get_update_s")
    result["pycrdt_merge_apply_update_s"] = _median(theirs_m, "apply_update_s")
    result["merge_ratio"] = result["merge_s"] / result["pycrdt_merge_s"]
    result["cpu_merge_ratio"] = _median(ours_m, "merge_cpu_s") / _median(theirs_m, "merge_cpu_s")

    live = ours[0]["live"]
    result["live_elements"] = live
    result["bytes_per_element"] = _median(ours, "state_bytes") / live
    result["snapshot_bytes_per_element"] = _median(ours, "snapshot_bytes") / live
    result["pycrdt_bytes_per_element"] = _median(theirs, "state_bytes") / live
    result["bytes_ratio"] = result["bytes_per_element"] / result["pycrdt_bytes_per_element"]

    headline = [
        "write_ops_per_s", "pycrdt_write_ops_per_s", "write_ratio",
        "merge_s", "pycrdt_merge_s", "merge_ratio",
        "bytes_per_element", "pycrdt_bytes_per_element", "bytes_ratio",
        "add_ratio", "remove_ratio", "increment_ratio",
    ]  # fmt: skip
    result = {**{key: result[key] for key in headline}, **result}
    result["params"] = {
        "adds": args.adds,
        "removes": args.removes,
        "increments": args.increments,
        "merge_size": args.merge_size,
        "batch": args.batch,
        "reps": args.reps,
        "statistic": "median",
        "ratios": "ours / pycrdt (write: >1 is better for us; merge, bytes: <1 is better for us)",
    }
    result["env"] = environment()
    return result


def environment() -> dict[str, str]:
    """The versions a result depends on (every pycrdt comparison reports these)."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "crdtmem": crdtmem.__version__,
        "pycrdt": getattr(pycrdt, "__version__", "?"),
        "machine": platform.machine(),
    }


if __name__ == "__main__":
    json.dump(main(), sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
