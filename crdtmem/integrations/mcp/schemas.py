"""The graph tools' names, descriptions and JSON Schemas, as the reference memory server lists them.

Clients written for ``@modelcontextprotocol/server-memory`` see the same ``tools/list`` entries
(name, title, description, input and output schema, annotations), so prompts and agents that
use it work unchanged. Plain data: :mod:`.server` turns it into MCP ``Tool`` objects.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GRAPH_TOOLS", "ToolSpec", "obj", "array", "string"]

ToolSpec = dict[str, Any]
"""``{"name", "title", "description", "inputSchema", "outputSchema", "annotations"}``."""

_DRAFT7 = "http://json-schema.org/draft-07/schema#"


def string(description: str | None = None) -> dict[str, Any]:
    return {"type": "string", **({"description": description} if description else {})}


def array(items: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    return {"type": "array", "items": items, **({"description": description} if description else {})}


def obj(properties: dict[str, Any], *, optional: tuple[str, ...] = (), closed: bool = False,
        root: bool = False) -> dict[str, Any]:
    """An object schema requiring every property but ``optional``; ``closed`` forbids others
    (output schemas); ``root`` marks a tool's whole input or output schema."""
    schema: dict[str, Any] = {"$schema": _DRAFT7} if root else {}
    schema.update(type="object", properties=properties, required=[p for p in properties if p not in optional])
    if closed:
        schema["additionalProperties"] = False
    return schema


def _entity(closed: bool) -> dict[str, Any]:
    return obj({
        "name": string("The name of the entity"),
        "entityType": string("The type of the entity"),
        "observations": array(string(), "An array of observation contents associated with the entity"),
    }, closed=closed)


def _relation(closed: bool) -> dict[str, Any]:
    return obj({
        "from": string("The name of the entity where the relation starts"),
        "to": string("The name of the entity where the relation ends"),
        "relationType": string("The type of the relation"),
    }, closed=closed)


def _graph_output() -> dict[str, Any]:
    return obj({"entities": array(_entity(True)), "relations": array(_relation(True))}, closed=True, root=True)


def _status_output() -> dict[str, Any]:
    return obj({"success": {"type": "boolean"}, "message": string()}, closed=True, root=True)


def _hints(*, read_only: bool = False, destructive: bool = False, idempotent: bool = False) -> dict[str, bool]:
    return {"readOnlyHint": read_only, "destructiveHint": destructive, "idempotentHint": idempotent,
            "openWorldHint": False}


GRAPH_TOOLS: list[ToolSpec] = [
    {
        "name": "create_entities", "title": "Create Entities",
        "description": "Create multiple new entities in the knowledge graph",
        "inputSchema": obj({"entities": array(_entity(False))}, root=True),
        "outputSchema": obj({"entities": array(_entity(True))}, closed=True, root=True),
        "annotations": _hints(),
    },
    {
        "name": "create_relations", "title": "Create Relations",
        "description": "Create multiple new relations between entities in the knowledge graph. "
                       "Relations should be in active voice",
        "inputSchema": obj({"relations": array(_relation(False))}, root=True),
        "outputSchema": obj({"relations": array(_relation(True))}, closed=True, root=True),
        "annotations": _hints(),
    },
    {
        "name": "add_observations", "title": "Add Observations",
        "description": "Add new observations to existing entities in the knowledge graph",
        "inputSchema": obj({"observations": array(obj({
            "entityName": string("The name of the entity to add the observations to"),
            "contents": array(string(), "An array of observation contents to add"),
        }))}, root=True),
        "outputSchema": obj({"results": array(obj({
            "entityName": string(), "addedObservations": array(string()),
        }, closed=True))}, closed=True, root=True),
        "annotations": _hints(),
    },
    {
        "name": "delete_entities", "title": "Delete Entities",
        "description": "Delete multiple entities and their associated relations from the knowledge graph",
        "inputSchema": obj({"entityNames": array(string(), "An array of entity names to delete")}, root=True),
        "outputSchema": _status_output(),
        "annotations": _hints(destructive=True, idempotent=True),
    },
    {
        "name": "delete_observations", "title": "Delete Observations",
        "description": "Delete specific observations from entities in the knowledge graph",
        "inputSchema": obj({"deletions": array(obj({
            "entityName": string("The name of the entity containing the observations"),
            "observations": array(string(), "An array of observations to delete"),
        }))}, root=True),
        "outputSchema": _status_output(),
        "annotations": _hints(destructive=True, idempotent=True),
    },
    {
        "name": "delete_relations", "title": "Delete Relations",
        "description": "Delete multiple relations from the knowledge graph",
        "inputSchema": obj({"relations": array(_relation(False), "An array of relations to delete")}, root=True),
        "outputSchema": _status_output(),
        "annotations": _hints(destructive=True, idempotent=True),
    },
    {
        "name": "read_graph", "title": "Read Graph",
        "description": "Read the entire knowledge graph",
        "inputSchema": {"$schema": _DRAFT7, "type": "object", "properties": {}},
        "outputSchema": _graph_output(),
        "annotations": _hints(read_only=True, idempotent=True),
    },
    {
        "name": "search_nodes", "title": "Search Nodes",
        "description": "Search for nodes in the knowledge graph based on a query",
        "inputSchema": obj({"query": string(
            "The search query to match against entity names, types, and observation content")}, root=True),
        "outputSchema": _graph_output(),
        "annotations": _hints(read_only=True, idempotent=True),
    },
    {
        "name": "open_nodes", "title": "Open Nodes",
        "description": "Open specific nodes in the knowledge graph by their names",
        "inputSchema": obj({"names": array(string(), "An array of entity names to retrieve")}, root=True),
        "outputSchema": _graph_output(),
        "annotations": _hints(read_only=True, idempotent=True),
    },
]
