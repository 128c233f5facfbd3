"""Decoders refuse every malformed input with DecodeError, never another exception, never a hang.

Inputs: random bytes, valid encodings with bit flips / truncations / insertions / deletions,
and valid encodings whose decoded structure had one node replaced (to get past the msgpack
layer into the shape checks). Anything that does decode must be a usable state.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import msgpack
import pycrdt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdtmem import DecodeError, Memory, codec
from crdtmem.crdt import TYPES, Document
from crdtmem.values import decode_value, encode_value

FUZZ = settings(
    max_examples=100,
    deadline=timedelta(seconds=2),  # a decoder that goes quadratic fails here
    suppress_health_check=[HealthCheck.too_slow],
)
TAGS = sorted(TYPES)


@contextlib.contextmanager
def watchdog(seconds: float = 10.0) -> Iterator[None]:
    """Turn a hang (which a Hypothesis deadline cannot see end) into a test failure."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"decoder still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- a corpus of valid encodings ---------------------------------------------------------------------


def _memory() -> tuple[Memory, list[tuple[str, Any]]]:
    alice, bob = Memory("alice", clock=lambda: 1000.0), Memory("bob", clock=lambda: 1000.5)
    for m, other in ((alice, "x"), (bob, "y")):
        m.counter("c").increment(3)
        m.pncounter("p").increment(5)
        m.pncounter("p").decrement(2)
        m.set("s").add(other)
        m.set("s").add(("t", 1))
        m.set("s").remove(other)
        m.gset("g").add(b"bytes")
        m.register("r").assign({"k": [1, 2.5, None]})
        m.mvregister("v").assign(other)
        m.map("m").put("k", other)
        m.map("m").put(2, [True])
        m.map("m").remove(2)
        text = m.doc("d").get("text", type=pycrdt.Text)
        text.insert(0, f"hello {other}")
        del text[0:2]
    deltas = alice.take_deltas() + bob.take_deltas()
    alice.merge(bob)
    return alice, deltas


def _corpus() -> dict[str, list[bytes]]:
    memory, deltas = _memory()
    corpus: dict[str, list[bytes]] = {tag: [codec.encode_state(TYPES[tag]())] for tag in TAGS}
    for name in memory.names():
        state = memory.state(name)
        corpus[state.TAG].append(codec.encode_state(state))
    for _, delta in deltas:
        corpus[delta.TAG].append(codec.encode_state(delta))
    corpus["snapshot"] = [memory.snapshot(), Memory("empty").snapshot()]
    corpus["value"] = [
        encode_value(v, hashable=False)
        for v in ("text", -5, 2**64 - 1, 1.5, True, None, b"raw", ("a", (1, 2)), [1, {"k": (None,)}], {"a": {"b": [b""]}})
    ]
    return corpus


CORPUS = _corpus()
ALL_VALID = [(kind, data) for kind, items in CORPUS.items() for data in items]


# -- the decoders, and what a successful decode must allow -------------------------------------------


def _usable_state(state: Any, tag: str | None) -> None:
    """A decoded state re-encodes, round-trips, and joins into a fresh replica state."""
    assert tag is None or state.TAG == tag
    data = codec.encode_state(state)
    assert codec.decode_state(data) == state
    target = Document.for_replica("probe") if state.TAG == Document.TAG else TYPES[state.TAG]()
    target.join(state)
    codec.encode_state(target)


def decode_any_state(data: bytes) -> None:
    _usable_state(codec.decode_state(data), None)


def decoder_for(tag: str) -> Callable[[bytes], None]:
    def decode(data: bytes) -> None:
        _usable_state(codec.decode_state(data, tag), tag)

    decode.__name__ = f"decode_{tag}"
    return decode


def decode_snapshot(data: bytes) -> None:
    memory = Memory.from_snapshot("probe", data)
    memory.values()
    assert Memory.from_snapshot("probe", memory.snapshot()).snapshot() == memory.snapshot()


