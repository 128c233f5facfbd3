"""Compact batches: how one connection carries signed batches without repeating what it carried.

A batch wire (:mod:`.batch`) spends most of its fixed bytes on what the connection has often
carried already: its author's replica id (an incarnation id of some 25 characters), its
number (usually one past that author's last batch on the connection) and, as its dependency,
the hash of that last batch. A session therefore sends batches as a
:class:`~crdtmem.protocol.messages.CompactBatches` message whose entries name an author
by a connection-local alias after its first use, give its number as a difference from the
author's last one on the connection, and name a dependency that is the last batch of an aliased
author on the connection by that alias. The receiver rebuilds the exact signed wire (the
batch's hash and signature are over it, and it is relayed and logged byte for byte) and
verifies it like any other; nothing in the compact form is believed beyond what the rebuilt
wire's signature covers.

Both ends keep the same table, one per direction of a connection: a connection delivers in
order or breaks, and every entry that names its parts updates the table the same way on both
sides, whatever becomes of the batch afterwards (applied, a duplicate, refused). A wire that
its parts would not re-encode to byte for byte (another encoder's msgpack), or larger than
:data:`MAX_COMPACT_WIRE`, is sent whole.

Use one :class:`BatchCompressor` per connection for what it sends and one
:class:`BatchExpander` for what it receives; a new connection starts both afresh. Batches a
connection carries whole (message kind 2) leave both tables as they are: the node sends a batch
of writes that found every link idle whole, since compacting costs each side a few
microseconds of CPU that its latency would pay.
"""

from __future__ import annotations

from .. import codec
from ..errors import DecodeError, RefusalReason
from .batch import batch_hash
from .messages import Batches, CompactBatches

__all__ = ["MAX_ALIASES", "MAX_COMPACT_WIRE", "BadBatchReferenceError", "BatchCompressor", "BatchExpander"]

MAX_ALIASES = 4096
"""Authors one direction of a connection gives aliases to; later ones are named in full."""
MAX_COMPACT_WIRE = 4096
"""Larger batch wires go whole: the ~45 bytes saved are nothing next to them, while taking
them apart, re-encoding and hashing them again costs each side time in their size."""


class BadBatchReferenceError(DecodeError):
    """A compact batch names an alias, or the last batch of one, that the connection never carried."""

    reason = RefusalReason.BAD_BATCH_REFERENCE


class _Table:
    """One direction's aliases and, per alias, the number and hash of its author's last batch."""

    def __init__(self) -> None:
        self.aliases: dict[str, int] = {}
        self.authors: list[str] = []
        self.last: list[tuple[int, bytes | None]] = []

    def give(self, author: str) -> int | None:
        """A new alias for ``author``, or None when the table is full (it is then named in full)."""
        if len(self.authors) >= MAX_ALIASES:
            return None
        alias = self.aliases[author] = len(self.authors)
        self.authors.append(author)
        self.last.append((0, None))
        return alias


class BatchCompressor:
    """The sending end of one connection: turns batch wires into a compact message.

    Call :meth:`compact` for every batch message sent on the connection, in sending order.
    """

    def __init__(self) -> None:
        self._table = _Table()
        self._referable: dict[bytes, int] = {}  # an alias's last batch hash -> the alias

    def compact(self, wires: tuple[bytes, ...]) -> CompactBatches:
        """The message that carries ``wires`` (verified or sealed here, hence well formed)."""
        return CompactBatches(tuple(map(self._entry, wires)))

    def _entry(self, wire: bytes) -> bytes | list:
        if len(wire) > MAX_COMPACT_WIRE:
            return wire
        parts = codec.unpack(wire)
        if codec.pack(parts) != wire:
            return wire  # not this encoder's bytes: the parts would not rebuild it
        author, seq, deps, body, signature = parts
        table, referable = self._table, self._referable
        alias = table.aliases.get(author)
        if alias is None:
            alias = table.give(author)
            if alias is None:
                return parts  # past the table: named in full, by number and hashes
            named, step = author, seq
        else:
            named, step = alias, seq - table.last[alias][0]
        if deps:
            deps = [referable.get(dep, dep) for dep in deps]
        referable.pop(table.last[alias][1], None)
        wire_hash = batch_hash(wire)
        referable[wire_hash] = alias
        table.last[alias] = (seq, wire_hash)
        return [named, step, deps, body, signature]


class BatchExpander:
    """The receiving end of one connection: rebuilds the signed wires of a compact message.

    Call :meth:`expand` on every :class:`CompactBatches` the connection brings, in order.
    """

    def __init__(self) -> None:
        self._table = _Table()

    def expand(self, message: CompactBatches) -> Batches:
        """The batches ``message`` carries, as the wires their authors signed.

        Raises:
            BadBatchReferenceError: an entry names an alias, or the last batch of one, that
                this connection has not carried.
            DecodeError: an entry's number is below 1 (nothing is applied either way: the
                caller refuses the whole message).
        """
        return Batches(tuple([entry if type(entry) is bytes else self._wire(entry) for entry in message.entries]))

    def _wire(self, entry: list) -> bytes:
        named, step, deps, body, signature = entry
        table = self._table
        if type(named) is int:
            if not 0 <= named < len(table.authors):
                raise BadBatchReferenceError(f"compact batch names alias {named}, which this connection never gave")
            alias, author = named, table.authors[named]
        else:
            author = codec.expect_replica(named)
            alias = table.aliases.get(author)
            if alias is None:
                alias = table.give(author)
        seq = step if alias is None else step + table.last[alias][0]
        if seq < 1:
            raise DecodeError(f"compact batch of {author} has number {seq}")
        if deps:
            last = table.last
            for i, dep in enumerate(deps):
                if type(dep) is int:
                    if not 0 <= dep < len(last) or last[dep][1] is None:
                        raise BadBatchReferenceError(f"compact batch depends on the last batch of alias {dep}, "
                                                     "which this connection never carried")
                    deps[i] = last[dep][1]
        wire = codec.pack([author, seq, deps, body, signature])
        if alias is not None:
            table.last[alias] = (seq, batch_hash(wire))
        return wire
