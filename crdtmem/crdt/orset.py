"""OR-Set without tombstones (Bieniusa et al.'s optimized OR-Set; Riak's ORSWOT).

An element is present while some dot supports it. ``remove`` drops the dots it has seen, so an
``add`` made concurrently (with a dot the remover never saw) survives: add wins.
"""

from __future__ import annotations

from .dotkernel import KernelContainer

__all__ = ["ORSet"]


class ORSet(KernelContainer):
    """Mutators, from the kernel: ``add(replica, element)``, ``remove(element)``, ``clear()``;
    each returns the delta, an ORSet."""

    TAG = "orset"
    __slots__ = ()

    def __contains__(self, element: bytes) -> bool:
        return element in self.entries

    def elements(self) -> list[bytes]:
        return list(self.entries)

    def clear(self) -> ORSet:
        return self.remove_all()
