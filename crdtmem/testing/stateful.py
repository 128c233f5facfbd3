"""A Hypothesis state machine of whole :class:`~crdtmem.Memory` replicas over a lossy network.

Subclass :class:`ReplicaMachine` to check convergence of the whole system (every built-in
type, checkpoints and rollbacks, lost, duplicated and reordered deltas, merges and full
syncs), and add rules for your own objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pycrdt
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from .. import codec
from ..crdt import TYPES
from ..errors import RollbackError
from ..memory import Checkpoint, Memory
from .strategies import COMMON, stored_values

__all__ = ["ReplicaMachine"]


@dataclass
class _Message:
    target: int
    name: str
    data: bytes
    origin: str
    writes: frozenset[int]

    def __repr__(self) -> str:
        return f"<{self.origin}→#{self.target} {self.name}>"


_PICK = st.integers(0, 15)  # a replica, taken modulo the replica count so subclasses may add more
_SMALL_ELEMENTS = st.sampled_from(COMMON)


class ReplicaMachine(RuleBasedStateMachine):
    """Replicas of :class:`~crdtmem.Memory` that write at random and sync over a lossy network.

    Every local write's delta is encoded with the codec and put in flight to every other
    replica. Rules deliver in-flight deltas in any order, deliver some twice, drop some, join
    one replica's full state into another (``Memory.merge``) and fully sync everyone. The
    machine tracks which writes each replica has seen; the invariant is that replicas that
    have seen the same writes agree (equal ``values()`` and, once their object names match,
    equal ``snapshot()`` bytes). A full sync makes every replica see every write.

    Subclass it and run ``MyMachine.TestCase`` under pytest. To add rules for your own
    objects, write through ``self.replicas[i]`` then call :meth:`ship` with ``i``.

    Attributes:
        replica_ids: the replicas' ids (3 by default); override in a subclass for more.
    """

    replica_ids: tuple[str, ...] = ("alice", "bob", "carol")
    clock_skew: float = 0.25
    """Seconds each next replica's clock runs behind the previous one."""

    COUNTER, PNCOUNTER, SET, GSET = "counter", "pncounter", "set", "gset"
    REGISTER, MVREGISTER, MAP, DOC = "register", "mvregister", "map", "doc"
    checkpoints = Bundle("checkpoints")

    def __init__(self) -> None:
        super().__init__()
        self.now = 1_700_000_000.0
        self.replicas: list[Memory] = [self.make_replica(i, rid) for i, rid in enumerate(self.replica_ids)]
        self.in_flight: list[_Message] = []
        self.seen: list[set[int]] = [set() for _ in self.replicas]
        self._writes = 0

    def make_replica(self, index: int, replica_id: str) -> Memory:
        """Build replica ``index``; override to give replicas another clock or listeners."""
        return Memory(replica_id, clock=lambda: self.now - index * self.clock_skew)

    # -- plumbing -----------------------------------------------------------------------------

    def _at(self, pick: int) -> int:
        return pick % len(self.replicas)

    def ship(self, index: int) -> None:
        """Put replica ``index``'s pending deltas in flight; call after every local write."""
        memory = self.replicas[index]
        for name, delta in memory.take_deltas():
            self._writes += 1
            self.seen[index].add(self._writes)
            data = codec.encode_state(delta)
            for target in range(len(self.replicas)):
                if target != index:
                    self.in_flight.append(_Message(target, name, data, memory.replica_id, frozenset({self._writes})))

    def _deliver(self, message: _Message) -> None:
        delta = codec.decode_state(message.data)
        self.replicas[message.target].apply_delta(message.name, delta, message.origin)
        self.seen[message.target] |= message.writes

    # -- writes -------------------------------------------------------------------------------

    @rule(r=_PICK, n=st.integers(1, 3))
    def counter_increment(self, r: int, n: int) -> None:
        i = self._at(r)
        self.replicas[i].counter(self.COUNTER).increment(n)
        self.ship(i)

    @rule(r=_PICK, n=st.integers(1, 3), up=st.booleans())
    def pncounter_change(self, r: int, n: int, up: bool) -> None:
        i = self._at(r)
        handle = self.replicas[i].pncounter(self.PNCOUNTER)
        handle.increment(n) if up else handle.decrement(n)
        self.ship(i)

    @rule(r=_PICK, element=_SMALL_ELEMENTS)
    def set_add(self, r: int, element: Any) -> None:
        i = self._at(r)
        self.replicas[i].set(self.SET).add(element)
        self.ship(i)

    @rule(r=_PICK, element=_SMALL_ELEMENTS)
    def set_remove(self, r: int, element: Any) -> None:
        i = self._at(r)
        self.replicas[i].set(self.SET).remove(element)
        self.ship(i)

    @rule(r=_PICK, element=_SMALL_ELEMENTS)
    def gset_add(self, r: int, element: Any) -> None:
        i = self._at(r)
        self.replicas[i].gset(self.GSET).add(element)
        self.ship(i)

    @rule(r=_PICK, value=st.one_of(_SMALL_ELEMENTS, stored_values(max_size=3, max_leaves=4)))
    def register_assign(self, r: int, value: Any) -> None:
        i = self._at(r)
        self.replicas[i].register(self.REGISTER).assign(value)
        self.ship(i)

    @rule(r=_PICK, value=_SMALL_ELEMENTS)
    def mvregister_assign(self, r: int, value: Any) -> None:
        i = self._at(r)
        self.replicas[i].mvregister(self.MVREGISTER).assign(value)
        self.ship(i)

    @rule(r=_PICK, key=st.sampled_from(("a", "b", 1)), value=st.one_of(_SMALL_ELEMENTS, stored_values(max_size=3, max_leaves=4)))
    def map_put(self, r: int, key: Any, value: Any) -> None:
        i = self._at(r)
        self.replicas[i].map(self.MAP).put(key, value)
        self.ship(i)

    @rule(r=_PICK, key=st.sampled_from(("a", "b", 1)))
    def map_remove(self, r: int, key: Any) -> None:
        i = self._at(r)
        self.replicas[i].map(self.MAP).remove(key)
        self.ship(i)

    @rule(r=_PICK, index=st.integers(0, 30), chunk=st.text("abcxyz", min_size=1, max_size=3))
    def doc_insert(self, r: int, index: int, chunk: str) -> None:
        i = self._at(r)
        text = self.replicas[i].doc(self.DOC).get("text", type=pycrdt.Text)
        text.insert(min(index, len(text)), chunk)
        self.ship(i)

    @rule(r=_PICK, index=st.integers(0, 30), length=st.integers(1, 3))
    def doc_delete(self, r: int, index: int, length: int) -> None:
        i = self._at(r)
        text = self.replicas[i].doc(self.DOC).get("text", type=pycrdt.Text)
        if len(text):
            start = index % len(text)
            del text[start : min(len(text), start + length)]
        self.ship(i)

    @rule(target=checkpoints, r=_PICK)
    def checkpoint(self, r: int) -> tuple[int, Checkpoint]:
        i = self._at(r)
        return i, self.replicas[i].checkpoint()

    @rule(saved=checkpoints, names=st.lists(st.sampled_from((SET, MAP, REGISTER, PNCOUNTER, MVREGISTER)), min_size=1, unique=True))
    def rollback(self, saved: tuple[int, Checkpoint], names: list[str]) -> None:
        i, checkpoint = saved
        try:
            self.replicas[i].rollback(checkpoint, names)
        except RollbackError:
            assert not self.replicas[i].take_deltas(), "a refused rollback must write nothing"
        self.ship(i)

    @rule(seconds=st.floats(0.001, 5.0))
    def clocks_advance(self, seconds: float) -> None:
        self.now += seconds

    # -- the network --------------------------------------------------------------------------

    @precondition(lambda self: self.in_flight)
    @rule(pick=st.integers(0, 10**6), keep=st.booleans())
    def deliver(self, pick: int, keep: bool) -> None:
        """Deliver any in-flight delta (reordering); if ``keep``, it may arrive again later."""
        message = self.in_flight[pick % len(self.in_flight)]
        if not keep:
            self.in_flight.remove(message)
        self._deliver(message)

    @precondition(lambda self: self.in_flight)
    @rule(count=st.integers(1, 8))
    def deliver_oldest(self, count: int) -> None:
        for message in self.in_flight[:count]:
            self._deliver(message)
        del self.in_flight[:count]

    @precondition(lambda self: self.in_flight)
    @rule(pick=st.integers(0, 10**6))
    def drop(self, pick: int) -> None:
        del self.in_flight[pick % len(self.in_flight)]

    @rule(a=_PICK, b=_PICK)
    def merge(self, a: int, b: int) -> None:
        """Join replica ``b``'s full state into replica ``a`` (anti-entropy of everything)."""
        i, k = self._at(a), self._at(b)
        if i != k:
            self.replicas[i].merge(self.replicas[k])
            self.seen[i] |= self.seen[k]

    @rule()
    def full_sync(self) -> None:
        """Merge every replica into the first, then the first into every other."""
        hub = self.replicas[0]
        for other in self.replicas[1:]:
            hub.merge(other)
        for other in self.replicas[1:]:
            other.merge(hub)
        everything = set().union(*self.seen)
        self.seen = [set(everything) for _ in self.replicas]
        self.assert_replicas_agree(0, *range(1, len(self.replicas)))

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def replicas_that_saw_the_same_writes_agree(self) -> None:
        groups: dict[frozenset[int], list[int]] = {}
        for i, seen in enumerate(self.seen):
            groups.setdefault(frozenset(seen), []).append(i)
        for members in groups.values():
            if len(members) > 1:
                self.assert_replicas_agree(*members)

    def assert_replicas_agree(self, first: int, *others: int) -> None:
        """Assert the given replicas hold equal values and (same names) equal snapshot bytes.

        A name that was only read (a handle taken, nothing written) exists on one replica and
        not another; such empty objects are left out when the names differ.
        """
        base = self.replicas[first]
        for i in others:
            other = self.replicas[i]
            if base.names() == other.names():
                assert base.values() == other.values(), _disagree(base, other, base.values(), other.values())
                assert base.snapshot() == other.snapshot(), _disagree(base, other, "snapshot", "snapshot")
            else:
                mine, theirs = _written(base), _written(other)
                assert mine == theirs, _disagree(base, other, mine, theirs)


def _written(memory: Memory) -> dict[str, bytes]:
    """Encoded state of every object that differs from an empty one."""
    shown = {}
    for name in memory.names():
        state = memory.state(name)
        data = codec.encode_state(state)
        if data != codec.encode_state(TYPES[state.TAG]()):
            shown[name] = data
    return shown


def _disagree(a: Memory, b: Memory, left: Any, right: Any) -> str:
    return f"{a.replica_id} and {b.replica_id} saw the same writes but differ:\n  {left!r}\n  {right!r}"

