"""The agent-facing vocabulary (core): operations on a memory and JSON values both ways.

The CLI's JSON-lines server, the MCP server and the LangGraph store all speak it.
"""

from .jsonvalues import to_jsonable
from .ops import apply_command

__all__ = ["apply_command", "to_jsonable"]
