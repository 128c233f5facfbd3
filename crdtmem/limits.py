"""The bounds every number, name and causal context obeys, and the one validator of each.

A peer's input and a local write are held to the same bounds, checked in the same place, so
what one path accepts no other path refuses (a name a batch carried that repair would refuse
keeps a returning peer from ever catching up). Call the ``check_*`` function of a bound on
every path that takes the value in — local writes, batch decoding, snapshot decoding, repair
decoding — before anything changes.

Numbers keep headroom below the wire's 64-bit limit: a slot, a dot counter, a sequence number
or a hybrid timestamp at :data:`MAX_COUNT` can still be written once more by an honest replica
and encoded, whatever a peer sent before. Causal contexts are bounded in how many replica ids
and stray dots they list, so the work done for a context is bounded by its bytes.
"""

from __future__ import annotations

from typing import Any

from .errors import DecodeError, LocalProtocolError, RefusalReason

__all__ = [
    "MAX_COUNT",
    "MAX_NAME",
    "MAX_CONTEXT_REPLICAS",
    "MAX_CONTEXT_DOTS",
    "NumberOutOfRangeError",
    "BadNameError",
    "OversizedContextError",
    "OutOfRangeError",
    "check_count",
    "check_name",
    "check_increment",
    "check_context_size",
]

MAX_COUNT = 2**62
"""The largest counter slot, dot counter, sequence number or hybrid timestamp accepted.

A quarter of the wire's unsigned 64-bit limit: sums of a few slots and a clock tick past any
accepted timestamp still encode. As a timestamp it is 2**46 ms after the epoch (year 4200)."""

MAX_NAME = 4096
"""The longest object name, in characters (an empty name is refused too)."""

MAX_CONTEXT_REPLICAS = 1 << 16
"""The most replica ids one causal context, version vector or counter may list."""

MAX_CONTEXT_DOTS = 1 << 20
"""The most stray (out-of-order) dots one causal context may list."""


class NumberOutOfRangeError(DecodeError):
    """A peer sent a counter, dot, sequence number or timestamp beyond :data:`MAX_COUNT`."""

    reason = RefusalReason.NUMBER_OUT_OF_RANGE


class BadNameError(DecodeError):
    """A peer (or a file) named an object with something other than a str of 1 to :data:`MAX_NAME` chars."""

    reason = RefusalReason.BAD_NAME


class OversizedContextError(DecodeError):
    """A causal context lists more replica ids or stray dots than the bounds allow."""

    reason = RefusalReason.OVERSIZED_CONTEXT


class OutOfRangeError(LocalProtocolError, ValueError):
    """A local write would take a counter or timestamp past :data:`MAX_COUNT`, or use a bad name.

    Nothing was changed: the write is refused before it touches the state.
    """


def check_count(obj: Any, what: str, minimum: int = 1) -> int:
    """``obj`` if it is an int from ``minimum`` to :data:`MAX_COUNT`; call on every decoded number.

    Raises:
        DecodeError: not an int, or below ``minimum``.
        NumberOutOfRangeError: above :data:`MAX_COUNT`.
    """
    if type(obj) is not int or obj < minimum:
        raise DecodeError(f"malformed {what}")
    if obj > MAX_COUNT:
        raise NumberOutOfRangeError(f"{what} {obj} exceeds the bound {MAX_COUNT}")
    return obj


def check_name(name: Any, *, local: bool = False) -> str:
    """``name`` if it is a valid object name; call on every path that takes a name in.

    Args:
        name: the candidate.
        local: True for a name this process chose (raises :class:`OutOfRangeError`, a
            ValueError), False for one from outside (raises :class:`BadNameError`).
    """
    if isinstance(name, str) and 0 < len(name) <= MAX_NAME:
        return name
    problem = f"an object name must be a non-empty str of at most {MAX_NAME} chars"
    shown = repr(name) if not isinstance(name, str) else f"a str of {len(name)} chars"
    if local:
        raise OutOfRangeError(f"{problem}, got {shown}")
    raise BadNameError(f"{problem}, got {shown}")


def check_increment(current: int, amount: int, what: str = "counter") -> int:
    """``current + amount`` if it stays within :data:`MAX_COUNT`; call before a local increment.

    Raises:
        OutOfRangeError: the sum would pass the bound (nothing is changed).
    """
    total = current + amount
    if total > MAX_COUNT:
        raise OutOfRangeError(f"{what} would reach {total}, beyond the bound {MAX_COUNT}")
    return total


def check_context_size(replicas: int, dots: int) -> None:
    """Refuse a decoded causal context listing too many replica ids or stray dots.

    Raises:
        OversizedContextError: over :data:`MAX_CONTEXT_REPLICAS` or :data:`MAX_CONTEXT_DOTS`.
    """
    if replicas > MAX_CONTEXT_REPLICAS:
        raise OversizedContextError(f"{replicas} replica ids exceed the bound {MAX_CONTEXT_REPLICAS}")
    if dots > MAX_CONTEXT_DOTS:
        raise OversizedContextError(f"{dots} stray dots exceed the bound {MAX_CONTEXT_DOTS}")