def decode_a_value(data: bytes) -> None:
    decode_value(data)


DECODERS: list[Callable[[bytes], None]] = [
    decode_any_state,
    *(decoder_for(tag) for tag in TAGS),
    decode_snapshot,
    decode_a_value,
]


def only_decode_error(decoder: Callable[[bytes], None], data: bytes) -> None:
    with watchdog():
        try:
            decoder(data)
        except DecodeError:
            pass


# -- mutations ---------------------------------------------------------------------------------------


def mutate_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few random byte-level edits (flips, cuts, inserts, deletes, odd bytes)."""
    buffer = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "set"]))
        at = draw(st.integers(0, max(len(buffer) - 1, 0)))
        if kind == "flip" and buffer:
            buffer[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del buffer[at:]
        elif kind == "insert":
            buffer[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del buffer[at : at + draw(st.integers(1, 8))]
        elif kind == "set" and buffer:
            buffer[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x90, 0xC0, 0xC1, 0xC4, 0xCF, 0xD3, 0xDC, 0xFF]))
    return bytes(buffer)


@st.composite
def byte_mutations(draw: st.DrawFn) -> bytes:
    """A valid encoding with a few random byte-level edits."""
    _, data = draw(st.sampled_from(ALL_VALID))
    return mutate_bytes(draw, data)


plain_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(),
        st.text(max_size=6),
        st.binary(max_size=6),
        st.sampled_from(["orset", "gcounter", "document", "memory", "alice", "", "x" * 200]),
        st.sampled_from([0, 1, 2, 2**64 - 1, -1]),
    ),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=6,
)


def _nodes(plain: Any, path: tuple[int, ...] = ()) -> Iterator[tuple[int, ...]]:
    yield path
    if isinstance(plain, list):
        for i, item in enumerate(plain):
            yield from _nodes(item, (*path, i))


def _replace(plain: Any, path: tuple[int, ...], new: Any) -> Any:
    if not path:
        return new
    copy = list(plain)
    copy[path[0]] = _replace(plain[path[0]], path[1:], new)
    return copy


def mutate_plain(draw: st.DrawFn, plain: Any) -> Any:
    """Replace, drop or duplicate one or two nodes of a msgpack tree."""
    for _ in range(draw(st.integers(1, 2))):
        paths = list(_nodes(plain))
        path = paths[draw(st.integers(0, len(paths) - 1))]
        action = draw(st.sampled_from(["replace", "drop", "duplicate"]))
        if action == "replace" or not path:
            plain = _replace(plain, path, draw(plain_values))
        else:
            parent_path, index = path[:-1], path[-1]
            parent = plain
            for i in parent_path:
                parent = parent[i]
            items = list(parent)
            if action == "drop":
                del items[index]
            else:
                items.insert(index, items[index])
            plain = _replace(plain, parent_path, items)
    return plain


@st.composite
def structure_mutations(draw: st.DrawFn) -> bytes:
    """A valid state or snapshot with one node of its msgpack tree replaced, dropped or duplicated."""
    kind, data = draw(st.sampled_from([(k, d) for k, d in ALL_VALID if k != "value"]))
    return msgpack.packb(mutate_plain(draw, msgpack.unpackb(data, raw=False)), use_bin_type=True)


# -- the tests ----------------------------------------------------------------------------------------


@settings(FUZZ, max_examples=200)
@given(data=st.binary(max_size=300))
def test_random_bytes_only_raise_decode_error(data: bytes) -> None:
    for decoder in DECODERS:
        only_decode_error(decoder, data)


@settings(FUZZ, max_examples=300)
@given(data=byte_mutations())
def test_mutated_encodings_only_raise_decode_error(data: bytes) -> None:
    for decoder in DECODERS:
        only_decode_error(decoder, data)


@settings(FUZZ, max_examples=400)
@given(data=structure_mutations())
def test_structurally_mutated_encodings_only_raise_decode_error(data: bytes) -> None:
    for decoder in DECODERS:
        only_decode_error(decoder, data)


@pytest.mark.parametrize(("kind", "data"), ALL_VALID, ids=[f"{k}-{i}" for i, (k, _) in enumerate(ALL_VALID)])
def test_every_corpus_entry_decodes(kind: str, data: bytes) -> None:
    if kind == "snapshot":
        decode_snapshot(data)
    elif kind == "value":
        decode_a_value(data)
    else:
        decoder_for(kind)(data)


@pytest.mark.parametrize("tag", TAGS)
def test_state_of_another_type_is_refused(tag: str) -> None:
    other = next(t for t in TAGS if t != tag)
    with pytest.raises(DecodeError, match=f"expected a {tag}"):
        codec.decode_state(CORPUS[other][-1], tag)


@pytest.mark.parametrize("tag", TAGS)
def test_oversized_input_is_refused_before_parsing(tag: str) -> None:
    data = max(CORPUS[tag], key=len)
    with pytest.raises(DecodeError, match="exceeds"):
        codec.decode_state(data, tag, max_size=len(data) - 1)
    codec.decode_state(data, tag, max_size=len(data))


@pytest.mark.parametrize("version", [0, codec.FORMAT_VERSION + 1, -1, "1", None, 2**64 - 1])
def test_unknown_format_version_is_refused(version: Any) -> None:
    body = msgpack.unpackb(CORPUS["orset"][-1], raw=False)[2]
    with pytest.raises(DecodeError, match="format version"):
        codec.decode_state(codec.pack([version, "orset", body]))
    snapshot = msgpack.unpackb(CORPUS["snapshot"][0], raw=False)
    with pytest.raises(DecodeError, match="format version"):
        Memory.from_snapshot("probe", codec.pack([version, "memory", snapshot[2]]))


def test_unhashable_type_tag_is_refused() -> None:
    with pytest.raises(DecodeError, match="unknown CRDT type tag"):
        codec.decode_state(codec.pack([codec.FORMAT_VERSION, ["orset"], []]))
    with pytest.raises(DecodeError):
        Memory.from_snapshot("probe", codec.pack([codec.FORMAT_VERSION, "memory", [["x", {"a": 1}, []]]]))


def test_deeply_nested_input_is_refused() -> None:
    deep = b"\x91" * 5000 + b"\x90"  # an array in an array in ... 5000 deep
    for decoder in DECODERS:
        only_decode_error(decoder, deep)
    tuple_in_tuple = msgpack.ExtType(1, msgpack.packb([]))
    for _ in range(3000):  # tuples inside tuples, past Python's recursion limit
        tuple_in_tuple = msgpack.ExtType(1, msgpack.packb([tuple_in_tuple]))
    with pytest.raises(DecodeError):
        decode_value(msgpack.packb(tuple_in_tuple))


def test_non_bytes_input_is_refused() -> None:
    for decoder in (codec.decode_state, decode_value, lambda d: Memory.from_snapshot("probe", d)):
        for junk in (None, "text", 12, [b"x"]):
            with pytest.raises(DecodeError):
                decoder(junk)


def test_large_causal_context_decodes_without_quadratic_blowup() -> None:
    # 20,000 stray dots of one replica, then 20,000 contiguous dots of another: adding them
    # one by one used to re-sort the stray dots after each contiguous one (minutes of CPU).
    n = 20_000
    cloud = [["zed", 10**9 + i] for i in range(n)] + [["amy", i] for i in range(1, n + 1)]
    data = codec.pack([codec.FORMAT_VERSION, "orset", [[], [[], cloud]]])
    with watchdog(5.0):
        state = codec.decode_state(data, "orset")
    assert state.kernel.ctx.vv == {"amy": n}
    assert len(state.kernel.ctx.cloud) == n
