"""Canonical bytes for the user values stored in sets, registers and maps.

Call :func:`encode_value` on anything an agent writes; it checks the type and returns bytes that
are equal exactly when the values are equal *and* of the same kind (``1``, ``1.0`` and ``True``
stay distinct). Sets and maps key their entries by these bytes, so ordering is canonical too.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import DecodeError

__all__ = ["encode_value", "decode_value", "decode_canonical", "MAX_VALUE_DEPTH"]

MAX_VALUE_DEPTH = 32
_TUPLE = 1
_DICT = 2
_SCALARS = (str, int, float, bool, bytes, type(None))


def _to_plain(value: Any, hashable: bool, depth: int) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        if kind is int and not -(2**63) <= value < 2**64:
            raise TypeError(f"integer {value} does not fit in 64 bits")
        return value
    if depth >= MAX_VALUE_DEPTH:
        raise TypeError(f"value nests deeper than {MAX_VALUE_DEPTH} levels")
    if kind is tuple:
        return msgpack.ExtType(_TUPLE, _pack([v if type(v) is str else _to_plain(v, hashable, depth + 1) for v in value]))
    if not hashable and kind is list:
        return [_to_plain(v, False, depth + 1) for v in value]
    if not hashable and kind is dict:
        pairs = sorted(
            (_pack(k if type(k) is str else _to_plain(k, True, depth + 1)), v if type(v) is str else _to_plain(v, False, depth + 1))
            for k, v in value.items()
        )
        return msgpack.ExtType(_DICT, _pack([list(pair) for pair in pairs]))
    allowed = "str, int, float, bool, None, bytes or a tuple of these"
    if not hashable:
        allowed += ", or a list/dict of these"
    raise TypeError(f"crdtmem cannot store a {kind.__name__}: use {allowed}")


_fast_pack = msgpack.Packer(use_bin_type=True).pack  # plain str/int/bytes only: no re-entry

_SCALAR_HEAD = bytes(
    1 if b < 0x80 or 0xA0 <= b <= 0xBF or b >= 0xE0 or b in (0xC4, 0xC5, 0xC6, 0xD9, 0xDA, 0xDB) or 0xCC <= b <= 0xD3
    else 0
    for b in range(256)
)
"""Per first byte of a msgpack value: 1 if it starts an int, a str or bytes (decoded alike by
plain msgpack, and canonical exactly when :func:`encode_value` gives the same bytes back)."""


_pack = msgpack.Packer(use_bin_type=True, strict_types=True).pack
"""msgpack with exact types only (a tuple subclass is no array); one packer, never re-entered
(nothing it packs calls back into Python), instead of a new packer per value."""


def _ext_hook(code: int, data: bytes, depth: int) -> Any:
    # Each nested extension re-enters msgpack's C unpacker, whose frames are large: without a
    # bound, a few thousand nested tuples overflow the C stack and crash the process.
    if depth > MAX_VALUE_DEPTH:
        raise DecodeError(f"value nests deeper than {MAX_VALUE_DEPTH} levels")
    items = _unpack(data, depth)
    if not isinstance(items, list):
        raise DecodeError("value extension payload is not an array")
    if code == _TUPLE:
        return tuple(items)
    if code == _DICT:
        out = {}
        for pair in items:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], bytes)):
                raise DecodeError("malformed dict entry")
            key = _unpack(pair[0], depth)
            try:
                out[key] = pair[1]
            except TypeError as exc:
                raise DecodeError(f"unhashable dict key: {exc}") from exc
        return out
    raise DecodeError(f"unknown value extension {code}")


def _unpack(data: bytes, depth: int = 0) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, ext_hook=lambda code, payload: _ext_hook(code, payload, depth + 1))
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types on malformed input
        raise DecodeError(f"malformed value: {exc}") from exc


def encode_value(value: Any, *, hashable: bool = True) -> bytes:
    """Canonical bytes for ``value``; raises :class:`TypeError` naming what is allowed.

    Args:
        value: what the agent stores.
        hashable: True for set elements and map keys (no lists or dicts), False for
            register and map values.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bytes:  # the common case, no walk needed
        if kind is int and not -(2**63) <= value < 2**64:
            raise TypeError(f"integer {value} does not fit in 64 bits")
        return _fast_pack(value)
    return _pack(_to_plain(value, hashable, 0))


def decode_canonical(data: bytes, *, hashable: bool = True) -> Any:
    """Decode bytes from outside and insist they are exactly what :func:`encode_value` makes.

    Sets and maps key entries by these bytes, so a peer must not be able to smuggle in a
    second spelling of a value (a non-minimal integer, a plain msgpack map) as a new key.
    """
    if type(data) is bytes and data and _SCALAR_HEAD[data[0]]:  # a str, int or bytes: no walk
        try:
            value = msgpack.unpackb(data, raw=False)
        except Exception as exc:  # msgpack raises several unrelated types on malformed input
            raise DecodeError(f"malformed value: {exc}") from exc
        if _fast_pack(value) != data:
            raise DecodeError("value is not in canonical form")
        return value
    value = decode_value(data)
    try:
        canonical = encode_value(value, hashable=hashable)
    except TypeError as exc:
        raise DecodeError(f"not a storable value: {exc}") from exc
    if canonical != data:
        raise DecodeError("value is not in canonical form")
    return value


def decode_value(data: bytes) -> Any:
    """Inverse of :func:`encode_value`; raises :class:`DecodeError` on malformed bytes."""
    if not isinstance(data, bytes):
        raise DecodeError("value is not bytes")
    return _unpack(data)
