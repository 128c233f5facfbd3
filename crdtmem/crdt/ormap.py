"""OR-Map of last-writer-wins values.

Each key is supported by dots like an OR-Set element, and each dot carries the value written
with it and its (hybrid timestamp, replica). A ``put`` concurrent with a ``remove`` of the same
key survives (its dot was not seen by the remover); concurrent puts resolve by timestamp.
"""

from __future__ import annotations

from .dotkernel import KernelContainer

__all__ = ["ORMap", "Stamped"]

Stamped = tuple[int, str, bytes]
"""A map value as stored: (hybrid timestamp, writer replica id, encoded value)."""


class ORMap(KernelContainer):
    """Mutators: :meth:`put`, and ``remove(key)`` from the kernel; each returns the delta, an ORMap."""

    TAG = "ormap"
    __slots__ = ()

    def get(self, key: bytes) -> Stamped | None:
        dots = self.entries.get(key)
        return max(dots.values()) if dots else None

    def items(self) -> list[tuple[bytes, Stamped]]:
        return [(key, max(dots.values())) for key, dots in self.entries.items()]

    def latest_stamp(self, key: bytes) -> int:
        current = self.get(key)
        return current[0] if current else 0

    def put(self, replica: str, key: bytes, stamp: int, value: bytes) -> ORMap:
        return self.add(replica, key, (stamp, replica, value))

    def max_stamp(self) -> int:
        """The greatest timestamp of any value held (a delta's: of the values it writes)."""
        return max((p[0] for dots in self.entries.values() for p in dots.values()), default=0)

    def writers(self) -> set[str]:
        kernel_writers = super().writers()
        for dots in self.entries.values():
            for _, replica, _ in dots.values():
                kernel_writers.add(replica)
        return kernel_writers

    def only_writes_as(self, replica: str) -> bool:
        """True if every dot and every value's writer in this state (as a delta) is ``replica``."""
        for dots in self.entries.values():
            for d, p in dots.items():
                if d[0] != replica or p[1] != replica:
                    return False
        return True
