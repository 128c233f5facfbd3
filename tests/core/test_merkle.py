"""The incremental Merkle index: refresh equals rebuild, exact diffs, change marks."""

from __future__ import annotations

import gc
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdtmem import Memory
from crdtmem.crdt.dotkernel import META
from crdtmem.merkle import MerkleIndex, leaf_digest

from ..writes import random_write


def truth(memory: Memory) -> dict:
    """Every leaf's digest, straight from the memory."""
    out = {}
    for name, key in memory.leaves():
        data = memory.leaf_bytes(name, key)
        if data is not None:
            out[(name, key)] = leaf_digest(name, key, data)
    return out


def brute_diff(a: Memory, b: Memory) -> set:
    ta, tb = truth(a), truth(b)
    return {leaf for leaf in ta.keys() | tb.keys() if ta.get(leaf) != tb.get(leaf)}


def same_index(x: MerkleIndex, y: MerkleIndex) -> None:
    assert x.root() == y.root()
    assert dict(x.items()) == dict(y.items())
    assert len(x) == len(y)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_incremental_refresh_equals_rebuild(bits: int) -> None:
    rng = random.Random(bits)
    memory = Memory("alice")
    index = MerkleIndex(memory, bits=bits)
    other = Memory("bob")
    for step in range(600):
        random_write(memory if rng.random() < 0.7 else other, rng, universe=40)
        if step % 50 == 49:  # remote deltas too
            for name, delta in other.take_deltas():
                memory.apply_delta(name, delta, "bob")
        if step % 37 == 0:
            index.refresh()
            same_index(index, MerkleIndex(memory, bits=bits))
    index.refresh()
    same_index(index, MerkleIndex(memory, bits=bits))
    assert dict(index.items()) == truth(memory)


def test_local_remove_leaves_the_index() -> None:
    memory = Memory("alice")
    index = MerkleIndex(memory)
    for i in range(20):
        memory.set("s").add(i)
        memory.map("m").put(i, "v")
    index.refresh()
    memory.set("s").remove(3)
    memory.set("s").add(100)  # an add in the same batch must not hide the removal
    memory.map("m").remove(4)
    index.refresh()
    same_index(index, MerkleIndex(memory))
    for i in range(20):
        memory.set("s").remove(i)
    memory.set("empty")  # created by a read: its META leaf was never marked dirty
    index.refresh()
    same_index(index, MerkleIndex(memory))


def test_children_sum_to_their_parent_and_leaves_lie_under_it() -> None:
    rng = random.Random(3)
    memory = Memory("alice")
    for _ in range(3000):
        memory.set("s").add(rng.randrange(10**9))
    index = MerkleIndex(memory, bits=3)
    for level in range(0, 9):
        prefix = rng.getrandbits(level * 3) if level else 0
        node = index.summary(level, prefix)
        kids = index.children(level, prefix)
        assert sum(c for c, _ in kids) == node[0]
        assert sum(t for _, t in kids) % 2**128 == node[1]
        under = index.leaves_under(level, prefix)
        assert len(under) == node[0]
        assert sum(d for _, _, d in under) % 2**128 == node[1]
        assert all(pos >> (64 - level * 3) == prefix for _, pos, _ in under)


def test_index_relayouts_as_it_grows() -> None:
    memory = Memory("alice")
    index = MerkleIndex(memory, bits=2)
    for i in range(5000):
        memory.set("s").add(i)
        if i % 400 == 0:
            index.refresh()
    index.refresh()
    same_index(index, MerkleIndex(memory, bits=2))
    assert index._depth >= 6  # grew from 1 as leaves arrived


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    base=st.integers(0, 300),
    diverge_a=st.integers(0, 40),
    diverge_b=st.integers(0, 40),
    bits=st.sampled_from([1, 2, 3, 4]),
)
def test_diff_finds_exactly_the_differing_leaves(seed, base, diverge_a, diverge_b, bits) -> None:
    rng = random.Random(seed)
    a = Memory("alice")
    for _ in range(base):
        random_write(a, rng, universe=200)
    b = Memory.from_snapshot("bob", a.snapshot())
    ia, ib = MerkleIndex(a, bits=bits), MerkleIndex(b, bits=bits)
    for _ in range(diverge_a):
        random_write(a, rng, universe=200)
    for _ in range(diverge_b):
        random_write(b, rng, universe=200)
    ia.refresh()
    ib.refresh()
    expected = brute_diff(a, b)
    assert ia.diff(ib) == expected
    assert ib.diff(ia) == expected
    assert (ia.root() == ib.root()) == (not expected)


def test_changed_since_names_every_leaf_changed_after_the_mark() -> None:
    memory = Memory("alice")
    for i in range(50):
        memory.set("s").add(i)
    index = MerkleIndex(memory)
    mark = index.mark()
    assert index.changed_since(mark) == set()
    memory.set("s").add(100)
    memory.set("s").remove(7)
    memory.counter("c").increment()
    changed = index.changed_since(mark)
    from crdtmem.values import encode_value

    assert changed == {("s", encode_value(100)), ("s", encode_value(7)), ("s", META), ("c", b"")}
    later = index.mark()
    memory.set("s").add(101)
    assert index.changed_since(later) == {("s", encode_value(101)), ("s", META)}
    assert ("c", b"") in index.changed_since(mark)


def test_change_log_is_trimmed_once_marks_are_gone() -> None:
    memory = Memory("alice")
    index = MerkleIndex(memory)
    mark = index.mark()
    for i in range(6000):
        memory.set("s").add(i)
        if i % 1000 == 0:
            index.refresh()
    assert len(index.changed_since(mark)) == 6001  # kept while the mark lives
    index.release(mark)
    later = index.mark()
    del later
    gc.collect()
    for i in range(5000):
        memory.set("s").add(-i - 1)
    index.refresh()
    assert len(index._log) < 6000
    with pytest.raises(ValueError):
        index.changed_since(mark)
