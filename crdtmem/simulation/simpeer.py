"""``SimPeer``: one simulated peer's identity, replica, Node and durable state."""

from __future__ import annotations

from ..clocks import CausalContext
from ..identity import Identity
from ..memory import Memory
from ..protocol.node import Node

__all__ = ["SimPeer"]


class SimPeer:
    """One simulated peer: its identity, replica and Node (None while crashed)."""

    __slots__ = (
        "index", "identity", "memory", "node", "alive", "skew", "edges", "tick_at", "store",
        "journal", "generation", "flush_pending", "last_change", "spins", "crashes",
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
        self.store: tuple[bytes | None, CausalContext | None, list[bytes]] | None = None
        self.journal: list[bytes] = []
        self.generation = 0
        self.flush_pending = False
        self.last_change = 0.0
        self.spins = 0
        self.crashes = 0

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id
