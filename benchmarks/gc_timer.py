"""Time spent in CPython's cyclic garbage collector, for a benchmark to report its share.

Used by ``bench_types.py`` (wall time of the write phases) and ``bench_websocket.py`` (CPU time
of each process's throughput part).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


class GcTimer:
    """Seconds spent in collections while ``running``, by ``clock`` (default: the wall clock).

    Create one per process (it registers a ``gc.callbacks`` hook), then either use it as a
    context manager around the part measured or set ``running`` and read ``total``.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.total = 0.0
        self.running = False
        self._clock = clock
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if not self.running:
            return
        if phase == "start":
            self._start = self._clock()
        else:
            self.total += self._clock() - self._start

    def __enter__(self) -> GcTimer:
        self.total, self.running = 0.0, True
        return self

    def __exit__(self, *exc: object) -> None:
        self.running = False
