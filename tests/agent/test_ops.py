"""The agent vocabulary: typed operations parsed from JSON commands and applied to a memory."""

from __future__ import annotations

import pytest

from crdtmem import Memory
from crdtmem.agent import (
    OPERATIONS,
    CounterIncrement,
    MapPut,
    MapRemove,
    MVRegisterAssign,
    OpError,
    PNCounterDecrement,
    SetAdd,
    TextAppend,
    apply,
    apply_command,
    parse_op,
)

EVERY_COMMAND = [
    {"op": "counter.increment", "name": "c", "n": 2},
    {"op": "pncounter.increment", "name": "p", "n": 5},
    {"op": "pncounter.decrement", "name": "p", "n": 2},
    {"op": "set.add", "name": "s", "value": ["sky", "blue"]},
    {"op": "set.add", "name": "s", "value": "x"},
    {"op": "set.remove", "name": "s", "value": "x"},
    {"op": "gset.add", "name": "g", "value": {"base64": "AAE="}},
    {"op": "register.assign", "name": "r", "value": {"phase": "done", "steps": [1, 2]}},
    {"op": "mvregister.assign", "name": "mv", "value": [1, 2]},
    {"op": "map.put", "name": "m", "key": ["t", 1], "value": "open"},
    {"op": "map.put", "name": "m", "key": "gone", "value": 1},
    {"op": "map.remove", "name": "m", "key": "gone"},
    {"op": "text.append", "name": "d", "text": "hello"},
]


def test_every_existing_command_applies_with_its_fields():
    memory = Memory("a")
    for command in EVERY_COMMAND:
        apply_command(memory, command)
    assert memory.counter("c").value == 2
    assert memory.pncounter("p").value == 3
    assert memory.set("s").value == {("sky", "blue")}
    assert memory.gset("g").value == {b"\x00\x01"}
    assert memory.register("r").value == {"phase": "done", "steps": [1, 2]}
    assert memory.mvregister("mv").values == {(1, 2)}
    assert memory.map("m").value == {("t", 1): "open"}
    assert str(memory.doc("d").get("text", type=__import__("pycrdt").Text)) == "hello"


def test_every_op_string_has_a_class_and_round_trips_through_its_command():
    assert {c["op"] for c in EVERY_COMMAND} == set(OPERATIONS)
    for command in EVERY_COMMAND:
        op = parse_op(command)
        assert isinstance(op, OPERATIONS[command["op"]])
        assert parse_op(op.to_command()) == op


def test_parsed_command_equals_the_typed_operation():
    assert parse_op({"op": "counter.increment", "name": "c"}) == CounterIncrement("c", 1)
    assert parse_op({"op": "set.add", "name": "s", "value": [1, [2]], "id": 7}) == SetAdd("s", (1, (2,)))
    assert parse_op({"op": "map.put", "name": "m", "key": "k", "value": [1]}) == MapPut("m", "k", [1])
    assert parse_op({"op": "text.append", "name": "d", "text": "t"}) == TextAppend("d", "t", "text")


def test_typed_operations_apply_directly():
    memory = Memory("a")
    apply(memory, CounterIncrement("tasks", 3))
    apply(memory, PNCounterDecrement("balance", 2))
    apply(memory, MapPut("board", "t1", {"owner": "ann"}))
    apply(memory, MapRemove("board", "t1"))
    apply(memory, MVRegisterAssign("status", "ready"))
    assert memory.values() == {"tasks": 3, "balance": -2, "board": {}, "status": frozenset({"ready"})}


def test_unknown_op_is_refused_by_name():
    with pytest.raises(OpError, match="unknown op 'no.such'") as caught:
        parse_op({"op": "no.such", "name": "x"})
    assert caught.value.op == "no.such" and caught.value.field is None


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ({"op": "set.add", "name": "s"}, "value"),
        ({"op": "map.put", "name": "m", "value": 1}, "key"),
        ({"op": "map.remove", "name": "m"}, "key"),
        ({"op": "text.append", "name": "d"}, "text"),
        ({"op": "counter.increment"}, "name"),
        ({"name": "x"}, "op"),
    ],
)
def test_missing_field_is_named(command, field):
    with pytest.raises(OpError, match="missing") as caught:
        parse_op(command)
    assert caught.value.field == field


@pytest.mark.parametrize("n", [2.7, 2.0, "2", True, None, 0, -3])
def test_counter_amount_must_be_a_positive_integer(n):
    memory = Memory("a")
    with pytest.raises(OpError, match="field 'n'") as caught:
        apply_command(memory, {"op": "counter.increment", "name": "c", "n": n})
    assert caught.value.op == "counter.increment" and caught.value.field == "n"
    assert memory.counter("c").value == 0


def test_fractional_amount_is_refused_not_truncated():
    with pytest.raises(OpError, match=r"counter.increment field 'n': must be a positive integer, got 2.7"):
        parse_op({"op": "counter.increment", "name": "c", "n": 2.7})


def test_unstorable_values_are_refused_with_op_and_field():
    with pytest.raises(OpError, match="set.add field 'value'"):
        parse_op({"op": "set.add", "name": "s", "value": {"a": 1}})
    with pytest.raises(OpError, match="map.put field 'key'"):
        MapPut("m", ["a", "list"], 1)
    with pytest.raises(OpError, match="register.assign field 'value'"):
        parse_op({"op": "register.assign", "name": "r", "value": {"base64": "!!"}})
    with pytest.raises(OpError, match="counter.increment field 'name'"):
        CounterIncrement("", 1)


def test_op_error_is_a_value_error():
    assert issubclass(OpError, ValueError)
