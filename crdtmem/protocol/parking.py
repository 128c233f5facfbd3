"""``ParkedBatches``: signed batches whose author is not (yet) trusted here, kept within a bound.

A trusted peer relays whatever its keyring admits, and keyrings change at different times on
different peers: a batch whose author this node does not trust says nothing bad about the peer
that relayed it. The node parks it instead of refusing the connection, and applies it if the
author becomes trusted (:meth:`~crdtmem.protocol.node.Node.trust`). Nothing about a parked batch
is believed until then: only its header was read, its signature is checked when it is opened.

The bound is on the count of batches (each is already bounded by ``max_message_bytes``); beyond
it the oldest parked batch is dropped, and counted, so a flood of strangers' batches costs a
fixed amount of memory and never evicts anything else.
"""

from __future__ import annotations

from collections.abc import Callable

from ..clocks import Dot

__all__ = ["ParkedBatches"]


class ParkedBatches:
    """A bounded, oldest-first store of batch wires by dot.

    Args:
        limit: the most batches kept; parking one more drops the oldest.
    """

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit!r}")
        self._limit = limit
        self._wires: dict[Dot, bytes] = {}  # insertion order: oldest first
        self.parked = 0
        """Batches parked so far (a batch parked again while still held is not counted twice)."""
        self.dropped = 0
        """Parked batches dropped, oldest first, to stay within the bound."""

    def __len__(self) -> int:
        return len(self._wires)

    def __contains__(self, dot: object) -> bool:
        return dot in self._wires

    def park(self, dot: Dot, wire: bytes) -> None:
        """Keep ``wire`` (batch ``dot``, its author untrusted); call instead of refusing it."""
        if dot in self._wires:
            return
        self._wires[dot] = wire
        self.parked += 1
        while len(self._wires) > self._limit:
            del self._wires[next(iter(self._wires))]
            self.dropped += 1

    def release(self, trusted: Callable[[str], bool]) -> list[tuple[Dot, bytes]]:
        """Take out, oldest first, every parked batch whose author ``trusted`` now admits.

        Call after the keyring changed; the caller opens (verifies) and applies what comes out.
        """
        out = [(dot, wire) for dot, wire in self._wires.items() if trusted(dot.replica)]
        for dot, _ in out:
            del self._wires[dot]
        return out
