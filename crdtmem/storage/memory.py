"""An in-memory :class:`~crdtmem.protocol.recovery.Store`: the simulator's disk, and tests'.

It keeps exactly what a :class:`~crdtmem.storage.sqlite.SqliteStore` keeps — every signed
batch wire journaled, and the last snapshot as bytes — so a peer restored from it goes through
the same :func:`~crdtmem.protocol.recovery.recover` as one restored from a file. It outlives
the peer that wrote it: the simulator keeps a crashed peer's store and restarts the peer from
it, and a test can restart a :class:`~crdtmem.runtime.Peer` on the same store in one process.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..protocol.recovery import JournalEntry, Snapshot, StoredParts, StoreError

__all__ = ["MemoryStore"]


class MemoryStore:
    """One peer's journal and snapshot, held in this process.

    Every method returns with the change "committed": nothing is buffered, so what the
    process held when a simulated crash happens is what the restart reads.

    Args:
        peer_id: the peer this store belongs to.
    """

    def __init__(self, peer_id: str) -> None:
        if not peer_id:
            raise ValueError("peer_id is required")
        self.peer_id = peer_id
        self.snapshot: Snapshot | None = None
        self.journal: list[bytes] = []
        self.index_entries: list[bytes] = []
        """The index entry journaled with each wire (:mod:`~crdtmem.protocol.reindex`)."""
        self.journal_rows = 0
        """Batches journaled since the last compaction (what a restart replays)."""
        self.journal_bytes = 0
        self.commits = 0
        self.incarnations: list[str] = []
        """Every incarnation that wrote through this store, oldest first."""

    def load_parts(self) -> StoredParts:
        """The snapshot and the whole journal, as committed."""
        return StoredParts(self.snapshot, list(self.journal), list(self.index_entries))

    def append(self, entries: Iterable[JournalEntry]) -> int:
        """Journal applied batches ``(author, seq, wire, index_entry)``; durable on return."""
        rows = list(entries)
        if not rows:
            return 0
        wires = [wire for _, _, wire, _ in rows]
        if not all(isinstance(part, bytes) for _, _, wire, entry in rows for part in (wire, entry)):
            raise StoreError(f"{self}: a journal entry is not bytes")
        self.journal += wires
        self.index_entries += [entry for _, _, _, entry in rows]
        self.journal_rows += len(wires)
        self.journal_bytes += sum(len(wire) for wire in wires)
        self.commits += 1
        return len(wires)

    def compact(self, snapshot: Snapshot) -> None:
        """Replace the snapshot (a consistent one: see :meth:`Snapshot.of`); the journal stays."""
        self.snapshot = snapshot
        self.journal_rows = 0
        self.journal_bytes = 0
        self.commits += 1

    def start_incarnation(self, replica_id: str) -> list[str]:
        """Record that ``replica_id`` writes through this store now; the incarnations before it."""
        earlier = list(self.incarnations)
        self.incarnations.append(replica_id)
        return earlier

    def close(self) -> None:
        """Nothing to release: the contents stay, for the next peer restored from this store."""

    def __str__(self) -> str:
        return f"the in-memory store of {self.peer_id}"

    def __repr__(self) -> str:
        return f"MemoryStore(peer_id={self.peer_id!r}, journal_rows={self.journal_rows})"
