"""What a node knows of the batches its memory reflects, kept with the snapshot so a restart
costs the state, not the history.

The memory and seen set of a snapshot say *what* was applied; the node also keeps, per applied
batch, its hash and covered vector, the heads, how far each replica's dots reached per object
(:class:`~.causal.CausalIndex`), and which departed incarnations it pruned and why
(:class:`~.retirement.Retirements`). Without this record a start rebuilds them by decoding every
batch ever journaled, so a store that has seen ten thousand short-lived agents replays ten
thousand batches at every start. With it, a start decodes the record, hashes each journaled
wire for the catch-up log, and replays only the batches journaled after the snapshot.

    snapshot = Snapshot.of(memory, seen, index=NodeIndex.of(node))    # Node.snapshot() does this
    index = NodeIndex.from_bytes(snapshot.index)                     # recover() does this

The record is the node's own, written into its own store like the memory: it is trusted as the
memory is, and a store that cannot decode it is corrupt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import codec
from ..clocks import CausalContext
from ..errors import DecodeError
from .causal import CausalIndex
from .retirement import Retirements

__all__ = ["NodeIndex"]

FORMAT = 1


@dataclass
class NodeIndex:
    """A node's causal index and retirements, and the batches they reflect (``applied``)."""

    applied: CausalContext
    """The batches the index reflects: the snapshot's seen set (pruned incarnations left out)."""
    causal: CausalIndex
    retirements: Retirements

    @classmethod
    def of(cls, seen: CausalContext, causal: CausalIndex, retirements: Retirements) -> NodeIndex:
        """The index of a node whose seen set is ``seen`` (call where the snapshot is taken)."""
        return cls(seen.copy(), causal, retirements)

    def to_bytes(self) -> bytes:
        """Encode it; call when compacting a store, with the memory snapshot taken at the same point."""
        return codec.pack([FORMAT, codec.context_to_plain(self.applied),
                           self.retirements.to_plain(), self.causal.to_plain()])

    @classmethod
    def from_bytes(cls, data: bytes) -> NodeIndex:
        """Decode what :meth:`to_bytes` wrote.

        Raises:
            DecodeError: it is not a node index of this format.
        """
        plain: Any = codec.unpack(data)
        try:
            version, applied, retirements, causal = plain
            if version != FORMAT:
                raise DecodeError(f"node index format {version!r}, expected {FORMAT}")
            found = Retirements.from_plain(retirements)
            return cls(codec.context_from_plain(applied), CausalIndex.from_plain(causal, found), found)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise DecodeError(f"malformed node index: {exc}") from None

    def reflects(self, dot: tuple[str, int]) -> bool:
        """Whether batch ``dot`` was applied when the index was taken (a pruned one included)."""
        return dot in self.applied or self.retirements.holds(dot)
