"""Agent operations on a :class:`~crdtmem.memory.Memory`, as JSON-shaped commands."""

from __future__ import annotations

from typing import Any

__all__ = ["apply_command"]


def _freeze(value: Any) -> Any:
    """JSON lists become tuples so they can be set elements or map keys."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def apply_command(memory: Any, command: dict[str, Any]) -> None:
    """Apply one write command (see the module docstring) to ``memory``.

    Raises:
        ValueError: unknown op or missing field.
    """
    op, name = command.get("op"), command.get("name")
    if not isinstance(op, str) or not isinstance(name, str) or not name:
        raise ValueError("a command needs a string 'op' and a non-empty 'name'")
    kind, _, verb = op.partition(".")
    value = _freeze(command.get("value"))
    if kind == "counter" and verb == "increment":
        memory.counter(name).increment(int(command.get("n", 1)))
    elif kind == "pncounter" and verb in ("increment", "decrement"):
        getattr(memory.pncounter(name), verb)(int(command.get("n", 1)))
    elif kind == "set" and verb in ("add", "remove"):
        getattr(memory.set(name), verb)(value)
    elif kind == "gset" and verb == "add":
        memory.gset(name).add(value)
    elif kind in ("register", "mvregister") and verb == "assign":
        getattr(memory, kind)(name).assign(command.get("value"))
    elif kind == "map" and verb == "put":
        memory.map(name).put(_freeze(command["key"]), command.get("value"))
    elif kind == "map" and verb == "remove":
        memory.map(name).remove(_freeze(command["key"]))
    elif kind == "text" and verb == "append":
        import pycrdt

        doc = memory.doc(name)
        text = doc.get(command.get("root", "text"), type=pycrdt.Text)
        text += str(command.get("text", ""))
    else:
        raise ValueError(f"unknown op {op!r}")
