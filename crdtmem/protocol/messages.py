"""The messages peers exchange once a session is open, as frozen dataclasses (h11 style).

Each travels as the payload of one signed message (see ``framing``): ``msgpack([kind, ...])``,
``kind`` one letter (``"s"`` sync, ``"b"`` batches, ``"d"`` digest: a one-edit batch is
small, and every byte of its envelope counts).
:func:`decode_message` is strict and raises :class:`~crdtmem.errors.DecodeError` on anything
that is not exactly one of these.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from .. import codec
from ..clocks import CausalContext
from ..errors import DecodeError

__all__ = ["Sync", "SeenDigest", "seen_digest", "Batches", "Message", "encode_message", "decode_message"]


@dataclass(frozen=True)
class Sync:
    """The batches the sender has seen; gossip rounds and acks.

    ``reply`` marks an answer (it is not answered again). ``seen`` is the sender's unsigned
    word about its own holdings: a receiver uses it to choose what to send, never to change
    its own history (no claim is adopted or persisted).
    """

    seen: CausalContext
    reply: bool = False


@dataclass(frozen=True)
class SeenDigest:
    """A gossip round's opener: a short hash of the batches the sender has seen.

    A receiver whose own digest differs answers with a full :class:`Sync`; an idle cluster
    thus gossips a few bytes per round instead of a version vector per author.
    """

    digest: bytes


def seen_digest(seen: CausalContext) -> bytes:
    return hashlib.blake2b(codec.pack(codec.context_to_plain(seen)), digest_size=8).digest()


@dataclass(frozen=True)
class Batches:
    """Signed delta batches (see ``batch``), relayed exactly as their authors signed them."""

    wires: tuple[bytes, ...]


Message = Sync | SeenDigest | Batches

_SYNC, _BATCHES, _DIGEST = "s", "b", "d"


def encode_message(message: Message) -> bytes:
    if isinstance(message, Sync):
        return codec.pack([_SYNC, codec.context_to_plain(message.seen), message.reply])
    if isinstance(message, Batches):
        return codec.pack([_BATCHES, list(message.wires)])
    if isinstance(message, SeenDigest):
        return codec.pack([_DIGEST, message.digest])
    raise TypeError(f"not a message: {message!r}")


def decode_message(data: bytes, *, max_size: int) -> Message:
    obj = codec.unpack(data, max_size=max_size)
    if not (isinstance(obj, list) and obj and isinstance(obj[0], str)):
        raise DecodeError("malformed message")
    kind, args = obj[0], obj[1:]
    if kind == _SYNC and len(args) == 2 and type(args[1]) is bool:
        return Sync(codec.context_from_plain(args[0]), args[1])
    if kind == _BATCHES and len(args) == 1 and isinstance(args[0], list):
        if not all(isinstance(w, bytes) for w in args[0]):
            raise DecodeError("malformed batches message")
        return Batches(tuple(args[0]))
    if kind == _DIGEST and len(args) == 1 and isinstance(args[0], bytes) and len(args[0]) == 8:
        return SeenDigest(args[0])
    raise DecodeError(f"malformed or unknown message kind {kind!r}")
