"""MV-Register: an assignment replaces every value it has seen; concurrent ones all survive.

Agents (or an LLM) read ``values`` and see a conflict instead of silently losing a write.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from .base import WHOLE
from .dotkernel import KernelContainer

__all__ = ["MVRegister"]


class MVRegister(KernelContainer):
    TAG = "mvregister"
    __slots__ = ()

    def payloads(self) -> list[bytes]:
        """The encoded values of every surviving concurrent assignment."""
        return list(self.entries.get(WHOLE, {}).values())

    def assign(self, replica: str, value: bytes) -> MVRegister:
        return self.add(replica, WHOLE, value)

    def join(self, other: MVRegister) -> set[Hashable]:
        return {WHOLE} if super().join(other) else set()

    def forget(self, replicas: Iterable[str]) -> set[Hashable]:
        return {WHOLE} if super().forget(replicas) else set()

    def leaf_keys(self) -> Iterable[Hashable]:
        return (WHOLE,)
