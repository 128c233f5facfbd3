"""``build_server``: an MCP server (the official SDK's low-level ``Server``) offering tool sets.

The low-level server lists each tool's JSON Schemas exactly as written in :mod:`.schemas`, so
a client sees the reference memory server's tools byte for byte. Calls run on the event loop
that owns the memory (handlers are synchronous CRDT operations); a call that writes waits for
``after_write`` (the peer's flush: journaled, then pushed to the other replicas) before it
answers, so an answer means the write is durable.

Errors the model can fix (bad arguments, a missing entity) come back as ``isError`` results
with a readable message, as the reference server reports them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from ... import __version__
from ...agent.graph import KnowledgeGraph
from ...errors import CrdtmemError
from .changes import GraphChanges
from .toolset import ToolEntry, as_text

__all__ = ["build_server", "GRAPH_RESOURCE_URI", "SERVER_NAME"]

GRAPH_RESOURCE_URI = "memory://knowledge-graph"
SERVER_NAME = "crdtmem-memory"
_INSTRUCTIONS = (
    "A knowledge graph shared by every agent of the team: entities with observations, and relations "
    "between them. Writes merge: concurrent additions from other agents are all kept, and a delete "
    "removes only what this server had seen."
)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def build_server(
    tools: Iterable[ToolEntry],
    *,
    graph: KnowledgeGraph | None = None,
    after_write: Callable[[], Awaitable[None]] | None = None,
    name: str = SERVER_NAME,
) -> Server[Any]:
    """An MCP server offering ``tools``; run it with :func:`.stdio.serve_stdio` or any SDK transport.

    Args:
        tools: every tool to offer (names must be unique), e.g. ``graph_tools(graph)``.
        graph: also offer the whole graph as the resource ``memory://knowledge-graph``, and
            notify clients subscribed to it of every change, local or from another replica.
        after_write: awaited after each call that writes, before the answer (pass
            ``peer.flush``).
        name: the server name clients show.
    """
    entries: dict[str, ToolEntry] = {}
    for entry in tools:
        if entry.name in entries:
            raise ValueError(f"two tools are named {entry.name!r}")
        entries[entry.name] = entry
    listing = types.ListToolsResult(tools=[types.Tool.model_validate(e.spec) for e in entries.values()])

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return listing

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        entry = entries.get(params.name)
        if entry is None:
            return _error(f"Tool {params.name} not found")
        arguments = params.arguments or {}
        problem = entry.argument_error(arguments)
        if problem is not None:
            return _error(f"Input validation error: Invalid arguments for tool {params.name}: {problem}")
        try:
            text, structured = entry.run(arguments)
        except (CrdtmemError, TypeError, ValueError, LookupError) as exc:
            return _error(str(exc))
        if entry.writes and after_write is not None:
            try:
                await after_write()
            except CrdtmemError as exc:  # e.g. UnencodableWriteError: written here, but not shared
                return _error(f"written locally but not shared with the other agents: {exc}")
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured)

    handlers: dict[str, Any] = {"on_list_tools": list_tools, "on_call_tool": call_tool}
    if graph is not None:
        resource = types.Resource(uri=GRAPH_RESOURCE_URI, name="knowledge-graph", title="Knowledge Graph",
                                  description="The full knowledge graph with all entities and relations",
                                  mime_type="application/json")

        async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
            return types.ListResourcesResult(resources=[resource])

        async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
            if str(params.uri) != GRAPH_RESOURCE_URI:
                raise MCPError(types.INVALID_PARAMS, f"Resource {params.uri} not found")
            contents = types.TextResourceContents(uri=GRAPH_RESOURCE_URI, mime_type="application/json",
                                                  text=as_text(graph.read_graph()))
            return types.ReadResourceResult(contents=[contents])

        changes = GraphChanges(graph.memory, graph.object_names, GRAPH_RESOURCE_URI)
        handlers.update(on_list_resources=list_resources, on_read_resource=read_resource, **changes.handlers())
        handlers["lifespan"] = changes.lifespan
    return Server(name, version=__version__, instructions=_INSTRUCTIONS, **handlers)
