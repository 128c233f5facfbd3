"""``Backoff``: how long a dialer waits before its next attempt (one policy for every shell).

Exponential from ``initial`` up to ``maximum``, each delay jittered to between half and all
of the current step, so peers that lost a link at the same instant do not redial in lockstep::

    backoff = Backoff(initial=0.1, maximum=10.0)
    delay = backoff.next_delay(rng)   # after each failed or broken attempt
    backoff.reset()                   # once a connection's handshake finishes

The websocket runtime, the simulator and the test cluster all use it, so a simulation redials
exactly as a deployed peer does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Jittered exponential redial delays, in seconds (see the module docstring)."""

    initial: float
    maximum: float
    _step: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {self.initial} and {self.maximum}")
        self._step = self.initial

    def next_delay(self, rng: random.Random) -> float:
        """The wait before the next attempt; each call doubles the step up to ``maximum``."""
        delay = self._step * rng.uniform(0.5, 1.0)
        self._step = min(self._step * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """Start over from ``initial`` (call when a connection succeeded)."""
        self._step = self.initial
