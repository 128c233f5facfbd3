"""``Memory``: one replica's named CRDTs, the API agents write to.

An object is of any registered type (:mod:`crdtmem.crdt.registry`): :meth:`Memory.get` reaches
every type, and :meth:`Memory.counter`, :meth:`Memory.set`, ... are shortcuts for the built-in
ones.

Local writes apply at once and join their delta into the object's delta group in an outbox;
the sync layer drains it with :meth:`Memory.take_deltas` and delivers other replicas' deltas
with :meth:`Memory.apply_delta` (after :meth:`Memory.check_deltas` has vetted the whole batch).
The Merkle index reads changed leaves with :meth:`Memory.take_dirty`. Nothing here does I/O or
reads a clock: the clock for last-writer-wins timestamps is injected.

A name written with two types (two agents picked one name for different things, or a bad
agent did it on purpose) is a *type clash*, and it never blocks anything: the memory keeps one
object per (name, type), and every replica resolves the clash the same way. Reads by name
(:meth:`Memory.value`, :meth:`Memory.values`, :meth:`Memory.state`, :meth:`Memory.type_of`)
see the **winner: the type with the lowest tag** (in string order, e.g. ``"gcounter"`` before
``"orset"``), whatever the order the writes arrived in; every other type stays readable and
writable through :meth:`Memory.get` with its kind, and :meth:`Memory.conflicts` lists the
clashing names. Local access asking for a type the name does not hold still raises
:class:`~crdtmem.errors.TypeMismatchError`. The sync layer learns of each new clash from
:meth:`Memory.take_clashes`.

Internally a losing object is stored under a reserved key (``"\\x00<tag>\\x00<name>"``, see
:func:`clash_key`), which the Merkle index and anti-entropy treat as one more object name; a
memory without a clash holds, encodes and digests exactly what it did before clashes were
resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable
from typing import Any

import pycrdt

from . import builtin_types as _builtin_types  # noqa: F401 - registers the built-in types
from . import codec
from . import rollback as _rollback
from .clocks import HybridClock
from .crdt import Crdt, Document, GCounter, GSet, LWWRegister, MVRegister, ORMap, ORSet, PNCounter
from .crdt.registry import SPECS, TypeSpec, lookup
from .errors import DecodeError, RetiredWriterError, TypeMismatchError
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

__all__ = ["Memory", "Checkpoint", "ChangeListener", "group_deltas", "clash_key", "split_key"]

ChangeListener = Callable[[str, str], None]
"""Called as ``listener(name, origin_replica_id)`` after every change to ``name``."""

_CLASH = "\x00"  # no object name starts with it: it marks the storage key of a clash's loser


def clash_key(name: str, tag: str) -> str:
    """The storage key of the object ``name`` of type ``tag`` when ``tag`` is not the winner.

    Anti-entropy and the Merkle index see it as an object name; no batch may use it.
    """
    return f"{_CLASH}{tag}{_CLASH}{name}"


def split_key(key: str) -> tuple[str, str | None]:
    """(object name, tag) of a storage key; the tag is None for a plain name (the winner).

    Call to validate a key from outside (an anti-entropy row).

    Raises:
        DecodeError: a reserved key that is malformed.
    """
    if not key.startswith(_CLASH):
        return key, None
    tag, sep, name = key[1:].partition(_CLASH)
    if not sep or not name or name.startswith(_CLASH) or tag not in SPECS:
        raise DecodeError(f"malformed object key {key!r}")
    return name, tag


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
        self._objects: dict[str, Crdt] = {}  # storage key (a name, or clash_key for a loser) → state
        self._clashing: dict[str, set[str]] = {}  # names written as two or more types → their tags
        self._new_clashes: list[tuple[str, tuple[str, ...]]] = []
        self._unwritten: dict[str, dict[str, Crdt]] = {}  # asked for by name, never written: name → tag → state
        self._handles: dict[tuple[str, str], Any] = {}  # (name, tag) → handle
        # (name, tag) → (the local deltas since the last take_deltas joined into one, how to join
        # the next): a write's delta dies at once instead of waiting in a list for the flush
        self._outbox: dict[tuple[str, str], tuple[Crdt, Callable[[Crdt], object]]] = {}
        self._pending_writes = 0  # local writes joined into the outbox since the last take_deltas
        self._dirty: dict[str, set[Hashable]] = {}  # storage key → its changed leaf keys
        self._listeners: tuple[ChangeListener, ...] = ()  # replaced, never changed in place
        self._sealed: str | None = None  # why local writes are refused (the writer retired), if they are
        self._refused_write = False  # a write was refused after sealing: the state shows what no batch carries

    def __repr__(self) -> str:
        return f"Memory({self.replica_id!r}, {len(self._objects)} objects)"

    # -- typed access -----------------------------------------------------------------------

    def get(self, name: str, kind: str | TypeSpec) -> Any:
        """The object ``name`` of type ``kind`` (created empty on first use), through its handle.

        Args:
            name: the object's name, shared by every replica.
            kind: a registered type's friendly name (``"set"``), tag (``"orset"``) or spec.

        After a type clash, each type the name holds is reached with its own kind.

        Raises:
            TypeMismatchError: ``name`` holds other types, not this one.
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
        """Every written object name, sorted (a name written as two types is listed once)."""
        return sorted(key for key in self._objects if not key.startswith(_CLASH))

    def type_of(self, name: str, *, including_unwritten: bool = False) -> str | None:
        """The CRDT tag of ``name`` (``"orset"``, ``"gcounter"``, ...), or None if unused.

        After a type clash it is the winner's (the lowest tag). With ``including_unwritten``,
        a name only read so far (a handle exists) counts too.
        """
        state = self._objects.get(name)
        if state is None and including_unwritten and self._unwritten.get(name):
            return min(self._unwritten[name])
        return state.TAG if state is not None else None

    def conflicts(self) -> dict[str, list[str]]:
        """The names written as two or more types, with their tags (the winner first).

        Call it to find clashes to clean up; reach each type with :meth:`get`.
        """
        return {name: sorted(tags) for name, tags in sorted(self._clashing.items())}

    def take_clashes(self) -> list[tuple[str, tuple[str, ...]]]:
        """Drain the type clashes that arose since the last call: (name, its tags, winner first).

        The sync layer calls it after applying remote input, to report each clash once.
        """
        clashes, self._new_clashes = self._new_clashes, []
        return clashes

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
        cached = self._handles.get((name, tag))
        if cached is not None:
            return cached
        state = self._object(name, tag)
        make = SPECS[tag].handle or Handle
        handle = self._handles[(name, tag)] = make(self, name, state)
        return handle

    def _object(self, name: str, tag: str) -> Any:
        """The object ``name`` of type ``tag`` for local use; the one local type check."""
        state = self._find(name, tag)
        if state is None:
            state = self._unwritten.get(name, {}).get(tag)
        if state is not None:
            return state
        held = self._objects.get(name)
        if held is None:
            held = next(iter(self._unwritten.get(name, {}).values()), None)
        if held is not None:
            raise TypeMismatchError(f"{name!r} is a {_friendly(held.TAG)}, not a {_friendly(tag)}: pick another name")
        check_name(name, local=True)
        if name.startswith(_CLASH):
            raise ValueError("an object name must not start with NUL (reserved for type clashes)")
        # Reading a name creates no state: the object joins the memory on its first write.
        state = self._unwritten.setdefault(name, {})[tag] = self._new(tag)
        self._adopt(name, state)
        return state

    def _find(self, name: str, tag: str) -> Crdt | None:
        """The written object ``name`` of type ``tag``, wherever the clash rule stored it."""
        state = self._objects.get(name)
        if state is not None and state.TAG == tag:
            return state
        return self._objects.get(clash_key(name, tag)) if name in self._clashing else None

    def _key(self, name: str, tag: str) -> str:
        """The storage key of the written object ``name`` of type ``tag``."""
        state = self._objects.get(name)
        return name if state is not None and state.TAG == tag else clash_key(name, tag)

    def key_for(self, key: str, tag: str) -> str:
        """The storage key where a ``tag`` object sent by a peer as ``key`` belongs here.

        Anti-entropy calls it for each received row: a peer may hold the name's other type
        under the plain name while a clash here keeps it under its :func:`clash_key`.
        """
        name, _ = split_key(key)
        held = self._objects.get(name)
        return name if held is None or held.TAG == tag else clash_key(name, tag)

    def _place(self, name: str, state: Crdt) -> None:
        """Store a newly written object ``name``; the lowest tag holds the plain name.

        Call for the first write of each (name, type). A second type makes a clash: the loser
        moves to (or starts at) its :func:`clash_key`, and its leaves are marked dirty under
        both keys so the Merkle index follows the move.
        """
        held = self._objects.get(name)
        if held is None:
            self._objects[name] = state
            return
        tag = state.TAG
        if tag < held.TAG:
            self._objects[name] = state
            self._objects[clash_key(name, held.TAG)] = held
            moved = list(held.leaf_keys())
            self._mark_dirty(name, moved)
            self._mark_dirty(clash_key(name, held.TAG), moved)
        else:
            self._objects[clash_key(name, tag)] = state
        tags = self._clashing.setdefault(name, {held.TAG})
        tags.add(tag)
        self._new_clashes.append((name, tuple(sorted(tags))))

    def _new(self, tag: str) -> Crdt:
        return SPECS[tag].empty(self.replica_id)

    def incarnate(self, replica_id: str) -> None:
        """Write under ``replica_id`` from now on: a fresh incarnation of the same identity.

        The runtime calls it at every start of a peer, before the first local write (see
        :func:`crdtmem.identity.new_incarnation`). What the memory holds stays; objects whose
        state is bound to the writing replica (documents edit under a Yjs client id derived
        from it) are rebuilt for the new one.

        Raises:
            ValueError: local writes are still waiting to be signed (they were made under the
                old id), or a document of this memory was already handed out (its edits would
                go on under the old id): start the peer before writing.
        """
        if self.has_pending_deltas():
            raise ValueError("local writes wait to be sent under the old replica id: start the peer before writing")
        if any(SPECS[tag].new is not None for _, tag in self._handles):
            raise ValueError("a document was opened before the peer started: open documents after it starts")
        self.replica_id = replica_id
        for key, state in self._objects.items():
            if SPECS[state.TAG].new is not None:
                self._objects[key] = self._rebuilt(split_key(key)[0], state)
        for name, states in self._unwritten.items():
            for tag, state in states.items():
                if SPECS[tag].new is not None:
                    states[tag] = self._rebuilt(name, state)

    def _rebuilt(self, name: str, state: Crdt) -> Crdt:
        """A copy of ``state`` bound to the current replica id, reporting its local edits."""
        target = self._new(state.TAG)
        target.join(state)
        self._adopt(name, target)
        return target

    def _adopt(self, name: str, state: Crdt) -> None:
        """Start tracking ``name``; a type edited outside handles (documents) starts reporting edits."""
        watch = SPECS[state.TAG].watch
        if watch is not None:
            watch(state, lambda delta, name=name: self._local(name, delta))

    # -- changes ----------------------------------------------------------------------------

    def on_change(self, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener(name, origin)`` after each local or remote change; returns an unsubscribe."""
        self._listeners = (*self._listeners, listener)
        return lambda: self._unsubscribe(listener)

    def _unsubscribe(self, listener: ChangeListener) -> None:
        listeners = list(self._listeners)
        if listener in listeners:
            listeners.remove(listener)
            self._listeners = tuple(listeners)

    def _notify(self, name: str, origin: str) -> None:
        for listener in self._listeners:
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
        carries only dots, not the key they supported).

        Raises:
            RetiredWriterError: the memory is sealed (:meth:`seal`); the write is not recorded.
        """
        if self._sealed is not None:
            self._refused_write = True
            raise RetiredWriterError(self._sealed)
        tag = delta.TAG
        held = self._objects.get(name)
        if held is not None and held.TAG == tag:
            key = name  # the common case: a name already written as this type
        else:
            if self._find(name, tag) is None:
                self._place(name, self._unwritten_pop(name, tag))
            key = self._key(name, tag)
        pending = self._outbox.get((name, tag))
        if pending is None:
            self._outbox[(name, tag)] = _new_group(delta)
        else:
            pending[1](delta)
        self._pending_writes += 1
        leaves = [*delta.leaf_keys(), *touched] if touched else delta.leaf_keys()
        dirty = self._dirty.get(key)
        if dirty is None:
            self._dirty[key] = set(leaves)
        else:
            dirty.update(leaves)  # (inlined from _mark_dirty: this is every local write's path)
        if self._listeners:
            self._notify(name, self.replica_id)

    def seal(self, reason: str) -> None:
        """Refuse every later local write with :class:`~crdtmem.errors.RetiredWriterError` (``reason``).

        The node calls it when its incarnation retires: its last batch is signed, so a later
        write could never be sent. The refused write is not recorded for the sync layer, but
        the state may show it: from then on :meth:`snapshot` refuses too (a store keeps its
        journal instead), and the memory is to be dropped (a retiring peer is stopping).
        """
        self._sealed = reason

    def take_deltas(self) -> list[tuple[str, Crdt]]:
        """Drain the deltas of local writes since the last call: one delta group per object
        written (every write to it joined), in the order the objects were first written.

        The sync layer calls this to sign and ship them. A name written as two types (a type
        clash) gives one group per type.
        """
        outbox, self._outbox = self._outbox, {}
        self._pending_writes = 0
        return [(name, group) for (name, _), (group, _) in outbox.items()]

    def has_pending_deltas(self) -> bool:
        """True while local writes wait for :meth:`take_deltas` (the sync layer has not sent them)."""
        return bool(self._outbox)

    @property
    def pending_writes(self) -> int:
        """How many local writes wait for :meth:`take_deltas` (the sync layer reads it to decide
        when a held batch is full)."""
        return self._pending_writes

    def check_deltas(self, deltas: Iterable[tuple[str, Crdt]]) -> None:
        """Refuse a batch of remote deltas whole, before any is joined, if it names a reserved key.

        The sync layer calls this before applying a batch's deltas one by one with
        :meth:`apply_delta`. A name sent as another type than held here, or as two types in
        one batch, is no reason to refuse: it is a type clash, resolved as the module says.

        Raises:
            DecodeError: a name is a reserved storage key (it starts with NUL).
        """
        for name, _ in deltas:
            if name.startswith(_CLASH):
                raise DecodeError(f"object name {name!r} starts with NUL, which marks reserved keys")

    def apply_delta(self, name: str, delta: Crdt, origin: str) -> bool:
        """Join another replica's delta (or state) for ``name``; return whether anything changed.

        ``name`` may be a :func:`clash_key` (a full-state merge moves losers too).

        Raises:
            DecodeError: ``name`` is a malformed reserved key, or one of another type.
        """
        state = self._objects.get(name)
        if state is None or state.TAG != delta.TAG or name.startswith(_CLASH):
            name, key, state = self._remote_target(name, delta.TAG)
        else:
            key = name  # the common case: a plain name already held as this type
        changed = state.join(delta)
        return self._after_remote(name, key, changed, origin)

    def _remote_target(self, key: str, tag: str) -> tuple[str, str, Crdt]:
        """(object name, storage key, state) for a remote write of type ``tag`` to ``key``."""
        name, keyed_tag = split_key(key)
        if keyed_tag is not None and keyed_tag != tag:
            raise DecodeError(f"object key {key!r} holds a {keyed_tag}, not a {tag}")
        state = self._find(name, tag)
        if state is None:
            state = self._unwritten_pop(name, tag)
            self._place(name, state)
        return name, self._key(name, tag), state

    def _unwritten_pop(self, name: str, tag: str) -> Crdt:
        """The handle-backed state ``name`` of type ``tag`` if one was read, else a new one."""
        unwritten = self._unwritten.get(name, {})
        state = unwritten.pop(tag, None)
        if not unwritten:
            self._unwritten.pop(name, None)
        if state is None:
            state = self._new(tag)
            self._adopt(name, state)
        return state

    def _after_remote(self, name: str, key: str, changed: set[Hashable], origin: str) -> bool:
        if not changed:
            return False
        self._mark_dirty(key, changed)
        if self._listeners:
            self._notify(name, origin)
        return True

    def merge(self, other: Memory) -> None:
        """Join every object of ``other`` into this memory (a full-state merge, in place)."""
        for key in sorted(other._objects):
            self.apply_delta(key, other._objects[key], other.replica_id)  # join never mutates its argument

    # -- departed writers ----------------------------------------------------------------------

    def forget(self, replicas: Collection[str], names: Iterable[str] | None = None) -> None:
        """Drop ``replicas`` from the causal contexts of the objects ``names`` (None: every object).

        The node calls it for departed incarnations once every dot they ever made has been
        joined here (:mod:`crdtmem.protocol.retirement`). What they wrote stays: an element or
        a map value they added and nobody removed keeps its dot. Changed leaves are marked
        for the Merkle index. A forgetting memory must then take their dots only from their
        batches, which the node drops as duplicates: a full-state :meth:`merge` of a replica
        that did not forget them could bring back what was removed (replicas exchange
        batches, never states).
        """
        if not replicas:
            return
        if names is None:
            keys: Iterable[str] = list(self._objects)
        else:
            keys = [key for name in names for key in self._keys_of(name)]
        for key in keys:
            forget = getattr(self._objects[key], "forget", None)
            if forget is not None:
                changed = forget(replicas)
                if changed:
                    self._mark_dirty(key, changed)

    def _keys_of(self, name: str) -> list[str]:
        """The storage keys of every written type of ``name``."""
        if name not in self._clashing:
            return [name] if name in self._objects else []
        return [self._key(name, tag) for tag in self._clashing[name]]

    def context_entries(self) -> int:
        """How many causal-context entries every object holds together: replicas in version
        vectors plus stray dots (for metrics: what departed writers would leave behind)."""
        total = 0
        for state in self._objects.values():
            ctx = getattr(state, "ctx", None)
            if ctx is not None:
                total += len(ctx.vv) + ctx.cloud_size()
        return total

    # -- Merkle index seam --------------------------------------------------------------------

    def state(self, name: str) -> Crdt | None:
        """The live state of ``name`` (read-only use: Merkle digests and metrics).

        After a type clash: the winner's; a :func:`clash_key` reaches a loser.
        """
        return self._objects.get(name)

    def take_dirty(self) -> set[tuple[str, Hashable]]:
        """The (name, leaf key) pairs changed since the last call; the Merkle index refreshes these."""
        dirty, self._dirty = self._dirty, {}
        return {(key, leaf) for key, leaves in dirty.items() for leaf in leaves}

    def _mark_dirty(self, key: str, leaves: Iterable[Hashable]) -> None:
        """Note changed leaves of the object stored as ``key`` (kept per key: no pair per write)."""
        dirty = self._dirty.get(key)
        if dirty is None:
            self._dirty[key] = set(leaves)
        else:
            dirty.update(leaves)

    def leaves(self) -> Iterable[tuple[str, Hashable]]:
        """Every (name, leaf key) pair held, for building a Merkle index from scratch."""
        for name, state in self._objects.items():
            for key in state.leaf_keys():
                yield name, key

    def leaf_bytes(self, name: str, key: Hashable) -> bytes | None:
        """Canonical bytes of one leaf (None: not held), for the Merkle index."""
        state = self._objects.get(name)
        if state is None:
            return None
        if name in self._clashing and SPECS[state.TAG].encode_leaf is None and key not in state.leaf_keys():
            return None  # a leaf of the type this name held before a lower tag took it over
        return codec.encode_leaf(state, key)

    # -- snapshots --------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Canonical bytes of the whole memory (replica-independent: equal states, equal bytes).

        One entry ``[name, tag, body]`` per object, sorted by name, then tag: a name written
        as two types has two entries.

        Raises:
            RetiredWriterError: a local write was refused after :meth:`seal` (the state shows
                a change no batch carries, so it must not be stored).
        """
        if self._refused_write:
            raise RetiredWriterError(f"{self._sealed}; a write refused after that shows in this memory: not snapshotted")
        objects = [[name, *codec.state_to_plain(state)] for name, state in self.entries()]
        return codec.pack([codec.FORMAT_VERSION, "memory", objects])

    def entries(self) -> list[tuple[str, Crdt]]:
        """Every written object as ``(name, state)``, sorted by name, then type tag (a name
        written as two types has two entries): what a snapshot or a checkpoint encodes."""
        entries = sorted((split_key(key)[0], state.TAG, state) for key, state in self._objects.items())
        return [(name, state) for name, _, state in entries]

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
            if item[0].startswith(_CLASH):
                raise DecodeError(f"snapshot names a reserved key {item[0]!r}")
            state = codec.state_from_plain(item[1:])
            if memory._find(item[0], state.TAG) is not None:
                raise DecodeError(f"snapshot names {item[0]!r} as a {_friendly(state.TAG)} twice")
            memory._restore(item[0], state)
        memory._new_clashes.clear()  # restored, not new
        return memory

    def _restore(self, name: str, state: Crdt) -> None:
        target = self._new(state.TAG)
        target.join(state)
        self._adopt(name, target)
        self._place(name, target)
        key = self._key(name, state.TAG)
        self._mark_dirty(key, target.leaf_keys())

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

    A group is smaller than its deltas one by one and a receiver joins it in one step.
    :meth:`Memory.take_deltas` already returns groups; call this on deltas gathered from
    several drains (a batch put together by hand).
    """
    grouped: dict[str, tuple[Crdt, Callable[[Crdt], object]]] = {}
    for name, delta in deltas:
        pending = grouped.get(name)
        if pending is None:
            grouped[name] = _new_group(delta)
        else:
            pending[1](delta)
    return [(name, group) for name, (group, _) in grouped.items()]


def _new_group(delta: Crdt) -> tuple[Crdt, Callable[[Crdt], object]]:
    """A delta group starting as a copy of ``delta`` (the group changes as later deltas join
    it; the delta may share parts with the state), and how to join the next delta into it:
    dot kernels take in a one-dot add without the general join's search."""
    group = delta.copy()
    return group, getattr(group, "absorb", group.join)
