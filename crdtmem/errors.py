"""Every error crdtmem raises on purpose derives from :class:`CrdtmemError`.

Whose fault it is decides the branch::

    CrdtmemError
    ├── RemoteProtocolError          the other side broke the protocol (has a ``reason``)
    │   ├── DecodeError (ValueError) bytes from outside are malformed, oversized, unknown
    │   ├── AuthenticationError      a signature is missing or wrong, or a key untrusted
    │   ├── TypeConflictError        (no longer raised: a type clash is resolved, not refused)
    │   └── ...                      one class per refusal, in ``crdtmem.protocol``
    └── LocalProtocolError           this process misused the API
        ├── TypeMismatchError (TypeError)
        ├── RollbackError
        ├── UnencodableWriteError
        └── RetiredWriterError

Every :class:`RemoteProtocolError` carries a :class:`RefusalReason`: the short code a peer's
input is refused with (logged, counted, and what a :class:`~crdtmem.protocol.events.Refused`
event says). Subclasses narrow it; the reason strings are part of the wire and of reports.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

__all__ = [
    "RefusalReason",
    "CrdtmemError",
    "RemoteProtocolError",
    "DecodeError",
    "AuthenticationError",
    "LocalProtocolError",
    "TypeMismatchError",
    "TypeConflictError",
    "RollbackError",
    "UnencodableWriteError",
    "RetiredWriterError",
]


class RefusalReason(StrEnum):
    """Why a peer's input was refused (and, unless it was a replayed frame, its connection closed)."""

    # framing and handshake (crdtmem.protocol.framing)
    OVERSIZED_FRAME = "oversized-frame"
    MALFORMED_FRAME = "malformed-frame"
    MALFORMED_HANDSHAKE = "malformed-handshake"
    VERSION_MISMATCH = "version-mismatch"
    MISSING_SIGNATURE = "missing-signature"
    MISSING_TAG = "missing-tag"
    BAD_TAG = "bad-tag"
    REFLECTED_FRAME = "reflected-frame"
    BAD_HANDSHAKE_SIGNATURE = "bad-handshake-signature"
    BAD_KEY_EXCHANGE = "bad-key-exchange"
    UNTRUSTED_KEY = "untrusted-key"
    SELF_CONNECTION = "self-connection"
    UNEXPECTED_HANDSHAKE_MESSAGE = "unexpected-handshake-message"
    REPLAYED_FRAME = "replayed-frame"
    OUT_OF_ORDER = "out-of-order"
    OVERSIZED_MESSAGE = "oversized-message"
    BAD_CHUNK = "bad-chunk"
    # signed batches (crdtmem.protocol.batch)
    FORGED_AUTHOR = "forged-author"
    BAD_BATCH_SIGNATURE = "bad-batch-signature"
    UNTRUSTED_AUTHOR = "untrusted-author"
    # compact batches (crdtmem.protocol.compact)
    BAD_BATCH_REFERENCE = "bad-batch-reference"
    # causal delivery (crdtmem.protocol.causal)
    UNOBSERVED_REMOVE = "unobserved-remove"
    BAD_DEPENDENCIES = "bad-dependencies"
    EQUIVOCATION = "equivocation"
    # membership (crdtmem.protocol.membership)
    NOT_AN_ADMIN = "not-an-admin"
    REVOKED_AUTHOR = "revoked-author"
    REVOKED_KEY = "revoked-key"
    # retirement of departed incarnations (crdtmem.protocol.retirement)
    BAD_RETIREMENT = "bad-retirement"
    RETIRED_AUTHOR = "retired-author"
    # the node (crdtmem.protocol.node)
    TYPE_CONFLICT = "type-conflict"  # no longer raised: type clashes resolve (crdtmem.memory)
    CLOCK_SKEW = "clock-skew"
    HANDSHAKE_TIMEOUT = "handshake-timeout"
    # admission (crdtmem.runtime.links): connection budgets
    TOO_MANY_CONNECTIONS = "too-many-connections"
    TOO_MANY_UNAUTHENTICATED = "too-many-unauthenticated"
    HELLO_TIMEOUT = "hello-timeout"
    # bounds (crdtmem.limits)
    NUMBER_OUT_OF_RANGE = "number-out-of-range"
    BAD_NAME = "bad-name"
    OVERSIZED_CONTEXT = "oversized-context"
    # any other fault of the peer
    MALFORMED_MESSAGE = "malformed-message"
    PROTOCOL_VIOLATION = "protocol-violation"
    # a failure of this replica while handling the input (a bug here, not the peer's fault)
    INTERNAL_ERROR = "internal-error"


class CrdtmemError(Exception):
    """Base class: catch this to handle any crdtmem failure."""


class RemoteProtocolError(CrdtmemError):
    """A peer broke the protocol (the fault is on the other side)."""

    reason: ClassVar[RefusalReason] = RefusalReason.PROTOCOL_VIOLATION


class DecodeError(RemoteProtocolError, ValueError):
    """Bytes from outside (a peer, a file) are malformed, truncated, oversized or of an unknown version."""

    reason: ClassVar[RefusalReason] = RefusalReason.MALFORMED_MESSAGE


class AuthenticationError(RemoteProtocolError):
    """A signature is missing or wrong, or a key is not trusted."""


class LocalProtocolError(CrdtmemError):
    """The caller misused the API (the fault is in this process)."""


class TypeMismatchError(LocalProtocolError, TypeError):
    """A name was asked for as one CRDT type but already holds another."""


class TypeConflictError(RemoteProtocolError):
    """A peer sent a name as another CRDT type than this replica holds it.

    No longer raised: since a name written as two types is resolved as a type clash (see
    :mod:`crdtmem.memory`), it is never a refusal. The class and its reason stay so code
    catching it and reports counting ``type-conflict`` keep working.
    """

    reason = RefusalReason.TYPE_CONFLICT


class RollbackError(LocalProtocolError):
    """A checkpoint cannot be restored (a type that only grows, or an unknown checkpoint)."""


class UnencodableWriteError(LocalProtocolError):
    """Local writes could not be encoded for the wire, so they were not signed or sent.

    A type's ``to_plain`` made something msgpack cannot carry (or a number past the wire's
    limit). ``Handle.update`` refuses such a write before it changes anything; this is the last
    guard, for deltas recorded any other way: those writes stay in this replica's state but
    reach no peer; the names are listed, in the message and in :attr:`names`.
    """

    def __init__(self, message: str, names: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.names = names
        """The objects whose writes were not sent."""


class RetiredWriterError(LocalProtocolError):
    """A local write after this incarnation retired (:meth:`crdtmem.protocol.node.Node.retire`).

    Its last batch is sealed and its retirement replicated: start a new peer to write again.
    """
