"""Author checkpoints: one signed message that stands for an author's first ``n`` batches.

A peer joining late receives, verifies and applies every author's signed batches, so its cost
follows how often each author flushed, not the size of the state: after an editing session of
fifty thousand keystrokes it is tens of thousands of signatures. An author can instead sign a
**checkpoint** ``K(A, n)``: the join of its batches ``1..n``, object by object (a document is
its Yjs state with deleted text collected, as pycrdt-websocket sends a newcomer), with the
hash of batch ``n``. A joiner verifies one signature and joins one
state-sized delta, and the batches ``A`` writes after ``n`` name batch ``n`` by that hash.

Only a **self-contained** prefix is checkpointed: batches that depend on nothing but their
author's own earlier ones (it had applied no other replica's batch when it sealed them: it
wrote alone, as an agent filling a document no one else edits yet). Their covered vector is
``{A: n}``, so a checkpoint carries no dependency and no history of what its author observed,
and its removals and deletions may touch only its author's own dots and Yjs items, which
:func:`open_checkpoint` checks: a checkpoint cannot remove what its author had not observed.
An author's chain stops being self-contained at its first batch that depends on another's;
its checkpoint then stays at the last self-contained batch (see :class:`Contribution`).

A checkpoint is its author's word about its own writes, like a batch. One that differs from
the batches it stands for is equivocation: a replica that holds those batches recomputes the
join and compares, documents in a canonical encoding (:meth:`Contribution.matches`), and
refuses it. A joiner that took a checkpoint and later meets
a batch naming one of the batches it stands for (``1..n-1``, hashes it never saw) fetches the
author's batches themselves (the node's ``WantHistory``).

Wire: ``msgpack([1, author, seq, head, body, signature])``: ``head`` the :data:`HASH_BYTES`-byte
hash of batch ``seq``, ``body`` a batch body (``[name, tag, state]`` per object, sorted by name
and tag); the signature covers the author, ``seq``, ``head`` and the body's 32-byte BLAKE2b
digest. The leading integer tells a checkpoint from a batch (whose first part is its author).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pycrdt

from .. import codec
from ..clocks import Dot
from ..crdt import Crdt
from ..crdt.document import Document, update_footprint, yjs_client_id
from ..crdt.dotkernel import KernelContainer
from ..errors import DecodeError
from ..identity import key_id_of
from .batch import (
    HASH_BYTES,
    DeltaBatch,
    check_signature,
    encode_body,
    peek_batch,
    read_deltas,
)
from .causal import UnobservedRemoveError

__all__ = [
    "Checkpoint",
    "Contribution",
    "seal_checkpoint",
    "open_checkpoint",
    "read_checkpoint",
    "read_checkpoint_header",
    "is_checkpoint",
    "peek_entry",
]

_KIND = 1
_DOMAIN = b"crdtmem-checkpoint-v2"


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: its author's batches ``1..seq`` joined, and batch ``seq``'s hash."""

    author: str
    seq: int
    head: bytes
    """:func:`~crdtmem.protocol.batch.batch_hash` of the author's batch ``seq``."""
    deltas: tuple[tuple[str, Crdt], ...]
    wire: bytes
    signature: bytes

    @property
    def key(self) -> tuple[str, int, bytes, bytes]:
        """What tells this checkpoint from any other once its signature verified (the signature
        covers its body's digest): read from the header alone, so one seen before costs no hash."""
        return self.author, self.seq, self.head, self.signature

    @property
    def dot(self) -> Dot:
        """The author's batch it ends with: a checkpoint is sent and offered once per dot (two
        differing ones for the same dot would be equivocation)."""
        return Dot(self.author, self.seq)

    def as_batch(self) -> DeltaBatch:
        """The checkpoint as the batch ``seq`` it ends with, dependencies left out: what the
        membership, retirement and causal checks and :func:`~.batch.apply_batch` read."""
        return DeltaBatch(self.author, self.seq, self.deltas, self.wire, (), self.head)


def _signed_part(author: str, seq: int, head: bytes, body: bytes) -> bytes:
    # The body's digest is signed, not the body: Ed25519 hashes what it signs twice with
    # SHA-512, and a checkpoint's body is a whole state (BLAKE2b reads it once, faster).
    return codec.pack([_DOMAIN, author, seq, head, hashlib.blake2b(body, digest_size=32).digest()])


