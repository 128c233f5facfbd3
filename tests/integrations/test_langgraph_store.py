"""CrdtStore: LangGraph's BaseStore on replicated records, checked against InMemoryStore."""

from __future__ import annotations

import pytest

pytest.importorskip("langgraph")

from langgraph.store.base import GetOp, InvalidNamespaceError, PutOp
from langgraph.store.memory import InMemoryStore

from crdtmem import Memory
from crdtmem.integrations.langgraph import CrdtStore
from crdtmem.testing.langgraph import run_store_conformance


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def crdt_store(name: str = "a", clock: Clock | None = None, **options) -> CrdtStore:
    clock = clock or Clock()
    return CrdtStore(Memory(name, clock=clock), clock=clock, **options)


def crdt_replicas(n: int = 3):
    clock = Clock()
    stores = [crdt_store(f"r{i}", clock) for i in range(n)]

    def sync() -> None:
        for a in stores:
            for b in stores:
                if a is not b:
                    b.memory.merge(a.memory)

    return stores, sync


def test_crdt_store_conforms_to_in_memory_store_and_converges():
    report = run_store_conformance(crdt_store, seeds=range(12), steps=50, replicas=crdt_replicas)
    assert report.checks == 12 * 50 and report.converged == 12


def test_in_memory_store_conforms_to_itself():
    report = run_store_conformance(InMemoryStore, seeds=range(6), steps=50)
    assert report.checks == 6 * 50


def test_the_kit_catches_a_store_that_drops_writes():
    class Forgetful(InMemoryStore):
        def put(self, namespace, key, value, index=None, **kwargs):
            if key != "k2":
                super().put(namespace, key, value, index=index, **kwargs)

    with pytest.raises(AssertionError, match="seed"):
        run_store_conformance(Forgetful, seeds=range(5), steps=50)


def test_concurrent_puts_on_two_replicas_merge_per_field():
    (a, b), sync = crdt_replicas(2)
    a.put(("users", "ann"), "profile", {"name": "Ann", "city": "Oslo", "role": "dev"})
    sync()
    a.put(("users", "ann"), "profile", {"name": "Ann", "city": "Bergen", "role": "dev"})
    b.put(("users", "ann"), "profile", {"name": "Ann", "city": "Oslo", "role": "lead"})
    sync()
    for store in (a, b):
        assert store.get(("users", "ann"), "profile").value == {"city": "Bergen", "name": "Ann", "role": "lead"}


def test_created_at_is_kept_on_overwrite():
    clock = Clock()
    store = crdt_store(clock=clock)
    store.put(("n",), "k", {"v": 1})
    clock.now += 30
    store.put(("n",), "k", {"v": 2})
    item = store.get(("n",), "k")
    assert (item.updated_at - item.created_at).total_seconds() == 30


def test_reads_in_a_batch_see_the_state_before_its_puts():
    store = crdt_store()
    results = store.batch([PutOp(("n",), "k", {"v": 1}), GetOp(("n",), "k"), PutOp(("n",), "k", {"v": 2})])
    assert results == [None, None, None]
    assert store.get(("n",), "k").value == {"v": 2}


def test_namespace_rules_are_langgraphs():
    store = crdt_store()
    for bad in [(), ("langgraph",), ("a.b",), ("",)]:
        with pytest.raises(InvalidNamespaceError):
            store.put(bad, "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        store.batch([GetOp(("a.b",), "k")])


def test_list_namespaces_with_prefix_suffix_depth_and_paging():
    store = crdt_store()
    for ns in [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f"), ("a", "c", "f")]:
        store.put(ns, "k", {"v": 1})
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f")]
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d", "e"), ("a", "b", "d", "i")]
    store.delete(("a", "c", "f"), "k")
    assert ("a", "c", "f") not in store.list_namespaces()


def test_ttl_in_minutes_expires_items_and_the_sweep_collects_them_everywhere():
    (a, b), sync = crdt_replicas(2)
    clock = a.records._clock
    assert a.supports_ttl
    a.put(("n",), "short", {"v": 1}, ttl=1)
    a.put(("n",), "long", {"v": 2})
    sync()
    clock.now += 59
    assert b.get(("n",), "short", refresh_ttl=False) is not None
    clock.now += 1
    assert b.get(("n",), "short") is None
    assert [i.key for i in a.search(("n",))] == ["long"]
    assert b.sweep_ttl() == 1
    sync()
    assert a.records.history(("n",), "short") == [] and a.sweep_ttl() == 0


def test_default_ttl_and_refresh_on_read_follow_ttl_config():
    clock = Clock()
    store = crdt_store(clock=clock, ttl={"default_ttl": 1, "refresh_on_read": True})
    store.put(("n",), "k", {"v": 1})
    clock.now += 50
    assert store.get(("n",), "k") is not None  # refreshes: another minute from now
    clock.now += 50
    assert store.get(("n",), "k", refresh_ttl=False) is not None
    clock.now += 11
    assert store.get(("n",), "k") is None


def test_semantic_search_through_an_embedding_function():
    def embed(texts: list[str]) -> list[list[float]]:
        return [[float("tea" in t), float("coffee" in t), 0.1] for t in texts]

    index = {"dims": 3, "embed": embed, "fields": ["text"]}
    store = crdt_store(index=index)
    oracle = InMemoryStore(index=index)
    for s in (store, oracle):
        s.put(("drinks",), "1", {"text": "green tea"})
        s.put(("drinks",), "2", {"text": "black coffee"})
        s.put(("drinks",), "3", {"text": "no index"}, index=False)
    mine = [(i.key, round(i.score, 6) if i.score is not None else None) for i in store.search(("drinks",), query="coffee")]
    theirs = [(i.key, round(i.score, 6) if i.score is not None else None) for i in oracle.search(("drinks",), query="coffee")]
    assert mine == theirs and mine[0][0] == "2"


def test_async_batch_works_like_batch():
    import asyncio

    store = crdt_store()

    async def main():
        await store.aput(("n",), "k", {"v": 1})
        return await store.aget(("n",), "k")

    assert asyncio.run(main()).value == {"v": 1}


def test_ttl_sweeper_thread_collects_expired_items_until_stopped():
    import threading

    clock = Clock()
    store = crdt_store(clock=clock)
    store.put(("n",), "k", {"v": 1}, ttl=1)
    clock.now += 61
    swept = threading.Event()
    sweep = store.sweep_ttl

    def counting_sweep() -> int:
        removed = sweep()
        if removed:
            swept.set()
        return removed

    store.sweep_ttl = counting_sweep
    store.start_ttl_sweeper(sweep_interval_minutes=0.0005)
    try:
        assert swept.wait(timeout=10)
    finally:
        assert store.stop_ttl_sweeper(timeout=10)
    assert store.records.expired() == [] and store.records.history(("n",), "k") == []
