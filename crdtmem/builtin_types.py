"""crdtmem's own eight types, registered exactly as a user's type would be.

Each registration names the type's wire body (here: how the codec writes and strictly reads
it), its handle (:mod:`crdtmem.handles`), its anti-entropy leaf encoding and its rollback
policy (:mod:`crdtmem.rollback`). Importing ``crdtmem`` imports this module; the wire bodies
below are part of the canonical format and must never change.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from . import rollback
from .clocks import Dot
from .codec import (
    MAX_REPLICA_ID,
    context_from_plain,
    context_to_plain,
    encode_state,
    expect_bytes,
    expect_count,
    expect_dot,
    expect_element,
    expect_list,
    expect_replica,
    expect_stored,
    pack,
)
from .crdt import WHOLE, Document, GCounter, GSet, LWWRegister, MVRegister, ORMap, ORSet, PNCounter
from .crdt.document import update_footprint
from .crdt.dotkernel import META
from .crdt.registry import TypeSpec, register_type
from .errors import DecodeError
from .limits import MAX_CONTEXT_REPLICAS, MAX_COUNT, OversizedContextError
from .handles import (
    CounterHandle,
    GSetHandle,
    MapHandle,
    MVRegisterHandle,
    PNCounterHandle,
    RegisterHandle,
    SetHandle,
)

__all__ = ["GCOUNTER", "PNCOUNTER", "GSET", "ORSET", "LWWREGISTER", "MVREGISTER", "ORMAP", "DOCUMENT"]


# -- dot kernels (OR-Set, MV-Register, OR-Map) ---------------------------------------------------

# (payload to plain, payload from plain, payload width, key check) per dot-kernel type
_Payload = tuple[Callable[[Any], list], Callable[[list], Any], int, Callable[[Any, str], bytes]]


def _whole_key(obj: Any, what: str) -> bytes:
    if obj != WHOLE:
        raise DecodeError(f"malformed {what}")
    return obj


def _stamped_from(rest: list) -> tuple[int, str, bytes]:
    return (expect_count(rest[0], "timestamp"), expect_replica(rest[1]), expect_stored(rest[2], "value"))


_NO_PAYLOAD: _Payload = (lambda p: [], lambda rest: None, 0, expect_element)
_VALUE_PAYLOAD: _Payload = (lambda p: [p], lambda rest: expect_element(rest[0], "value"), 1, _whole_key)
_STAMPED_PAYLOAD: _Payload = (lambda p: [p[0], p[1], p[2]], _stamped_from, 3, expect_element)


def _entry_to_plain(key: bytes, dots: dict[Dot, Any], payload: _Payload) -> list:
    to_plain = payload[0]
    if len(dots) == 1:  # the common entry: one dot, nothing to sort
        ((d, p),) = dots.items()
        return [key, [[d[0], d[1], *to_plain(p)]]]
    return [key, sorted([[d[0], d[1], *to_plain(p)] for d, p in dots.items()])]


def _kernel_codec(cls: type, payload: _Payload) -> tuple[Callable, Callable, Callable]:
    """(to_plain, from_plain, encode_leaf) of a type whose state is one dot kernel."""

    check_key, payload_from, width_extra = payload[3], payload[1], payload[2]
    width = 2 + width_extra

    def to_plain(state: Any) -> list:
        kernel_entries = state.kernel.entries
        entries = []
        for key in sorted(kernel_entries):  # keys are distinct: sorting them sorts the entries
            dots = kernel_entries[key]
            if len(dots) == 1 and not width_extra:  # the common entry: one dot, no payload
                ((d, _),) = dots.items()
                entries.append([key, [[d[0], d[1]]]])
            else:
                entries.append(_entry_to_plain(key, dots, payload))
        return [entries, context_to_plain(state.kernel.ctx)]

    def from_plain(obj: Any) -> Any:
        entry_list, ctx_plain = expect_list(obj, "dot kernel", 2)
        entries: dict[Hashable, dict[Dot, Any]] = {}
        for entry in expect_list(entry_list, "entries"):
            key, dot_list = entry if type(entry) is list and len(entry) == 2 else expect_list(entry, "entry", 2)
            if check_key(key, "entry key") in entries:
                raise DecodeError("malformed entries (duplicate key)")
            if (type(dot_list) is list and len(dot_list) == 1
                    and type(item := dot_list[0]) is list and len(item) == width):
                # the common entry: one dot (and, for a set, no payload); checked as expect_dot does
                replica, counter = item[0], item[1]
                if not (type(replica) is str and 0 < len(replica) <= MAX_REPLICA_ID
                        and type(counter) is int and 0 < counter <= MAX_COUNT):
                    replica, counter = expect_dot(replica, counter)
                entries[key] = {(replica, counter): payload_from(item[2:]) if width_extra else None}
                continue
            dots: dict[Dot, Any] = {}
            for item in expect_list(dot_list, "entry dots"):
                expect_list(item, "entry dot", width)
                dot = expect_dot(item[0], item[1])
                if dot in dots:
                    raise DecodeError("malformed entry (duplicate dot)")
                dots[dot] = payload_from(item[2:])
            if not dots:
                raise DecodeError("malformed entry (no dots)")
            entries[key] = dots
        return cls.build(entries, context_from_plain(ctx_plain))

    def encode_leaf(state: Any, key: Hashable) -> bytes | None:
        if key == WHOLE:
            return encode_state(state)
        if key == META:
            return pack(context_to_plain(state.kernel.ctx))
        dots = state.kernel.entries.get(key)
        return pack(_entry_to_plain(key, dots, payload)) if dots else None

    return to_plain, from_plain, encode_leaf


# -- the other bodies ----------------------------------------------------------------------------


def _gcounter_to(state: GCounter) -> list:
    return sorted([r, c] for r, c in state.slots.items())


def _gcounter_from(obj: Any) -> GCounter:
    slots: dict[str, int] = {}
    for pair in expect_list(obj, "g-counter"):
        replica, count = expect_list(pair, "g-counter slot", 2)
        if expect_replica(replica) in slots:
            raise DecodeError("malformed g-counter (duplicate slot)")
        if len(slots) >= MAX_CONTEXT_REPLICAS:
            raise OversizedContextError(f"a g-counter of more than {MAX_CONTEXT_REPLICAS} slots")
        slots[replica] = expect_count(count, "g-counter count")
    return GCounter(slots)


def _pncounter_from(obj: Any) -> PNCounter:
    p, n = expect_list(obj, "pn-counter", 2)
    return PNCounter(_gcounter_from(p), _gcounter_from(n))


def _gset_from(obj: Any) -> GSet:
    return GSet({expect_element(e, "g-set element") for e in expect_list(obj, "g-set")})


def _gset_leaf(state: GSet, key: Hashable) -> bytes | None:
    if key == WHOLE:
        return encode_state(state)
    return key if key in state.items else None  # type: ignore[return-value]


def _lww_from(obj: Any) -> LWWRegister:
    stamp, replica, payload = expect_list(obj, "lww-register", 3)
    if stamp == 0 and replica == "" and payload is None:
        return LWWRegister()
    return LWWRegister(expect_count(stamp, "timestamp"), expect_replica(replica), expect_stored(payload, "value"))


def _document_from(obj: Any) -> Document:
    update = expect_bytes(obj, "document update")
    try:
        update_footprint(update).check()  # parses the whole update (and keeps what it read)
    except ValueError as exc:
        raise DecodeError(f"malformed Yjs update: {exc}") from exc
    return Document.from_update(update)


# -- registrations -------------------------------------------------------------------------------

GCOUNTER = register_type(TypeSpec(
    tag=GCounter.TAG, cls=GCounter, friendly="counter",
    to_plain=_gcounter_to, from_plain=_gcounter_from,
    handle=CounterHandle, rollback=rollback.GCOUNTER_ROLLBACK,
))
PNCOUNTER = register_type(TypeSpec(
    tag=PNCounter.TAG, cls=PNCounter, friendly="pncounter",
    to_plain=lambda s: [_gcounter_to(s.p), _gcounter_to(s.n)], from_plain=_pncounter_from,
    handle=PNCounterHandle, rollback=rollback.PNCOUNTER_ROLLBACK,
))
GSET = register_type(TypeSpec(
    tag=GSet.TAG, cls=GSet, friendly="gset",
    to_plain=lambda s: sorted(s.items), from_plain=_gset_from,
    handle=GSetHandle, encode_leaf=_gset_leaf, rollback=rollback.GSET_ROLLBACK,
))
_to, _from, _leaf = _kernel_codec(ORSet, _NO_PAYLOAD)
ORSET = register_type(TypeSpec(
    tag=ORSet.TAG, cls=ORSet, friendly="set",
    to_plain=_to, from_plain=_from,
    handle=SetHandle, encode_leaf=_leaf, rollback=rollback.ORSET_ROLLBACK,
))
LWWREGISTER = register_type(TypeSpec(
    tag=LWWRegister.TAG, cls=LWWRegister, friendly="register",
    to_plain=lambda s: [s.stamp, s.replica, s.payload], from_plain=_lww_from,
    handle=RegisterHandle, rollback=rollback.LWWREGISTER_ROLLBACK,
))
_to, _from, _leaf = _kernel_codec(MVRegister, _VALUE_PAYLOAD)
MVREGISTER = register_type(TypeSpec(
    tag=MVRegister.TAG, cls=MVRegister, friendly="mvregister",
    to_plain=_to, from_plain=_from,
    handle=MVRegisterHandle, encode_leaf=_leaf, rollback=rollback.MVREGISTER_ROLLBACK,
))
_to, _from, _leaf = _kernel_codec(ORMap, _STAMPED_PAYLOAD)
ORMAP = register_type(TypeSpec(
    tag=ORMap.TAG, cls=ORMap, friendly="map",
    to_plain=_to, from_plain=_from,
    handle=MapHandle, encode_leaf=_leaf, rollback=rollback.ORMAP_ROLLBACK,
))
DOCUMENT = register_type(TypeSpec(
    tag=Document.TAG, cls=Document, friendly="doc",
    to_plain=Document.encoded, from_plain=_document_from,
    handle=lambda memory, name, state: state.doc,  # agents edit the pycrdt Doc itself
    encode_leaf=lambda s, key: s.digest_source(),
    rollback=rollback.DOCUMENT_ROLLBACK,
    new=Document.for_replica, value=Document.value, watch=Document.watch,
))
del _to, _from, _leaf