def seal_checkpoint(identity: Any, contribution: Contribution) -> Checkpoint:
    """Sign ``contribution`` (an author's batches so far) as a checkpoint. Call when serving a
    peer that lacks the author's batches (the author is this replica's incarnation).

    The checkpoint carries its wire only (``deltas`` is empty: the contribution may be the
    live memory); :func:`read_checkpoint` decodes it.

    Raises:
        ValueError: the contribution is empty, or not of an incarnation of ``identity``.
    """
    author, seq = contribution.author, contribution.seq
    if not seq or key_id_of(author) != identity.peer_id:
        raise ValueError(f"{identity.peer_id} cannot sign a checkpoint of {author}#{seq}")
    body = encode_body(contribution.deltas(canonical=False))
    signature = identity.sign(_signed_part(author, seq, contribution.head, body))
    wire = codec.pack([_KIND, author, seq, contribution.head, body, signature])
    return Checkpoint(author, seq, contribution.head, (), wire, signature)


def is_checkpoint(wire: bytes) -> bool:
    """Whether a journaled or received wire is a checkpoint (else a batch); reads one byte."""
    # A checkpoint is a 6-element msgpack array starting with the integer 1; a batch is a
    # 5-element array starting with its author's string.
    return wire[:2] == b"\x96\x01"


def _parts(wire: bytes, max_size: int | None = None) -> list:
    parts = codec.unpack(wire) if max_size is None else codec.unpack(wire, max_size=max_size)
    if not (isinstance(parts, list) and len(parts) == 6 and parts[0] == _KIND):
        raise DecodeError("malformed checkpoint")
    _, author, seq, head, body, signature = parts
    if not (isinstance(author, str) and type(seq) is int and seq >= 1 and isinstance(head, bytes)
            and len(head) == HASH_BYTES and isinstance(body, bytes) and isinstance(signature, bytes)):
        raise DecodeError("malformed checkpoint header")
    codec.expect_count(seq, "checkpoint sequence number")
    return parts


def peek_entry(wire: bytes) -> tuple[str, int]:
    """The (author, seq) of a journaled batch or checkpoint, unverified; raises DecodeError if malformed."""
    if is_checkpoint(wire):
        parts = _parts(wire)
        return parts[1], parts[2]
    return peek_batch(wire)


def open_checkpoint(wire: bytes, keyring: Any, verify: Any, *, max_size: int) -> Checkpoint:
    """Verify a checkpoint from the wire and decode its deltas; nothing is applied. Its
    documents come marked as their author's whole states (``Document.whole_state``).

    Raises:
        DecodeError: malformed bytes or deltas.
        UntrustedAuthorError: the author is not in the keyring.
        BadBatchSignatureError: the signature does not match.
        ForgedDeltaError: a delta writes in another replica's name.
        UnobservedRemoveError: a delta removes or deletes another replica's dots or items
            (a self-contained prefix observed none).
    """
    _, author, seq, head, body, signature = _parts(wire, max_size)
    check_signature(keyring, verify, f"checkpoint {author}#{seq}", author, signature, _signed_part(author, seq, head, body))
    deltas = read_deltas(author, seq, body, max_size)
    _check_self_contained(author, seq, deltas)
    for _name, delta in deltas:
        if isinstance(delta, Document):
            delta.whole_state()  # its author's items alone (read_deltas checked), deleting no one else's
    return Checkpoint(author, seq, head, deltas, bytes(wire), signature)


def read_checkpoint_header(wire: bytes) -> Checkpoint:
    """A checkpoint without its deltas, unverified: what re-indexing one from this replica's
    own storage takes beside its journaled index entry, and a received one's :attr:`~Checkpoint.key`.

    Raises:
        DecodeError: malformed bytes.
    """
    _, author, seq, head, _body, signature = _parts(wire)
    return Checkpoint(author, seq, head, (), bytes(wire), signature)


def read_checkpoint(wire: bytes, *, max_size: int) -> Checkpoint:
    """Decode a checkpoint without verifying it again: only for wires from this replica's own
    storage (verified when received)."""
    _, author, seq, head, body, signature = _parts(wire, max_size)
    return Checkpoint(author, seq, head, read_deltas(author, seq, body, max_size), bytes(wire), signature)


