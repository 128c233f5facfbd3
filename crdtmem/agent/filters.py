"""Record filters: exact match on fields and the comparison operators ``$eq $ne $gt $gte $lt $lte``.

The semantics are LangGraph's ``InMemoryStore`` ones (JSONB-like): a filter is a dict of
field → condition; a plain condition must equal the field (nested dicts and lists compare
element by element); a dict of ``$`` operators applies each one. Call :func:`matches` on a
record's value for each candidate of a search.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OPERATORS", "matches", "check_filter"]

OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})


def check_filter(filter: dict[str, Any] | None) -> None:
    """Raise ValueError for an operator not in :data:`OPERATORS` (call before searching)."""
    for condition in (filter or {}).values():
        _check(condition)


def _check(condition: Any) -> None:
    if isinstance(condition, dict):
        for key, value in condition.items():
            if isinstance(key, str) and key.startswith("$") and key not in OPERATORS:
                raise ValueError(f"unsupported filter operator {key!r} (use one of {', '.join(sorted(OPERATORS))})")
            _check(value)


def matches(value: dict[str, Any], filter: dict[str, Any] | None) -> bool:
    """True if the document ``value`` satisfies every condition of ``filter`` (None: all do)."""
    return all(_compare(value.get(field), condition) for field, condition in (filter or {}).items())


def _compare(held: Any, condition: Any) -> bool:
    if isinstance(condition, dict):
        if any(isinstance(k, str) and k.startswith("$") for k in condition):
            return all(_apply(held, op, operand) for op, operand in condition.items())
        return isinstance(held, dict) and all(_compare(held.get(k), v) for k, v in condition.items())
    if isinstance(condition, (list, tuple)):
        return (
            isinstance(held, (list, tuple))
            and len(held) == len(condition)
            and all(_compare(h, c) for h, c in zip(held, condition))
        )
    return held == condition


def _apply(held: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return held == operand
    if op == "$ne":
        return held != operand
    try:
        left, right = float(held), float(operand)
    except (TypeError, ValueError):
        return False  # a missing or non-numeric field never satisfies an order comparison
    if op == "$gt":
        return left > right
    if op == "$gte":
        return left >= right
    if op == "$lt":
        return left < right
    if op == "$lte":
        return left <= right
    raise ValueError(f"unsupported filter operator {op!r}")
