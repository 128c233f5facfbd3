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
its parts would not re-encode to byte for byte (another encoder's msgpack) is sent whole.

Use one :class:`BatchCompressor` per connection for what it sends and one
:class:`BatchExpander` for what it receives; a new connection starts both afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import codec
from ..errors import DecodeError, RefusalReason
from .batch import batch_hash
from .messages import Batches, CompactBatches

__all__ = ["MAX_ALIASES", "BadBatchReferenceError", "BatchCompressor", "BatchExpander"]

MAX_ALIASES = 4096
"""Authors one direction of a connection gives aliases to; later ones are named in full."""


class BadBatchReferenceError(DecodeError):
    """A compact batch names an alias, or the last batch of one, that the connection never carried."""

    reason = RefusalReason.BAD_BATCH_REFERENCE


@dataclass
class _Table:
    """One direction's aliases and, per alias, the number and hash of its author's last batch."""

    aliases: dict[str, int] = field(default_factory=dict)
    authors: list[str] = field(default_factory=list)
    last_seq: list[int] = field(default_factory=list)
    last_hash: list[bytes | None] = field(default_factory=list)

    def alias_of(self, author: str) -> int | None:
        """The author's alias, given now if it has none and the table has room (None: named in full)."""
        alias = self.aliases.get(author)
        if alias is None and len(self.authors) < MAX_ALIASES:
            alias = self.aliases[author] = len(self.authors)
            self.authors.append(author)
            self.last_seq.append(0)
            self.last_hash.append(None)
        return alias

    def note(self, alias: int | None, seq: int, wire_hash: bytes) -> None:
        if alias is not None:
            self.last_seq[alias], self.last_hash[alias] = seq, wire_hash


class BatchCompressor:
    """The sending end of one connection: turns batch wires into a compact message.

    Call :meth:`compact` for every batch message sent on the connection, in sending order.
    """

    def __init__(self) -> None:
        self._table = _Table()
        self._referable: dict[bytes, int] = {}  # an alias's last batch hash -> the alias

    def compact(self, wires: tuple[bytes, ...]) -> CompactBatches:
        """The message that carries ``wires`` (verified or sealed here, hence well formed)."""
        return CompactBatches(tuple(self._entry(wire) for wire in wires))

    def _entry(self, wire: bytes) -> bytes | list:
        author, seq, deps, body, signature = parts = codec.unpack(wire)
        if codec.pack(parts) != wire:
            return wire  # not this encoder's bytes: the parts would not rebuild it
        table, referable = self._table, self._referable
        alias = table.alias_of(author)
        base = 0 if alias is None else table.last_seq[alias]
        named = author if alias is None or table.last_hash[alias] is None else alias
        entry = [named, seq - base, [referable.get(dep, dep) for dep in deps], body, signature]
        if alias is not None:
            referable.pop(table.last_hash[alias], None)
            wire_hash = batch_hash(wire)
            referable[wire_hash] = alias
            table.note(alias, seq, wire_hash)
        return entry


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
        return Batches(tuple(entry if type(entry) is bytes else self._wire(entry) for entry in message.entries))

    def _wire(self, entry: list) -> bytes:
        named, seq_step, deps, body, signature = entry
        table = self._table
        if type(named) is int:
            if not 0 <= named < len(table.authors):
                raise BadBatchReferenceError(f"compact batch names alias {named}, which this connection never gave")
            alias, author = named, table.authors[named]
        else:
            author = codec.expect_replica(named)
            alias = table.alias_of(author)
        seq = seq_step + (0 if alias is None else table.last_seq[alias])
        if seq < 1:
            raise DecodeError(f"compact batch of {author} has number {seq}")
        wire = codec.pack([author, seq, [self._dependency(dep) for dep in deps], body, signature])
        table.note(alias, seq, batch_hash(wire))
        return wire

    def _dependency(self, dep: bytes | int) -> bytes:
        if type(dep) is bytes:
            return dep
        table = self._table
        if not 0 <= dep < len(table.authors) or (wire_hash := table.last_hash[dep]) is None:
            raise BadBatchReferenceError(f"compact batch depends on the last batch of alias {dep}, "
                                         "which this connection never carried")
        return wire_hash
