"""``ToolEntry``: one MCP tool as data (its listing) plus the function that runs it.

A tool set (the graph tools, the record tools) is a list of entries; :func:`.server.build_server`
serves any number of them. Arguments are checked against the tool's input schema before the
function runs, so a function sees well-formed JSON only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from .schemas import ToolSpec

__all__ = ["ToolEntry", "ToolOutput", "as_text"]

ToolOutput = tuple[str, dict[str, Any]]
"""What a tool function returns: the text content and the structured content."""


def as_text(value: Any) -> str:
    """A result as the reference server writes its text content (JSON, two-space indent)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class ToolEntry:
    """One tool: ``spec`` is its ``tools/list`` entry, ``run(arguments)`` its call.

    Attributes:
        spec: name, title, description, inputSchema, outputSchema, annotations.
        run: called with the validated arguments; raises an exception whose message is
            meant for the model (it becomes an ``isError`` result).
        writes: whether the call changes the memory (the server flushes it before answering).
    """

    spec: ToolSpec
    run: Callable[[dict[str, Any]], ToolOutput]
    writes: bool = False
    validator: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "validator", jsonschema.Draft7Validator(self.spec["inputSchema"]))

    @property
    def name(self) -> str:
        return self.spec["name"]

    def argument_error(self, arguments: dict[str, Any]) -> str | None:
        """Why ``arguments`` do not fit the input schema, or None when they do."""
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(arguments))
        if error is None:
            return None
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        return f"{error.message}" + (f" at {where}" if where else "")
