"""The nine knowledge-graph tools of the reference memory server, run on a :class:`KnowledgeGraph`.

Each answers as the reference does: the text content is the result as indented JSON (or a
success sentence for deletes) and the structured content fits the tool's output schema.
"""

from __future__ import annotations

from typing import Any

from ...agent.graph import KnowledgeGraph
from .schemas import GRAPH_TOOLS
from .toolset import ToolEntry, ToolOutput, as_text

__all__ = ["graph_tools"]


def _done(message: str) -> ToolOutput:
    return message, {"success": True, "message": message}


def graph_tools(graph: KnowledgeGraph) -> list[ToolEntry]:
    """The graph tools bound to ``graph``; pass them to :func:`.server.build_server`."""

    def create_entities(args: dict[str, Any]) -> ToolOutput:
        added = graph.create_entities(args["entities"])
        return as_text(added), {"entities": added}

    def create_relations(args: dict[str, Any]) -> ToolOutput:
        added = graph.create_relations(args["relations"])
        return as_text(added), {"relations": added}

    def add_observations(args: dict[str, Any]) -> ToolOutput:
        results = graph.add_observations(args["observations"])
        return as_text(results), {"results": results}

    def delete_entities(args: dict[str, Any]) -> ToolOutput:
        graph.delete_entities(args["entityNames"])
        return _done("Entities deleted successfully")

    def delete_observations(args: dict[str, Any]) -> ToolOutput:
        graph.delete_observations(args["deletions"])
        return _done("Observations deleted successfully")

    def delete_relations(args: dict[str, Any]) -> ToolOutput:
        graph.delete_relations(args["relations"])
        return _done("Relations deleted successfully")

    def read_graph(args: dict[str, Any]) -> ToolOutput:
        found = graph.read_graph()
        return as_text(found), dict(found)

    def search_nodes(args: dict[str, Any]) -> ToolOutput:
        found = graph.search_nodes(args["query"])
        return as_text(found), dict(found)

    def open_nodes(args: dict[str, Any]) -> ToolOutput:
        found = graph.open_nodes(args["names"])
        return as_text(found), dict(found)

    functions = {f.__name__: f for f in (create_entities, create_relations, add_observations, delete_entities,
                                         delete_observations, delete_relations, read_graph, search_nodes,
                                         open_nodes)}
    return [ToolEntry(spec, functions[spec["name"]], writes=not spec["annotations"]["readOnlyHint"])
            for spec in GRAPH_TOOLS]
