"""SQLite persistence for one peer: an append-only journal of signed batches plus a snapshot.

:class:`SqliteStore` keeps the :class:`~crdtmem.protocol.recovery.Store` contract; a peer is
rebuilt from it by the core's one recovery function, :func:`~crdtmem.protocol.recovery.restore`.

Layout (one file, WAL mode, ``PRAGMA application_id`` marks it as a crdtmem store)::

    meta(key, value)                        peer_id, format, created, incarnations
    journal(id, author, seq, wire, checksum, index_entry)
    snapshot(id=1, memory, seen, upto, checksum)

* Every delta batch the node applies (local or remote) is appended to the journal as one row,
  in the same transaction as the others of one runtime step (a flush, a timer tick, or one
  received message), *before* the runtime sends anything
  that step caused (an answer, an ack, a relay). So a local write never leaves the process
  before it is durable, nothing is relayed or acknowledged before it is, and a restarted
  peer never reuses a sequence number or a dot that others have already seen.
* A journal row is written once and never rewritten nor deleted: the journal is the peer's
  signed history, served to peers that join late so they can verify every author's part.
* :meth:`SqliteStore.compact` replaces the snapshot (the memory, the batches it reflects, and
  ``upto``, the last journal row it covers) in one transaction. It writes the live state only,
  never an old batch, so its cost does not grow with the history; a crash at any instant leaves
  either the old snapshot or the new one, and the journal rows after it are replayed.
* Each row carries a BLAKE2b checksum; a mismatch, an unreadable file, another application's
  database, a store of another format, or a store written by another peer id raise
  :class:`StoreError` and the file is never written to.

Durability: ``synchronous=NORMAL`` (the default) survives the process being killed at any
instant — a committed transaction is in the WAL file. Pass ``fsync=True`` to survive power
loss as well (``synchronous=FULL``), at the cost of an fsync per commit.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import DecodeError
from ..protocol.checkpoint import peek_entry
from ..protocol.recovery import JournalEntry, Restored, Snapshot, StoredParts, StoreError, restore

__all__ = ["SqliteStore", "StoreError", "Restored", "APPLICATION_ID", "STORE_FORMAT"]

APPLICATION_ID = 0x63726474  # "crdt"
_WAL_LIMIT = 64 * 1024 * 1024
STORE_FORMAT = 3
"""3: each journal row keeps its batch's index entry (format 2 stores are upgraded in place when
opened for writing; their rows have none); 2: the journal is the whole history (format 1 kept the
catch-up log in the snapshot row)."""
_READABLE_FORMATS = {"2", "3"}

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    memory BLOB NOT NULL, seen BLOB NOT NULL, upto INTEGER NOT NULL, checksum BLOB NOT NULL
);
CREATE TABLE journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    author TEXT NOT NULL, seq INTEGER NOT NULL, wire BLOB NOT NULL, checksum BLOB NOT NULL,
    index_entry BLOB NOT NULL DEFAULT x''
);
"""


def _digest(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16, person=b"crdtmem-store")
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


def _row_digest(author: str, seq: int, wire: bytes, index_entry: bytes) -> bytes:
    """A journal row's checksum (a row without an index entry keeps format 2's)."""
    return _digest(author.encode(), str(seq).encode(), wire, *([index_entry] if index_entry else []))


