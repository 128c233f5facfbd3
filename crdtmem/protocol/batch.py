"""Delta batches: the unit of gossip, signed once by their author and relayed unchanged.

A batch is the deltas one replica produced between two flushes, numbered ``seq`` 1, 2, 3, ...
per author, so ``(author, seq)`` is a dot, and a causal context of dots says which batches a
replica has seen. The author is a replica id, an incarnation of a key (``<peer id>.<tag>``, see
:mod:`crdtmem.identity`); its batches verify with that key. A batch names its causal
dependencies by hash: the head batches its author had
applied when sealing it (see :mod:`.causal`), so it cannot name a batch that does not exist
yet. The author's signature covers the author, the sequence number, the dependencies and the
exact delta bytes; relays never re-sign.

Wire: ``msgpack([author, seq, deps, body, signature])``, ``deps`` a sorted list of distinct
:data:`HASH_BYTES`-byte batch hashes (at most :data:`MAX_DEPS`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from collections.abc import Iterable
from typing import Any

from .. import codec
from ..clocks import HybridClock
from ..crdt import Crdt, latest_stamp, only_writes_as
from ..errors import AuthenticationError, DecodeError, RefusalReason, RemoteProtocolError
from ..identity import key_id_of

__all__ = [
    "DeltaBatch",
    "HASH_BYTES",
    "MAX_DEPS",
    "batch_hash",
    "read_batch",
    "read_header",
    "ForgedDeltaError",
    "BadBatchSignatureError",
    "UntrustedAuthorError",
    "ClockSkewError",
    "check_stamps",
    "seal_batch",
    "peek_batch",
    "open_batch",
    "apply_batch",
    "check_signature",
    "encode_body",
    "read_deltas",
]

_DOMAIN = b"crdtmem-batch-v2"

HASH_BYTES = 16
"""Length of a batch hash (BLAKE2b of the signed wire; Ed25519 signatures are deterministic)."""
MAX_DEPS = 64
"""Most dependencies one batch may name (an honest one names its author's few head batches)."""


def batch_hash(wire: bytes) -> bytes:
    """The hash other batches name this one by. Call on the exact signed wire."""
    return hashlib.blake2b(wire, digest_size=HASH_BYTES).digest()


class ForgedDeltaError(RemoteProtocolError):
    """A batch writes a slot, dot or timestamp that belongs to someone other than its signer."""

    reason = RefusalReason.FORGED_AUTHOR


class BadBatchSignatureError(AuthenticationError):
    """A batch's signature does not verify with its author's key."""

    reason = RefusalReason.BAD_BATCH_SIGNATURE


class UntrustedAuthorError(AuthenticationError):
    """A batch's author is not in the keyring."""

    reason = RefusalReason.UNTRUSTED_AUTHOR


class ClockSkewError(RemoteProtocolError):
    """A batch carries a timestamp beyond this replica's clock plus the allowed skew."""

    reason = RefusalReason.CLOCK_SKEW


@dataclass(frozen=True)
class DeltaBatch:
    """A verified batch: who wrote it, its number, and its decoded deltas by object name."""

    author: str
    seq: int
    deltas: tuple[tuple[str, Crdt], ...]
    wire: bytes
    """The signed encoding, relayed as is."""
    deps: tuple[bytes, ...] = ()
    """Hashes of the batches its author had applied and no other of them depends on (its heads)."""
    hash: bytes = field(default=b"", compare=False)
    """:func:`batch_hash` of ``wire``."""

    def __post_init__(self) -> None:
        if not self.hash:
            object.__setattr__(self, "hash", batch_hash(self.wire))


def encode_body(deltas: Iterable[tuple[str, Crdt]]) -> bytes:
    """The body of a batch (or checkpoint): ``[name, tag, state]`` per delta, packed."""
    return codec.pack([[name, *codec.state_to_plain(delta)] for name, delta in deltas])


def _signed_part(author: str, seq: int, deps: list[bytes], body: bytes) -> bytes:
    return codec.pack([_DOMAIN, author, seq, deps, body])


def seal_batch(
    identity: Any, seq: int, deltas: list[tuple[str, Crdt]], deps: tuple[bytes, ...] | list[bytes] = (),
    *, author: str | None = None,
) -> DeltaBatch:
    """Encode and sign a local batch. Call when flushing ``memory.take_deltas()``.

    Args:
        deps: the hashes of the batches this replica has applied that no other applied batch
            depends on (:meth:`~crdtmem.protocol.causal.CausalIndex.heads`); through them the
            batch must cover its author's own batch ``seq - 1``.
        author: the replica id writing: this start's incarnation of ``identity``
            (:func:`~crdtmem.identity.new_incarnation`); default its bare peer id.

    Raises:
        ValueError: ``author`` is not an incarnation of ``identity``.
    """
    body = encode_body(deltas)
    author = author or identity.peer_id
    if key_id_of(author) != identity.peer_id:
        raise ValueError(f"{identity.peer_id} cannot sign for replica {author}")
    dep_list = sorted(set(deps))
    signature = identity.sign(_signed_part(author, seq, dep_list, body))
    wire = codec.pack([author, seq, dep_list, body, signature])
    return DeltaBatch(author, seq, tuple(deltas), wire, tuple(dep_list))


_BYTES = {bytes}
_HASH_LENGTH = {HASH_BYTES}


def _header(wire: bytes, max_size: int | None = None) -> list:
    """The batch's five parts, with its author, number and body checked (not its dependencies)."""
    parts = codec.unpack(wire) if max_size is None else codec.unpack(wire, max_size=max_size)
    if not (isinstance(parts, list) and len(parts) == 5):
        raise DecodeError("malformed delta batch")
    author, seq, body = parts[0], parts[1], parts[3]
    if not isinstance(author, str) or type(seq) is not int or seq < 1 or not isinstance(body, bytes):
        raise DecodeError("malformed delta batch header")
    codec.expect_count(seq, "batch sequence number")
    return parts


def _parts(wire: bytes, max_size: int | None = None) -> list:
    parts = _header(wire, max_size)
    deps = parts[2]
    # Checked in C, not per dependency in Python: an honest batch names one head per concurrent writer.
    if not (isinstance(deps, list) and len(deps) <= MAX_DEPS and set(map(type, deps)) <= _BYTES
            and set(map(len, deps)) <= _HASH_LENGTH and deps == sorted(set(deps))):
        raise DecodeError("malformed delta batch dependencies")
    return parts


def peek_batch(wire: bytes) -> tuple[str, int]:
    """The (author, seq) of a batch without verifying it; raises DecodeError if malformed."""
    parts = _header(wire)
    return parts[0], parts[1]


def read_header(wire: bytes) -> DeltaBatch:
    """A batch from this replica's own storage without its deltas: its author, number,
    dependencies and hash, what re-indexing it takes beside its journaled index entry."""
    author, seq, deps, _body, _signature = _parts(wire)
    return DeltaBatch(author, seq, (), bytes(wire), tuple(deps))


def read_batch(wire: bytes, *, max_size: int) -> DeltaBatch:
    """Decode a batch without verifying its signature again.

    Call only on wires read back from this replica's own storage (verified when received).
    """
    author, seq, deps, body, _ = _parts(wire, max_size)
    return DeltaBatch(author, seq, read_deltas(author, seq, body, max_size), bytes(wire), tuple(deps))


def read_deltas(author: str, seq: int, body: bytes, max_size: int) -> tuple[tuple[str, Crdt], ...]:
    """Decode a body written by ``author`` (batch or checkpoint ``seq``); every delta must write as ``author``.

    Raises:
        DecodeError: malformed deltas.
        ForgedDeltaError: a delta writes in another replica's name.
    """
    deltas = []
    for item in codec.unpack_items(body, "delta list", max_size=max_size):
        if not (isinstance(item, list) and len(item) == 3):
            raise DecodeError("malformed delta entry")
        codec.expect_name(item[0])
        delta = codec.state_from_plain(item[1:])
        if not only_writes_as(delta, author):
            raise ForgedDeltaError(f"batch {author}#{seq} writes {item[0]!r} in another replica's name")
        deltas.append((item[0], delta))
    return tuple(deltas)


def open_batch(wire: bytes, keyring: Any, verify: Any, *, max_size: int) -> DeltaBatch:
    """Verify a batch from the wire and decode its deltas; nothing is applied.

    Raises:
        DecodeError: malformed bytes or deltas.
        UntrustedAuthorError: the author is not in the keyring.
        BadBatchSignatureError: the signature does not match.
        ForgedDeltaError: a delta writes in another replica's name.
    """
    author, seq, deps, body, signature = _parts(wire, max_size)
    check_signature(keyring, verify, f"batch {author}#{seq}", author, signature, _signed_part(author, seq, deps, body))
    return DeltaBatch(author, seq, read_deltas(author, seq, body, max_size), bytes(wire), tuple(deps))


def check_signature(keyring: Any, verify: Any, what: str, author: str, signature: Any, signed: bytes) -> None:
    """Check that ``author``'s key, from ``keyring``, signed ``signed`` (``what`` names it in errors).

    Raises:
        UntrustedAuthorError: the author is not in the keyring.
        BadBatchSignatureError: the signature does not match.
    """
    public_key = keyring.public_key(key_id_of(author))
    if public_key is None:
        raise UntrustedAuthorError(f"{what}: its author {key_id_of(author)} is not in the keyring")
    if not isinstance(signature, bytes) or not verify(public_key, signature, signed):
        raise BadBatchSignatureError(f"{what} has a bad signature")


def check_stamps(batch: DeltaBatch, bound: int) -> None:
    """Refuse a batch writing a hybrid timestamp after ``bound``; call before applying it.

    ``bound`` is ``memory.stamp_bound(max_skew)``: the receiver's clock plus the skew it
    allows. Nothing is applied by this check.

    Raises:
        ClockSkewError: some delta's timestamp is later than ``bound``.
    """
    for name, delta in batch.deltas:
        stamp = latest_stamp(delta)
        if stamp > bound:
            ahead = (HybridClock.wall_ms(stamp) - HybridClock.wall_ms(bound)) / 1000
            raise ClockSkewError(
                f"batch {batch.author}#{batch.seq} writes {name!r} at a timestamp {ahead:.3f} s beyond "
                "this replica's clock plus the allowed skew: check the author's clock (or raise max_clock_skew)"
            )


def apply_batch(memory: Any, batch: DeltaBatch) -> None:
    """Join an opened batch's deltas into ``memory``: all of them, or none.

    The one way a batch reaches a memory: the Node calls it for every batch it receives, and
    recovery for every batch it replays from a journal. The caller records the batch as seen.

    A delta writing a name as another type than ``memory`` holds it is joined all the same:
    a type clash, resolved alike on every replica (see :mod:`crdtmem.memory`).

    Raises:
        DecodeError: a delta names a reserved storage key; nothing was joined.
    """
    memory.check_deltas(batch.deltas)  # all or nothing: check every name before joining any
    for name, delta in batch.deltas:
        memory.apply_delta(name, delta, batch.author)
