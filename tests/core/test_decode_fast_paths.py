"""The decoders' fast paths refuse exactly what the careful paths refuse."""

from __future__ import annotations

import random

import msgpack
import pytest

from crdtmem import DecodeError, Memory, codec
from crdtmem.clocks import CausalContext, Dot
from crdtmem.identity import Identity, Keyring, verify
from crdtmem.protocol.batch import _signed_part, open_batch
from crdtmem.values import decode_canonical, encode_value

ALICE = Identity.from_private_bytes(random.Random(3).randbytes(32))


@pytest.mark.parametrize(
    "data",
    [
        b"\xcc\x05",  # 5 as a uint8: not minimal
        b"\xd9\x01a",  # "a" as a str8: not minimal
        b"\xc5\x00\x01x",  # b"x" as a bin16: not minimal
        b"\xa1\xff",  # a str that is not UTF-8
        b"\x05\x05",  # a value, then trailing bytes
        b"\xa3ab",  # truncated
    ],
)
def test_non_canonical_scalar_values_are_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_canonical(data)


@pytest.mark.parametrize("value", [0, -1, 2**64 - 1, -(2**63), "", "fact", b"\x00bytes", True, None, 1.5, ("a", 1)])
def test_canonical_values_decode_to_what_was_encoded(value: object) -> None:
    assert decode_canonical(encode_value(value)) == value


LARGE = [f"item {i}" for i in range(1000)]  # over codec._WHOLE_ARRAY_BYTES: parsed item by item


def test_unpack_items_yields_each_item_of_one_array() -> None:
    assert list(codec.unpack_items(codec.pack([[1], "two", b"3"]), "list")) == [[1], "two", b"3"]
    assert len(codec.pack(LARGE)) > codec._WHOLE_ARRAY_BYTES
    assert list(codec.unpack_items(codec.pack(LARGE), "list")) == LARGE


@pytest.mark.parametrize(
    "data",
    [
        codec.pack({"not": "an array"}),
        codec.pack([1, 2]) + b"\xc0",  # bytes after the array
        codec.pack([1, 2])[:-1],  # truncated
        b"\xdd\xff\xff\xff\xff",  # claims 4 billion items, holds none
        b"",
        codec.pack({str(i): i for i in range(1000)}),  # the same, past the size parsed whole
        codec.pack(LARGE) + b"\xc0",
        codec.pack(LARGE)[:-1],
    ],
)
def test_unpack_items_refuses_what_is_not_exactly_one_array(data: bytes) -> None:
    with pytest.raises(DecodeError):
        list(codec.unpack_items(data, "list"))


@pytest.mark.parametrize("items", [["small"], LARGE])
def test_unpack_items_names_bytes_after_the_array_alike_at_any_size(items: list) -> None:
    with pytest.raises(DecodeError, match="extra bytes after the array"):
        list(codec.unpack_items(codec.pack(items) + b"\xc0", "list"))


def test_a_signed_batch_with_bytes_after_its_delta_list_is_refused() -> None:
    memory = Memory(ALICE.peer_id)
    memory.set("facts").add("one")
    body = codec.pack([[name, *codec.state_to_plain(delta)] for name, delta in memory.take_deltas()]) + b"\xc0"
    wire = codec.pack([ALICE.peer_id, 1, [], body, ALICE.sign(_signed_part(ALICE.peer_id, 1, [], body))])
    keyring = Keyring()
    keyring.add(ALICE)
    with pytest.raises(DecodeError, match="extra bytes"):
        open_batch(wire, keyring, verify, max_size=1 << 20)


@pytest.mark.parametrize("bad", [["", 1], ["a" * 129, 1], ["a", 0], ["a", 2**62 + 1], [1, 1], ["a", 1.0], ["a"]])
def test_a_context_naming_a_malformed_dot_is_refused(bad: list) -> None:
    with pytest.raises(DecodeError):
        codec.context_from_plain([[], [bad]])
    with pytest.raises(DecodeError):
        codec.context_from_plain([[bad], []])


def test_a_decoded_context_is_compact() -> None:
    ctx = codec.context_from_plain([[["a", 2]], [["a", 3], ["a", 5], ["b", 1], ["a", 1]]])
    assert ctx.vv == {"a": 3, "b": 1}
    assert ctx.cloud == {("a", 5)}
    assert msgpack.unpackb(codec.pack(codec.context_to_plain(ctx))) == [[["a", 3], ["b", 1]], [["a", 5]]]


@pytest.mark.parametrize("dot", [[1, 5], ["", 5], ["a", 0], ["a", 2**64], ["a", 1.5], ["a"], ["a", 5, "extra"]])
def test_a_one_dot_entry_with_a_bad_dot_is_refused(dot: list) -> None:
    body = [[[encode_value("x"), [dot]]], [[], [["a", 5]]]]
    with pytest.raises(DecodeError):
        codec.state_from_plain(["orset", body])


def test_a_dot_cloud_decodes_to_the_context_its_dots_make() -> None:
    pairs = [["a", 5], ["b", 2], ["a", 7], ["a", 5], ["a", 3], ["c", 1]]
    ctx = codec.context_from_plain([[["a", 2]], pairs])
    assert ctx == CausalContext({"a": 3, "c": 1}, [Dot("a", 5), Dot("a", 7), Dot("b", 2)])
    assert Dot("a", 4) not in ctx and Dot("a", 5) in ctx and ctx.max("a") == 7
    with pytest.raises(DecodeError):
        codec.context_from_plain([[], [["a", 5], ["a", 0]]])


@pytest.mark.parametrize(
    "bad",
    [["a", 0], ["a", True], ["a", 1.0], ["a", 2**64], ["", 3], ["x" * (codec.MAX_REPLICA_ID + 1), 3], [b"a", 3],
     ["a"], ["a", 3, 4], ("a", 3), "a3"],
)
def test_a_dot_cloud_with_one_bad_pair_among_many_is_refused(bad: object) -> None:
    cloud = [["a", c] for c in range(5, 300)] + [bad]
    with pytest.raises(DecodeError):
        codec.context_from_plain([[], cloud])


def test_a_large_cloud_of_several_replicas_decodes_dot_for_dot() -> None:
    pairs = [["a", c] for c in range(5, 300, 2)] + [["b", c] for c in range(2, 50)]
    ctx = codec.context_from_plain([[["b", 1]], pairs])
    assert ctx == CausalContext({"b": 49}, [Dot("a", c) for c in range(5, 300, 2)])
