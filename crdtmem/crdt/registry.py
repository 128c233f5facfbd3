"""The CRDT type registry: each type is its module plus one :func:`register_type` call.

A :class:`TypeSpec` tells the rest of crdtmem everything it needs about a type: the codec
encodes and decodes by it, ``Memory`` builds objects and handles by it, the Merkle index digests
its leaves by it, rollback reverts by it. crdtmem's eight types register themselves in
:mod:`crdtmem.builtin_types` exactly the way yours would::

    register_type(TypeSpec(
        tag="maxregister",            # on the wire and in snapshots: never change it
        cls=MaxRegister,              # must have TAG = "maxregister"
        friendly="max",               # memory.get("top", "max")
        to_plain=lambda s: s.value,   # msgpack-able body; equal states, equal bodies
        from_plain=max_from_plain,    # strict inverse: raise DecodeError on anything else
    ))

Register at import time of the module that defines the type, on every replica, before any
replica stores or receives one; unknown tags are refused as malformed input.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

__all__ = ["TypeSpec", "RollbackPolicy", "SPECS", "TYPES", "register_type", "unregister_type", "lookup"]


@dataclass(frozen=True)
class RollbackPolicy:
    """How a checkpoint records one type and how a rollback brings it back.

    Attributes:
        value: ``value(state)``: what a checkpoint records and a rollback compares with ``==``.
            Keep user values encoded, so ``1`` and ``True`` stay apart.
        revert: ``revert(memory, name, state, then, now)``: issue ordinary writes (through
            ``memory._local`` and ``memory._stamp``, as a handle does) that bring ``state``
            from value ``now`` back to ``then``. None: the type cannot go back at all.
        refuse: ``refuse(then)``: why the state cannot go back to ``then``, completing
            ``"'name' ..."`` (e.g. ``"is a grow-only counter: ..."``); None if it can.
            Checked for every name before anything is written.
    """

    value: Callable[[Any], Any]
    revert: Callable[[Any, str, Any, Any, Any], None] | None = None
    refuse: Callable[[Any], str | None] | None = None


@dataclass(frozen=True)
class TypeSpec:
    """Everything crdtmem needs to know about one CRDT type.

    Attributes:
        tag: the wire tag, part of every canonical encoding; ``cls.TAG`` must equal it.
        cls: the state class (see :class:`~crdtmem.crdt.base.Crdt` for what it provides).
        friendly: the short name agents use (``memory.get(name, friendly)``) and errors show.
        to_plain: ``to_plain(state)``: the msgpack-able body; equal states must give equal
            bodies (sort whatever has no order).
        from_plain: ``from_plain(body)``: the strict inverse; raise
            :class:`~crdtmem.errors.DecodeError` on any body ``to_plain`` cannot make (a
            peer's bytes end up here).
        handle: ``handle(memory, name, state)``: what ``Memory.get`` returns. Default: a
            :class:`~crdtmem.handles.Handle`, written with ``update(mutator)``.
        encode_leaf: ``encode_leaf(state, key)``: canonical bytes of one Merkle leaf,
            or None if it is empty. Default: the whole state's encoding (one leaf).
        rollback: how checkpoints record and restore it; None: a changed object of this type
            makes a rollback refuse.
        new: ``new(replica_id)``: an empty state for this replica. Default: ``cls()``.
        value: ``value(state)``: the plain value ``Memory.value`` shows. Default: the
            handle's ``value`` (for the default handle: the state's ``value`` attribute).
        watch: ``watch(state, on_local)``, for a state edited outside any handle (a pycrdt
            Doc): called once when a memory takes the state in; the type then calls
            ``on_local(delta)`` after each local edit.
    """

    tag: str
    cls: type
    friendly: str
    to_plain: Callable[[Any], Any]
    from_plain: Callable[[Any], Any]
    handle: Callable[[Any, str, Any], Any] | None = None
    encode_leaf: Callable[[Any, Hashable], bytes | None] | None = None
    rollback: RollbackPolicy | None = None
    new: Callable[[str], Any] | None = None
    value: Callable[[Any], Any] | None = None
    watch: Callable[[Any, Callable[[Any], None]], None] | None = None

    def empty(self, replica_id: str) -> Any:
        """A new empty state of this type, for ``replica_id`` to write."""
        return self.new(replica_id) if self.new is not None else self.cls()


SPECS: dict[str, TypeSpec] = {}
"""Every registered spec by tag, in registration order (read it; change it with :func:`register_type`)."""
_BY_NAME: dict[str, TypeSpec] = {}  # tags and friendly names

TYPES: dict[str, type] = {}
"""Every registered state class by tag, in registration order (kept live by the registry)."""


def register_type(spec: TypeSpec) -> TypeSpec:
    """Make ``spec``'s type storable in a ``Memory`` and known to the codec; returns ``spec``.

    Call once per process, when the module defining the type is imported. Registering the
    same spec again does nothing.

    Raises:
        ValueError: the tag or friendly name is taken by another type, is not a non-empty
            str, or ``spec.cls.TAG`` differs from ``spec.tag``.
    """
    if SPECS.get(spec.tag) is spec:
        return spec
    for label in (spec.tag, spec.friendly):
        if not isinstance(label, str) or not label:
            raise ValueError(f"a type's tag and friendly name must be non-empty str, got {label!r}")
        if label in _BY_NAME:
            raise ValueError(f"{label!r} already names a registered CRDT type")
    if getattr(spec.cls, "TAG", None) != spec.tag:
        raise ValueError(f"{spec.cls.__name__}.TAG must be {spec.tag!r}")
    SPECS[spec.tag] = _BY_NAME[spec.tag] = _BY_NAME[spec.friendly] = spec
    TYPES[spec.tag] = spec.cls
    return spec


def unregister_type(tag: str) -> None:
    """Forget the type registered under ``tag`` (for tests; live objects of it stop working)."""
    spec = SPECS.pop(tag)
    del TYPES[tag]
    for label in (spec.tag, spec.friendly):
        if _BY_NAME.get(label) is spec:
            del _BY_NAME[label]


def lookup(kind: str | TypeSpec) -> TypeSpec:
    """The registered spec for a tag (``"orset"``) or friendly name (``"set"``), or a spec itself.

    Raises:
        ValueError: nothing is registered under that name (or a spec is not the registered one).
    """
    spec = _BY_NAME.get(kind.tag if isinstance(kind, TypeSpec) else kind)  # type: ignore[arg-type]
    if spec is None or isinstance(kind, TypeSpec) and spec is not kind:
        known = ", ".join(sorted(s.friendly for s in SPECS.values()))
        raise ValueError(f"unknown CRDT type {kind!r}: register it first (known: {known})")
    return spec

