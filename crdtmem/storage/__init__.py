"""Persistence for peers. SQLite (stdlib, WAL mode) is the embedded default."""

from .sqlite import Restored, SqliteStore, StoreError

__all__ = ["SqliteStore", "StoreError", "Restored"]
