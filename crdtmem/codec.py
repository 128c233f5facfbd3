"""Canonical, versioned encoding of every CRDT state and delta, and strict decoding.

Encoding: ``msgpack([FORMAT_VERSION, tag, body])`` where ``body`` is what the type's registered
:class:`~crdtmem.crdt.registry.TypeSpec` makes of the state, using only sorted lists, so equal
states give equal bytes however they were built. Decoding trusts nothing: any input that is
malformed, truncated, oversized, of another version, of an unregistered type or of the wrong
shape raises :class:`~crdtmem.errors.DecodeError` and builds nothing.

The ``expect_*`` helpers are the shape checks the built-in types decode with; use them in your
own type's ``from_plain``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import msgpack

from .clocks import CausalContext, Dot
from .crdt import Crdt
from .crdt.registry import SPECS
from .errors import DecodeError
from .limits import MAX_COUNT, check_context_size, check_count, check_name
from .values import decode_canonical

__all__ = [
    "FORMAT_VERSION",
    "MAX_STATE_BYTES",
    "MAX_REPLICA_ID",
    "pack",
    "unpack",
    "unpack_items",
    "encode_state",
    "decode_state",
    "state_to_plain",
    "state_from_plain",
    "encode_leaf",
    "context_to_plain",
    "context_from_plain",
    "expect_list",
    "expect_replica",
    "expect_dot",
    "expect_count",
    "expect_name",
    "expect_bytes",
    "expect_element",
    "expect_stored",
]

FORMAT_VERSION = 1
MAX_STATE_BYTES = 256 * 1024 * 1024
MAX_REPLICA_ID = 128


def pack(plain: Any) -> bytes:
    """msgpack with bin/str kept apart; the one way this library turns plain data into bytes."""
    return msgpack.packb(plain, use_bin_type=True)


def unpack(data: bytes, *, max_size: int = MAX_STATE_BYTES) -> Any:
    """Parse msgpack from outside; raises DecodeError on anything but one complete object."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise DecodeError(f"{len(data)} bytes exceeds the {max_size}-byte limit")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises ValueError, TypeError, StackError, ExtraData, ...
        raise DecodeError(f"malformed msgpack: {type(exc).__name__}: {exc}") from exc


_WHOLE_ARRAY_BYTES = 4096
"""Arrays up to this size are parsed at once by :func:`unpack_items`: a streaming parser costs
more to set up than such an array takes to parse, and leaves little garbage either way."""


