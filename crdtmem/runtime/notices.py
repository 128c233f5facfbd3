"""``Notices``: log a recurring problem once, then at most once a minute, with how often it recurred.

A peer that cannot reach an address, or that a peer refuses, retries with backoff forever; a
WARNING per attempt would bury everything else in the log, and none at all leaves the user
guessing. :class:`Notices` logs the first occurrence of each kind of problem at once, then at
most one line per ``interval`` saying how many were not logged in between.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["Notices"]


class Notices:
    """Rate-limited WARNING lines, one budget per problem key.

    Args:
        logger: where the lines go (at WARNING).
        interval: seconds between two lines for the same key.
        clock: monotonic seconds (injected by tests).
        max_keys: problem keys remembered; the least recently logged is forgotten beyond it, so
            a stream of distinct problems (strangers' addresses) costs bounded memory.
    """

    def __init__(self, logger: logging.Logger, *, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 1024) -> None:
        self._log, self._interval, self._clock, self._max_keys = logger, interval, clock, max_keys
        self._last: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()  # key -> (logged at, not logged since)

    def warn(self, key: Hashable, message: str) -> bool:
        """Log ``message`` unless ``key`` was logged less than ``interval`` ago; return whether it was.

        Call on every occurrence: the occurrences not logged are counted into the next line.
        """
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval:
            self._last[key] = (last[0], last[1] + 1)
            return False
        suppressed = last[1] if last is not None else 0
        if suppressed:
            message += f" ({suppressed} more like this since the last report)"
        self._log.warning("%s", message)
        self._last[key] = (now, 0)
        self._last.move_to_end(key)
        while len(self._last) > self._max_keys:
            self._last.popitem(last=False)
        return True
