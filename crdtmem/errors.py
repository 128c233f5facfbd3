"""Every error crdtmem raises on purpose derives from :class:`CrdtmemError`."""

__all__ = [
    "CrdtmemError",
    "DecodeError",
    "AuthenticationError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "TypeMismatchError",
    "TypeConflictError",
    "RollbackError",
    "LostHistoryError",
]


class CrdtmemError(Exception):
    """Base class: catch this to handle any crdtmem failure."""


class DecodeError(CrdtmemError, ValueError):
    """Bytes from outside (a peer, a file) are malformed, truncated, oversized or of an unknown version."""


class AuthenticationError(CrdtmemError):
    """A signature is missing or wrong, or a key is not trusted."""


class LocalProtocolError(CrdtmemError):
    """The caller misused the API (the fault is in this process)."""


class RemoteProtocolError(CrdtmemError):
    """A peer broke the protocol (the fault is on the other side)."""


class TypeMismatchError(LocalProtocolError, TypeError):
    """A name was asked for as one CRDT type but already holds another."""


class TypeConflictError(RemoteProtocolError):
    """A peer sent a name as another CRDT type than this replica holds it (refused as ``type-conflict``)."""

    reason = "type-conflict"


class RollbackError(LocalProtocolError):
    """A checkpoint cannot be restored (a type that only grows, or an unknown checkpoint)."""


class LostHistoryError(LocalProtocolError):
    """Peers hold writes of this replica that it does not: its store was lost or is an old copy.

    Writing on would reuse sequence numbers and dots the peers have already seen, and they would
    ignore the new writes. Run this replica under a new identity (``crdtmem keygen``, trusted by
    the others) with an empty store.
    """
