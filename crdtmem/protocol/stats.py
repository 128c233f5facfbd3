"""``NodeStats``: what a :class:`~crdtmem.protocol.node.Node` has done, as typed counters.

Read them from ``node.stats`` (health pages, metrics, tests, reports); only the node writes
them. :meth:`NodeStats.as_dict` gives the flat ``{name: count}`` form that simulation reports
and ``Peer.metrics()["stats"]`` serialise, with names such as ``bytes_sent_gossip``,
``messages_sent_catch-up`` and ``refused_bad-tag``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import RefusalReason
from .events import SendKind

__all__ = ["NodeStats"]

_REPAIR_COUNTERS = ("repair_bytes_sent", "repair_leaves_sent", "repair_leaves_received", "repair_round_trips")
_NOT_FLAT = frozenset({"anti_entropy_finished", *_REPAIR_COUNTERS})


@dataclass
class NodeStats:
    """Counters since the node was created; all start at zero and only grow."""

    batches_created: int = 0
    """Local batches signed (one per flush that had writes)."""
    batches_applied: int = 0
    """Batches of others verified and joined into the memory."""
    checkpoints_applied: int = 0
    """Author checkpoints joined into the memory, each standing for its author's first batches."""
    checkpoints_sent: int = 0
    """Checkpoints sent to peers lacking their author's batches (instead of those batches)."""
    histories_wanted: int = 0
    """Authors whose batches were fetched after all, behind a checkpoint taken here."""
    duplicate_batches: int = 0
    """Batches received again after they had been applied (gossip redundancy)."""
    batches_buffered: int = 0
    """Verified batches that had to wait for their dependencies (causal delivery)."""
    pending_dropped: int = 0
    """Waiting batches dropped because their author's budget or the whole wait buffer was full
    (fetched again later)."""
    incarnations_pruned: int = 0
    """Departed incarnations dropped from the seen set and the contexts (:mod:`.retirement`)."""
    bytes_sent: int = 0
    bytes_received: int = 0
    bytes_sent_by_kind: dict[SendKind, int] = field(default_factory=dict)
    messages_sent_by_kind: dict[SendKind, int] = field(default_factory=dict)
    """Frames sent, by what they carry."""
    refusals: dict[RefusalReason, int] = field(default_factory=dict)
    """Inputs refused, by reason. Every refusal closed a connection except a replayed frame, an
    equivocating batch, and a batch refused after waiting for its dependencies (its author, not
    the peer that delivered it, is at fault)."""
    anti_entropy_sessions: int = 0
    """Periodic full ``Sync`` exchanges this node started."""
    anti_entropy_finished: int = 0
    """The same exchanges, counted as finished: once nonzero, the ``repair_*`` counters show."""
    repair_bytes_sent: int = 0
    repair_leaves_sent: int = 0
    repair_leaves_received: int = 0
    repair_round_trips: int = 0
    """The ``repair_*`` counters stay at zero since reconciliation sends signed batches, not
    Merkle rows; they are kept so simulation reports keep their fields."""
    batches_parked: int = 0
    """Batches of authors not (yet) trusted, parked for ``Node.trust`` instead of refused."""
    parked_dropped: int = 0
    """Parked batches dropped, oldest first, beyond ``NodeConfig.max_parked_batches``."""
    relay_delivered: int = 0
    """Messages relay streams delivered (each a batch wire; duplicates and refusals included)."""
    tree_parent_changes: int = 0
    """How often this node's parent in the relay tree changed (``eager_tree``): how much the tree churns."""
    announced_fetched: int = 0
    """Batches announced over a lazy link (``IHave``) that the tree had not brought a
    ``graft_timeout`` later, so this node asked the announcer for them (``eager_tree``)."""

    def count_send(self, kind: SendKind, nbytes: int) -> None:
        """Count one frame of ``nbytes`` sent; the node calls it for every :class:`Send`."""
        self.bytes_sent += nbytes
        self.bytes_sent_by_kind[kind] = self.bytes_sent_by_kind.get(kind, 0) + nbytes
        self.messages_sent_by_kind[kind] = self.messages_sent_by_kind.get(kind, 0) + 1

    def count_refusal(self, reason: RefusalReason) -> None:
        """Count one refused input; the node calls it for every :class:`Refused` event."""
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def as_dict(self) -> dict[str, int]:
        """The counters as one flat dict, for reports and metrics that serialise them.

        Every integer counter appears once it has counted something: nonzero ones, and the ``repair_*``
        counters once a reconciliation has finished (even if they sum to zero). Per-kind and
        per-reason counters are named ``bytes_sent_<kind>``, ``messages_sent_<kind>`` and
        ``refused_<reason>``; ``anti_entropy_finished`` is left out.
        """
        flat = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in _NOT_FLAT and isinstance(getattr(self, f.name), int)}
        for kind, n in self.bytes_sent_by_kind.items():
            flat[f"bytes_sent_{kind}"] = n
        for kind, n in self.messages_sent_by_kind.items():
            flat[f"messages_sent_{kind}"] = n
        for reason, n in self.refusals.items():
            flat[f"refused_{reason}"] = n
        out = {key: n for key, n in flat.items() if n}
        if self.anti_entropy_finished:
            out.update((key, getattr(self, key)) for key in _REPAIR_COUNTERS)
        return dict(sorted(out.items()))