def _check_self_contained(author: str, seq: int, deltas: Iterable[tuple[str, Crdt]]) -> None:
    own = yjs_client_id(author)
    for name, delta in deltas:
        if isinstance(delta, KernelContainer):
            contained = delta.ctx.replicas() <= {author}
        elif isinstance(delta, Document):
            try:
                contained = update_footprint(delta.encoded()).deletes_only(own)
            except ValueError as exc:
                raise DecodeError(f"checkpoint {author}#{seq}: {name!r} is not a readable Yjs update ({exc})") from None
        else:
            continue
        if not contained:
            raise UnobservedRemoveError(
                f"checkpoint {author}#{seq} removes what others wrote in {name!r}: a checkpoint stands "
                "for batches that observed no one else's"
            )


def _live(delta: Document) -> Document:
    """A live Document (a Doc) holding ``delta``'s update: what canonical encoding reads."""
    state = Document(pycrdt.Doc())
    state.join(delta)
    return state


class Contribution:
    """One author's batches ``1..seq`` joined object by object: what its checkpoint holds.

    Feed it the author's batches in order (:meth:`add`). An author keeps its own while its
    chain is self-contained; a replica holding someone's batches builds one to check their
    checkpoint (:meth:`matches`). A document is kept as a live Yjs Doc (each update integrates
    in time proportional to it) and encoded canonically only when asked for.
    """

    def __init__(self, author: str) -> None:
        self.author = author
        self.seq = 0
        self.head = b""
        self._objects: dict[tuple[str, str], Crdt] = {}

    def add(self, batch: DeltaBatch) -> None:
        """Join the author's next batch (``seq + 1``).

        Raises:
            ValueError: it is another author's, or not the next number.
        """
        if batch.author != self.author or batch.seq != self.seq + 1:
            raise ValueError(f"{batch.author}#{batch.seq} does not continue {self.author}#{self.seq}")
        objects = self._objects
        for name, delta in batch.deltas:
            key = (name, delta.TAG)
            state = objects.get(key)
            if state is None:
                objects[key] = _live(delta) if isinstance(delta, Document) else delta.copy()
            else:
                state.join(delta)
        self.seq, self.head = batch.seq, batch.hash

    def deltas(self, *, canonical: bool = True) -> list[tuple[str, Crdt]]:
        """The joined deltas, sorted by name and type. Documents are re-encoded canonically (the
        same bytes for the same content, whatever the order and grouping of the updates), or,
        without ``canonical``, as their Doc encodes them (a state-sized copy less)."""
        out: list[tuple[str, Crdt]] = []
        for (name, _tag), state in sorted(self._objects.items(), key=lambda item: item[0]):
            if isinstance(state, Document):
                state = Document.from_update(state.encoded() if canonical else state.doc.get_update())
            out.append((name, state))
        return out

    def matches(self, checkpoint: Checkpoint, *, max_size: int) -> bool:
        """Whether ``checkpoint`` holds exactly this contribution (same number, head and
        content, documents compared canonically). Call with the contribution of the batches it
        claims to stand for; costs a document's re-encoding."""
        if (checkpoint.author, checkpoint.seq, checkpoint.head) != (self.author, self.seq, self.head):
            return False
        decoded = read_checkpoint(checkpoint.wire, max_size=max_size).deltas
        theirs = Contribution.of_state(self.author, self.seq, self.head, (
            (name, _live(delta) if isinstance(delta, Document) else delta) for name, delta in decoded))
        return encode_body(self.deltas()) == encode_body(theirs.deltas())

    @classmethod
    def of_state(cls, author: str, seq: int, head: bytes, entries: Iterable[tuple[str, Crdt]]) -> Contribution:
        """The contribution of an author whose memory holds exactly its batches ``1..seq``
        (it applied no one else's and has no unsealed write): its objects, read in place.

        Args:
            head: the hash of its batch ``seq``.
            entries: the memory's objects (``Memory.entries``), not copied: seal it at once.
        """
        contribution = cls(author)
        contribution.seq, contribution.head = seq, head
        contribution._objects = {(name, state.TAG): state for name, state in entries}
        return contribution

    @classmethod
    def of(cls, batches: Iterable[DeltaBatch]) -> Contribution:
        """The contribution of an author's batches ``1..n``, given in order."""
        batches = iter(batches)
        first = next(batches)
        contribution = cls(first.author)
        contribution.add(first)
        for batch in batches:
            contribution.add(batch)
        return contribution
