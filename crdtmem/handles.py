"""Typed views of one named object in a :class:`~crdtmem.memory.Memory`.

A handle holds no state of its own: it encodes the agent's values, calls the CRDT mutator and
hands the delta to the memory, which records it for the sync layer and tells listeners. A
registered type names its handle class in its :class:`~crdtmem.crdt.TypeSpec`; one that names
none gets a :class:`Handle`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, Protocol

from . import codec
from .crdt import GCounter, GSet, LWWRegister, MVRegister, ORMap, ORSet, PNCounter
from .limits import check_increment
from .values import decode_value, encode_value

__all__ = [
    "Writer",
    "Handle",
    "CounterHandle",
    "PNCounterHandle",
    "SetHandle",
    "GSetHandle",
    "RegisterHandle",
    "MVRegisterHandle",
    "MapHandle",
]


class Writer(Protocol):
    """What a handle needs of its :class:`~crdtmem.memory.Memory`."""

    replica_id: str

    def _local(self, name: str, delta: Any, touched: Iterable[Hashable] = ()) -> None: ...

    def _stamp(self, after: int) -> int: ...


def _positive(n: Any, slots: dict[str, int], replica: str) -> int:
    """``n`` if it is a positive int that keeps this replica's slot within the bound."""
    if type(n) is not int:
        raise TypeError(f"the amount must be an int, got {type(n).__name__}")
    if n <= 0:
        raise ValueError(f"the amount must be positive, got {n}")
    check_increment(slots.get(replica, 0), n, "this replica's counter slot")
    return n


class _Handle:
    __slots__ = ("_memory", "name", "_state")

    def __init__(self, memory: Writer, name: str, state: Any) -> None:
        self._memory, self.name, self._state = memory, name, state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.value!r})"

    @property
    def value(self) -> Any:  # pragma: no cover - every handle overrides
        raise NotImplementedError


class Handle(_Handle):
    """The handle of a registered type that brings no handle class of its own.

    Write with :meth:`update`; read ``value`` (the state's ``value``) or ``state``. Subclass it
    to give your type named methods (``def raise_to(self, n): self.update(lambda s, r: ...)``).
    """

    __slots__ = ()

    def update(self, mutator: Callable[[Any, str], Any]) -> None:
        """Apply ``mutator(state, replica_id) -> delta`` and record its delta for the sync layer.

        The mutator changes the state in place and returns the delta, like every crdtmem
        mutator (and like a :class:`crdtmem.testing.Op`). It runs on a copy: the delta is
        joined into the live state only once it encodes, so a write that could never reach
        another replica changes nothing here either (the delta law,
        :func:`crdtmem.testing.assert_delta_law`, makes the two the same state).

        Raises:
            TypeError, ValueError, OverflowError: the delta cannot be encoded (nothing changed).
        """
        delta = mutator(self._state.copy(), self._memory.replica_id)
        codec.encode_state(delta)
        self._state.join(delta)
        self._memory._local(self.name, delta)

    @property
    def state(self) -> Any:
        """The live state (read it; change it only through :meth:`update`)."""
        return self._state

    @property
    def value(self) -> Any:
        return self._state.value


class CounterHandle(_Handle):
    """A grow-only counter (G-Counter)."""

    __slots__ = ()
    _state: GCounter

    def increment(self, n: int = 1) -> None:
        """Add ``n`` (a positive int); raises OutOfRangeError past :data:`~crdtmem.limits.MAX_COUNT`."""
        replica = self._memory.replica_id
        self._memory._local(self.name, self._state.increment(replica, _positive(n, self._state.slots, replica)))

    @property
    def value(self) -> int:
        return self._state.value


class PNCounterHandle(_Handle):
    """A counter that goes up and down (PN-Counter)."""

    __slots__ = ()
    _state: PNCounter

    def increment(self, n: int = 1) -> None:
        """Add ``n`` (a positive int); raises OutOfRangeError past :data:`~crdtmem.limits.MAX_COUNT`."""
        replica = self._memory.replica_id
        self._memory._local(self.name, self._state.increment(replica, _positive(n, self._state.p.slots, replica)))

    def decrement(self, n: int = 1) -> None:
        """Subtract ``n`` (a positive int); raises OutOfRangeError past :data:`~crdtmem.limits.MAX_COUNT`."""
        replica = self._memory.replica_id
        self._memory._local(self.name, self._state.decrement(replica, _positive(n, self._state.n.slots, replica)))

    @property
    def value(self) -> int:
        return self._state.value


