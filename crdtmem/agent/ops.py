"""Typed agent operations on a :class:`~crdtmem.memory.Memory`, and their JSON commands.

One frozen dataclass per op kind; :func:`parse_op` turns a JSON command into one, checking
every field, :func:`apply` performs it and :meth:`Operation.to_command` gives the JSON back::

    op = parse_op({"op": "set.add", "name": "facts", "value": ["sky", "blue"]})
    apply(memory, op)                      # memory.set("facts").add(("sky", "blue"))
    apply(memory, CounterIncrement("tasks", 2))

=====================  =========================================  ======================
``op``                 fields                                     class
=====================  =========================================  ======================
counter.increment      name, n (positive int, default 1)          :class:`CounterIncrement`
pncounter.increment    name, n                                    :class:`PNCounterIncrement`
pncounter.decrement    name, n                                    :class:`PNCounterDecrement`
set.add / set.remove   name, value                                :class:`SetAdd` / :class:`SetRemove`
gset.add               name, value                                :class:`GSetAdd`
register.assign        name, value                                :class:`RegisterAssign`
mvregister.assign      name, value                                :class:`MVRegisterAssign`
map.put                name, key, value                           :class:`MapPut`
map.remove             name, key                                  :class:`MapRemove`
text.append            name, text, root (default ``"text"``)      :class:`TextAppend`
=====================  =========================================  ======================

Values and keys arrive as JSON data and are read with :func:`~.jsonvalues.from_json` (lists
become tuples where a hashable value is needed: set elements, map keys, MV-register values).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from ..values import encode_value
from .jsonvalues import JsonValueError, from_json, to_json

__all__ = [
    "OpError",
    "Operation",
    "CounterIncrement",
    "PNCounterIncrement",
    "PNCounterDecrement",
    "SetAdd",
    "SetRemove",
    "GSetAdd",
    "RegisterAssign",
    "MVRegisterAssign",
    "MapPut",
    "MapRemove",
    "TextAppend",
    "OPERATIONS",
    "parse_op",
    "apply",
    "apply_command",
]


class OpError(ValueError):
    """A command or operation that cannot be applied; names the op and the field at fault.

    Attributes:
        op: the op string (``"set.add"``), or None when it is missing.
        field: the field at fault (``"n"``, ``"value"``), or None for the op itself.
    """

    def __init__(self, op: str | None, field: str | None, problem: str) -> None:
        self.op, self.field = op, field
        where = f"{op or 'command'}" + (f" field {field!r}" if field else "")
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Operation:
    """Base of every operation: the object ``name`` it writes."""

    OP: ClassVar[str] = ""
    HASHABLE: ClassVar[bool] = True  # whether ``value`` must be hashable

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise OpError(self.OP, "name", "must be a non-empty string")

    def apply_to(self, memory: Any) -> None:  # pragma: no cover - every op overrides
        raise NotImplementedError

    def to_command(self) -> dict[str, Any]:
        """The JSON command for this op (``parse_op(op.to_command()) == op``)."""
        command: dict[str, Any] = {"op": self.OP}
        for f in fields(self):
            value = getattr(self, f.name)
            command[f.name] = to_json(value) if f.name in ("value", "key") else value
        return command


def _amount(op: str, n: Any) -> int:
    if type(n) is not int:
        raise OpError(op, "n", f"must be a positive integer, got {n!r}")
    if n <= 0:
        raise OpError(op, "n", f"must be positive, got {n}")
    return n


def _storable(op: str, field: str, value: Any, hashable: bool) -> None:
    try:
        encode_value(value, hashable=hashable)
    except TypeError as exc:
        raise OpError(op, field, str(exc)) from exc


@dataclass(frozen=True)
class _Counted(Operation):
    n: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _amount(self.OP, self.n)


@dataclass(frozen=True)
class CounterIncrement(_Counted):
    """Add ``n`` to the grow-only counter ``name``."""

    OP: ClassVar[str] = "counter.increment"

    def apply_to(self, memory: Any) -> None:
        memory.counter(self.name).increment(self.n)


@dataclass(frozen=True)
class PNCounterIncrement(_Counted):
    """Add ``n`` to the up-down counter ``name``."""

    OP: ClassVar[str] = "pncounter.increment"

    def apply_to(self, memory: Any) -> None:
        memory.pncounter(self.name).increment(self.n)


@dataclass(frozen=True)
class PNCounterDecrement(_Counted):
    """Subtract ``n`` from the up-down counter ``name``."""

    OP: ClassVar[str] = "pncounter.decrement"

    def apply_to(self, memory: Any) -> None:
        memory.pncounter(self.name).decrement(self.n)


@dataclass(frozen=True)
class _Valued(Operation):
    value: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _storable(self.OP, "value", self.value, self.HASHABLE)


@dataclass(frozen=True)
class SetAdd(_Valued):
    """Add ``value`` to the OR-Set ``name``."""

    OP: ClassVar[str] = "set.add"

    def apply_to(self, memory: Any) -> None:
        memory.set(self.name).add(self.value)


@dataclass(frozen=True)
class SetRemove(_Valued):
    """Remove every add of ``value`` this replica has seen from the OR-Set ``name``."""

    OP: ClassVar[str] = "set.remove"

    def apply_to(self, memory: Any) -> None:
        memory.set(self.name).remove(self.value)


@dataclass(frozen=True)
class GSetAdd(_Valued):
    """Add ``value`` to the grow-only set ``name``."""

    OP: ClassVar[str] = "gset.add"

    def apply_to(self, memory: Any) -> None:
        memory.gset(self.name).add(self.value)


@dataclass(frozen=True)
class RegisterAssign(_Valued):
    """Set the last-writer-wins register ``name`` to ``value`` (lists and dicts allowed)."""

    OP: ClassVar[str] = "register.assign"
    HASHABLE: ClassVar[bool] = False

    def apply_to(self, memory: Any) -> None:
        memory.register(self.name).assign(self.value)


@dataclass(frozen=True)
class MVRegisterAssign(_Valued):
    """Replace every value of the MV-register ``name`` this replica has seen with ``value``."""

    OP: ClassVar[str] = "mvregister.assign"

    def apply_to(self, memory: Any) -> None:
        memory.mvregister(self.name).assign(self.value)


@dataclass(frozen=True)
class MapPut(Operation):
    """Set ``key`` of the OR-Map ``name`` to ``value`` (last writer wins per key)."""

    OP: ClassVar[str] = "map.put"
    HASHABLE: ClassVar[bool] = False

    key: Any = None
    value: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _storable(self.OP, "key", self.key, True)
        _storable(self.OP, "value", self.value, False)

    def apply_to(self, memory: Any) -> None:
        memory.map(self.name).put(self.key, self.value)


@dataclass(frozen=True)
class MapRemove(Operation):
    """Remove ``key`` from the OR-Map ``name`` (a concurrent put survives)."""

    OP: ClassVar[str] = "map.remove"

    key: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _storable(self.OP, "key", self.key, True)

    def apply_to(self, memory: Any) -> None:
        memory.map(self.name).remove(self.key)


@dataclass(frozen=True)
class TextAppend(Operation):
    """Append ``text`` to the text ``root`` of the document ``name``."""

    OP: ClassVar[str] = "text.append"

    text: str = ""
    root: str = "text"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.text, str):
            raise OpError(self.OP, "text", f"must be a string, got {type(self.text).__name__}")
        if not isinstance(self.root, str) or not self.root:
            raise OpError(self.OP, "root", "must be a non-empty string")

    def apply_to(self, memory: Any) -> None:
        import pycrdt

        text = memory.doc(self.name).get(self.root, type=pycrdt.Text)
        text += self.text


OPERATIONS: dict[str, type[Operation]] = {
    cls.OP: cls
    for cls in (
        CounterIncrement,
        PNCounterIncrement,
        PNCounterDecrement,
        SetAdd,
        SetRemove,
        GSetAdd,
        RegisterAssign,
        MVRegisterAssign,
        MapPut,
        MapRemove,
        TextAppend,
    )
}
"""Every operation class by its ``op`` string."""

_DEFAULTS = {"n", "root"}  # fields a command may leave out
_CONTROL = {"op", "id"}  # fields every command may carry besides its own


def parse_op(command: dict[str, Any]) -> Operation:
    """The typed operation a JSON command asks for; call it on every command from outside.

    Extra fields (``id``, anything a client adds) are ignored.

    Raises:
        OpError: not an object, unknown op, a missing or ill-typed field, a value crdtmem
            cannot store.
    """
    if not isinstance(command, dict):
        raise OpError(None, None, "a command is a JSON object")
    op = command.get("op")
    if not isinstance(op, str):
        raise OpError(None, "op", "missing or not a string")
    cls = OPERATIONS.get(op)
    if cls is None:
        raise OpError(op, None, f"unknown op {op!r} (known: {', '.join(sorted(OPERATIONS))})")
    args: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in command:
            if f.name in _DEFAULTS:
                continue
            raise OpError(op, f.name, "missing")
        data = command[f.name]
        if f.name in ("value", "key"):
            hashable = f.name == "key" or cls.HASHABLE
            try:
                data = from_json(data, hashable=hashable)
            except JsonValueError as exc:
                raise OpError(op, f.name, str(exc)) from exc
        args[f.name] = data
    return cls(**args)


def apply(memory: Any, op: Operation) -> None:
    """Perform ``op`` on ``memory`` (a local write that replicates like any other).

    Raises:
        TypeMismatchError: the name already holds another type.
    """
    if not isinstance(op, Operation):
        raise OpError(None, None, f"not an operation: {op!r}")
    op.apply_to(memory)


def apply_command(memory: Any, command: dict[str, Any]) -> Operation:
    """Parse and apply one JSON command; return the operation performed.

    Raises:
        OpError: see :func:`parse_op`.
    """
    op = parse_op(command)
    apply(memory, op)
    return op
