"""Agent-facing throughput: the LangGraph store and the MCP server, each against its reference.

Run from the repo root (a venv with ``crdtmem[langgraph]``; add ``langgraph-checkpoint-sqlite``
to compare with LangGraph's SQLite store)::

    python benchmarks/bench_agent.py             # full run, prints one JSON object
    python benchmarks/bench_agent.py --quick     # fewer items and repetitions (smoke test)

Store part (``"store"`` key). For each store, each repeated ``--reps`` times (median of the
repetitions reported, ``time.perf_counter``), with ``--items`` items spread over
``--namespaces`` namespaces of 2 labels, each item a 4-field document:

* ``put``: ops/s of ``store.put`` of every item into a fresh store;
* ``get``: ops/s of ``store.get`` of every item;
* ``search``: ops/s of ``store.search(namespace, filter={"n": {"$gte": ...}}, limit=10)``,
  ``--searches`` of them over the namespaces in turn.

Stores: ``crdt`` (``CrdtStore`` on a bare ``Memory``: the replicated store's local cost, no
network), ``inmemory`` (LangGraph's ``InMemoryStore``), ``sqlite`` (LangGraph's
``SqliteStore`` on ``:memory:``, if ``langgraph-checkpoint-sqlite`` is installed). Ratios are
``crdt / other`` ops/s: above 1 means CrdtStore is faster.

MCP part (``"mcp"`` key): two ``crdtmem mcp`` servers peered on loopback, driven by the
official MCP client over stdio — tool-call latency p50/p99 and write-to-readable time across
the servers; see ``bench_mcp.py`` (``--reference-js`` adds the reference Node.js server).

Each measured thing is one function (``bench_put``, ``bench_get``, ``bench_search``); the
store section is assembled by :func:`store_section`, the MCP one by ``bench_mcp.mcp_section``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import bench_mcp
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from crdtmem import Memory
from crdtmem.integrations.langgraph import CrdtStore

perf = time.perf_counter

Workload = list[tuple[tuple[str, ...], str, dict[str, Any]]]


def workload(items: int, namespaces: int) -> Workload:
    """``items`` documents over ``namespaces`` namespaces, deterministic."""
    return [
        (("bench", f"ns{i % namespaces}"), f"key-{i}", {"n": i, "text": f"note number {i}", "tag": f"t{i % 7}", "ok": i % 2 == 0})
        for i in range(items)
    ]


@contextmanager
def crdt_store() -> Iterator[BaseStore]:
    yield CrdtStore(Memory("bench", clock=time.time))


@contextmanager
def inmemory_store() -> Iterator[BaseStore]:
    yield InMemoryStore()


@contextmanager
def sqlite_store() -> Iterator[BaseStore]:
    from langgraph.store.sqlite import SqliteStore

    with SqliteStore.from_conn_string(":memory:") as store:
        store.setup()
        yield store


def bench_put(store: BaseStore, items: Workload) -> float:
    """Ops/s of putting every item (into the given, fresh store)."""
    start = perf()
    for namespace, key, value in items:
        store.put(namespace, key, value)
    return len(items) / (perf() - start)


def bench_get(store: BaseStore, items: Workload) -> float:
    """Ops/s of getting every item (all present)."""
    start = perf()
    for namespace, key, _ in items:
        if store.get(namespace, key) is None:
            raise AssertionError(f"{key} missing")
    return len(items) / (perf() - start)


def bench_search(store: BaseStore, items: Workload, searches: int, namespaces: int) -> float:
    """Ops/s of filtered, limited searches over one namespace each."""
    total = len(items)
    start = perf()
    for i in range(searches):
        found = store.search(("bench", f"ns{i % namespaces}"), filter={"n": {"$gte": (i * 37) % total}}, limit=10)
        if len(found) > 10:
            raise AssertionError("limit ignored")
    return searches / (perf() - start)


def measure(make: Callable[[], Any], args: argparse.Namespace) -> dict[str, float]:
    """Median put/get/search ops/s of one kind of store over ``args.reps`` fresh stores."""
    items = workload(args.items, args.namespaces)
    runs: dict[str, list[float]] = {"put": [], "get": [], "search": []}
    for _ in range(args.reps):
        with make() as store:
            runs["put"].append(bench_put(store, items))
            runs["get"].append(bench_get(store, items))
            runs["search"].append(bench_search(store, items, args.searches, args.namespaces))
    return {f"{op}_ops_per_s": round(statistics.median(values), 1) for op, values in runs.items()}


def store_section(args: argparse.Namespace) -> dict[str, Any]:
    """The ``"store"`` section: every store's medians and CrdtStore's ratios to the others."""
    stores: dict[str, Callable[[], Any]] = {"crdt": crdt_store, "inmemory": inmemory_store}
    try:
        import langgraph.store.sqlite  # noqa: F401
    except ImportError:
        skipped = {"sqlite": "langgraph-checkpoint-sqlite is not installed"}
    else:
        stores["sqlite"] = sqlite_store
        skipped = {}
    results = {name: measure(make, args) for name, make in stores.items()}
    ratios = {
        f"crdt_over_{other}_{metric.removesuffix('_ops_per_s')}": round(results["crdt"][metric] / value, 3)
        for other in results
        if other != "crdt"
        for metric, value in results[other].items()
    }
    return {
        "items": args.items,
        "namespaces": args.namespaces,
        "searches": args.searches,
        "reps": args.reps,
        "results": results,
        "ratios": ratios,
        "skipped": skipped,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--searches", type=int, default=500)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="500 items, 100 searches, 3 reps; 50 MCP calls")
    parser.add_argument("--skip-mcp", action="store_true", help="only the store part")
    bench_mcp.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.searches, args.reps = 500, 100, 3
        args.calls, args.probes, args.entities = 50, 20, 50
    report = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "store": store_section(args),
    }
    if not args.skip_mcp:
        report["mcp"] = anyio.run(bench_mcp.mcp_section, args)
    print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