class SetHandle(_Handle):
    """An add-wins observed-remove set (OR-Set)."""

    __slots__ = ()
    _state: ORSet

    def add(self, element: Any) -> None:
        self._memory._local(self.name, self._state.add(self._memory.replica_id, encode_value(element)))

    def remove(self, element: Any) -> None:
        """Remove every add of ``element`` this replica has seen (a no-op if absent)."""
        key = encode_value(element)
        if key in self._state.entries:
            self._memory._local(self.name, self._state.remove(key), touched=(key,))

    def __contains__(self, element: Any) -> bool:
        try:
            return encode_value(element) in self._state
        except TypeError:
            return False

    def __len__(self) -> int:
        return len(self._state.entries)

    def __iter__(self) -> Iterator[Any]:
        return (decode_value(key) for key in self._state.elements())

    @property
    def value(self) -> frozenset:
        return frozenset(decode_value(key) for key in self._state.elements())


class GSetHandle(_Handle):
    """A grow-only set (G-Set)."""

    __slots__ = ()
    _state: GSet

    def add(self, element: Any) -> None:
        key = encode_value(element)
        if key not in self._state.items:
            self._memory._local(self.name, self._state.add(key))

    def __contains__(self, element: Any) -> bool:
        try:
            return encode_value(element) in self._state.items
        except TypeError:
            return False

    def __len__(self) -> int:
        return len(self._state.items)

    @property
    def value(self) -> frozenset:
        return frozenset(decode_value(key) for key in self._state.items)


class RegisterHandle(_Handle):
    """A last-writer-wins register; ``value`` is None until first assigned."""

    __slots__ = ()
    _state: LWWRegister

    def assign(self, value: Any) -> None:
        payload = encode_value(value, hashable=False)
        stamp = self._memory._stamp(after=self._state.stamp)
        self._memory._local(self.name, self._state.assign(self._memory.replica_id, stamp, payload))

    @property
    def value(self) -> Any:
        return None if self._state.payload is None else decode_value(self._state.payload)


class MVRegisterHandle(_Handle):
    """A multi-value register: concurrent assignments are all kept until one overwrites them."""

    __slots__ = ()
    _state: MVRegister

    def assign(self, value: Any) -> None:
        payload = encode_value(value)
        self._memory._local(self.name, self._state.assign(self._memory.replica_id, payload))

    @property
    def values(self) -> frozenset:
        return frozenset(decode_value(p) for p in self._state.payloads())

    @property
    def value(self) -> frozenset:
        return self.values


class MapHandle(_Handle):
    """An observed-remove map of last-writer-wins values; a put beats a concurrent remove."""

    __slots__ = ()
    _state: ORMap

    def put(self, key: Any, value: Any) -> None:
        encoded_key = encode_value(key)
        payload = encode_value(value, hashable=False)
        stamp = self._memory._stamp(after=self._state.latest_stamp(encoded_key))
        self._memory._local(self.name, self._state.put(self._memory.replica_id, encoded_key, stamp, payload))

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            current = self._state.get(encode_value(key))
        except TypeError:
            return default
        return default if current is None else decode_value(current[2])

    def remove(self, key: Any) -> None:
        encoded_key = encode_value(key)
        if self._state.get(encoded_key) is not None:
            self._memory._local(self.name, self._state.remove(encoded_key), touched=(encoded_key,))

    def __contains__(self, key: Any) -> bool:
        try:
            return self._state.get(encode_value(key)) is not None
        except TypeError:
            return False

    def __len__(self) -> int:
        return len(self._state.entries)

    def keys(self) -> list[Any]:
        return [decode_value(k) for k in self._state.entries]

    @property
    def value(self) -> dict:
        return {decode_value(k): decode_value(stamped[2]) for k, stamped in self._state.items()}
