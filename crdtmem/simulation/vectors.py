"""What version vectors and causal contexts cost a simulated peer, and what a batch carries.

Call :func:`vector_sizes` on a live peer to measure the vectors it keeps (``seen``, the
causal contexts of its memory's objects) and the
``Sync`` message that carries ``seen``; call :func:`batch_context_cost` on a sealed batch's
wire for the causal contexts its deltas carry. The churn simulation and benchmark sample
these to show that vectors track the agents alive, not every agent that ever existed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import codec
from ..crdt.dotkernel import DotKernel
from ..protocol.batch import read_batch
from ..protocol.messages import Sync, encode_message
from .simpeer import SimPeer

__all__ = ["VectorSizes", "vector_sizes", "ContextCost", "batch_context_cost"]


@dataclass(frozen=True)
class VectorSizes:
    """One live peer's vectors, in entries (replica ids named) and in bytes."""

    seen_entries: int
    """Replicas named in ``seen``, the batches-seen context every ``Sync`` carries."""
    sync_bytes: int
    """Encoded size of the ``Sync`` message carrying ``seen``."""
    context_entries: int
    """Causal-context entries of every object in the memory (version vector + strays)."""
    retired: int
    """Incarnations this peer has pruned (retired and every batch of theirs applied)."""
    covered_per_batch: float
    """Mean entries of the covered vectors its causal index keeps, one per batch applied."""


def vector_sizes(peer: SimPeer) -> VectorSizes:
    """Measure a live peer's vectors now (cost: one ``Sync`` encoding, a walk of the memory and
    of the causal index)."""
    node = peer.node
    return VectorSizes(
        seen_entries=len(node.seen.replicas()),
        sync_bytes=len(encode_message(Sync(node.seen))),
        context_entries=peer.memory.context_entries(),
        retired=len(node.retired()),
        covered_per_batch=_mean_entries(*node.covered_vectors()),
    )


def _mean_entries(vectors: int, entries: int) -> float:
    return entries / vectors if vectors else 0.0


@dataclass(frozen=True)
class ContextCost:
    """The causal contexts one batch's deltas carry."""

    entries: int
    """Entries (version vector + strays) over the deltas' contexts."""
    bytes: int
    """Their size encoded as on the wire (msgpack of the codec's plain form)."""


def batch_context_cost(wire: bytes, *, max_size: int) -> ContextCost:
    """The causal contexts carried by the deltas of a batch this simulation sealed.

    Args:
        wire: the signed batch, as the sealing node's ``BatchApplied`` event gives it
            (not verified again).
        max_size: the node's ``max_message_bytes``.
    """
    entries = size = 0
    for _, delta in read_batch(wire, max_size=max_size).deltas:
        if isinstance(delta, DotKernel):
            ctx = delta.ctx
            entries += len(ctx.vv) + ctx.cloud_size()
            size += len(codec.pack(codec.context_to_plain(ctx)))
    return ContextCost(entries, size)
