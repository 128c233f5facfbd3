"""Local writes join their deltas into one group per object: what a drain returns equals joining
every write's own delta, and one-dot adds are taken in directly."""

from __future__ import annotations

import random

import pycrdt
import pytest

from crdtmem import Memory, codec
from crdtmem.clocks import CausalContext, Dot
from crdtmem.memory import group_deltas
from crdtmem.values import encode_value


def _write(memory: Memory, rng: random.Random) -> None:
    element = rng.randrange(12)
    choice = rng.random()
    if choice < 0.45:
        memory.set("tags").add(element)  # a fresh element or a re-add (its delta also removes the old dot)
    elif choice < 0.6:
        memory.set("tags").remove(element)
    elif choice < 0.8:
        memory.map("people").put(f"p{element}", rng.randrange(100))
    elif choice < 0.87:
        memory.map("people").remove(f"p{element}")
    elif choice < 0.93:
        memory.mvregister("who").assign(element)
    else:
        memory.counter("steps").increment(1 + element)


def _encoded(deltas: list) -> list[tuple[str, bytes]]:
    return [(name, codec.encode_state(delta)) for name, delta in deltas]


def _joined_one_by_one(deltas: list) -> list[tuple[str, bytes]]:
    """The reference: every write's delta joined in order with the general join."""
    grouped: dict = {}
    for name, delta in deltas:
        if name in grouped:
            grouped[name].join(delta)
        else:
            grouped[name] = delta.copy()
    return _encoded(list(grouped.items()))


@pytest.mark.parametrize("seed", range(8))
def test_a_drain_equals_every_write_delta_joined_one_by_one(seed: int) -> None:
    grouped, single = Memory("a"), Memory("a")  # the same writes, drained at the end / after each
    one_by_one: list = []
    rng_grouped, rng_single = random.Random(seed), random.Random(seed)
    for _ in range(400):
        _write(grouped, rng_grouped)
        _write(single, rng_single)
        step = single.take_deltas()
        assert len(step) <= 1  # one write, one delta (none for removing what is absent)
        one_by_one += step
    drained = grouped.take_deltas()
    assert _encoded(drained) == _joined_one_by_one(one_by_one)
    assert _encoded(group_deltas(one_by_one)) == _joined_one_by_one(one_by_one)
    assert [name for name, _ in drained] == list(dict.fromkeys(name for name, _ in one_by_one))
    assert grouped.take_deltas() == [] and not grouped.has_pending_deltas()
    assert grouped.snapshot() == single.snapshot()


def test_a_drained_group_is_not_changed_by_later_writes_and_never_changes_the_state() -> None:
    memory = Memory("a")
    tags = memory.set("tags")
    tags.add("x")
    tags.add("z")
    ((_, group),) = memory.take_deltas()
    drained = codec.encode_state(group)
    tags.add("y")
    tags.remove("x")
    assert codec.encode_state(group) == drained
    ((_, later),) = memory.take_deltas()
    state = codec.encode_state(memory.state("tags"))
    group.join(later)
    group.remove(encode_value("z"))  # the group shares dot dicts with the state: changing it must not leak
    assert codec.encode_state(memory.state("tags")) == state
    assert tags.value == frozenset({"y", "z"})


def test_document_edits_drained_together_join_into_one_update() -> None:
    writer, reader = Memory("w"), Memory("r")
    text = writer.doc("notes").get("text", type=pycrdt.Text)
    for chunk in ("ab", "cd", "ef"):
        text += chunk
    ((name, group),) = writer.take_deltas()
    reader.apply_delta(name, group, "w")
    assert reader.values() == writer.values() == {"notes": {"text": "abcdef"}}


def test_single_names_the_only_dot_of_a_context() -> None:
    assert CausalContext.of_dot("a", 1).single() == ("a", 1)
    assert CausalContext.of_dot("a", 7).single() == ("a", 7)
    assert CausalContext().single() is None
    assert CausalContext({"a": 2}).single() is None
    assert CausalContext({"a": 1, "b": 1}).single() is None
    assert CausalContext({"a": 1}, [Dot("b", 3)]).single() is None
    assert CausalContext(None, [Dot("b", 3), Dot("b", 5)]).single() is None
    assert CausalContext(None, [Dot("b", 3), Dot("c", 5)]).single() is None
