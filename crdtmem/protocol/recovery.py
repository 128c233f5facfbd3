"""Recovery: rebuild a replica from what its store kept, and the contract every store keeps.

A store holds two things for one peer (DESIGN.md §6): the journal — every signed batch wire
the peer applied, in the order it applied them, each appended once and kept for good — and a
:class:`Snapshot` — the memory and the batches it reflects, as bytes — so a restart replays
only the journal after it. Each journal row also keeps the batch's index entry
(:mod:`.reindex`), so a restart re-indexes the whole journal without decoding its batches. The
journal is also the node's catch-up log: a peer that joins late gets every author's original
signed batches. :func:`recover` turns those bytes back into a memory, a
seen set and a log; it is the one recovery path, pure and shared by the shells::

    parts = store.load_parts()                        # shell: read bytes (checked) from disk
    restored = recover(store.peer_id, parts.snapshot, parts.journal,
                       index_entries=parts.index_entries, clock=clock)
    node = Node(restored.memory, identity, keyring, rng=rng,
                seen=restored.seen, log_wires=restored.log_wires, log_entries=restored.log_entries)

(:func:`restore` does the first two lines.) The websocket runtime restores from a
:class:`~crdtmem.storage.sqlite.SqliteStore`, the simulator from a
:class:`~crdtmem.storage.memory.MemoryStore`: both are a :class:`Store`.

Journal batches are applied with :func:`~crdtmem.protocol.batch.apply_batch`, as the Node
applies batches it receives. Their signatures are not checked again: every batch in our own
journal was verified (or signed by us) before it was applied and journaled, and its author
may since have left the keyring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from .. import codec
from ..clocks import CausalContext, Dot
from ..errors import CrdtmemError, DecodeError
from ..memory import Memory
from .batch import apply_batch, open_batch, peek_batch
from .checkpoint import is_checkpoint, read_checkpoint
from .retirement import finals_in

__all__ = [
    "Store",
    "StoreError",
    "Snapshot",
    "StoredParts",
    "JournalEntry",
    "Restored",
    "recover",
    "restore",
]

JournalEntry = tuple[str, int, bytes, bytes]
"""One applied batch as a store journals it: ``(author, seq, wire, index_entry)``, the last
being what a restart re-indexes it from without decoding it (:mod:`.reindex`; may be empty)."""


class StoreError(CrdtmemError):
    """The store cannot be used: corrupt, not a crdtmem store, or another peer's. It is left untouched."""


@dataclass(frozen=True)
class Snapshot:
    """A peer's memory as bytes, and which journaled batches it reflects, so a restart skips them.

    Its size is the live state's, not the history's. Build one with :meth:`of` when compacting;
    :func:`recover` reads it back.
    """

    memory: bytes
    """:meth:`Memory.snapshot` bytes."""
    seen: bytes
    """The batches the memory reflects: a packed causal context."""

    @classmethod
    def of(cls, memory: Memory, seen: CausalContext) -> Snapshot:
        """Encode a consistent memory and seen set. Call when compacting a store.

        They must agree: ``seen`` is exactly the batches ``memory`` reflects (flush the node's
        pending writes first and journal their batches).
        """
        return cls(memory.snapshot(), codec.pack(codec.context_to_plain(seen)))


class StoredParts(NamedTuple):
    """What a store holds: the last snapshot (None before the first compaction) and the whole journal."""

    snapshot: Snapshot | None
    journal: Sequence[bytes]
    """Every signed batch wire journaled, in the order they were journaled (the snapshot
    reflects a prefix of them)."""
    index_entries: Sequence[bytes] = ()
    """The index entry journaled with each wire, in the same order (empty bytes where none was)."""


@dataclass
class Restored:
    """What a store held, decoded: the memory, the batches it reflects, and the node's catch-up log."""

    memory: Memory
    seen: CausalContext
    log_wires: list[bytes] = field(default_factory=list)
    """Every journaled batch, in journal order: pass them to the Node to serve catch-up."""
    journal_rows: int = 0
    """How many journaled batches the snapshot did not reflect and were replayed."""
    log_entries: list[bytes] = field(default_factory=list)
    """The index entry journaled with each of ``log_wires``: pass them to the Node too."""


