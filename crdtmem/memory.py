"""``Memory``: one replica's named CRDTs, the API agents write to.

An object is of any registered type (:mod:`crdtmem.crdt.registry`): :meth:`Memory.get` reaches
every type, and :meth:`Memory.counter`, :meth:`Memory.set`, ... are shortcuts for the built-in
ones.

Local writes apply at once and leave a delta in an outbox; the sync layer drains it with
:meth:`Memory.take_deltas` and delivers other replicas' deltas with :meth:`Memory.apply_delta`
(after :meth:`Memory.check_deltas` has vetted the whole batch). Anti-entropy reads changed
leaves with :meth:`Memory.take_dirty` and repairs with :meth:`Memory.restricted` /
:meth:`Memory.apply_repair`. Nothing here does I/O or reads a clock:
the clock for last-writer-wins timestamps is injected.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

import pycrdt

from . import builtin_types as _builtin_types  # noqa: F401 - registers the built-in types
from . import codec
from . import rollback as _rollback
from .clocks import HybridClock
from .crdt import Crdt, Document, GCounter, GSet, LWWRegister, MVRegister, ORMap, ORSet, PNCounter
from .crdt.registry import SPECS, TypeSpec, lookup
from .errors import DecodeError, TypeConflictError, TypeMismatchError
from .limits import MAX_COUNT, OutOfRangeError, check_name
from .handles import (
    CounterHandle,
    GSetHandle,
    Handle,
    MapHandle,
    MVRegisterHandle,
    PNCounterHandle,
    RegisterHandle,
    SetHandle,
)
from .rollback import Checkpoint

__all__ = ["Memory", "Checkpoint", "ChangeListener", "group_deltas"]

ChangeListener = Callable[[str, str], None]
"""Called as ``listener(name, origin_replica_id)`` after every change to ``name``."""

OUTBOX_COMPACT_AT = 4096


class Memory:
    """A replica of the shared memory: named CRDTs, written locally, joined with other replicas.

    Args:
        replica_id: this replica's id; every dot and counter slot it writes carries it. In a
            peer it is the identity's ``peer_id``.
        clock: returns physical time in seconds for last-writer-wins timestamps. The default
            is a purely logical clock (writes that saw another still order after it).
    """

    def __init__(self, replica_id: str, *, clock: Callable[[], float] | None = None) -> None:
        if not isinstance(replica_id, str) or not 0 < len(replica_id) <= codec.MAX_REPLICA_ID:
            raise ValueError(f"replica_id must be a non-empty str of at most {codec.MAX_REPLICA_ID} chars")
        self.replica_id = replica_id
        self._clock = clock or (lambda: 0.0)
        self._logical_clock = clock is None
        self._hlc = HybridClock()
        self._objects: dict[str, Crdt] = {}
        self._unwritten: dict[str, Crdt] = {}  # asked for by name, never written
        self._handles: dict[str, tuple[str, Any]] = {}  # name → (tag, handle)
        self._outbox: list[tuple[str, Crdt]] = []
        self._dirty: set[tuple[str, Hashable]] = set()
        self._listeners: list[ChangeListener] = []

    def __repr__(self) -> str:
        return f"Memory({self.replica_id!r}, {len(self._objects)} objects)"

    # -- typed access -----------------------------------------------------------------------

    def get(self, name: str, kind: str | TypeSpec) -> Any:
        """The object ``name`` of type ``kind`` (created empty on first use), through its handle.

        Args:
            name: the object's name, shared by every replica.
            kind: a registered type's friendly name (``"set"``), tag (``"orset"``) or spec.

        Raises:
            TypeMismatchError: ``name`` already holds another type.
            ValueError: ``kind`` names no registered type.
        """
        return self._handle(name, lookup(kind).tag)

    def counter(self, name: str) -> CounterHandle:
        """The grow-only counter ``name`` (created empty on first use)."""
        return self._handle(name, GCounter.TAG)

    def pncounter(self, name: str) -> PNCounterHandle:
        return self._handle(name, PNCounter.TAG)

    def set(self, name: str) -> SetHandle:
        """The add-wins observed-remove set ``name``."""
        return self._handle(name, ORSet.TAG)

    def gset(self, name: str) -> GSetHandle:
        return self._handle(name, GSet.TAG)

    def register(self, name: str) -> RegisterHandle:
        """The last-writer-wins register ``name``."""
        return self._handle(name, LWWRegister.TAG)

    def mvregister(self, name: str) -> MVRegisterHandle:
        return self._handle(name, MVRegister.TAG)

    def map(self, name: str) -> MapHandle:
        """The observed-remove map of last-writer-wins values ``name``."""
        return self._handle(name, ORMap.TAG)

    def doc(self, name: str) -> pycrdt.Doc:
        """The pycrdt (Yjs) document ``name``; edit it directly, every transaction replicates."""
        return self._handle(name, Document.TAG)

    def names(self) -> list[str]:
        return sorted(self._objects)

    def type_of(self, name: str, *, including_unwritten: bool = False) -> str | None:
        """The CRDT tag of ``name`` (``"orset"``, ``"gcounter"``, ...), or None if unused.

        With ``including_unwritten``, a name only read so far (a handle exists) counts too.
        """
        state = self._objects.get(name)
        if state is None and including_unwritten:
            state = self._unwritten.get(name)
        return state.TAG if state is not None else None

    def values(self) -> dict[str, Any]:
        """Every object's plain value, for display and comparison."""
        return {name: self.value(name) for name in self.names()}

    def value(self, name: str) -> Any:
        """One object's plain value, as :meth:`values` shows it (None: never written)."""
        state = self._objects.get(name)
        if state is None:
            return None
        shown = SPECS[state.TAG].value
        return shown(state) if shown is not None else self._handle(name, state.TAG).value

    def _handle(self, name: str, tag: str) -> Any:
        cached = self._handles.get(name)
        if cached is not None and cached[0] == tag:
            return cached[1]
        state = self._object(name, tag)
        make = SPECS[tag].handle or Handle
        handle = make(self, name, state)
        self._handles[name] = (tag, handle)
        return handle

    def _object(self, name: str, tag: str) -> Any:
        state = self._held(name, tag, remote=False)
        if state is None:
            check_name(name, local=True)
            # Reading a name creates no state: the object joins the memory on its first write.
            state = self._unwritten[name] = self._new(tag)
            self._adopt(name, state)
        return state

    def _held(self, name: str, tag: str, *, remote: bool) -> Crdt | None:
        """The state ``name`` holds (None: none yet), if it is a ``tag``; the one type check.

        Raises:
            TypeMismatchError: (local use) ``name`` holds another type.
            TypeConflictError: (``remote``) ``name`` holds another type than a peer sent.
        """
        state = self._objects.get(name)
        if state is None:
            state = self._unwritten.get(name)
        if state is not None and state.TAG != tag:
            held, asked = _friendly(state.TAG), _friendly(tag)
            if remote:
                raise TypeConflictError(f"{name!r} is a {held} here, the peer sent a {asked}")
            raise TypeMismatchError(f"{name!r} is a {held}, not a {asked}: pick another name")
        return state

    def _new(self, tag: str) -> Crdt:
        return SPECS[tag].empty(self.replica_id)

    def _adopt(self, name: str, state: Crdt) -> None:
        """Start tracking ``name``; a type edited outside handles (documents) starts reporting edits."""
        watch = SPECS[state.TAG].watch
        if watch is not None:
            watch(state, lambda delta, name=name: self._local(name, delta))

    # -- changes ----------------------------------------------------------------------------

    def on_change(self, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener(name, origin)`` after each local or remote change; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _notify(self, name: str, origin: str) -> None:
        for listener in list(self._listeners):
            listener(name, origin)

    def _stamp(self, after: int) -> int:
        """A fresh hybrid timestamp later than ``after``; call before mutating anything.

        Raises:
            OutOfRangeError: it would pass :data:`~crdtmem.limits.MAX_COUNT` (nothing changed).
        """
        if after >= MAX_COUNT or self._hlc.last >= MAX_COUNT:
            raise OutOfRangeError(f"a timestamp after {after} would pass the bound {MAX_COUNT}")
        return self._hlc.tick(self._clock(), after)

    def stamp_bound(self, max_skew: float) -> int:
        """The latest hybrid timestamp a peer's write may carry: our clock plus ``max_skew`` seconds.

        The sync layer calls this before applying a batch. A memory on the default logical
        clock has no wall time to compare with and bounds timestamps by
        :data:`~crdtmem.limits.MAX_COUNT` only.
        """
        if self._logical_clock:
            return MAX_COUNT
        bound = HybridClock.bound(self._clock() + max_skew)
        return min(bound, MAX_COUNT)

    def _local(self, name: str, delta: Crdt, touched: Iterable[Hashable] = ()) -> None:
        """Record a local write's delta; ``touched`` names leaves it emptied (a remove's delta
        carries only dots, not the key they supported)."""
        if name not in self._objects:
            self._objects[name] = self._unwritten.pop(name)
        self._outbox.append((name, delta))
        if len(self._outbox) >= OUTBOX_COMPACT_AT:
            self._outbox = group_deltas(self._outbox)
        dirty = self._dirty
        for key in delta.leaf_keys():
            dirty.add((name, key))
        for key in touched:
            dirty.add((name, key))
        if self._listeners:
            self._notify(name, self.replica_id)

    def take_deltas(self) -> list[tuple[str, Crdt]]:
        """Drain the deltas of local writes since the last call, oldest first.

        The sync layer calls this to sign and ship them (joined by :func:`group_deltas`);
        deltas of one name may arrive already joined into one (a delta group).
        """
        deltas, self._outbox = self._outbox, []
        return deltas

    def has_pending_deltas(self) -> bool:
        """True while local writes wait for :meth:`take_deltas` (the sync layer has not sent them)."""
        return bool(self._outbox)

    def check_deltas(self, deltas: Iterable[tuple[str, Crdt]]) -> None:
        """Refuse a batch of remote deltas whole, before any is joined, if a name clashes.

        The sync layer calls this before applying a batch's deltas one by one with
        :meth:`apply_delta`, so a clash changes nothing.

        Raises:
            TypeConflictError: a name holds another type here, or the batch sends it as two.
        """
        sent: dict[str, str] = {}
        for name, delta in deltas:
            first = sent.setdefault(name, delta.TAG)
            if first != delta.TAG:
                raise TypeConflictError(f"{name!r} is sent as a {_friendly(first)} and as a {_friendly(delta.TAG)}")
            self._held(name, delta.TAG, remote=True)

    def apply_delta(self, name: str, delta: Crdt, origin: str) -> bool:
        """Join another replica's delta (or state) for ``name``; return whether anything changed.

        Raises:
            TypeConflictError: ``name`` already holds another type here.
        """
        state = self._remote_target(name, delta.TAG)
        changed = state.join(delta)
        return self._after_remote(name, changed, origin)

    def _remote_target(self, name: str, tag: str) -> Crdt:
        state = self._held(name, tag, remote=True)
        if name not in self._objects:
            state = self._unwritten.pop(name, None)
            if state is None:
                state = self._new(tag)
                self._adopt(name, state)
            self._objects[name] = state
        return state

    def _after_remote(self, name: str, changed: set[Hashable], origin: str) -> bool:
        if not changed:
            return False
        self._dirty.update((name, key) for key in changed)
        self._notify(name, origin)
        return True

    def merge(self, other: Memory) -> None:
        """Join every object of ``other`` into this memory (a full-state merge, in place)."""
        for name in other.names():
            self.apply_delta(name, other._objects[name], other.replica_id)  # join never mutates its argument

    # -- anti-entropy seam ------------------------------------------------------------------

    def state(self, name: str) -> Crdt | None:
        """The live state of ``name`` (read-only use: anti-entropy digests and repairs)."""
        return self._objects.get(name)

    def take_dirty(self) -> set[tuple[str, Hashable]]:
        """The (name, leaf key) pairs changed since the last call; the Merkle index refreshes these."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def leaves(self) -> Iterable[tuple[str, Hashable]]:
        """Every (name, leaf key) pair held, for building a Merkle index from scratch."""
        for name, state in self._objects.items():
            for key in state.leaf_keys():
                yield name, key

    def leaf_bytes(self, name: str, key: Hashable) -> bytes | None:
        state = self._objects.get(name)
        return None if state is None else codec.encode_leaf(state, key)

    def restricted(self, name: str, keys: Iterable[Hashable]) -> Crdt | None:
        """A partial state of ``name`` holding only ``keys`` (plus context), to repair a peer."""
        state = self._objects.get(name)
        return None if state is None else state.restricted(keys)

    def apply_repair(self, name: str, partial: Crdt, keys: Iterable[Hashable], origin: str) -> bool:
        """Join a peer's partial state covering every differing leaf ``keys`` of ``name``."""
        state = self._remote_target(name, partial.TAG)
        return self._after_remote(name, state.join_keys(partial, keys), origin)

    # -- snapshots --------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Canonical bytes of the whole memory (replica-independent: equal states, equal bytes)."""
        objects = [[name, *codec.state_to_plain(self._objects[name])] for name in self.names()]
        return codec.pack([codec.FORMAT_VERSION, "memory", objects])

    @classmethod
    def from_snapshot(
        cls,
        replica_id: str,
        data: bytes,
        *,
        clock: Callable[[], float] | None = None,
        max_size: int = codec.MAX_STATE_BYTES,
    ) -> Memory:
        """Rebuild a memory from :meth:`snapshot` bytes; raises DecodeError on anything else."""
        obj = codec.unpack(data, max_size=max_size)
        if not (isinstance(obj, list) and len(obj) == 3 and obj[1] == "memory"):
            raise DecodeError("not a crdtmem memory snapshot")
        if obj[0] != codec.FORMAT_VERSION:
            raise DecodeError(f"unsupported snapshot format version {obj[0]!r}")
        if not isinstance(obj[2], list):
            raise DecodeError("malformed snapshot object list")
        memory = cls(replica_id, clock=clock)
        for item in obj[2]:
            if not (isinstance(item, list) and len(item) == 3):
                raise DecodeError("malformed snapshot entry")
            codec.expect_name(item[0])
            if item[0] in memory._objects:
                raise DecodeError(f"snapshot names {item[0]!r} twice")
            memory._restore(item[0], codec.state_from_plain(item[1:]))
        return memory

    def _restore(self, name: str, state: Crdt) -> None:
        target = self._objects[name] = self._new(state.TAG)
        target.join(state)
        self._adopt(name, target)
        self._dirty.update((name, key) for key in target.leaf_keys())

    # -- checkpoints ------------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """Record every object's current value, to :meth:`rollback` to later.

        See :func:`crdtmem.rollback.checkpoint`.
        """
        return _rollback.checkpoint(self)

    def rollback(self, checkpoint: Checkpoint, names: Iterable[str] | None = None) -> None:
        """Bring ``names`` (default: every name) back to their values at ``checkpoint``.

        Reverting issues ordinary writes, so the rollback replicates like any other write; see
        :func:`crdtmem.rollback.rollback`.

        Raises:
            RollbackError: some name cannot be reverted; nothing is written in that case.
        """
        _rollback.rollback(self, checkpoint, names)


def _friendly(tag: str) -> str:
    return SPECS[tag].friendly


def group_deltas(deltas: list[tuple[str, Crdt]]) -> list[tuple[str, Crdt]]:
    """Join deltas of the same name into one delta group each, in first-seen order.

    A group is smaller than its deltas one by one and a receiver joins it in one step; the
    sync layer groups each flush before signing it.
    """
    grouped: dict[str, Crdt] = {}
    for name, delta in deltas:
        if name in grouped:
            grouped[name].join(delta)
        else:
            grouped[name] = delta.copy()
    return list(grouped.items())
