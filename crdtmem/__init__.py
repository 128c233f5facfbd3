"""crdtmem: leaderless shared memory for AI agents.

``Memory`` is the in-process replica agents write to. ``Identity`` and ``Keyring`` are keys
and trust; ``Peer`` (the websocket runtime, :mod:`crdtmem.runtime`), ``open_peer`` (a peer on
a background thread, for code without an event loop) and the key-file helpers
(:mod:`crdtmem.storage.keyfiles`) load on first use, so importing the core imports no I/O.
"""

from .errors import (
    AuthenticationError,
    CrdtmemError,
    DecodeError,
    LocalProtocolError,
    RemoteProtocolError,
    RollbackError,
    TypeMismatchError,
)
from .memory import Checkpoint, Memory

__all__ = [
    "Memory",
    "Checkpoint",
    "Identity",
    "Keyring",
    "Peer",
    "open_peer",
    "load_identity",
    "load_or_create_identity",
    "save_identity",
    "load_keyring",
    "save_keyring",
    "CrdtmemError",
    "DecodeError",
    "AuthenticationError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "RollbackError",
    "TypeMismatchError",
]

__version__ = "0.1.0"

_LAZY = {
    "Identity": "identity",
    "Keyring": "identity",
    "Peer": "runtime",
    "open_peer": "runtime.threaded",
    "load_identity": "storage.keyfiles",
    "load_or_create_identity": "storage.keyfiles",
    "save_identity": "storage.keyfiles",
    "load_keyring": "storage.keyfiles",
    "save_keyring": "storage.keyfiles",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'crdtmem' has no attribute {name!r}")
