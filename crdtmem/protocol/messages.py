"""The messages peers exchange once a session is open, as frozen dataclasses (h11 style).

Each travels as the payload of one signed message (see ``framing``): ``msgpack([kind, ...])``
with a one-byte ``kind`` (1 sync, 2 batches, 3 digest, 4 want, 5 prune, 6 graft, 7 ihave).
:func:`decode_message` is strict and raises :class:`~crdtmem.errors.DecodeError` on anything
that is not exactly one of these.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from .. import codec
from ..clocks import CausalContext, Dot
from ..errors import DecodeError
from .batch import HASH_BYTES

__all__ = [
    "Sync", "SeenDigest", "seen_digest", "Batches", "Want", "MAX_WANTED", "Prune", "Graft", "IHave", "Message", "encode_message",
    "decode_message",
]


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


@dataclass(frozen=True)
class Want:
    """Batches the sender waits for, named by hash: dependencies a :class:`Sync` cannot fetch.

    A ``Sync`` names batches by author and number, so it cannot fetch a batch whose author
    signed another one under the same number that the sender already holds (equivocation).
    The receiver answers with those of the hashes it holds, as :class:`Batches`.
    """

    hashes: tuple[bytes, ...]


MAX_WANTED = 256
"""Most hashes one :class:`Want` names."""

@dataclass(frozen=True)
class Prune:
    """"Your relays reach me another way": both ends stop relaying fresh batches over this link.

    Sent by a peer that received only batches it already held from a neighbour's relay or
    push; the link stays open for gossip and catch-up (a *lazy* link, Plumtree's PRUNE).
    """


@dataclass(frozen=True)
class Graft:
    """"Relay to me again": both ends relay fresh batches over this link once more.

    Sent by a peer that got a fresh batch over a lazy link (gossip or catch-up repaired a gap
    the relay tree left), or that lost one of its relaying links (Plumtree's GRAFT).
    """


@dataclass(frozen=True)
class IHave:
    """Fresh batches the sender holds, by author and number, announced over a lazy link.

    A receiver still lacking one of them a ``graft_timeout`` later asks the sender with a
    ``Sync`` (whose answer grafts the link): the relay tree's repair (Plumtree's IHAVE).
    At most :data:`MAX_WANTED` dots.
    """

    dots: tuple[Dot, ...]


Message = Sync | SeenDigest | Batches | Want | Prune | Graft | IHave

_SYNC, _BATCHES, _DIGEST, _WANT, _PRUNE, _GRAFT, _IHAVE = 1, 2, 3, 4, 5, 6, 7


def encode_message(message: Message) -> bytes:
    if isinstance(message, Sync):
        return codec.pack([_SYNC, codec.context_to_plain(message.seen), message.reply])
    if isinstance(message, Batches):
        return codec.pack([_BATCHES, list(message.wires)])
    if isinstance(message, SeenDigest):
        return codec.pack([_DIGEST, message.digest])
    if isinstance(message, Want):
        return codec.pack([_WANT, list(message.hashes)])
    if isinstance(message, Prune):
        return codec.pack([_PRUNE])
    if isinstance(message, Graft):
        return codec.pack([_GRAFT])
    if isinstance(message, IHave):
        return codec.pack([_IHAVE, [list(dot) for dot in message.dots]])
    raise TypeError(f"not a message: {message!r}")


def decode_message(data: bytes, *, max_size: int) -> Message:
    obj = codec.unpack(data, max_size=max_size)
    if not (isinstance(obj, list) and obj and type(obj[0]) is int):
        raise DecodeError("malformed message")
    kind, args = obj[0], obj[1:]
    if kind == _SYNC and len(args) == 2 and type(args[1]) is bool:
        return Sync(codec.context_from_plain(args[0]), args[1])
    if kind == _BATCHES and len(args) == 1 and isinstance(args[0], list):
        if not all(isinstance(w, bytes) for w in args[0]):
            raise DecodeError("malformed batches message")
        return Batches(tuple(args[0]))
    if kind == _WANT and len(args) == 1 and isinstance(args[0], list) and len(args[0]) <= MAX_WANTED:
        if not all(isinstance(h, bytes) and len(h) == HASH_BYTES for h in args[0]):
            raise DecodeError("malformed want message")
        return Want(tuple(args[0]))
    if kind == _DIGEST and len(args) == 1 and isinstance(args[0], bytes) and len(args[0]) == 8:
        return SeenDigest(args[0])
    if kind == _PRUNE and not args:
        return Prune()
    if kind == _GRAFT and not args:
        return Graft()
    if kind == _IHAVE and len(args) == 1 and isinstance(args[0], list) and len(args[0]) <= MAX_WANTED:
        return IHave(tuple(Dot(*codec.expect_dot(*codec.expect_list(d, "announced dot", 2))) for d in args[0]))
    raise DecodeError(f"malformed or unknown message kind {kind!r}")
