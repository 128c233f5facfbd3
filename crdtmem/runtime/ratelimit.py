"""``RateLimit``: a token bucket over messages and bytes — no I/O, time passed in.

The runtime charges every message a connection delivers and, when the bucket runs dry, stops
reading that connection for the returned delay. The transport's buffers then fill and TCP
pushes back on the sender, so one peer flooding valid frames costs its own link throughput,
not the CPU every other connection needs.
"""

from __future__ import annotations

__all__ = ["RateLimit"]


class RateLimit:
    """Allow ``messages_per_s`` and ``bytes_per_s`` on average, with one second's worth as burst.

    Either limit may be None (unlimited).
    """

    def __init__(self, messages_per_s: float | None, bytes_per_s: float | None) -> None:
        for rate in (messages_per_s, bytes_per_s):
            if rate is not None and rate <= 0:
                raise ValueError(f"a rate must be positive or None, got {rate!r}")
        self.messages_per_s, self.bytes_per_s = messages_per_s, bytes_per_s
        self._messages = messages_per_s or 0.0
        self._bytes = bytes_per_s or 0.0
        self._at: float | None = None

    def charge(self, nbytes: int, now: float) -> float:
        """Count one message of ``nbytes`` received at ``now``; return how long to pause reading."""
        if self._at is not None:
            elapsed = max(0.0, now - self._at)
            if self.messages_per_s is not None:
                self._messages = min(self.messages_per_s, self._messages + elapsed * self.messages_per_s)
            if self.bytes_per_s is not None:
                self._bytes = min(self.bytes_per_s, self._bytes + elapsed * self.bytes_per_s)
        self._at = now
        delay = 0.0
        if self.messages_per_s is not None:
            self._messages -= 1
            delay = max(delay, -self._messages / self.messages_per_s)
        if self.bytes_per_s is not None:
            self._bytes -= nbytes
            delay = max(delay, -self._bytes / self.bytes_per_s)
        return delay
