"""Canonical, versioned encoding of every CRDT state and delta, and strict decoding.

Encoding: ``msgpack([FORMAT_VERSION, tag, body])`` where ``body`` uses only sorted lists, so
equal states give equal bytes however they were built. Decoding trusts nothing: any input that
is malformed, truncated, oversized, of another version or of the wrong shape raises
:class:`~crdtmem.errors.DecodeError` and builds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import msgpack

from .clocks import CausalContext, Dot
from .crdt import TYPES, Crdt
from .crdt.base import WHOLE
from .crdt.document import Document
from .crdt.dotkernel import META, DotKernel, KernelContainer
from .crdt.gcounter import GCounter
from .crdt.gset import GSet
from .crdt.lwwregister import LWWRegister
from .crdt.mvregister import MVRegister
from .crdt.ormap import ORMap
from .crdt.orset import ORSet
from .crdt.pncounter import PNCounter
from .errors import DecodeError
from .values import decode_canonical

__all__ = [
    "FORMAT_VERSION",
    "MAX_STATE_BYTES",
    "MAX_REPLICA_ID",
    "pack",
    "unpack",
    "encode_state",
    "decode_state",
    "state_to_plain",
    "state_from_plain",
    "encode_leaf",
    "context_to_plain",
    "context_from_plain",
]

FORMAT_VERSION = 1
MAX_STATE_BYTES = 256 * 1024 * 1024
MAX_REPLICA_ID = 128
_MAX_INT = 2**64 - 1


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


# -- shape checks -------------------------------------------------------------------------------


def _fail(what: str) -> DecodeError:
    return DecodeError(f"malformed {what}")


def _list(obj: Any, what: str, length: int | None = None) -> list:
    if not isinstance(obj, list) or (length is not None and len(obj) != length):
        raise _fail(what)
    return obj


def _replica(obj: Any) -> str:
    if not isinstance(obj, str) or not 0 < len(obj) <= MAX_REPLICA_ID:
        raise _fail("replica id")
    return obj


def _count(obj: Any, what: str, minimum: int = 1) -> int:
    if type(obj) is not int or not minimum <= obj <= _MAX_INT:
        raise _fail(what)
    return obj


def _bytes(obj: Any, what: str) -> bytes:
    if not isinstance(obj, bytes):
        raise _fail(what)
    return obj


# -- causal contexts and dot kernels -------------------------------------------------------------


def context_to_plain(ctx: CausalContext) -> list:
    return [sorted([r, c] for r, c in ctx.vv.items()), sorted([r, c] for r, c in ctx.cloud)]


def context_from_plain(obj: Any) -> CausalContext:
    vv_part, cloud_part = _list(obj, "causal context", 2)
    vv: dict[str, int] = {}
    for pair in _list(vv_part, "version vector"):
        replica, counter = _list(pair, "version vector entry", 2)
        if _replica(replica) in vv:
            raise _fail("version vector (duplicate replica)")
        vv[replica] = _count(counter, "counter")
    cloud: set[Dot] = set()
    for pair in _list(cloud_part, "dot cloud"):
        replica, counter = _list(pair, "dot", 2)
        cloud.add(Dot(_replica(replica), _count(counter, "counter")))
    ctx = CausalContext(vv, cloud)
    if cloud:
        ctx.compact()  # once: adding dots one by one re-sorts the cloud each time (quadratic)
    return ctx


def _element(obj: Any, what: str) -> bytes:
    """Bytes that must be a canonical hashable value (a set element or map key)."""
    decode_canonical(_bytes(obj, what), hashable=True)
    return obj


def _stored(obj: Any, what: str) -> bytes:
    """Bytes that must be a canonical stored value (register or map value)."""
    decode_canonical(_bytes(obj, what), hashable=False)
    return obj


def _whole_key(obj: Any, what: str) -> bytes:
    if obj != WHOLE:
        raise _fail(what)
    return obj


# (payload to plain, payload from plain, payload width, key check) per dot-kernel type
_Payload = tuple[Callable[[Any], list], Callable[[list], Any], int, Callable[[Any, str], bytes]]
_NO_PAYLOAD: _Payload = (lambda p: [], lambda rest: None, 0, _element)
_VALUE_PAYLOAD: _Payload = (lambda p: [p], lambda rest: _element(rest[0], "value"), 1, _whole_key)


def _ormap_payload_from(rest: list) -> tuple[int, str, bytes]:
    return (_count(rest[0], "timestamp"), _replica(rest[1]), _stored(rest[2], "value"))


_STAMPED_PAYLOAD: _Payload = (lambda p: [p[0], p[1], p[2]], _ormap_payload_from, 3, _element)


def _entry_to_plain(key: bytes, dots: dict[Dot, Any], payload: _Payload) -> list:
    return [key, sorted([d[0], d[1], *payload[0](p)] for d, p in dots.items())]


def _entry_from_plain(obj: Any, payload: _Payload) -> tuple[bytes, dict[Dot, Any]]:
    key, dot_list = _list(obj, "entry", 2)
    key = payload[3](key, "entry key")
    dots: dict[Dot, Any] = {}
    for item in _list(dot_list, "entry dots"):
        _list(item, "entry dot", 2 + payload[2])
        dot = Dot(_replica(item[0]), _count(item[1], "counter"))
        if dot in dots:
            raise _fail("entry (duplicate dot)")
        dots[dot] = payload[1](item[2:])
    if not dots:
        raise _fail("entry (no dots)")
    return key, dots


def _kernel_to_plain(kernel: DotKernel, payload: _Payload) -> list:
    entries = sorted(_entry_to_plain(k, dots, payload) for k, dots in kernel.entries.items())
    return [entries, context_to_plain(kernel.ctx)]


def _kernel_from_plain(obj: Any, payload: _Payload) -> DotKernel:
    entry_list, ctx_plain = _list(obj, "dot kernel", 2)
    entries: dict[Hashable, dict[Dot, Any]] = {}
    for item in _list(entry_list, "entries"):
        key, dots = _entry_from_plain(item, payload)
        if key in entries:
            raise _fail("entries (duplicate key)")
        entries[key] = dots
    return DotKernel(entries, context_from_plain(ctx_plain))


# -- per-type bodies ----------------------------------------------------------------------------


def _gcounter_to(state: GCounter) -> list:
    return sorted([r, c] for r, c in state.slots.items())


def _gcounter_from(obj: Any) -> GCounter:
    slots: dict[str, int] = {}
    for pair in _list(obj, "g-counter"):
        replica, count = _list(pair, "g-counter slot", 2)
        if _replica(replica) in slots:
            raise _fail("g-counter (duplicate slot)")
        slots[replica] = _count(count, "g-counter count")
    return GCounter(slots)


def _pncounter_from(obj: Any) -> PNCounter:
    p, n = _list(obj, "pn-counter", 2)
    return PNCounter(_gcounter_from(p), _gcounter_from(n))


def _gset_from(obj: Any) -> GSet:
    items = {_element(e, "g-set element") for e in _list(obj, "g-set")}
    return GSet(items)


def _lww_to(state: LWWRegister) -> list:
    return [state.stamp, state.replica, state.payload]


def _lww_from(obj: Any) -> LWWRegister:
    stamp, replica, payload = _list(obj, "lww-register", 3)
    if stamp == 0 and replica == "" and payload is None:
        return LWWRegister()
    return LWWRegister(_count(stamp, "timestamp"), _replica(replica), _stored(payload, "value"))


def _document_from(obj: Any) -> Document:
    update = _bytes(obj, "document update")
    try:
        import pycrdt

        pycrdt.get_state(update)  # parses the whole update; raises on garbage
    except Exception as exc:
        raise DecodeError(f"malformed Yjs update: {exc}") from exc
    return Document.from_update(update)


_KERNEL_PAYLOADS: dict[str, _Payload] = {
    ORSet.TAG: _NO_PAYLOAD,
    MVRegister.TAG: _VALUE_PAYLOAD,
    ORMap.TAG: _STAMPED_PAYLOAD,
}

_TO_PLAIN: dict[str, Callable[[Any], Any]] = {
    GCounter.TAG: _gcounter_to,
    PNCounter.TAG: lambda s: [_gcounter_to(s.p), _gcounter_to(s.n)],
    GSet.TAG: lambda s: sorted(s.items),
    LWWRegister.TAG: _lww_to,
    Document.TAG: lambda s: s.encoded(),
}
_FROM_PLAIN: dict[str, Callable[[Any], Any]] = {
    GCounter.TAG: _gcounter_from,
    PNCounter.TAG: _pncounter_from,
    GSet.TAG: _gset_from,
    LWWRegister.TAG: _lww_from,
    Document.TAG: _document_from,
}
for _tag, _payload in _KERNEL_PAYLOADS.items():
    _TO_PLAIN[_tag] = lambda s, p=_payload: _kernel_to_plain(s.kernel, p)
    _FROM_PLAIN[_tag] = lambda o, t=_tag, p=_payload: TYPES[t](_kernel_from_plain(o, p))


def state_to_plain(state: Crdt) -> list:
    """``[tag, body]`` for embedding a state in a larger message."""
    return [state.TAG, _TO_PLAIN[state.TAG](state)]


def state_from_plain(obj: Any, expected_tag: str | None = None) -> Crdt:
    """Inverse of :func:`state_to_plain`, strict."""
    tag, body = _list(obj, "state", 2)
    if not isinstance(tag, str) or tag not in _FROM_PLAIN:
        raise DecodeError(f"unknown CRDT type tag {tag!r}")
    if expected_tag is not None and tag != expected_tag:
        raise DecodeError(f"expected a {expected_tag}, got a {tag}")
    try:
        return _FROM_PLAIN[tag](body)
    except DecodeError:
        raise
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise DecodeError(f"malformed {tag}: {exc}") from exc


def encode_state(state: Crdt) -> bytes:
    """Canonical bytes of a state or delta: equal states give equal bytes."""
    return pack([FORMAT_VERSION, *state_to_plain(state)])


def decode_state(data: bytes, expected_tag: str | None = None, *, max_size: int = MAX_STATE_BYTES) -> Crdt:
    """Decode bytes from :func:`encode_state`; raises DecodeError on anything else."""
    obj = _list(unpack(data, max_size=max_size), "encoded state", 3)
    if obj[0] != FORMAT_VERSION:
        raise DecodeError(f"unsupported format version {obj[0]!r} (this build reads {FORMAT_VERSION})")
    return state_from_plain(obj[1:], expected_tag)


def encode_leaf(state: Crdt, key: Hashable) -> bytes | None:
    """Canonical bytes of one anti-entropy leaf of ``state``, or None if the leaf is empty."""
    if isinstance(state, KernelContainer) and key != WHOLE:
        if key == META:
            return pack(context_to_plain(state.kernel.ctx))
        dots = state.kernel.entries.get(key)
        return pack(_entry_to_plain(key, dots, _KERNEL_PAYLOADS[state.TAG])) if dots else None
    if isinstance(state, GSet) and key != WHOLE:
        return key if key in state.items else None
    if isinstance(state, Document):
        return state.digest_source()
    return encode_state(state)
