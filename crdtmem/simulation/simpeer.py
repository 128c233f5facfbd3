"""``SimPeer``: one simulated peer's identity, replica, Node and store."""

from __future__ import annotations

from ..identity import Identity
from ..memory import Memory
from ..protocol.node import Node
from ..storage.memory import MemoryStore

__all__ = ["SimPeer"]


class SimPeer:
    """One simulated peer: its identity, replica and Node (None while crashed), and its store.

    The store outlives a crash (None once it was lost): a restart restores from it.
    """

    __slots__ = (
        "index", "identity", "memory", "node", "alive", "skew", "edges", "tick_at", "store",
        "generation", "flush_pending", "last_change", "spins", "crashes",
    )

    def __init__(self, index: int, identity: Identity, skew: float) -> None:
        self.index = index
        self.identity = identity
        self.memory: Memory | None = None
        self.node: Node | None = None
        self.alive = False
        self.skew = skew
        self.edges: list[int] = []
        self.tick_at: float | None = None
        self.store: MemoryStore | None = None
        self.generation = 0
        self.flush_pending = False
        self.last_change = 0.0
        self.spins = 0
        self.crashes = 0

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id
