"""States and deltas share dot dicts and kernels safely, and leave the cyclic GC nothing to walk."""

from __future__ import annotations

import gc

from crdtmem import Memory, codec
from crdtmem.clocks import CausalContext
from crdtmem.crdt import ORMap, ORSet
from crdtmem.crdt.dotkernel import DotKernel
from crdtmem.values import encode_value


def _set(replica: str, *elements: str) -> ORSet:
    state = ORSet()
    for element in elements:
        state.add(replica, encode_value(element))
    return state


def test_a_copy_changes_independently_of_its_original() -> None:
    original = _set("a", "x", "y")
    before = codec.encode_state(original)
    twin = original.copy()
    twin.remove(encode_value("x"))
    twin.add("a", encode_value("y"))
    twin.add("a", encode_value("z"))
    assert codec.encode_state(original) == before
    assert sorted(twin.elements()) == sorted(map(encode_value, ["y", "z"]))


def test_joining_never_changes_the_joined_state_even_when_dot_dicts_are_shared() -> None:
    left, right = _set("a", "x"), _set("b", "x", "y")
    right_bytes = codec.encode_state(right)
    left.join(right)  # left now shares right's dot dicts for "y"
    left.remove(encode_value("y"))
    left.add("a", encode_value("x"))
    assert codec.encode_state(right) == right_bytes


def test_a_container_is_its_own_kernel_and_adopts_a_bare_one() -> None:
    bare = DotKernel(ctx=CausalContext({"a": 2}))
    state = ORSet(bare)
    assert state.kernel is state
    assert state.ctx is bare.ctx
    delta = state.add("b", encode_value("x"))
    assert type(delta) is ORSet and delta.kernel is delta


def test_stored_entries_are_untracked_by_the_cyclic_gc_after_a_collection() -> None:
    memory = Memory("alice", clock=lambda: 1000.0)
    for i in range(50):
        memory.set("s").add(f"fact-{i}")
        memory.map("m").put(f"key-{i}", i)
    memory.take_deltas()
    received = Memory("bob")
    received.merge(memory)
    decoded = Memory.from_snapshot("carol", memory.snapshot())
    gc.collect()
    states = [m.state(name) for m in (memory, received, decoded) for name in ("s", "m")]
    for state in states:
        assert isinstance(state, (ORSet, ORMap))
        tracked = [key for key, dots in state.entries.items() if gc.is_tracked(dots)]
        assert not tracked, f"{len(tracked)} dot dicts still tracked"
