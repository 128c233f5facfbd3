"""The simulator's clock and agenda: events in virtual time, run in a reproducible order.

An event is ``(t, seq, code, x, y)``: a time, a ticket that makes events at equal times run
in the order they were scheduled, one of the codes below and two arguments whose meaning
the code gives. The engine pops events and dispatches on the code; the network and the
engine schedule them with :meth:`EventQueue.at`.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

__all__ = [
    "EventQueue",
    "DELIVER",
    "TICK",
    "DIAL",
    "OPEN",
    "CLOSE",
    "BREAK",
    "WRITE",
    "FLUSH",
    "SAMPLE",
    "CALL",
    "COMPACT",
]

DELIVER, TICK, DIAL, OPEN, CLOSE, BREAK, WRITE, FLUSH, SAMPLE, CALL, COMPACT = range(11)


class EventQueue:
    """A heap of pending events and the current virtual time.

    Attributes:
        heap: the pending events; pop them with :func:`heapq.heappop`.
        now: virtual seconds since the run began; whoever pops an event sets it.
    """

    __slots__ = ("heap", "now", "_seq")

    def __init__(self) -> None:
        self.heap: list[tuple] = []
        self.now = 0.0
        self._seq = itertools.count()

    def at(self, t: float, code: int, x: Any = None, y: Any = None) -> None:
        """Schedule event ``code`` with arguments ``x``, ``y`` at virtual time ``t``."""
        heapq.heappush(self.heap, (t, next(self._seq), code, x, y))
