"""``serve_stdio``: run an MCP server over this process's stdin and stdout until the client leaves."""

from __future__ import annotations

from typing import Any

from mcp.server.stdio import stdio_server

__all__ = ["serve_stdio"]


async def serve_stdio(server: Any) -> None:
    """Serve ``server`` (from :func:`.server.build_server`) on stdin/stdout; return at end of input.

    Call it inside the peer's ``async with`` so the memory keeps syncing while the client talks.
    While it runs, stdout carries only the protocol: the SDK points file descriptor 1 at stderr,
    so stray prints and log lines cannot corrupt the stream.
    """
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
