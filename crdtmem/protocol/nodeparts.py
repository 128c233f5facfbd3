"""``NodeParts``: the :class:`~crdtmem.protocol.node.Node` state its mixins read, declared once.

:class:`~.departures.Departures` and :class:`~.checkpointing.Checkpointing` are methods of the
node kept in modules of their own; they read the node's state, which :class:`~.node.Node` sets
in its constructor. This class declares that shared state for readers and type checkers; each
mixin declares what only it reads.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from ..clocks import CausalContext
from ..identity import Identity
from ..memory import Memory
from .causal import CausalIndex
from .checkpoint import Checkpoint
from .deltalog import DeltaLog
from .retirement import Retirements
from .stats import NodeStats

__all__ = ["NodeParts"]


class NodeParts:
    """The node's state that its mixins rely on (declarations only: no behaviour)."""

    replica_id: str
    identity: Identity
    memory: Memory
    seen: CausalContext
    config: Any
    stats: NodeStats
    _log: DeltaLog
    _causal: CausalIndex
    _retirements: Retirements
    _checkpoints: dict[str, Checkpoint]
    _sessions: dict[Hashable, Any]
