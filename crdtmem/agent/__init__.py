"""The agent-facing vocabulary (core): typed operations on a memory, JSON values both ways,
and records (JSON documents in namespaces, merged per field).

The CLI's JSON-lines server, the MCP server and the LangGraph store all speak it.
"""

from .filters import matches
from .jsonvalues import JsonValueError, from_json, json_key, to_json, to_jsonable
from .ops import (
    OPERATIONS,
    CounterIncrement,
    GSetAdd,
    MapPut,
    MapRemove,
    MVRegisterAssign,
    Operation,
    OpError,
    PNCounterDecrement,
    PNCounterIncrement,
    RegisterAssign,
    SetAdd,
    SetRemove,
    TextAppend,
    apply,
    apply_command,
    parse_op,
)
from .records import Event, Record, Records, Sibling
from .vectors import VectorIndex, texts_at

__all__ = [
    "JsonValueError",
    "to_json",
    "from_json",
    "to_jsonable",
    "json_key",
    "OpError",
    "Operation",
    "OPERATIONS",
    "CounterIncrement",
    "PNCounterIncrement",
    "PNCounterDecrement",
    "SetAdd",
    "SetRemove",
    "GSetAdd",
    "RegisterAssign",
    "MVRegisterAssign",
    "MapPut",
    "MapRemove",
    "TextAppend",
    "parse_op",
    "apply",
    "apply_command",
    "Records",
    "Record",
    "Sibling",
    "Event",
    "matches",
    "VectorIndex",
    "texts_at",
]
