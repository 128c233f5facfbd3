"""The messages peers exchange once a session is open, as frozen dataclasses (h11 style).

Each travels as the payload of one signed message (see ``framing``): ``msgpack([kind, ...])``
with a one-byte ``kind`` (1 sync, 2 batches, 3 digest, 4 want, 7 ihave, 8 tree root,
9 checkpoints, 10 want history; 5 and 6, Plumtree's prune and graft, are retired).
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
    "Sync", "SeenDigest", "seen_digest", "Batches", "Checkpoints", "WantHistory", "Want", "MAX_WANTED", "TreeRoot", "MAX_TREE_HOPS", "IHave", "Message", "encode_message",
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
"""Most hashes one :class:`Want` names (and authors one :class:`WantHistory` names)."""


@dataclass(frozen=True)
class Checkpoints:
    """Author checkpoints (see ``checkpoint``), each standing for its author's first batches,
    relayed exactly as their authors signed them."""

    wires: tuple[bytes, ...]


@dataclass(frozen=True)
class WantHistory:
    """Authors whose logged batches the sender wants, every one, checkpoints or not.

    Sent by a peer that took a checkpoint and then met a batch naming one of the batches it
    stands for, or that could not take a checkpoint it was sent; answered once per author
    and connection, as :class:`Batches`.
    """

    authors: tuple[str, ...]

MAX_TREE_HOPS = 64
"""A :class:`TreeRoot` distance at or beyond this is ignored: how a stale root is counted out."""


@dataclass(frozen=True)
class TreeRoot:
    """Where the sender stands in the relay tree (see :mod:`.relaytree`): the smallest peer id
    it knows of, its distance to it in links, and whether the receiver is its parent.

    Sent on connecting and whenever one of these changes; the sender's unsigned word, used
    only to choose which links relay fresh batches. ``hops`` is below :data:`MAX_TREE_HOPS`.
    """

    root: str
    hops: int
    parent: bool


@dataclass(frozen=True)
class IHave:
    """Fresh batches the sender holds, by author and number, announced over a lazy link.

    A receiver still lacking one of them a ``graft_timeout`` later asks the sender with a
    ``Sync``: the relay tree's repair (Plumtree's IHAVE).
    At most :data:`MAX_WANTED` dots.
    """

    dots: tuple[Dot, ...]


Message = Sync | SeenDigest | Batches | Checkpoints | WantHistory | Want | TreeRoot | IHave

_SYNC, _BATCHES, _DIGEST, _WANT, _IHAVE, _TREE_ROOT, _CHECKPOINTS, _WANT_HISTORY = 1, 2, 3, 4, 7, 8, 9, 10


def encode_message(message: Message) -> bytes:
    if isinstance(message, Sync):
        return codec.pack([_SYNC, codec.context_to_plain(message.seen), message.reply])
    if isinstance(message, Batches):
        return codec.pack([_BATCHES, list(message.wires)])
    if isinstance(message, SeenDigest):
        return codec.pack([_DIGEST, message.digest])
    if isinstance(message, Checkpoints):
        return codec.pack([_CHECKPOINTS, list(message.wires)])
    if isinstance(message, WantHistory):
        return codec.pack([_WANT_HISTORY, list(message.authors)])
    if isinstance(message, Want):
        return codec.pack([_WANT, list(message.hashes)])
    if isinstance(message, TreeRoot):
        return codec.pack([_TREE_ROOT, message.root, message.hops, message.parent])
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
    if kind == _CHECKPOINTS and len(args) == 1 and isinstance(args[0], list):
        if not all(isinstance(w, bytes) for w in args[0]):
            raise DecodeError("malformed checkpoints message")
        return Checkpoints(tuple(args[0]))
    if kind == _WANT_HISTORY and len(args) == 1 and isinstance(args[0], list) and len(args[0]) <= MAX_WANTED:
        return WantHistory(tuple(codec.expect_replica(a) for a in args[0]))
    if kind == _DIGEST and len(args) == 1 and isinstance(args[0], bytes) and len(args[0]) == 8:
        return SeenDigest(args[0])
    if kind == _TREE_ROOT and len(args) == 3 and type(args[1]) is int and 0 <= args[1] < MAX_TREE_HOPS:
        if type(args[2]) is not bool:
            raise DecodeError("malformed tree root message")
        return TreeRoot(codec.expect_replica(args[0]), args[1], args[2])
    if kind == _IHAVE and len(args) == 1 and isinstance(args[0], list) and len(args[0]) <= MAX_WANTED:
        return IHave(tuple(Dot(*codec.expect_dot(*codec.expect_list(d, "announced dot", 2))) for d in args[0]))
    raise DecodeError(f"malformed or unknown message kind {kind!r}")
