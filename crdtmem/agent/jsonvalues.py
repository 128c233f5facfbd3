"""CRDT values as JSON data and back, for every agent-facing face (CLI, MCP, LangGraph).

crdtmem stores more kinds than JSON has (sets, tuples, bytes, maps keyed by tuples or
numbers). :func:`to_json` maps a stored value to JSON data and :func:`from_json` maps it back:

=======================  ==========================================================
Python value             JSON data
=======================  ==========================================================
``set`` / ``frozenset``  a list sorted by its canonical JSON text (comes back a list)
``tuple``                a list (comes back a tuple where a hashable value is needed)
``bytes``                ``{"base64": "..."}``
``dict`` with str keys   an object (unless its only key is ``base64`` or ``$pairs``)
any other ``dict``       ``{"$pairs": [[key, value], ...]}`` sorted by key text
=======================  ==========================================================

Call :func:`to_json` before printing or sending a value, :func:`from_json` on every value an
agent hands in as JSON (a command's ``value`` or ``key``).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = ["JsonValueError", "to_json", "from_json", "to_jsonable", "json_key"]

_BASE64 = "base64"
_PAIRS = "$pairs"
_RESERVED = frozenset({_BASE64, _PAIRS})


class JsonValueError(ValueError):
    """A value has no JSON form (``to_json``) or JSON data is not a storable value (``from_json``)."""


def json_key(data: Any) -> str:
    """Canonical JSON text of JSON data: equal data, equal text (use it to sort or compare)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def to_json(value: Any) -> Any:
    """A stored value as JSON data (see the module table).

    Call it on anything read from a memory before it leaves the process as JSON.

    Raises:
        JsonValueError: ``value`` holds something with no JSON form (an object, a datetime, ...).
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value  # non-finite floats print as Python's json does (NaN, Infinity)
    if isinstance(value, (bytes, bytearray)):
        return {_BASE64: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((to_json(v) for v in value), key=json_key)
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not (len(value) == 1 and value.keys() <= _RESERVED):
            return {k: to_json(v) for k, v in value.items()}
        pairs = [[to_json(k), to_json(v)] for k, v in value.items()]
        return {_PAIRS: sorted(pairs, key=lambda pair: json_key(pair[0]))}
    raise JsonValueError(f"a {type(value).__name__} has no JSON form")


def from_json(data: Any, *, hashable: bool = False) -> Any:
    """JSON data as a storable value: the inverse of :func:`to_json`.

    Args:
        data: parsed JSON (``json.loads`` output).
        hashable: True where the value must be hashable (a set element, a map key): lists
            become tuples there; objects other than ``base64`` are refused.

    Raises:
        JsonValueError: malformed ``base64`` or ``$pairs``, or an object where a hashable
            value is needed.
    """
    if data is None or isinstance(data, (str, bool, int, float)):
        return data
    if isinstance(data, (list, tuple)):
        items = [from_json(v, hashable=hashable) for v in data]
        return tuple(items) if hashable else items
    if isinstance(data, dict):
        if len(data) == 1 and _BASE64 in data:
            text = data[_BASE64]
            try:
                return base64.b64decode(text, validate=True) if isinstance(text, str) else _bad_base64()
            except binascii.Error as exc:
                raise JsonValueError(f"malformed base64 value: {exc}") from exc
        if hashable:
            raise JsonValueError("an object cannot be a set element or map key (use a list)")
        if len(data) == 1 and _PAIRS in data:
            pairs = data[_PAIRS]
            if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                raise JsonValueError("$pairs must be a list of [key, value] lists")
            return {from_json(k, hashable=True): from_json(v) for k, v in pairs}
        return {k: from_json(v) for k, v in data.items()}
    raise JsonValueError(f"a {type(data).__name__} is not JSON data")


def _bad_base64() -> bytes:
    raise JsonValueError("base64 value must be a string")


def to_jsonable(value: Any) -> Any:
    """Like :func:`to_json`, but anything without a JSON form becomes its ``str`` (for display:
    metrics, ``crdtmem inspect``). Never raises."""
    try:
        return to_json(value)
    except JsonValueError:
        if isinstance(value, dict):
            return {k if isinstance(k, str) else json_key(to_jsonable(k)): to_jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [to_jsonable(v) for v in value]
            return sorted(items, key=json_key) if isinstance(value, (set, frozenset)) else items
        return str(value)
