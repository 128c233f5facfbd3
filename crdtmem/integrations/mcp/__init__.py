"""An MCP server over the shared memory: the reference memory server's knowledge-graph tools,
and tools for records (``remember``, ``recall``, ``search``, ``forget``, ``history``).

Every agent runs ``crdtmem mcp`` (an MCP stdio server with an embedded peer); the graph is
CRDTs, so what one agent writes the others read, and concurrent writes are all kept::

    graph = KnowledgeGraph(memory)
    tools = graph_tools(graph) + record_tools(Records(memory))
    server = build_server(tools, graph=graph, after_write=peer.flush)
    await serve_stdio(server)

Needs the ``mcp`` extra (``pip install 'crdtmem[mcp]'``).
"""

from .graph_tools import graph_tools
from .record_tools import RECORD_TOOLS, record_tools
from .schemas import GRAPH_TOOLS
from .server import GRAPH_RESOURCE_URI, build_server
from .stdio import serve_stdio
from .toolset import ToolEntry

__all__ = ["build_server", "graph_tools", "record_tools", "serve_stdio", "ToolEntry", "GRAPH_TOOLS", "RECORD_TOOLS",
           "GRAPH_RESOURCE_URI"]
