"""crdtmem: leaderless shared memory for AI agents.

``Memory`` is the in-process replica agents write to. ``Identity``, ``Keyring`` and ``Peer``
(the websocket runtime) load on first use, so the pure core imports nothing of I/O.
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
    "CrdtmemError",
    "DecodeError",
    "AuthenticationError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "RollbackError",
    "TypeMismatchError",
]

__version__ = "0.1.0"

_LAZY = {"Identity": "identity", "Keyring": "identity", "Peer": "peer"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'crdtmem' has no attribute {name!r}")
