"""A ledger of the writes sealed during a run, to check at its end that no live replica lacks one.

Only what cannot be undone is checked: every grow-only counter slot a batch carried (an
incarnation's count of its increments) and every element a batch added to a grow-only set.
Feed it every batch a node seals (:meth:`SealedWrites.record`, e.g. from
``Simulation(on_sealed=...)``); once the run is quiet, :meth:`SealedWrites.missing` names
what a replica lacks. A batch is durable once sealed (it is journaled before it is sent), so a
peer that crashed with its store kept, or exited cleanly, loses none of them.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..crdt import GCounter, GSet
from ..memory import Memory
from ..protocol.batch import read_batch

__all__ = ["SealedWrites"]


class SealedWrites:
    """The grow-only writes of every batch recorded: counter slots and set elements, by object."""

    def __init__(self, *, max_size: int) -> None:
        self.max_size = max_size
        self.batches = 0
        self.counters: dict[str, dict[str, int]] = {}
        self.elements: dict[str, set[bytes]] = {}

    def record(self, wire: bytes) -> None:
        """Note the grow-only writes of one sealed batch (its signed wire, not verified again)."""
        self.batches += 1
        for name, delta in read_batch(wire, max_size=self.max_size).deltas:
            if isinstance(delta, GCounter):
                slots = self.counters.setdefault(name, {})
                for replica, count in delta.slots.items():
                    slots[replica] = max(count, slots.get(replica, 0))
            elif isinstance(delta, GSet):
                self.elements.setdefault(name, set()).update(delta.items)

    def writes(self) -> int:
        """How many grow-only writes were recorded (increments and distinct elements)."""
        return sum(sum(slots.values()) for slots in self.counters.values()) + sum(map(len, self.elements.values()))

    def missing(self, memory: Memory) -> list[str]:
        """What ``memory`` lacks of the recorded writes (empty: it holds every one)."""
        return list(self._missing(memory))

    def _missing(self, memory: Memory) -> Iterator[str]:
        for name, slots in self.counters.items():
            state = memory.state(name)
            held = state.slots if isinstance(state, GCounter) else {}
            for replica, count in slots.items():
                if held.get(replica, 0) < count:
                    yield f"{name}: {count - held.get(replica, 0)} increments of {replica}"
        for name, elements in self.elements.items():
            state = memory.state(name)
            lacking = elements - (state.items if isinstance(state, GSet) else set())
            if lacking:
                yield f"{name}: {len(lacking)} elements"