class Store(Protocol):
    """The durable state of one peer: an append-only journal of applied batches plus a snapshot.

    Durability contract: when :meth:`append` returns, the batches survive the process being
    killed; a journaled batch is never rewritten nor dropped (it is the signed history a late
    joiner verifies); :meth:`compact` replaces the snapshot atomically, at a cost that grows
    with the live state, not with the history; :meth:`load_parts` returns exactly what was
    committed, or raises :class:`StoreError`.

    Implementations: :class:`~crdtmem.storage.sqlite.SqliteStore` (a file),
    :class:`~crdtmem.storage.memory.MemoryStore` (the simulator's, and tests').
    """

    @property
    def peer_id(self) -> str:
        """The peer whose state this is: the replica id a restore rebuilds."""
        ...

    @property
    def journal_rows(self) -> int:
        """Batches journaled since the last compaction: what a restart would replay (compact when it grows large)."""
        ...

    def load_parts(self) -> StoredParts:
        """Read the snapshot and the journal after it. Call once, when the peer starts."""
        ...

    def append(self, entries: Iterable[JournalEntry]) -> int:
        """Journal applied batches in one commit, before anything about them is sent; durable on return."""
        ...

    def compact(self, snapshot: Snapshot) -> None:
        """Replace the snapshot with ``snapshot``; the journal stays. Call now and then."""
        ...

    def start_incarnation(self, replica_id: str) -> list[str]:
        """Record durably that ``replica_id`` writes through this store from now on; return the
        incarnations recorded before it, oldest first. Call once per start, before creating
        the node (its ``predecessors``: those that did not retire are retired by this start)."""
        ...

    def close(self) -> None:
        """Release the store. Call when the peer stops."""
        ...


class _OwnJournal:
    """Batches in our own journal were verified when they arrived; replay trusts their author."""

    def public_key(self, peer_id: str) -> bytes:
        return b""


def _trusted(public_key: bytes, signature: bytes, data: bytes) -> bool:
    return True


def recover(
    replica_id: str,
    snapshot: Snapshot | None,
    journal: Iterable[bytes],
    *,
    index_entries: Sequence[bytes] = (),
    clock: Callable[[], float] | None = None,
    source: str = "the store",
) -> Restored:
    """Rebuild a replica from a snapshot and the journal. Call when a peer starts.

    Every journal batch joins the log; those the snapshot already reflects are not applied
    again (its seen set names them, or they belong to a departed incarnation whose retirement
    it holds: pruned from the seen set, see :mod:`.retirement`), the others are applied in
    order and join the seen set.

    Args:
        replica_id: the restored memory's replica id (the store's peer id).
        snapshot: the last compaction, or None if there was none.
        journal: every signed batch wire journaled, in order.
        index_entries: the index entry journaled with each (``StoredParts.index_entries``):
            handed on to the Node, which re-indexes those batches without decoding them.
        clock: the restored memory's clock.
        source: names the store in error messages.

    Raises:
        StoreError: a part does not decode, or a batch does not apply.
    """
    replayed = 0
    log: list[bytes] = []
    try:
        retired: dict[str, int] = {}
        if snapshot is None:
            memory, seen = Memory(replica_id, clock=clock), CausalContext()
        else:
            memory = Memory.from_snapshot(replica_id, snapshot.memory, clock=clock)
            seen = codec.context_from_plain(codec.unpack(snapshot.seen))
            retired = finals_in(memory)
        for wire in journal:
            if not isinstance(wire, bytes):
                raise DecodeError("a journal entry is not bytes")
            log.append(wire)
            if is_checkpoint(wire):  # an author's first batches at once (see protocol.checkpoint)
                checkpoint = read_checkpoint(wire, max_size=codec.MAX_STATE_BYTES)
                if seen.max(checkpoint.author) < checkpoint.seq:
                    apply_batch(memory, checkpoint.as_batch())
                    seen.join(CausalContext({checkpoint.author: checkpoint.seq}))
                    replayed += 1
                continue
            dot = Dot(*peek_batch(wire))
            if dot in seen or (dot[1] <= retired.get(dot[0], 0) and not seen.max(dot[0])):
                continue  # reflected in the snapshot (a retired incarnation's, pruned from its seen set)
            apply_batch(memory, open_batch(wire, _OwnJournal(), _trusted, max_size=codec.MAX_STATE_BYTES))
            seen.add(dot)
            replayed += 1
    except (CrdtmemError, TypeError, AttributeError) as exc:
        raise StoreError(f"{source} is corrupt: {exc}") from None
    return Restored(memory, seen, log, replayed, list(index_entries))


def restore(store: Store, *, clock: Callable[[], float] | None = None) -> Restored:
    """Read ``store`` and :func:`recover` its peer's replica. Call once, when the peer starts.

    Raises:
        StoreError: the store is unreadable or corrupt.
    """
    parts = store.load_parts()
    return recover(store.peer_id, parts.snapshot, parts.journal, index_entries=parts.index_entries,
                   clock=clock, source=str(store))
