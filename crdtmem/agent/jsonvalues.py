"""CRDT values as plain JSON data, for every agent-facing face (CLI, MCP, LangGraph)."""

from __future__ import annotations

import base64
import json
from typing import Any

__all__ = ["to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """A CRDT value as plain JSON data: sets become sorted lists, bytes become base64."""
    if isinstance(value, (frozenset, set)):
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, dict):
        return {k if isinstance(k, str) else json.dumps(to_jsonable(k), sort_keys=True): to_jsonable(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
