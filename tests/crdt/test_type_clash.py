"""A name written with two types: one object per type, read the same way on every replica."""

from __future__ import annotations

import pytest

from crdtmem import DecodeError, Memory, TypeMismatchError, codec
from crdtmem.merkle import MerkleIndex


def _writes(replica: str, kind: str) -> list:
    memory = Memory(replica)
    if kind == "set":
        memory.set("x").add("fact")
    else:
        memory.counter("x").increment(3)
    return memory.take_deltas()


def _receive(memory: Memory, *batches: list) -> Memory:
    for deltas in batches:
        memory.check_deltas(deltas)
        for name, delta in deltas:
            memory.apply_delta(name, delta, "peer")
    return memory


def test_either_arrival_order_reads_the_lowest_tag_and_keeps_the_other_type() -> None:
    as_set, as_counter = _writes("bob", "set"), _writes("carol", "counter")
    first = _receive(Memory("alice"), as_set, as_counter)
    second = _receive(Memory("dave"), as_counter, as_set)
    for memory in (first, second):
        assert memory.values() == {"x": 3}  # "gcounter" sorts before "orset"
        assert memory.type_of("x") == "gcounter" and memory.names() == ["x"]
        assert memory.set("x").value == frozenset({"fact"})
        assert memory.conflicts() == {"x": ["gcounter", "orset"]}
    assert first.snapshot() == second.snapshot()
    assert MerkleIndex(first).root() == MerkleIndex(second).root()


def test_each_new_type_is_reported_once() -> None:
    memory = _receive(Memory("alice"), _writes("bob", "set"))
    assert memory.take_clashes() == []
    _receive(memory, _writes("carol", "counter"), _writes("carol", "counter"))
    assert memory.take_clashes() == [("x", ("gcounter", "orset"))]
    assert memory.take_clashes() == []


def test_a_memory_without_a_clash_encodes_as_one_entry_per_name() -> None:
    memory = Memory("alice")
    memory.set("b").add(1)
    memory.counter("a").increment()
    memory.register("c").assign("v")
    plain = [[name, *codec.state_to_plain(memory.state(name))] for name in ["a", "b", "c"]]
    assert memory.snapshot() == codec.pack([codec.FORMAT_VERSION, "memory", plain])


def test_a_snapshot_with_a_clash_round_trips_and_raises_no_new_clash() -> None:
    memory = _receive(Memory("alice"), _writes("bob", "set"), _writes("carol", "counter"))
    restored = Memory.from_snapshot("dave", memory.snapshot())
    assert restored.snapshot() == memory.snapshot()
    assert restored.conflicts() == memory.conflicts() and restored.take_clashes() == []
    assert restored.set("x").value == frozenset({"fact"}) and restored.value("x") == 3


def test_a_snapshot_naming_one_object_twice_as_one_type_is_refused() -> None:
    memory = _receive(Memory("alice"), _writes("bob", "set"))
    ((entry),) = codec.unpack(memory.snapshot())[2]
    with pytest.raises(DecodeError, match="twice"):
        Memory.from_snapshot("dave", codec.pack([codec.FORMAT_VERSION, "memory", [entry, entry]]))


def test_local_access_reaches_each_held_type_and_refuses_any_other() -> None:
    memory = _receive(Memory("alice"), _writes("bob", "set"), _writes("carol", "counter"))
    with pytest.raises(TypeMismatchError, match="'x' is a counter, not a map"):
        memory.map("x")
    memory.set("x").add("mine")
    ((name, delta),) = memory.take_deltas()
    assert name == "x" and delta.TAG == "orset"  # a batch names the object, its delta the type
    other = _receive(Memory("erin"), _writes("carol", "counter"), [(name, delta)])
    assert other.set("x").value == frozenset({"mine"})


def test_the_merkle_index_follows_a_lower_tag_taking_the_name_over() -> None:
    memory = _receive(Memory("alice"), _writes("bob", "set"))
    index = MerkleIndex(memory)
    _receive(memory, _writes("carol", "counter"))  # the set moves to its clash key
    index.refresh()
    assert index.root() == MerkleIndex(memory).root()
    assert len(index) == len(list(memory.leaves()))


def test_a_batch_may_not_use_a_reserved_key() -> None:
    with pytest.raises(DecodeError, match="reserved"):
        Memory("alice").check_deltas([("\x00orset\x00x", _writes("bob", "set")[0][1])])
    with pytest.raises(ValueError):
        Memory("alice").set("\x00orset\x00x")


def test_a_full_state_merge_carries_both_types() -> None:
    memory = _receive(Memory("alice"), _writes("bob", "set"), _writes("carol", "counter"))
    copy = Memory("dave")
    copy.merge(memory)
    assert copy.snapshot() == memory.snapshot() and copy.conflicts() == memory.conflicts()
