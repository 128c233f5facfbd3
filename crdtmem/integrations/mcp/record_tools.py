"""Record tools: ``remember``, ``recall``, ``search``, ``forget``, ``history`` on :class:`Records`.

Records are JSON documents under a key in a namespace (a list of labels, as in LangGraph),
shared by every agent: a put merges per field with concurrent puts, each change is signed by
its author and kept in the record's history, and a record may expire (``ttlSeconds``).
"""

from __future__ import annotations

import uuid
from typing import Any

from ...agent import Record, Records, from_json, to_json
from .schemas import ToolSpec, array, obj, string
from .toolset import ToolEntry, ToolOutput, as_text

__all__ = ["record_tools", "RECORD_TOOLS"]

_NAMESPACE = {**array(string(), "Where the record lives: a path of labels, e.g. [\"project\", \"decisions\"]"),
              "minItems": 1}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_RECORD = obj({
    "namespace": array(string()),
    "key": string(),
    "value": {"type": "object"},
    "createdAt": {"type": "number", "description": "Seconds since the epoch"},
    "updatedAt": {"type": "number", "description": "Seconds since the epoch"},
    "author": string("The peer id that signed the latest write"),
    "agent": {"type": ["string", "null"]},
    "expiresAt": _NUMBER_OR_NULL,
    "conflicts": {"type": "object", "description": "Fields written concurrently: every value, newest first"},
}, closed=True)


def _hints(*, read_only: bool = False, destructive: bool = False, idempotent: bool = False) -> dict[str, bool]:
    return {"readOnlyHint": read_only, "destructiveHint": destructive, "idempotentHint": idempotent,
            "openWorldHint": False}


def _where(description: str) -> dict[str, Any]:
    return obj({"namespace": _NAMESPACE, "key": string(description)}, root=True)


RECORD_TOOLS: list[ToolSpec] = [
    {
        "name": "remember", "title": "Remember",
        "description": "Store a JSON record (a fact, a decision, a plan) under a key in a namespace, shared with "
                       "every agent of the team. Writing an existing key replaces its value; fields another agent "
                       "wrote concurrently are kept. Without a key, a new one is made and returned",
        "inputSchema": obj({
            "namespace": _NAMESPACE,
            "key": string("The record's key within its namespace (default: a new key)"),
            "value": {"type": "object", "description": "The record: a JSON object"},
            "ttlSeconds": {"type": "number", "exclusiveMinimum": 0,
                           "description": "Forget the record this many seconds after this write (default: never)"},
        }, optional=("key", "ttlSeconds"), root=True),
        "outputSchema": obj({"record": _RECORD}, closed=True, root=True),
        "annotations": _hints(),
    },
    {
        "name": "recall", "title": "Recall",
        "description": "Read the record stored under a key in a namespace",
        "inputSchema": _where("The record's key"),
        "outputSchema": obj({"found": {"type": "boolean"}, "record": _RECORD}, optional=("record",), closed=True,
                            root=True),
        "annotations": _hints(read_only=True, idempotent=True),
    },
    {
        "name": "search", "title": "Search Records",
        "description": "Find records in a namespace and the namespaces below it: records whose fields match "
                       "the filter (exact values, or operators $eq $ne $gt $gte $lt $lte) and whose text "
                       "contains the query (case-insensitive), oldest first",
        "inputSchema": obj({
            "namespace": array(string(), "The namespace prefix to search under (default: every namespace)"),
            "query": string("Text the record must contain, in its key or any value"),
            "filter": {"type": "object", "description": "Field conditions, e.g. {\"status\": \"open\", "
                                                        "\"priority\": {\"$gte\": 2}}"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "At most this many (10)"},
            "offset": {"type": "integer", "minimum": 0, "description": "Skip this many matches first (0)"},
        }, optional=("namespace", "query", "filter", "limit", "offset"), root=True),
        "outputSchema": obj({"records": array(_RECORD)}, closed=True, root=True),
        "annotations": _hints(read_only=True, idempotent=True),
    },
    {
        "name": "forget", "title": "Forget",
        "description": "Delete the record stored under a key in a namespace (its history is kept). Fields "
                       "another agent writes concurrently survive",
        "inputSchema": _where("The record's key"),
        "outputSchema": obj({"deleted": {"type": "boolean"}}, closed=True, root=True),
        "annotations": _hints(destructive=True, idempotent=True),
    },
    {
        "name": "history", "title": "Record History",
        "description": "Every change of a record, oldest first: who wrote it (signed peer id and agent), when, "
                       "the value before and the value written",
        "inputSchema": _where("The record's key"),
        "outputSchema": obj({"events": array(obj({
            "event": string("added, updated or deleted"), "author": string(), "agent": {"type": ["string", "null"]},
            "at": {"type": "number"}, "old": {"type": ["object", "null"]}, "new": {"type": ["object", "null"]},
        }, closed=True))}, closed=True, root=True),
        "annotations": _hints(read_only=True, idempotent=True),
    },
]


def _record(record: Record) -> dict[str, Any]:
    return {
        "namespace": list(record.namespace), "key": record.key, "value": to_json(record.value),
        "createdAt": record.created_at, "updatedAt": record.updated_at, "author": record.author,
        "agent": record.agent, "expiresAt": record.expires_at,
        "conflicts": {name: [{"value": to_json(s.value), "author": s.author, "at": s.at} for s in siblings]
                      for name, siblings in record.conflicts.items()},
    }


def _contains(record: Record, needle: str) -> bool:
    return needle in record.key.lower() or needle in as_text(to_json(record.value)).lower()


def record_tools(records: Records) -> list[ToolEntry]:
    """The record tools bound to ``records``; pass them to :func:`.server.build_server`."""

    def where(args: dict[str, Any]) -> tuple[tuple[str, ...], str]:
        return tuple(args["namespace"]), args["key"]

    def remember(args: dict[str, Any]) -> ToolOutput:
        namespace, key = tuple(args["namespace"]), args.get("key") or uuid.uuid4().hex[:16]
        records.put(namespace, key, from_json(args["value"]), ttl=args.get("ttlSeconds"))
        out = {"record": _record(records.get(namespace, key))}
        return as_text(out), out

    def recall(args: dict[str, Any]) -> ToolOutput:
        record = records.get(*where(args))
        out = {"found": False} if record is None else {"found": True, "record": _record(record)}
        return as_text(out), out

    def search(args: dict[str, Any]) -> ToolOutput:
        found = records.search(tuple(args.get("namespace", ())), filter=args.get("filter"), limit=1 << 62)
        needle = args.get("query", "").lower()
        if needle:
            found = [r for r in found if _contains(r, needle)]
        offset, limit = args.get("offset", 0), args.get("limit", 10)
        out = {"records": [_record(r) for r in found[offset:offset + limit]]}
        return as_text(out), out

    def forget(args: dict[str, Any]) -> ToolOutput:
        out = {"deleted": records.delete(*where(args))}
        return as_text(out), out

    def history(args: dict[str, Any]) -> ToolOutput:
        events = [{"event": e.kind, "author": e.author, "agent": e.agent, "at": e.at,
                   "old": to_json(e.old), "new": to_json(e.new)} for e in records.history(*where(args))]
        out = {"events": events}
        return as_text(out), out

    functions = {f.__name__: f for f in (remember, recall, search, forget, history)}
    return [ToolEntry(spec, functions[spec["name"]], writes=not spec["annotations"]["readOnlyHint"])
            for spec in RECORD_TOOLS]
