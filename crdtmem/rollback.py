"""Checkpoints and rollbacks of a :class:`~crdtmem.memory.Memory`, by each type's policy.

Call :func:`checkpoint` before a risky series of writes (an agent's tool run, say) and
:func:`rollback` to undo them. Reverting issues ordinary writes — re-assign, re-add or remove,
inverse increments — so a rollback replicates and converges like any other write; writes made
concurrently on other replicas are not undone. ``Memory.checkpoint()`` and
``Memory.rollback()`` call these.

Each type says how it is recorded and reverted by the :class:`~crdtmem.crdt.RollbackPolicy` in
its registered spec; the policies of the built-in types are here. A type registered without one
is recorded by its encoding, and a rollback that would have to change it is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import codec
from .crdt import Document, LWWRegister, MVRegister, ORMap, ORSet, PNCounter
from .crdt.registry import SPECS, RollbackPolicy, TypeSpec, lookup
from .errors import RollbackError
from .handles import Writer
from .limits import check_increment

__all__ = [
    "Checkpoint",
    "checkpoint",
    "rollback",
    "GCOUNTER_ROLLBACK",
    "PNCOUNTER_ROLLBACK",
    "GSET_ROLLBACK",
    "ORSET_ROLLBACK",
    "LWWREGISTER_ROLLBACK",
    "MVREGISTER_ROLLBACK",
    "ORMAP_ROLLBACK",
    "DOCUMENT_ROLLBACK",
]


class Memory(Writer, Protocol):
    """What a rollback needs of a :class:`~crdtmem.memory.Memory` (a revert writes like a handle)."""

    def names(self) -> list[str]: ...

    def state(self, name: str) -> Any: ...


@dataclass(frozen=True)
class Checkpoint:
    """The values of every object when :func:`checkpoint` was called: ``{name: (tag, value)}``."""

    values: dict[str, tuple[str, Any]] = field(repr=False)


def checkpoint(memory: Memory) -> Checkpoint:
    """Record every object's current value, to :func:`rollback` to later."""
    return Checkpoint({name: (state.TAG, _policy(lookup(state.TAG)).value(state)) for name, state in _objects(memory)})


def rollback(memory: Memory, saved: Checkpoint, names: Iterable[str] | None = None) -> None:
    """Bring ``names`` (default: every name) back to their values at ``saved``.

    A name created after the checkpoint goes back to its empty value.

    Raises:
        RollbackError: some name cannot be reverted (a grow-only type that grew, a document
            that changed, an MV-register that held several values); nothing is written then.
    """
    chosen = sorted(set(names) if names is not None else set(memory.names()) | set(saved.values))
    plan = []
    for name in chosen:
        state = memory.state(name)
        if state is None:
            continue
        spec = lookup(state.TAG)
        policy = _policy(spec)
        recorded = saved.values.get(name)
        tag, then = recorded if recorded is not None else (state.TAG, policy.value(spec.empty(memory.replica_id)))
        if tag != state.TAG:
            raise RollbackError(f"{name!r} was a {_friendly(tag)} at the checkpoint, now a {spec.friendly}")
        now = policy.value(state)
        if now != then:
            plan.append((name, state, policy, then, now))
    for name, state, policy, then, _ in plan:
        reason = policy.refuse(then) if policy.refuse is not None else None
        if reason is None and policy.revert is None:
            reason = f"is a {_friendly(state.TAG)}: it cannot go back to its checkpoint"
        if reason is not None:
            raise RollbackError(f"{name!r} {reason}")
    for name, state, policy, then, now in plan:
        policy.revert(memory, name, state, then, now)


def _objects(memory: Memory) -> Iterable[tuple[str, Any]]:
    for name in memory.names():
        yield name, memory.state(name)


def _friendly(tag: str) -> str:
    spec = SPECS.get(tag)
    return spec.friendly if spec is not None else tag


def _policy(spec: TypeSpec) -> RollbackPolicy:
    if spec.rollback is not None:
        return spec.rollback
    return RollbackPolicy(value=codec.encode_state)


# -- the built-in types' policies ---------------------------------------------------------------


def _revert_pncounter(memory: Memory, name: str, state: PNCounter, then: int, now: int) -> None:
    diff = then - now
    slots = state.p.slots if diff > 0 else state.n.slots
    check_increment(slots.get(memory.replica_id, 0), abs(diff), f"{name!r}'s counter slot")
    delta = state.increment(memory.replica_id, diff) if diff > 0 else state.decrement(memory.replica_id, -diff)
    memory._local(name, delta)


def _revert_orset(memory: Memory, name: str, state: ORSet, then: frozenset, now: frozenset) -> None:
    for key in sorted(then - now):
        memory._local(name, state.add(memory.replica_id, key))
    for key in sorted(now - then):
        memory._local(name, state.remove(key), touched=(key,))


def _revert_ormap(memory: Memory, name: str, state: ORMap, then: dict, now: dict) -> None:
    for key in sorted(now.keys() - then.keys()):
        memory._local(name, state.remove(key), touched=(key,))
    for key, payload in sorted(then.items()):
        if now.get(key) != payload:
            stamp = memory._stamp(after=state.latest_stamp(key))
            memory._local(name, state.put(memory.replica_id, key, stamp, payload))


def _revert_lww(memory: Memory, name: str, state: LWWRegister, then: bytes | None, now: bytes | None) -> None:
    payload = then if then is not None else codec.pack(None)
    memory._local(name, state.assign(memory.replica_id, memory._stamp(after=state.stamp), payload))


def _revert_mv(memory: Memory, name: str, state: MVRegister, then: frozenset, now: frozenset) -> None:
    delta = state.assign(memory.replica_id, next(iter(then))) if then else state.remove_all()
    memory._local(name, delta)


def _many_values(then: frozenset) -> str | None:
    if len(then) > 1:
        return f"held {len(then)} concurrent values at the checkpoint; assign one instead"
    return None


GCOUNTER_ROLLBACK = RollbackPolicy(
    value=lambda s: s.value, refuse=lambda then: "is a grow-only counter: it cannot go back to its checkpoint"
)
PNCOUNTER_ROLLBACK = RollbackPolicy(value=lambda s: s.value, revert=_revert_pncounter)
GSET_ROLLBACK = RollbackPolicy(
    value=lambda s: frozenset(s.items), refuse=lambda then: "is a grow-only gset: it cannot go back to its checkpoint"
)
ORSET_ROLLBACK = RollbackPolicy(value=lambda s: frozenset(s.entries), revert=_revert_orset)
LWWREGISTER_ROLLBACK = RollbackPolicy(value=lambda s: s.payload, revert=_revert_lww)
MVREGISTER_ROLLBACK = RollbackPolicy(value=lambda s: frozenset(s.payloads()), revert=_revert_mv, refuse=_many_values)
ORMAP_ROLLBACK = RollbackPolicy(value=lambda s: {key: stamped[2] for key, stamped in s.items()}, revert=_revert_ormap)
DOCUMENT_ROLLBACK = RollbackPolicy(
    value=Document.digest_source, refuse=lambda then: "is a document: use pycrdt's UndoManager to revert edits"
)
