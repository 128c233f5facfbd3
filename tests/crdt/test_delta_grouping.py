"""Grouping local deltas (what a flush signs) takes one-dot adds in directly and equals joining them."""

from __future__ import annotations

import random

import pytest

from crdtmem import Memory, codec
from crdtmem.clocks import CausalContext, Dot
from crdtmem.memory import group_deltas


def _joined(deltas: list) -> dict[str, bytes]:
    """The reference: every delta of a name joined one by one with the general join."""
    grouped: dict = {}
    for name, delta in deltas:
        if name in grouped:
            grouped[name].join(delta)
        else:
            grouped[name] = delta.copy()
    return {name: codec.encode_state(state) for name, state in grouped.items()}


@pytest.mark.parametrize("seed", range(8))
def test_grouping_equals_joining_every_delta_for_mixed_local_writes(seed: int) -> None:
    rng = random.Random(seed)
    memory = Memory("a")
    tags, people, who = memory.set("tags"), memory.map("people"), memory.mvregister("who")
    for _ in range(400):
        element = rng.randrange(12)
        choice = rng.random()
        if choice < 0.45:
            tags.add(element)  # a fresh element or a re-add (its delta also removes the old dot)
        elif choice < 0.6:
            tags.remove(element)
        elif choice < 0.85:
            people.put(f"p{element}", rng.randrange(100))
        elif choice < 0.92:
            people.remove(f"p{element}")
        else:
            who.assign(element)
    deltas = memory.take_deltas()
    grouped = group_deltas(deltas)
    assert {name: codec.encode_state(state) for name, state in grouped} == _joined(deltas)
    assert [name for name, _ in grouped] == list(dict.fromkeys(name for name, _ in deltas))


def test_grouping_never_changes_the_deltas_it_groups() -> None:
    memory = Memory("a")
    tags = memory.set("tags")
    for element in range(5):
        tags.add(element)
    deltas = memory.take_deltas()
    before = [codec.encode_state(delta) for _, delta in deltas]
    group_deltas(deltas)
    assert [codec.encode_state(delta) for _, delta in deltas] == before


def test_single_names_the_only_dot_of_a_context() -> None:
    assert CausalContext.of_dot("a", 1).single() == ("a", 1)
    assert CausalContext.of_dot("a", 7).single() == ("a", 7)
    assert CausalContext().single() is None
    assert CausalContext({"a": 2}).single() is None
    assert CausalContext({"a": 1, "b": 1}).single() is None
    assert CausalContext({"a": 1}, [Dot("b", 3)]).single() is None
    assert CausalContext(None, [Dot("b", 3), Dot("b", 5)]).single() is None
    assert CausalContext(None, [Dot("b", 3), Dot("c", 5)]).single() is None
