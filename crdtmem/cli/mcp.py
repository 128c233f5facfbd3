"""``crdtmem mcp``: an MCP stdio server over a shared knowledge graph, with an embedded peer.

An MCP client (Claude Desktop, an IDE, an agent framework) starts it as its memory server; it
offers the reference memory server's tools plus record tools, and its peer syncs the graph with every other
agent's ``crdtmem mcp`` or ``crdtmem peer``. Stdout carries only MCP; logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from .peer import add_peer_arguments, run_with_peer_files

__all__ = ["register", "cmd_mcp"]

log = logging.getLogger("crdtmem.cli")


def cmd_mcp(args: argparse.Namespace) -> int:
    """Run the server until the client closes stdin (or SIGINT/SIGTERM); return the exit status."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        print("error: crdtmem mcp needs the MCP SDK: pip install 'crdtmem[mcp]'", file=sys.stderr)
        return 2
    return run_with_peer_files(args, _run_mcp)


async def _run_mcp(args: argparse.Namespace, identity: Any, keyring: Any, options: Any, config: Any) -> int:
    import signal

    import anyio

    from ..agent import Records
    from ..agent.graph import KnowledgeGraph
    from ..integrations.mcp import build_server, graph_tools, record_tools, serve_stdio
    from ..memory import Memory
    from ..runtime import Peer

    memory = Memory(identity.peer_id, clock=time.time)
    async with Peer(memory, identity, keyring, options, config=config) as peer:
        log.info("mcp server for peer %s (listening on %s)", identity.peer_id, peer.url)
        graph = KnowledgeGraph(memory, args.graph)
        records = Records(memory, agent=args.agent)
        tools = graph_tools(graph) + record_tools(records)
        server = build_server(tools, graph=graph, after_write=peer.flush)
        async with anyio.create_task_group() as tg:

            async def on_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        log.info("signal %s: shutting down", signum)
                        tg.cancel_scope.cancel()
                        return

            async def serve() -> None:
                await serve_stdio(server)
                log.info("the MCP client closed stdin: shutting down")
                tg.cancel_scope.cancel()

            async def collect_expired() -> None:
                while True:
                    await anyio.sleep(args.ttl_sweep)
                    if records.collect():
                        await peer.flush()

            tg.start_soon(on_signals)
            tg.start_soon(serve)
            if args.ttl_sweep > 0:
                tg.start_soon(collect_expired)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``crdtmem mcp`` to the subcommands."""
    p = sub.add_parser("mcp", parents=[common], help="serve the shared knowledge graph to an MCP client", description=(
        "Run an MCP server on stdin/stdout with an embedded peer. It offers the tools of the reference "
        "memory server (@modelcontextprotocol/server-memory): create_entities, create_relations, "
        "add_observations, delete_entities, delete_observations, delete_relations, read_graph, "
        "search_nodes, open_nodes; and tools for shared JSON records: remember, recall, search, forget, "
        "history. Graph and records are shared with every peer it syncs with. Stops when the client "
        "closes stdin, or on SIGINT/SIGTERM, flushing the store."))
    add_peer_arguments(p)
    p.add_argument("--graph", default="graph", help="name of the knowledge graph in the memory (default: graph)")
    p.add_argument("--agent", help="agent label written with each record (the author is always the key's peer id)")
    p.add_argument("--ttl-sweep", type=float, default=60.0, metavar="SECONDS",
                   help="remove expired records (and their history) this often; 0: never (default: 60)")
    p.set_defaults(func=cmd_mcp)
