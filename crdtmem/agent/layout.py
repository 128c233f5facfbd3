"""How records sit in a memory: the entry layout, the record types, and reading them back.

Every fact about a record is derived here from replicated entries, the same way on every
replica (see :mod:`crdtmem.agent.records` for the layout and the rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..clocks import HybridClock
from ..identity import key_id_of
from ..values import decode_value

__all__ = [
    "PREFIX",
    "FIELD",
    "META",
    "CREATED",
    "HISTORY",
    "TOUCHED",
    "Record",
    "Sibling",
    "Event",
    "namespace_name",
    "namespace_of",
    "check_namespace",
    "assemble",
    "entry_dict",
    "label_of",
    "seconds",
    "thaw",
    "handed_out",
]

PREFIX = "records:"
"""Memory names that hold records start with this."""

FIELD, META, CREATED, HISTORY, TOUCHED = "f", "u", "c", "h", "t"


_NAMES: dict[tuple[str, ...], str] = {}


def namespace_name(namespace: tuple[str, ...]) -> str:
    """The memory name of the OR-Map holding ``namespace``'s records."""
    name = _NAMES.get(namespace)
    if name is None:
        import json

        name = PREFIX + json.dumps(list(namespace), separators=(",", ":"))
        if len(_NAMES) < 65536:
            _NAMES[namespace] = name
    return name


def namespace_of(name: str) -> tuple[str, ...] | None:
    """The namespace a memory name holds, or None if it is not a records name."""
    import json

    if not name.startswith(PREFIX):
        return None
    try:
        labels = json.loads(name[len(PREFIX):])
    except ValueError:
        return None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        return None
    return tuple(labels)


@dataclass(frozen=True)
class Sibling:
    """One of several concurrent values of a field."""

    value: Any
    author: str
    at: float


@dataclass(frozen=True)
class Record:
    """A record as one replica sees it now.

    Attributes:
        namespace, key: where it lives.
        value: the document (each field's winning value).
        created_at, updated_at: seconds since the epoch, from the writers' hybrid clocks.
        author: replica id of the latest put; agent: that put's agent label.
        expires_at: when it stops being visible (None: never).
        conflicts: for each field written concurrently, every sibling value, newest first.
        score: similarity to the query of a semantic search (else None).
        created: (hybrid timestamp, replica) of the creation: a total order of records.
    """

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    created_at: float
    updated_at: float
    author: str
    agent: str | None = None
    expires_at: float | None = None
    conflicts: dict[str, tuple[Sibling, ...]] = field(default_factory=dict)
    score: float | None = None
    created: tuple[int, str] = field(default=(0, ""), repr=False, compare=False)


@dataclass(frozen=True)
class Event:
    """One change of a record: ``kind`` is ``"added"``, ``"updated"`` or ``"deleted"``.

    ``author`` is the replica that signed it, ``at`` its time (seconds), ``old`` the value that
    author saw before (None when added), ``new`` the value written (None when deleted).
    """

    namespace: tuple[str, ...]
    key: str
    kind: str
    author: str
    at: float
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    agent: str | None = None


def thaw(value: Any) -> Any:
    """A copy of the mutable parts of a value (records are cached: callers get their own)."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value


def entry_dict(payload: bytes) -> dict[str, Any]:
    """A replicated bookkeeping entry (another peer may have written anything: be lenient)."""
    value = decode_value(payload)
    return value if isinstance(value, dict) else {}


def label_of(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def handed_out(record: Record) -> Record:
    return replace(record, value=thaw(record.value))


def seconds(stamp: int) -> float:
    return HybridClock.wall_ms(stamp) / 1000


def check_namespace(namespace: Any) -> tuple[str, ...]:
    if not isinstance(namespace, tuple) or not all(isinstance(label, str) and label for label in namespace):
        raise ValueError(f"a namespace is a tuple of non-empty strings, got {namespace!r}")
    return namespace


def assemble(namespace: tuple[str, ...], key: str, entries: dict) -> Record | None:
    """The record ``key`` from its entries (entry tuple → dots newest first), or None if deleted."""
    meta = entries.get((key, META))
    if not meta:
        return None
    stamp, author, payload = meta[0]
    info = entry_dict(payload)
    value, conflicts = {}, {}
    for parts, dots in entries.items():
        if parts[1] == FIELD and len(parts) == 3 and isinstance(parts[2], str):
            value[parts[2]] = decode_value(dots[0][2])
            if len(dots) > 1:
                conflicts[parts[2]] = tuple(Sibling(decode_value(p), key_id_of(r), seconds(s)) for s, r, p in dots)
    created = entries.get((key, CREATED)) or min(d[-1:] for p, d in entries.items() if p[1] != HISTORY)
    created_stamp, creator, _ = created[-1]
    ttl = info.get("ttl")
    if type(ttl) not in (int, float) or not ttl > 0:
        ttl = None
    updated_at = seconds(stamp)
    touched = entries.get((key, TOUCHED))
    since = max(updated_at, seconds(touched[0][0])) if touched else updated_at
    return Record(
        namespace,
        key,
        dict(sorted(value.items())),
        seconds(created_stamp),
        updated_at,
        key_id_of(author),  # the key that wrote it, whichever start (incarnation) of it
        label_of(info.get("agent")),
        None if ttl is None else since + ttl,
        conflicts,
        created=(created_stamp, creator),
    )

