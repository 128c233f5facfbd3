"""JSON values both ways: every stored value survives to_json then from_json."""

from __future__ import annotations

import json

import pytest
from hypothesis import given

from crdtmem.agent import JsonValueError, from_json, json_key, to_json, to_jsonable
from crdtmem.testing import stored_values


def test_sets_become_sorted_lists():
    assert to_json(frozenset({3, 1, "a", (1, 2)})) == ["a", 1, 3, [1, 2]]  # by canonical JSON text


def test_bytes_round_trip_as_base64():
    assert to_json(b"\x00\xff") == {"base64": "AP8="}
    assert from_json({"base64": "AP8="}) == b"\x00\xff"


def test_tuples_come_back_as_tuples_where_hashable():
    assert to_json((1, ("a", b"x"))) == [1, ["a", {"base64": "eA=="}]]
    assert from_json([1, ["a", {"base64": "eA=="}]], hashable=True) == (1, ("a", b"x"))
    assert from_json([1, [2]]) == [1, [2]]


def test_maps_with_non_string_keys_round_trip():
    value = {("t", 1): "open", 2: [1], "s": None}
    data = to_json(value)
    assert data == {"$pairs": [["s", None], [2, [1]], [["t", 1], "open"]]}
    assert from_json(json.loads(json.dumps(data))) == value


def test_a_dict_that_looks_like_a_tag_round_trips():
    for value in ({"base64": "AP8="}, {"$pairs": []}):
        assert from_json(to_json(value)) == value


@given(stored_values())
def test_every_storable_value_round_trips_through_json_text(value):
    data = json.loads(json.dumps(to_json(value)))
    back = from_json(data)
    assert json_key(to_json(back)) == json_key(to_json(value))  # text: NaN != NaN


def test_values_without_json_form_are_refused():
    with pytest.raises(JsonValueError, match="object"):
        to_json(object())
    with pytest.raises(JsonValueError, match="a type has no JSON form"):
        to_json({1: {2: set}})
    with pytest.raises(JsonValueError, match="map key"):
        from_json({"a": 1}, hashable=True)
    assert to_jsonable(object()).startswith("<object")