class SqliteStore:
    """The persistent state of one peer.

    A :class:`~crdtmem.protocol.recovery.Store`. Open with :meth:`open`; it creates the file
    if absent and refuses one that belongs to another peer or fails its checks. Rebuild the
    memory once with :func:`~crdtmem.protocol.recovery.restore` (or :meth:`load`), then call
    :meth:`append` for every applied batch and :meth:`compact` now and then.

    Args:
        path: the database file.
        peer_id: the peer this store belongs to; required to create or open for writing.
        fsync: survive power loss too (``synchronous=FULL``).
        readonly: open for reading only (``crdtmem inspect``); ``peer_id`` may be None.
    """

    def __init__(self, path: str | os.PathLike[str], peer_id: str | None, *, fsync: bool = False,
                 readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = None
        self._lock: int | None = None if readonly else self._take_lock()
        try:
            self._open(peer_id, fsync)
        except BaseException:
            self._release_lock()
            raise

    def _take_lock(self) -> int:
        """Hold an exclusive lock for as long as this process writes the store.

        Two writers on one store would both report writes durable under the same sequence
        numbers, and one of them would be lost on reload. The kernel drops the lock when the
        process dies, even by SIGKILL.
        """
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"{self.path} is in use by another process: one peer per store") from None
        return fd

    def _release_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None

    def _open(self, peer_id: str | None, fsync: bool) -> None:
        readonly = self.readonly
        self._format = STORE_FORMAT
        self.stored_peer_id = self._check_existing()
        if self.stored_peer_id is None:
            if readonly:
                raise StoreError(f"{self.path}: no crdtmem store here")
            if peer_id is None:
                raise ValueError("peer_id is required to create a store")
        elif peer_id is not None and peer_id != self.stored_peer_id:
            raise StoreError(
                f"{self.path} belongs to peer {self.stored_peer_id}, not {peer_id}: refusing to use it "
                "(pass the key it was written with, or another --db)"
            )
        self.peer_id = peer_id or self.stored_peer_id
        if readonly:
            self._conn = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True)
        else:
            self._conn = sqlite3.connect(self.path, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            # A compaction writes the whole memory in one transaction; without a limit the WAL
            # file keeps that size for good after the checkpoint.
            self._conn.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
            if self.stored_peer_id is None:
                self._create()
            elif self._format < STORE_FORMAT:
                self._upgrade()
        upto = "(SELECT COALESCE(MAX(upto), 0) FROM snapshot)"
        self.journal_rows = self._scalar(f"SELECT COUNT(*) FROM journal WHERE id > {upto}")
        self.journal_bytes = self._scalar(f"SELECT COALESCE(SUM(LENGTH(wire)), 0) FROM journal WHERE id > {upto}")
        self.commits = 0
        self.last_compaction: float | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], peer_id: str, *, fsync: bool = False) -> SqliteStore:
        return cls(path, peer_id, fsync=fsync)

    # -- validation -------------------------------------------------------------------------

    def _check_existing(self) -> str | None:
        """Validate an existing file read-only; return its peer id, or None if there is none yet."""
        if not self.path.exists():
            return None
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory, not a crdtmem store")
        if self.path.stat().st_size == 0:
            return None  # created but never committed to (killed while creating)
        try:
            conn = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open: {exc}") from None
        try:
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if app == 0 and not tables:
                return None  # an empty database: nothing was ever committed
            if app != APPLICATION_ID:
                raise StoreError(f"{self.path} is not a crdtmem store (another application's SQLite database)")
            if not {"meta", "snapshot", "journal"} <= tables:
                raise StoreError(f"{self.path} is corrupt: tables missing ({sorted(tables)})")
            status = conn.execute("PRAGMA quick_check").fetchone()[0]
            if status != "ok":
                raise StoreError(f"{self.path} is corrupt: {status}")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("format") not in _READABLE_FORMATS:
                raise StoreError(
                    f"{self.path}: unsupported store format {meta.get('format')!r} (this crdtmem reads "
                    f"format {STORE_FORMAT}); start the peer with a new --db and it catches up from its peers"
                )
            if not meta.get("peer_id"):
                raise StoreError(f"{self.path} is corrupt: no peer id recorded")
            self._format = int(meta["format"])
            return meta["peer_id"]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is corrupt or not a SQLite database: {exc}") from None
        finally:
            conn.close()

    def _create(self) -> None:
        conn = self._db
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [("peer_id", self.peer_id), ("format", str(STORE_FORMAT)), ("created", repr(time.time()))],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _upgrade(self) -> None:
        """Format 2 -> 3: an index entry column, empty in the rows already there (a restart decodes
        those batches whole, as format 2 did)."""
        conn = self._db
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("ALTER TABLE journal ADD COLUMN index_entry BLOB NOT NULL DEFAULT x''")
            conn.execute("UPDATE meta SET value = ? WHERE key = 'format'", (str(STORE_FORMAT),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._format = STORE_FORMAT

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._conn

    def _scalar(self, sql: str) -> int:
        return self._db.execute(sql).fetchone()[0]

    # -- reading ----------------------------------------------------------------------------

    def load_parts(self) -> StoredParts:
        """Read the snapshot and every journal row, each checked against its checksum.

        Reads the whole history (the node serves it for catch-up): call once, at start.

        Raises:
            StoreError: a checksum does not match or a row has the wrong types.
        """
        try:
            row = self._db.execute("SELECT memory, seen, upto, checksum FROM snapshot WHERE id = 1").fetchone()
            snapshot = None
            if row is not None:
                mem_b, seen_b, upto, checksum = row
                if not all(isinstance(b, bytes) for b in (mem_b, seen_b, checksum)) or type(upto) is not int:
                    raise StoreError(f"{self.path} is corrupt: the snapshot row has the wrong types")
                if _digest(mem_b, seen_b, str(upto).encode()) != checksum:
                    raise StoreError(f"{self.path} is corrupt: the snapshot fails its checksum")
                snapshot = Snapshot(mem_b, seen_b)
            entry_column = "index_entry" if self._format >= 3 else "x''"
            rows = self._db.execute(f"SELECT id, author, seq, wire, checksum, {entry_column} FROM journal ORDER BY id")
            journal, entries = [], []
            for row_id, author, seq, wire, checksum, entry in rows:
                if not (isinstance(author, str) and type(seq) is int and isinstance(wire, bytes)
                        and isinstance(entry, bytes)):
                    raise StoreError(f"{self.path} is corrupt: journal row {row_id} has the wrong types")
                if _row_digest(author, seq, wire, entry) != checksum:
                    raise StoreError(f"{self.path} is corrupt: journal row {row_id} fails its checksum")
                if peek_entry(wire) != (author, seq):
                    raise StoreError(f"{self.path} is corrupt: journal row {row_id} holds another batch")
                journal.append(wire)
                entries.append(entry)
        except (DecodeError, sqlite3.DatabaseError) as exc:
            raise StoreError(f"{self.path} is corrupt: {exc}") from None
        return StoredParts(snapshot, journal, entries)

    def load(self, *, clock=None) -> Restored:
        """Rebuild the memory from the snapshot and the journal: :func:`~crdtmem.protocol.recovery.restore`.

        Raises:
            StoreError: a checksum does not match or a row does not decode.
        """
        return restore(self, clock=clock)

    def peer_info(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    # -- writing ----------------------------------------------------------------------------

    def append(self, entries: Iterable[JournalEntry]) -> int:
        """Journal applied batches ``(author, seq, wire, index_entry)`` in one transaction; durable on return."""
        rows = [(a, s, w, _row_digest(a, s, w, e), e) for a, s, w, e in entries]
        if not rows:
            return 0
        conn = self._db
        conn.execute("BEGIN")
        try:
            conn.executemany("INSERT INTO journal(author, seq, wire, checksum, index_entry) VALUES (?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.commits += 1
        self.journal_rows += len(rows)
        self.journal_bytes += sum(len(r[2]) for r in rows)
        return len(rows)

    def start_incarnation(self, replica_id: str) -> list[str]:
        """Record (committed on return) that ``replica_id`` writes through this store now.

        Returns:
            The incarnations recorded before it, oldest first (the meta row ``incarnations``).
        """
        conn = self._db
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'incarnations'").fetchone()
            earlier = row[0].split() if row is not None else []
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('incarnations', ?)",
                         (" ".join([*earlier, replica_id]),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return earlier

    def compact(self, snapshot: Snapshot) -> None:
        """Replace the snapshot (atomically); no journal row is rewritten or dropped.

        Call with a :meth:`Snapshot.of <crdtmem.protocol.recovery.Snapshot.of>` that agrees
        with everything journaled so far (the runtime flushes pending writes and journals
        their batches first). Writes the memory's size, whatever the history's.
        """
        mem_b, seen_b = snapshot.memory, snapshot.seen
        conn = self._db
        conn.execute("BEGIN IMMEDIATE")
        try:
            upto = conn.execute("SELECT COALESCE(MAX(id), 0) FROM journal").fetchone()[0]
            checksum = _digest(mem_b, seen_b, str(upto).encode())
            conn.execute(
                "INSERT OR REPLACE INTO snapshot(id, memory, seen, upto, checksum) VALUES (1, ?, ?, ?, ?)",
                (mem_b, seen_b, upto, checksum),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.commits += 1
        self.journal_rows = 0
        self.journal_bytes = 0
        self.last_compaction = time.time()

    def close(self) -> None:
        if self._conn is not None:
            if not self.readonly:
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:
                    pass
            self._conn.close()
            self._conn = None
        self._release_lock()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r}, peer_id={self.peer_id!r})"

    def __str__(self) -> str:
        return str(self.path)
