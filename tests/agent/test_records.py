"""Records: per-field merge, conflicts, authorship, history, TTL and search."""

from __future__ import annotations

import pytest

from crdtmem import Memory
from crdtmem.agent import Records
from crdtmem.values import decode_value


class Clock:
    """A settable clock, shared by a memory (write stamps) and its records (visibility)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def replica(name: str, clock: Clock, **kwargs) -> Records:
    return Records(Memory(name, clock=clock), **kwargs)


def sync(*replicas: Records) -> None:
    for a in replicas:
        for b in replicas:
            if a is not b:
                b.memory.merge(a.memory)


NS = ("users", "ann")


def test_put_then_get_returns_the_document_with_times_and_author():
    clock = Clock(1000.0)
    records = replica("a", clock, agent="planner")
    records.put(NS, "prefs", {"theme": "dark", "size": 3})
    clock.now = 1005.0
    records.put(NS, "prefs", {"theme": "light", "size": 3})
    record = records.get(NS, "prefs")
    assert record.value == {"size": 3, "theme": "light"}
    assert (record.created_at, record.updated_at) == (1000.0, 1005.0)
    assert (record.author, record.agent, record.expires_at, record.conflicts) == ("a", "planner", None, {})
    assert records.get(NS, "other") is None


def test_put_drops_fields_left_out():
    records = replica("a", Clock())
    records.put(NS, "k", {"x": 1, "y": 2})
    records.put(NS, "k", {"x": 1})
    assert records.get(NS, "k").value == {"x": 1}


def test_concurrent_puts_of_different_fields_both_survive():
    clock = Clock()
    a, b = replica("a", clock), replica("b", clock)
    a.put(NS, "k", {"x": 0, "y": 0})
    sync(a, b)
    a.put(NS, "k", {"x": 1, "y": 0})
    b.put(NS, "k", {"x": 0, "y": 2})
    sync(a, b)
    assert a.get(NS, "k").value == b.get(NS, "k").value == {"x": 1, "y": 2}
    assert a.get(NS, "k").conflicts == {}


def test_concurrent_writes_of_one_field_resolve_the_same_way_and_stay_visible():
    clock = Clock()
    a, b = replica("a", clock), replica("b", clock)
    a.put(NS, "k", {"x": "from a"})
    clock.now += 1
    b.put(NS, "k", {"x": "from b"})
    sync(a, b)
    seen_a, seen_b = a.get(NS, "k"), b.get(NS, "k")
    assert seen_a.value == seen_b.value == {"x": "from b"}  # later hybrid timestamp wins
    siblings = seen_a.conflicts["x"]
    assert [(s.value, s.author) for s in siblings] == [("from b", "b"), ("from a", "a")]
    assert seen_b.conflicts == seen_a.conflicts
    a.put(NS, "k", {"x": "settled"})
    sync(a, b)
    assert b.get(NS, "k").conflicts == {} and b.get(NS, "k").value == {"x": "settled"}


def test_history_records_every_change_with_author_and_old_value():
    clock = Clock(100.0)
    a, b = replica("a", clock, agent="writer"), replica("b", clock, agent="editor")
    a.put(NS, "k", {"x": 1})
    sync(a, b)
    clock.now = 101.0
    b.put(NS, "k", {"x": 2})
    clock.now = 102.0
    b.delete(NS, "k")
    sync(a, b)
    for records in (a, b):
        events = [(e.kind, e.author, e.agent, e.at, e.old, e.new) for e in records.history(NS, "k")]
        assert events == [
            ("added", "a", "writer", 100.0, None, {"x": 1}),
            ("updated", "b", "editor", 101.0, {"x": 1}, {"x": 2}),
            ("deleted", "b", "editor", 102.0, {"x": 2}, None),
        ]
    assert a.get(NS, "k") is None


def test_created_at_is_kept_on_overwrite_and_reset_after_delete():
    clock = Clock(10.0)
    records = replica("a", clock)
    records.put(NS, "k", {"x": 1})
    clock.now = 20.0
    records.put(NS, "k", {"x": 2})
    assert records.get(NS, "k").created_at == 10.0
    records.delete(NS, "k")
    clock.now = 30.0
    records.put(NS, "k", {"x": 3})
    assert records.get(NS, "k").created_at == 30.0


def test_delete_concurrent_with_an_update_keeps_the_update():
    clock = Clock()
    a, b = replica("a", clock), replica("b", clock)
    a.put(NS, "k", {"x": 1, "y": 1})
    sync(a, b)
    a.delete(NS, "k")
    b.put(NS, "k", {"x": 1, "y": 2})
    sync(a, b)
    assert a.get(NS, "k").value == b.get(NS, "k").value == {"y": 2}


def test_expired_record_is_invisible_then_collected_without_trace():
    clock = Clock(1000.0)
    a, b = replica("a", clock), replica("b", clock)
    a.put(NS, "temp", {"x": 1}, ttl=60)
    a.put(NS, "kept", {"x": 2})
    sync(a, b)
    assert b.get(NS, "temp").expires_at == 1060.0
    clock.now = 1059.9
    assert a.get(NS, "temp") is not None
    clock.now = 1060.0
    assert a.get(NS, "temp") is None and b.get(NS, "temp") is None
    assert [r.key for r in b.expired()] == ["temp"]
    assert b.collect() == 1
    sync(a, b)
    assert a.expired() == [] and a.history(NS, "temp") == []
    name = 'records:["users","ann"]'
    left = [k for k in a.memory.state(name).kernel.entries if b"temp" in k]
    assert left == []
    assert a.memory.snapshot() == b.memory.snapshot()


def test_reading_with_refresh_restarts_the_ttl():
    clock = Clock(1000.0)
    records = replica("a", clock)
    records.put(NS, "k", {"x": 1}, ttl=60)
    clock.now = 1050.0
    refreshed = records.get(NS, "k", refresh_ttl=True)
    assert (refreshed.expires_at, refreshed.updated_at) == (1110.0, 1000.0)
    clock.now = 1100.0
    assert records.get(NS, "k") is not None


def test_put_concurrent_with_collection_survives():
    clock = Clock(1000.0)
    a, b = replica("a", clock), replica("b", clock)
    a.put(NS, "k", {"x": 1}, ttl=10)
    sync(a, b)
    clock.now = 1020.0
    assert a.collect() == 1
    b.put(NS, "k", {"x": 2})
    sync(a, b)
    assert a.get(NS, "k").value == b.get(NS, "k").value == {"x": 2}


def test_search_by_prefix_filter_limit_and_offset():
    clock = Clock()
    records = replica("a", clock)
    for i in range(6):
        clock.now += 1
        records.put(("docs", "x" if i % 2 else "y"), f"d{i}", {"n": i, "tag": "odd" if i % 2 else "even"})
    records.put(("other",), "o", {"n": 100})
    assert [r.key for r in records.search(("docs",), limit=100)] == ["d0", "d2", "d4", "d1", "d3", "d5"]
    assert [r.key for r in records.search(("docs", "x"), filter={"n": {"$gte": 2, "$lt": 5}})] == ["d3"]
    assert [r.key for r in records.search((), filter={"tag": "even"}, limit=2, offset=1)] == ["d2", "d4"]
    assert [r.key for r in records.search(filter={"n": {"$ne": 100}, "tag": {"$eq": "odd"}})] == ["d1", "d3", "d5"]
    assert records.namespaces() == [("docs", "x"), ("docs", "y"), ("other",)]
    with pytest.raises(ValueError, match=r"\$regex"):
        records.search(filter={"n": {"$regex": "x"}})


def test_semantic_search_ranks_by_similarity_with_local_vectors():
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> list[list[float]]:
        calls.append(list(texts))
        return [[float("cat" in t), float("dog" in t), 1.0] for t in texts]

    clock = Clock()
    a = replica("a", clock, embed=embed, index=["text"])
    a.put(("pets",), "1", {"text": "a dog"})
    a.put(("pets",), "2", {"text": "a cat"})
    a.put(("pets",), "3", {"other": "no text"})
    hits = a.search(("pets",), query="cat")
    assert [(r.key, r.score is not None) for r in hits] == [("2", True), ("1", True), ("3", False)]
    assert hits[0].score > hits[1].score
    a.search(("pets",), query="cat")
    assert sum(len(c) for c in calls) == 2 + 2  # two record texts once, then queries only
    b = replica("b", clock, embed=embed, index=["text"])
    sync(a, b)
    assert [r.key for r in b.search(("pets",), query="dog")] == ["1", "2", "3"]


def test_bad_namespaces_keys_and_values_are_refused():
    records = replica("a", Clock())
    with pytest.raises(ValueError, match="namespace"):
        records.put(("",), "k", {})
    with pytest.raises(ValueError, match="dict with str keys"):
        records.put(NS, "k", {1: "x"})
    with pytest.raises(TypeError, match="cannot store"):
        records.put(NS, "k", {"x": object()})
    assert records.get(NS, "k") is None


def test_malformed_entries_from_another_writer_do_not_break_reads():
    clock = Clock()
    records = replica("a", clock)
    records.put(NS, "k", {"x": 1})
    raw = Memory("b", clock=clock)
    name = 'records:["users","ann"]'
    raw.map(name).put(("k", "u"), "not a dict")
    raw.map(name).put(("k", "f", 7), "field named by an int")
    raw.map(name).put(("k", "h", "b", "n"), ["not", "an", "event"])
    raw.map(name).put("not a tuple", 1)
    records.memory.merge(raw)
    record = records.get(NS, "k")
    assert record.value == {"x": 1} and record.expires_at is None
    assert sorted([e.kind for e in records.history(NS, "k")], key=str) == [None, "added"]


def test_refresh_concurrent_with_delete_leaves_nothing_after_collection():
    clock = Clock(1000.0)
    a, b = replica("a", clock), replica("b", clock)
    a.put(NS, "k", {"x": 1}, ttl=60)
    sync(a, b)
    a.delete(NS, "k")
    b.get(NS, "k", refresh_ttl=True)
    sync(a, b)
    assert a.get(NS, "k") is None and b.get(NS, "k") is None
    a.collect()
    sync(a, b)
    name = 'records:["users","ann"]'
    kinds = sorted(decode_value(k)[1] for k in b.memory.state(name).kernel.entries)
    assert kinds == ["h", "h"]  # the added and deleted events: a deleted record keeps its history