def unpack_items(data: bytes, what: str, *, max_size: int = MAX_STATE_BYTES) -> Iterator[Any]:
    """Parse a msgpack array from outside item by item; raises DecodeError like :func:`unpack`.

    Call it where each item is turned into something else at once (a batch's deltas): only one
    item's parsed lists are alive at a time, so a long array leaves no garbage for the cyclic
    garbage collector to walk. Raises as soon as the bytes stop being one array, which may
    be after some items were yielded (a small array, :data:`_WHOLE_ARRAY_BYTES` at most, is
    parsed whole: it raises before the first item); bytes after the array are refused.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise DecodeError(f"{len(data)} bytes exceeds the {max_size}-byte limit")
    if len(data) <= _WHOLE_ARRAY_BYTES:
        try:
            items = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
        except msgpack.ExtraData:
            raise DecodeError(f"malformed {what}: extra bytes after the array") from None
        except Exception as exc:  # as below: not one complete object
            raise DecodeError(f"malformed {what}: {type(exc).__name__}: {exc}") from exc
        if type(items) is not list:
            raise DecodeError(f"malformed {what}: not an array")
        return iter(items)
    return _stream_items(data, what)


def _stream_items(data: bytes, what: str) -> Iterator[Any]:
    unpacker = msgpack.Unpacker(None, max_buffer_size=max(len(data), 1), raw=False, strict_map_key=True, use_list=True)
    unpacker.feed(data)
    try:
        count = unpacker.read_array_header()
    except Exception as exc:  # not an array, or no bytes
        raise DecodeError(f"malformed {what}: {type(exc).__name__}: {exc}") from exc
    for _ in range(count):
        try:
            item = unpacker.unpack()
        except Exception as exc:  # msgpack raises ValueError, TypeError, StackError, OutOfData, ...
            raise DecodeError(f"malformed {what}: {type(exc).__name__}: {exc}") from exc
        yield item
    if unpacker.tell() != len(data):
        raise DecodeError(f"malformed {what}: extra bytes after the array")


# -- shape checks: each returns its input or raises DecodeError ---------------------------------


def _fail(what: str) -> DecodeError:
    return DecodeError(f"malformed {what}")


def expect_list(obj: Any, what: str, length: int | None = None) -> list:
    """``obj`` if it is a list (of ``length`` items, if given)."""
    if type(obj) is list and (length is None or len(obj) == length):
        return obj
    if not isinstance(obj, list) or (length is not None and len(obj) != length):
        raise _fail(what)
    return obj


def expect_replica(obj: Any) -> str:
    """``obj`` if it is a replica id: a str of 1 to :data:`MAX_REPLICA_ID` characters."""
    if not isinstance(obj, str) or not 0 < len(obj) <= MAX_REPLICA_ID:
        raise _fail("replica id")
    return obj


def expect_count(obj: Any, what: str, minimum: int = 1) -> int:
    """``obj`` if it is an int from ``minimum`` to :data:`~crdtmem.limits.MAX_COUNT`.

    Use it for every counter, dot, sequence number and timestamp a type decodes: numbers
    past the bound raise :class:`~crdtmem.limits.NumberOutOfRangeError`.
    """
    if type(obj) is int and minimum <= obj <= MAX_COUNT:
        return obj
    return check_count(obj, what, minimum)


def expect_name(obj: Any) -> str:
    """``obj`` if it is an object name (:func:`crdtmem.limits.check_name`, the one name check)."""
    return check_name(obj)


def expect_bytes(obj: Any, what: str) -> bytes:
    """``obj`` if it is bytes."""
    if not isinstance(obj, bytes):
        raise _fail(what)
    return obj


def expect_element(obj: Any, what: str) -> bytes:
    """``obj`` if it is a canonical hashable value (a set element or map key) from ``encode_value``."""
    decode_canonical(expect_bytes(obj, what), hashable=True)
    return obj


def expect_stored(obj: Any, what: str) -> bytes:
    """``obj`` if it is a canonical stored value (a register or map value) from ``encode_value``."""
    decode_canonical(expect_bytes(obj, what), hashable=False)
    return obj


# -- causal contexts -----------------------------------------------------------------------------


def context_to_plain(ctx: CausalContext) -> list:
    cloud = [[r, c] for r in sorted(ctx.stray_replicas()) for c in sorted(ctx.stray(r))]
    return [sorted([r, c] for r, c in ctx.vv.items()), cloud]


def expect_dot(replica: Any, counter: Any) -> tuple[str, int]:
    """``(replica, counter)`` if they name a dot: a replica id and a counter from 1 to the bound.

    The pair is a plain tuple, equal to its :class:`~crdtmem.clocks.Dot`; unlike a Dot, the
    garbage collector stops tracking it once it has seen it (every decoded entry holds one).
    """
    if type(replica) is str and 0 < len(replica) <= MAX_REPLICA_ID and type(counter) is int and 0 < counter <= MAX_COUNT:
        return (replica, counter)
    return (expect_replica(replica), expect_count(counter, "counter"))


_LIST, _PAIR, _STR, _INT = {list}, {2}, {str}, {int}


def _cloud_dots(pairs: list) -> list[tuple[str, int]]:
    """The dots of a decoded dot cloud, each checked as :func:`expect_dot` does.

    A batch's cloud holds a dot per write: the checks run over whole columns in C, and only a
    cloud that fails them goes pair by pair, to raise the careful path's error.
    """
    if set(map(type, pairs)) == _LIST and set(map(len, pairs)) == _PAIR:
        replicas, counters = [p[0] for p in pairs], [p[1] for p in pairs]
        if set(map(type, replicas)) == _STR and set(map(type, counters)) == _INT:
            lengths = set(map(len, set(replicas)))
            if min(lengths) > 0 and max(lengths) <= MAX_REPLICA_ID and min(counters) > 0 and max(counters) <= MAX_COUNT:
                return list(zip(replicas, counters))
    return [expect_dot(*expect_list(pair, "dot", 2)) for pair in pairs]


def context_from_plain(obj: Any) -> CausalContext:
    vv_part, cloud_part = expect_list(obj, "causal context", 2)
    check_context_size(len(expect_list(vv_part, "version vector")), len(expect_list(cloud_part, "dot cloud")))
    if not vv_part and len(cloud_part) == 1:  # a local write's delta: one dot, compact as it is
        replica, counter = expect_list(cloud_part[0], "dot", 2)
        return CausalContext.of_dot(*expect_dot(replica, counter))
    vv: dict[str, int] = {}
    for pair in vv_part:
        replica, counter = expect_list(pair, "version vector entry", 2)
        replica, counter = expect_dot(replica, counter)
        if replica in vv:
            raise _fail("version vector (duplicate replica)")
        vv[replica] = counter
    ctx = CausalContext(vv)
    if cloud_part:
        ctx.add_strays(_cloud_dots(cloud_part))
        ctx.compact()  # once: settling dot by dot would re-sort the strays each time (quadratic)
    return ctx


# -- states, through the type registry -----------------------------------------------------------


def state_to_plain(state: Crdt) -> list:
    """``[tag, body]`` for embedding a state in a larger message."""
    return [state.TAG, SPECS[state.TAG].to_plain(state)]


def state_from_plain(obj: Any, expected_tag: str | None = None) -> Crdt:
    """Inverse of :func:`state_to_plain`, strict."""
    tag, body = expect_list(obj, "state", 2)
    spec = SPECS.get(tag) if isinstance(tag, str) else None
    if spec is None:
        raise DecodeError(f"unknown CRDT type tag {tag!r}")
    if expected_tag is not None and tag != expected_tag:
        raise DecodeError(f"expected a {expected_tag}, got a {tag}")
    try:
        return spec.from_plain(body)
    except DecodeError:
        raise
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise DecodeError(f"malformed {tag}: {exc}") from exc


def encode_state(state: Crdt) -> bytes:
    """Canonical bytes of a state or delta: equal states give equal bytes."""
    return pack([FORMAT_VERSION, *state_to_plain(state)])


def decode_state(data: bytes, expected_tag: str | None = None, *, max_size: int = MAX_STATE_BYTES) -> Crdt:
    """Decode bytes from :func:`encode_state`; raises DecodeError on anything else."""
    obj = expect_list(unpack(data, max_size=max_size), "encoded state", 3)
    if obj[0] != FORMAT_VERSION:
        raise DecodeError(f"unsupported format version {obj[0]!r} (this build reads {FORMAT_VERSION})")
    return state_from_plain(obj[1:], expected_tag)


def encode_leaf(state: Crdt, key: Hashable) -> bytes | None:
    """Canonical bytes of one anti-entropy leaf of ``state``, or None if the leaf is empty."""
    leaf = SPECS[state.TAG].encode_leaf
    return encode_state(state) if leaf is None else leaf(state, key)
