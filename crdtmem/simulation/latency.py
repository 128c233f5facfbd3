"""One-way link latency distributions and the duration syntax the CLI accepts.

A latency spec is a string, so it fits on a command line and in a JSON report::

    20ms                  constant 20 ms
    10ms..50ms            uniform between 10 and 50 ms
    normal:20ms,5ms       normal, mean 20 ms, sd 5 ms (truncated at 0)
    exp:20ms              exponential with mean 20 ms
    exp:5ms+20ms          5 ms floor plus an exponential tail with mean 20 ms
    lognormal:20ms,0.5    log-normal with median 20 ms and shape sigma 0.5 (a long tail)

Durations take ``us``, ``ms``, ``s`` or ``m`` suffixes; a bare number is seconds.
Every draw takes the simulator's ``random.Random``, so runs replay exactly.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

__all__ = ["Latency", "parse_duration", "format_duration"]

_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(us|µs|ms|s|m|min)?\s*$")


def parse_duration(text: str | float) -> float:
    """Seconds from ``"250ms"``, ``"2s"``, ``"1.5"`` (seconds) or a number.

    Raises:
        ValueError: the text is not a non-negative duration.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0 or math.isnan(text):
            raise ValueError(f"a duration cannot be negative: {text!r}")
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (examples: 20ms, 1.5s, 2m)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """The shortest readable form: ``20ms``, ``1.5s``."""
    if seconds == 0:
        return "0s"
    if seconds < 1e-3:
        return f"{seconds * 1e6:g}us"
    if seconds < 1:
        return f"{seconds * 1e3:g}ms"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Latency:
    """A one-way delay distribution; :meth:`sample` draws a delay in seconds (never negative)."""

    kind: str = "constant"
    """``constant``, ``uniform``, ``normal``, ``exp`` or ``lognormal``."""
    a: float = 0.01
    b: float = 0.0
    floor: float = 0.0

    @classmethod
    def parse(cls, spec: str | float) -> Latency:
        """Read a spec (see the module docstring). Raises ValueError with an example on bad input."""
        if isinstance(spec, (int, float)):
            return cls("constant", parse_duration(spec))
        text = spec.strip()
        try:
            if ".." in text:
                low, high = (parse_duration(part) for part in text.split("..", 1))
                if high < low:
                    raise ValueError("the upper bound is below the lower bound")
                return cls("uniform", low, high)
            if ":" not in text:
                return cls("constant", parse_duration(text))
            kind, args = text.split(":", 1)
            kind = kind.strip().lower()
            if kind in ("exp", "exponential"):
                floor, _, mean = args.rpartition("+")
                return cls("exp", parse_duration(mean), 0.0, parse_duration(floor) if floor else 0.0)
            parts = [p.strip() for p in args.split(",")]
            if kind in ("normal", "gauss") and len(parts) == 2:
                return cls("normal", parse_duration(parts[0]), parse_duration(parts[1]))
            if kind == "lognormal" and len(parts) == 2:
                sigma = float(parts[1])
                if sigma < 0:
                    raise ValueError("sigma must be >= 0")
                return cls("lognormal", parse_duration(parts[0]), sigma)
            if kind in ("uniform", "const", "constant"):
                return cls.parse(args.replace(",", ".."))
        except ValueError as exc:
            raise ValueError(f"bad latency {spec!r}: {exc}") from None
        raise ValueError(
            f"bad latency {spec!r}: use 20ms, 10ms..50ms, normal:20ms,5ms, exp:20ms, exp:5ms+20ms or lognormal:20ms,0.5"
        )

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds."""
        kind = self.kind
        if kind == "constant":
            return self.a
        if kind == "uniform":
            return rng.uniform(self.a, self.b)
        if kind == "normal":
            return max(0.0, rng.gauss(self.a, self.b))
        if kind == "exp":
            return self.floor + (rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0)
        if kind == "lognormal":
            return self.a * math.exp(rng.gauss(0.0, self.b)) if self.a > 0 else 0.0
        raise ValueError(f"unknown latency kind {kind!r}")

    @property
    def mean(self) -> float:
        """The distribution's mean in seconds (used to pick retransmission timeouts)."""
        if self.kind == "constant":
            return self.a
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        if self.kind == "normal":
            return max(self.a, 0.0)
        if self.kind == "exp":
            return self.floor + self.a
        return self.a * math.exp(self.b * self.b / 2)

    def __str__(self) -> str:
        if self.kind == "constant":
            return format_duration(self.a)
        if self.kind == "uniform":
            return f"{format_duration(self.a)}..{format_duration(self.b)}"
        if self.kind == "normal":
            return f"normal:{format_duration(self.a)},{format_duration(self.b)}"
        if self.kind == "exp":
            floor = f"{format_duration(self.floor)}+" if self.floor else ""
            return f"exp:{floor}{format_duration(self.a)}"
        return f"lognormal:{format_duration(self.a)},{self.b:g}"
