"""The anti-entropy wire format: message kinds and shapes, bitmaps and repair rows.

Everything here is pure encoding and strict decoding, with no session state: use it to pack
or check a message, or to read the rows of a repair message, without a
:class:`~crdtmem.protocol.antientropy.Reconciler`. Decoders raise
:class:`~crdtmem.errors.DecodeError` and never apply anything.

A repair message carries *rows* ``[name, tag, body, absent keys, marks, complete]``, one per
object, in strictly increasing name order, inside a block ``[replicas, rows]`` where every
replica id of the bodies is replaced by an index into one table (:func:`compact`).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from ... import codec, limits
from ...crdt import TYPES, Crdt
from ...crdt.dotkernel import META
from ...errors import DecodeError
from ...memory import split_key

__all__ = [
    "PROTOCOL_VERSION",
    "BEGIN",
    "STEP",
    "REPAIR",
    "REPLY",
    "FINAL",
    "EQUAL",
    "KINDS",
    "ROOT_WIDTH",
    "MAX_LIST",
    "MAX_NAME",
    "SALT_MAX",
    "encode_message",
    "decode_message",
    "check_kind",
    "pack_bits",
    "unpack_bits",
    "compact",
    "expand",
    "sent_keys",
    "Received",
    "decode_rows",
]

PROTOCOL_VERSION = 1
BEGIN, STEP, REPAIR, REPLY, FINAL, EQUAL = "ae.begin", "ae.step", "ae.repair", "ae.reply", "ae.final", "ae.equal"
KINDS = (BEGIN, STEP, REPAIR, REPLY, FINAL, EQUAL)
_LENGTHS = {BEGIN: 11, STEP: 7, REPAIR: 4, REPLY: 4, FINAL: 3, EQUAL: 1}
ROOT_WIDTH = 8
MAX_LIST = 1 << 24
MAX_NAME = limits.MAX_NAME
"""The longest object name (the one bound of :mod:`crdtmem.limits`, kept here for callers)."""
SALT_MAX = 2**64 - 1


def encode_message(msg: list) -> bytes:
    """The bytes of one message (what :attr:`Reconciler.stats` counts)."""
    return codec.pack(msg)


def decode_message(data: bytes) -> list:
    """Parse one message's bytes; raises DecodeError unless it is a list with a known kind."""
    msg = codec.unpack(data)
    check_kind(msg)
    return msg


def check_kind(msg: Any) -> str:
    """The kind of a decoded message; raises DecodeError unless it is known and has its length."""
    if not isinstance(msg, list) or not msg or not isinstance(msg[0], str) or msg[0] not in _LENGTHS:
        raise DecodeError("not an anti-entropy message")
    if len(msg) != _LENGTHS[msg[0]]:
        raise DecodeError(f"malformed {msg[0]} message")
    return msg[0]


def pack_bits(flags: list[bool]) -> bytes:
    """One bit per flag, least significant bit first, zero-padded to whole bytes."""
    out = bytearray((len(flags) + 7) >> 3)
    for i, flag in enumerate(flags):
        if flag:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def unpack_bits(data: Any, n: int, what: str) -> list[bool]:
    """Inverse of :func:`pack_bits` for exactly ``n`` flags; raises DecodeError naming ``what``."""
    if not isinstance(data, bytes) or len(data) != (n + 7) >> 3:
        raise DecodeError(f"malformed {what} bitmap")
    if n & 7 and data[-1] >> (n & 7):
        raise DecodeError(f"malformed {what} bitmap (padding bits set)")
    return [bool(data[i >> 3] >> (i & 7) & 1) for i in range(n)]


class _NotCompactable(Exception):
    pass


def compact(rows: list[list]) -> list:
    """``[replicas, rows]``: every replica id (the only strings in a state body) replaced by a
    negative index into one table per message, so a dot costs a byte or two, not its id.

    A body holding a negative int of its own (none of today's types) goes uncompacted.
    """
    table: dict[str, int] = {}

    def walk(obj: Any) -> Any:
        if isinstance(obj, str):
            index = table.setdefault(obj, len(table))
            return -1 - index
        if isinstance(obj, list):
            return [walk(item) for item in obj]
        if type(obj) is int and obj < 0:
            raise _NotCompactable
        return obj

    try:
        compacted = [[name, tag, walk(body), *rest] for name, tag, body, *rest in rows]
    except _NotCompactable:
        return [None, rows]
    return [list(table), compacted]


def expand(block: Any) -> list:
    """Inverse of :func:`compact`, strict (DecodeError on a bad table or index)."""
    if not isinstance(block, list) or len(block) != 2 or not isinstance(block[1], list):
        raise DecodeError("malformed repair block")
    table, rows = block
    if table is None:
        return rows
    if not isinstance(table, list) or not all(isinstance(r, str) for r in table) or len(set(table)) != len(table):
        raise DecodeError("malformed replica table")

    def walk(obj: Any) -> Any:
        if isinstance(obj, list):
            return [walk(item) for item in obj]
        if type(obj) is int and obj < 0:
            if -obj > len(table):
                raise DecodeError("replica index out of range")
            return table[-1 - obj]
        if isinstance(obj, str):
            raise DecodeError("uncompacted string in a compacted body")
        return obj

    out = []
    for row in rows:
        if not isinstance(row, list) or len(row) != 6:
            raise DecodeError("malformed repair row")
        out.append([row[0], row[1], walk(row[2]), *row[3:]])
    return out


def sent_keys(partial: Crdt) -> list[Hashable]:
    """The keys a partial state carries entries for, in the order marks refer to them."""
    return sorted(k for k in partial.leaf_keys() if k != META)


@dataclass
class Received:
    """One object of a repair message, decoded."""

    tag: str
    partial: Crdt
    keys: list[Hashable]  # sent_keys(partial)
    absent: list[bytes]
    marks: list[bool]
    complete: bool  # its sender made it carry every live dot outside a context of ours


def decode_rows(block: Any, marks_for: dict[str, list] | None, *, complete_allowed: bool) -> dict[str, Received]:
    """Decode a repair message's rows strictly; nothing is applied here.

    Args:
        block: the message's ``[replicas, rows]`` block.
        marks_for: per name, the keys of the row this side sent last (each row's marks hold
            one bit per key); None where the peer may send no marks.
        complete_allowed: whether a row's *complete* flag is believed (only where the peer
            knows a context of ours).
    """
    rows = expand(block)
    out: dict[str, Received] = {}
    last = None
    for row in rows:
        if not isinstance(row, list) or len(row) != 6:
            raise DecodeError("malformed repair row")
        name, tag, body, absent, marks, complete = row
        if type(complete) is not bool:
            raise DecodeError("malformed completeness flag")
        if not isinstance(name, str):
            raise DecodeError("malformed object name")
        codec.expect_name(split_key(name)[0])
        if last is not None and name <= last:
            raise DecodeError("repair rows not in strictly increasing name order")
        last = name
        if not isinstance(tag, str) or tag not in TYPES:
            raise DecodeError(f"unknown CRDT type tag {tag!r}")
        partial = codec.state_from_plain([tag, body])
        if not isinstance(absent, list) or not all(isinstance(k, bytes) for k in absent):
            raise DecodeError("malformed absent keys")
        keys = sent_keys(partial)
        n_marks = len((marks_for or {}).get(name, ())) if marks_for is not None else 0
        flags = unpack_bits(marks, n_marks, "marks")
        out[name] = Received(tag, partial, keys, absent, flags, complete and complete_allowed)
    return out
