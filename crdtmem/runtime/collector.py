"""CPython's cyclic garbage collector, paused while the node handles one input: a runtime choice.

Handling one message or one flush builds many short-lived containers at once: a batch of a
thousand writes decodes into some four thousand lists, all alive until the last is read, and
encodes through as many. With the collector running, crossing its allocation threshold midway
promotes them to older generations, and the collections that follow walk everything the memory
holds (each element's dot is a tuple in a dict). Paused, they die by reference counting before
the collector looks: in ``benchmarks/bench_websocket.py`` the collector's share went from about
1.7 to 0.7 µs per write in each process.

The pause lasts one synchronous call of the node (its input is bounded by the message size
cap); what it defers is collected at the next threshold once the collector runs again. Nothing
the node does leaves reference cycles it relies on the collector for, and an application that
disabled the collector keeps it disabled.
"""

from __future__ import annotations

import gc
from types import TracebackType

__all__ = ["CollectorPaused"]


class CollectorPaused:
    """``with CollectorPaused():`` around one call into the node (receive, tick, flush).

    Re-entrant use is harmless: an inner pause finds the collector disabled and leaves it so.
    """

    __slots__ = ("_resume",)

    def __enter__(self) -> None:
        self._resume = gc.isenabled()
        if self._resume:
            gc.disable()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._resume:
            gc.enable()
