"""What a :class:`~crdtmem.protocol.node.Node` asks its shell to do, and tells it happened.

The shell (websocket runtime or simulator) drains :meth:`Node.take_actions` after every call
and performs them in order; it reads :meth:`Node.take_events` for storage, metrics and waiting.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum

from ..errors import RefusalReason

__all__ = [
    "SendKind",
    "Send",
    "Close",
    "Publish",
    "RelaySend",
    "Action",
    "PeerConnected",
    "PeerDisconnected",
    "Refused",
    "BatchApplied",
    "CheckpointApplied",
    "TypeClash",
    "Event",
]

ConnId = Hashable


class SendKind(StrEnum):
    """What a sent frame carries, for byte accounting (the strings name report counters)."""

    HANDSHAKE = "handshake"
    GOSSIP = "gossip"
    CATCH_UP = "catch-up"
    ANTI_ENTROPY = "anti-entropy"
    RELAY = "relay"
    OTHER = "other"


@dataclass(frozen=True)
class Send:
    """Write ``data`` (one frame) to connection ``conn``."""

    conn: ConnId
    data: bytes
    kind: SendKind = SendKind.OTHER


@dataclass(frozen=True)
class Close:
    """Close connection ``conn``; ``reason`` says why (logged, counted)."""

    conn: ConnId
    reason: RefusalReason


@dataclass(frozen=True)
class Publish:
    """Publish one signed batch ``wire`` to relay ``link``'s stream, deduplicated by ``msg_id``.

    The shell reports the broker's durable acknowledgement with :meth:`Node.relay_stored`.
    """

    link: ConnId
    wire: bytes
    msg_id: str


@dataclass(frozen=True)
class RelaySend:
    """Send a reconciliation message ``data`` over relay ``link`` (not through its stream).

    ``to`` None: a request to whichever peer answers reconciliation on the broker, with this
    link's own reply address; otherwise the reply address a request came with.
    """

    link: ConnId
    data: bytes
    to: str | None = None


Action = Send | Close | Publish | RelaySend


@dataclass(frozen=True)
class PeerConnected:
    conn: ConnId
    peer_id: str


@dataclass(frozen=True)
class PeerDisconnected:
    conn: ConnId
    peer_id: str | None
    reason: str


@dataclass(frozen=True)
class Refused:
    """Input from ``conn`` was refused; ``detail`` says what was wrong, for a human."""

    conn: ConnId
    reason: RefusalReason
    detail: str


@dataclass(frozen=True)
class BatchApplied:
    """A delta batch (local or remote) joined the memory; storage journals ``wire`` and
    ``index_entry`` (what a restart re-indexes it from without decoding it, :mod:`.reindex`)."""

    author: str
    seq: int
    wire: bytes
    local: bool
    index_entry: bytes = b""


@dataclass(frozen=True)
class CheckpointApplied:
    """An author checkpoint (:mod:`.checkpoint`) joined the memory, standing for its author's
    batches ``1..seq``; storage journals ``wire`` and ``index_entry`` as it does a batch's."""

    author: str
    seq: int
    wire: bytes
    index_entry: bytes = b""


@dataclass(frozen=True)
class TypeClash:
    """The object ``name`` is now written as each of ``tags`` (the winner first; see
    :mod:`crdtmem.memory`): a conflict to report, never a reason to refuse anything.

    Reads by name see the winner (the lowest tag); each type stays reachable with
    ``memory.get(name, kind)``. Raised once per type the name gains.
    """

    name: str
    tags: tuple[str, ...]


Event = PeerConnected | PeerDisconnected | Refused | BatchApplied | CheckpointApplied | TypeClash
