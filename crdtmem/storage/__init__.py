"""Persistence for peers: stores that keep the :class:`~crdtmem.protocol.recovery.Store` contract.

SQLite (stdlib, WAL mode) is the embedded default; :class:`MemoryStore` keeps the same parts in
this process (the simulator's crash and restart go through it). Restore from either with
:func:`~crdtmem.protocol.recovery.restore`.
"""

from ..protocol.recovery import Restored, Snapshot, Store, StoreError
from .memory import MemoryStore
from .sqlite import SqliteStore

__all__ = ["Store", "SqliteStore", "MemoryStore", "StoreError", "Restored", "Snapshot"]
