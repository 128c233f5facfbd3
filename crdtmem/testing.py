"""Property-based checks for CRDTs: Hypothesis strategies, join-law checks, a replica machine.

Use this module from your own test suite:

* :func:`values` and :func:`stored_values` generate everything crdtmem can store.
* :func:`check_join_laws` checks that a CRDT type is a join-semilattice whose mutators return
  correct deltas and whose encoding is canonical. It drives the type through a small
  :class:`CrdtAdapter`, so it works on your own types too, with or without crdtmem's codec::

      from hypothesis import strategies as st
      from crdtmem.testing import CrdtAdapter, Op, check_join_laws

      class MaxRegister:
          def __init__(self, value=0):
              self.value = value

          def set(self, value):  # mutator: changes the state, returns the delta
              self.value = max(self.value, value)
              return MaxRegister(value)

      def test_max_register_is_a_crdt():
          check_join_laws(CrdtAdapter(
              zero=MaxRegister,
              mutators=st.integers(0, 99).map(lambda n: Op("set", lambda s, r, n: s.set(n), n)),
              join=lambda a, b: MaxRegister(max(a.value, b.value)),
              equal=lambda a, b: a.value == b.value,
          ))

* :class:`ReplicaMachine` is a Hypothesis state machine of several :class:`~crdtmem.Memory`
  replicas that write, lose, duplicate and reorder deltas, merge and sync; subclass it to add
  rules for your own objects.

Like the rest of the core, this module does no I/O and reads no clock.
"""

from __future__ import annotations

import copy as _copy
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pycrdt
from hypothesis import HealthCheck, given
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule
from hypothesis.strategies import SearchStrategy

from . import codec
from .crdt import TYPES, Document, GCounter, GSet, LWWRegister, MVRegister, ORMap, ORSet, PNCounter
from .errors import RollbackError
from .memory import Checkpoint, Memory
from .values import encode_value

__all__ = [
    "values",
    "stored_values",
    "Op",
    "CrdtAdapter",
    "Mutation",
    "History",
    "histories",
    "assert_join_laws",
    "assert_delta_law",
    "assert_encoding_round_trip",
    "check_join_laws",
    "gcounter_ops",
    "pncounter_ops",
    "gset_ops",
    "orset_ops",
    "lwwregister_ops",
    "mvregister_ops",
    "ormap_ops",
    "document_ops",
    "builtin_adapter",
    "BUILTIN_TAGS",
    "ReplicaMachine",
]

S = TypeVar("S")

_MIN_INT, _MAX_INT = -(2**63), 2**64 - 1


# -- values ----------------------------------------------------------------------------------------


def _scalars(max_size: int) -> SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(_MIN_INT, _MAX_INT),
        st.floats(allow_nan=False),
        st.text(max_size=max_size),
        st.binary(max_size=max_size),
    )


def values(*, max_size: int = 8, max_leaves: int = 8) -> SearchStrategy[Any]:
    """Any value crdtmem can use as a set element or map key.

    That is str, int (64-bit), float (no NaN), bool, None, bytes and tuples of these, nested.
    Use it to feed ``Memory`` handles or your own types in property tests.

    Args:
        max_size: longest str, bytes or tuple generated.
        max_leaves: most scalars in one nested value.
    """
    return st.recursive(
        _scalars(max_size),
        lambda inner: st.lists(inner, max_size=max_size).map(tuple),
        max_leaves=max_leaves,
    )


def stored_values(*, max_size: int = 8, max_leaves: int = 8) -> SearchStrategy[Any]:
    """Any value a register or map can hold: :func:`values` plus lists and dicts of them."""
    keys = values(max_size=max_size, max_leaves=2)
    return st.recursive(
        _scalars(max_size),
        lambda inner: st.one_of(
            st.lists(inner, max_size=max_size).map(tuple),
            st.lists(inner, max_size=max_size),
            st.dictionaries(keys, inner, max_size=max_size),
        ),
        max_leaves=max_leaves,
    )


# A few values that collide often, so removes, overwrites and conflicts actually happen.
_COMMON = (0, 1, True, "a", "b", b"a", None, 1.5, ("a", 1))


def _elements() -> SearchStrategy[Any]:
    return st.one_of(st.sampled_from(_COMMON), values(max_size=3, max_leaves=3))


# -- the adapter ------------------------------------------------------------------------------------


class Op:
    """A named mutator call, printed readably in Hypothesis' falsifying examples.

    ``Op("add", fn, x)`` is called as ``fn(state, replica, x)``: it must change ``state`` in
    place and return the delta (crdtmem's convention, and riak_dt's). Any callable
    ``(state, replica) -> delta`` works where an ``Op`` does; ``Op`` only adds a good repr.
    """

    __slots__ = ("name", "args", "_fn")

    def __init__(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        self.name, self._fn, self.args = name, fn, args

    def __call__(self, state: Any, replica: str) -> Any:
        return self._fn(state, replica, *self.args)

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(map(repr, self.args))})"


def _join_in_place(a: Any, b: Any) -> Any:
    a.join(b)
    return a


def _copy_state(state: Any) -> Any:
    copier = getattr(state, "copy", None)
    return copier() if callable(copier) else _copy.deepcopy(state)


@dataclass(frozen=True)
class CrdtAdapter(Generic[S]):
    """How the law checks make, change, join, compare and encode one CRDT type.

    Only ``zero`` and ``mutators`` are required for a type that follows crdtmem's conventions
    (an in-place ``join`` method, a ``copy`` method, ``==``). For any other type pass ``join``,
    ``equal`` and, if it has one, its ``encode``/``decode``.

    Attributes:
        zero: returns a new bottom state (the state every replica starts from).
        mutators: a strategy of callables ``(state, replica_id) -> delta``; each changes
            ``state`` in place and returns the delta of that change. Wrap them in :class:`Op`
            for readable failure reports.
        join: ``join(a, b)`` returns the least upper bound of ``a`` and ``b``. It may change
            and return ``a``; it must not change ``b``. Default: ``a.join(b)`` in place.
        equal: state equality. Default ``==``.
        encode: bytes of a state. If given, equal states must give equal bytes.
        decode: inverse of ``encode``; if given, round trips are checked too.
        copy: an independent copy of a state. Default: its ``copy()`` method, else deepcopy.
        replica_zero: if given, ``replica_zero(replica_id)`` makes each replica's starting
            state instead of ``zero()`` (for types whose replicas need their id up front).
        name: shown in failure messages.
    """

    zero: Callable[[], S]
    mutators: SearchStrategy[Callable[[S, str], S]]
    join: Callable[[S, S], S] = _join_in_place
    equal: Callable[[S, S], bool] = operator.eq
    encode: Callable[[S], bytes] | None = None
    decode: Callable[[bytes], S] | None = None
    copy: Callable[[S], S] = _copy_state
    replica_zero: Callable[[str], S] | None = None
    name: str = ""

    def joined(self, a: S, b: S) -> S:
        """``a ⊔ b`` without changing either argument."""
        return self.join(self.copy(a), b)

    def start(self, replica: str) -> S:
        return self.replica_zero(replica) if self.replica_zero is not None else self.zero()


# -- random histories --------------------------------------------------------------------------------


@dataclass
class Mutation(Generic[S]):
    """One mutator call: the state before, the delta it returned and the state after."""

    replica: str
    op: Any
    before: S
    delta: S
    after: S


@dataclass
class History(Generic[S]):
    """A random run of replicas writing and exchanging deltas and states.

    Attributes:
        replicas: each replica's final state.
        states: every state seen along the way (replica states after each step and copies of
            every delta): all of them are states of one consistent system, so any of them may
            be joined with any other.
        mutations: every mutator call, for the delta law.
        log: the steps, for humans.
    """

    replicas: dict[str, S]
    states: list[S] = field(default_factory=list)
    mutations: list[Mutation[S]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"History({'; '.join(self.log) or 'no steps'})"


def histories(
    adapter: CrdtAdapter[S],
    *,
    replicas: Sequence[str] = ("alice", "bob", "carol"),
    max_steps: int = 12,
) -> SearchStrategy[History[S]]:
    """Random states built the way real ones are: random ops on random replicas.

    Each step either applies a drawn mutator on a drawn replica (its delta goes in flight to
    every other replica), delivers an in-flight delta (possibly keeping it to deliver again:
    duplication; any order: reordering; some never: loss), or joins one replica's full state
    into another. States drawn from independent histories could reuse a dot or a timestamp,
    which no real system does, so laws are only checked between states of one history.

    Args:
        adapter: the type under test.
        replicas: replica ids (distinct; each writes only through its own state).
        max_steps: most steps in one history.
    """
    replica_list = list(replicas)
    if len(set(replica_list)) != len(replica_list) or not replica_list:
        raise ValueError("replicas must be distinct and non-empty")

    @st.composite
    def build(draw: Callable[[SearchStrategy[Any]], Any]) -> History[S]:
        copy = adapter.copy
        live = {r: adapter.start(r) for r in replica_list}
        history: History[S] = History(live)
        in_flight: list[tuple[str, str, S]] = []
        for _ in range(draw(st.integers(1, max_steps), label="steps")):
            kinds = ["mutate", "mutate"]
            if in_flight:
                kinds += ["deliver", "deliver"]
            if len(replica_list) > 1:
                kinds.append("merge")
            kind = draw(st.sampled_from(kinds))
            if kind == "mutate":
                r = draw(st.sampled_from(replica_list))
                op = draw(adapter.mutators)
                before = copy(live[r])
                delta = op(live[r], r)
                mutation = Mutation(r, op, before, delta, copy(live[r]))
                history.mutations.append(mutation)
                history.states += [mutation.after, copy(delta)]
                in_flight += [(t, r, delta) for t in replica_list if t != r]
                history.log.append(f"{r}.{op!r}")
            elif kind == "deliver":
                i = draw(st.integers(0, len(in_flight) - 1))
                target, origin, delta = in_flight[i]
                keep = draw(st.booleans())
                if not keep:
                    del in_flight[i]
                live[target] = adapter.join(live[target], delta)
                history.states.append(copy(live[target]))
                history.log.append(f"deliver {origin}'s delta to {target}{' (kept)' if keep else ''}")
            else:
                a = draw(st.sampled_from(replica_list))
                b = draw(st.sampled_from([r for r in replica_list if r != a]))
                live[a] = adapter.join(live[a], copy(live[b]))
                history.states.append(copy(live[a]))
                history.log.append(f"merge {b} into {a}")
        return history

    return build()


# -- the laws --------------------------------------------------------------------------------------


def _law(holds: bool, adapter: CrdtAdapter[Any], law: str, **shown: Any) -> None:
    if not holds:
        where = f" for {adapter.name}" if adapter.name else ""
        details = "\n".join(f"  {k} = {v!r}" for k, v in shown.items())
        raise AssertionError(f"{law} does not hold{where}:\n{details}")


def assert_join_laws(adapter: CrdtAdapter[S], a: S, b: S, c: S) -> None:
    """Assert that join is commutative, associative and idempotent on ``a``, ``b``, ``c``.

    Also that ``zero`` is the identity, and, if the adapter has ``encode``, that the equal
    states these laws produce encode to equal bytes. Call it from your own ``@given`` test
    with states of one system (see :func:`histories`), or let :func:`check_join_laws` do it.
    """
    eq, j = adapter.equal, adapter.joined
    ab, ba = j(a, b), j(b, a)
    _law(eq(ab, ba), adapter, "commutativity (a ⊔ b == b ⊔ a)", a=a, b=b, a_b=ab, b_a=ba)
    ab_c, a_bc = j(ab, c), j(a, j(b, c))
    _law(eq(ab_c, a_bc), adapter, "associativity ((a ⊔ b) ⊔ c == a ⊔ (b ⊔ c))", a=a, b=b, c=c, left=ab_c, right=a_bc)
    aa = j(a, a)
    _law(eq(aa, a), adapter, "idempotence (a ⊔ a == a)", a=a, a_a=aa)
    za = adapter.join(adapter.zero(), a)
    _law(eq(za, a), adapter, "identity (zero ⊔ a == a)", a=a, zero_a=za)
    _law(eq(j(ab, a), ab), adapter, "upper bound ((a ⊔ b) ⊔ a == a ⊔ b)", a=a, b=b, a_b=ab)
    if adapter.encode is not None:
        enc = adapter.encode
        for law, x, y in (
            ("canonical encoding of a ⊔ b and b ⊔ a", ab, ba),
            ("canonical encoding of (a ⊔ b) ⊔ c and a ⊔ (b ⊔ c)", ab_c, a_bc),
            ("canonical encoding of a ⊔ a and a", aa, a),
            ("canonical encoding of zero ⊔ a and a", za, a),
        ):
            ex, ey = enc(x), enc(y)
            _law(ex == ey, adapter, law, left=x, right=y, left_bytes=ex, right_bytes=ey)


def assert_delta_law(adapter: CrdtAdapter[S], mutation: Mutation[S]) -> None:
    """Assert that joining a mutator's delta into the state it was made from gives the new state.

    That is ``before ⊔ delta == after``, and delivering the delta again changes nothing.
    """
    eq, j = adapter.equal, adapter.joined
    rebuilt = j(mutation.before, mutation.delta)
    _law(
        eq(rebuilt, mutation.after),
        adapter,
        f"delta law (before ⊔ {mutation.op!r}'s delta == after)",
        replica=mutation.replica,
        before=mutation.before,
        delta=mutation.delta,
        after=mutation.after,
        before_delta=rebuilt,
    )
    again = j(mutation.after, mutation.delta)
    _law(eq(again, mutation.after), adapter, "redelivery (after ⊔ delta == after)", delta=mutation.delta, after=mutation.after)
    if adapter.encode is not None:
        _law(adapter.encode(rebuilt) == adapter.encode(mutation.after), adapter, "canonical encoding of before ⊔ delta and after", rebuilt=rebuilt, after=mutation.after)


def assert_encoding_round_trip(adapter: CrdtAdapter[S], state: S) -> None:
    """Assert ``decode(encode(s)) == s`` and that re-encoding gives the same bytes."""
    if adapter.encode is None or adapter.decode is None:
        return
    data = adapter.encode(state)
    back = adapter.decode(data)
    _law(adapter.equal(back, state), adapter, "round trip (decode(encode(s)) == s)", state=state, decoded=back)
    again = adapter.encode(back)
    _law(again == data, adapter, "stable encoding (encode(decode(b)) == b)", state=state, first=data, second=again)


_LAW_SETTINGS = Settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_join_laws(
    adapter: CrdtAdapter[Any],
    *,
    replicas: Sequence[str] = ("alice", "bob", "carol"),
    max_steps: int = 12,
    triples: int = 3,
    settings: Settings | None = None,
) -> None:
    """Check every CRDT law on random histories of the type described by ``adapter``.

    Call it from a plain test function (not from inside another ``@given``); it runs its own
    Hypothesis search and raises ``AssertionError`` naming the broken law and the (shrunk)
    states. Per generated history it checks the delta law for every mutation, the join laws
    on ``triples`` random triples of states, and encoding round trips on every state.

    Args:
        adapter: the type under test.
        replicas: replica ids used in the histories.
        max_steps: most steps per history.
        triples: how many (a, b, c) triples to check per history.
        settings: Hypothesis settings; default 60 examples, no deadline.
    """

    @given(data=st.data())
    def crdt_laws(data: st.DataObject) -> None:
        history = data.draw(histories(adapter, replicas=replicas, max_steps=max_steps), label="history")
        for mutation in history.mutations:
            assert_delta_law(adapter, mutation)
        pool = [adapter.zero(), *history.states]
        pick = st.integers(0, len(pool) - 1)
        for n in range(triples):
            i, k, m = (data.draw(pick, label=f"triple {n} {part}") for part in "abc")
            assert_join_laws(adapter, pool[i], pool[k], pool[m])
        for state in pool:
            assert_encoding_round_trip(adapter, state)

    (settings or _LAW_SETTINGS)(crdt_laws)()


# -- operations on the built-in types -------------------------------------------------------------------


def _key(value: Any) -> bytes:
    return encode_value(value)


def _payload(value: Any) -> bytes:
    return encode_value(value, hashable=False)


def gcounter_ops() -> SearchStrategy[Op]:
    """Increments of a :class:`~crdtmem.crdt.GCounter` by 1–5."""
    return st.integers(1, 5).map(lambda n: Op("increment", lambda s, r, n: s.increment(r, n), n))


def pncounter_ops() -> SearchStrategy[Op]:
    """Increments and decrements of a :class:`~crdtmem.crdt.PNCounter` by 1–5."""
    return st.one_of(
        st.integers(1, 5).map(lambda n: Op("increment", lambda s, r, n: s.increment(r, n), n)),
        st.integers(1, 5).map(lambda n: Op("decrement", lambda s, r, n: s.decrement(r, n), n)),
    )


def gset_ops() -> SearchStrategy[Op]:
    """Adds to a :class:`~crdtmem.crdt.GSet`."""
    return _elements().map(lambda v: Op("add", lambda s, r, v: s.add(_key(v)), v))


def _orset_remove(state: ORSet, replica: str, index: int, fallback: Any) -> ORSet:
    present = sorted(state.elements())
    return state.remove(present[index % len(present)] if present else _key(fallback))


def orset_ops() -> SearchStrategy[Op]:
    """Adds, removes (usually of a present element) and clears of an :class:`~crdtmem.crdt.ORSet`."""
    return st.one_of(
        _elements().map(lambda v: Op("add", lambda s, r, v: s.add(r, _key(v)), v)),
        st.tuples(st.integers(0, 7), _elements()).map(lambda t: Op("remove_present", _orset_remove, *t)),
        st.just(Op("clear", lambda s, r: s.clear())),
    )


def lwwregister_ops() -> SearchStrategy[Op]:
    """Assignments of an :class:`~crdtmem.crdt.LWWRegister`, stamped 1–2 past what the replica saw.

    Replicas that saw the same stamp pick equal stamps, so ties (broken by replica id) happen.
    """

    def assign(state: LWWRegister, replica: str, bump: int, value: Any) -> LWWRegister:
        return state.assign(replica, state.stamp + bump, _payload(value))

    return st.tuples(st.integers(1, 2), stored_values(max_size=3, max_leaves=3)).map(lambda t: Op("assign", assign, *t))


def mvregister_ops() -> SearchStrategy[Op]:
    """Assignments of an :class:`~crdtmem.crdt.MVRegister`."""
    return _elements().map(lambda v: Op("assign", lambda s, r, v: s.assign(r, _key(v)), v))


def ormap_ops() -> SearchStrategy[Op]:
    """Puts (stamped past the key's current stamp) and removes on an :class:`~crdtmem.crdt.ORMap`."""

    def put(state: ORMap, replica: str, key: Any, bump: int, value: Any) -> ORMap:
        k = _key(key)
        return state.put(replica, k, state.latest_stamp(k) + bump, _payload(value))

    keys = st.sampled_from(("a", "b", 1, None))
    return st.one_of(
        st.tuples(keys, st.integers(1, 2), stored_values(max_size=3, max_leaves=3)).map(lambda t: Op("put", put, *t)),
        keys.map(lambda k: Op("remove", lambda s, r, k: s.remove(_key(k)), k)),
    )


def _text(state: Document) -> pycrdt.Text:
    return state.doc.get("text", type=pycrdt.Text)


def _doc_insert(state: Document, replica: str, index: int, chunk: str) -> Document:
    before = state.doc.get_state()
    text = _text(state)
    text.insert(min(index, len(text)), chunk)
    return Document.from_update(state.doc.get_update(before))


def _doc_delete(state: Document, replica: str, index: int, length: int) -> Document:
    before = state.doc.get_state()
    text = _text(state)
    if len(text):
        start = index % len(text)
        del text[start : min(len(text), start + length)]
    return Document.from_update(state.doc.get_update(before))


def document_ops() -> SearchStrategy[Op]:
    """Text inserts and deletes on a live :class:`~crdtmem.crdt.Document` (root ``"text"``)."""
    return st.one_of(
        st.tuples(st.integers(0, 20), st.text("abcxyz", min_size=1, max_size=4)).map(lambda t: Op("insert", _doc_insert, *t)),
        st.tuples(st.integers(0, 20), st.integers(1, 3)).map(lambda t: Op("delete", _doc_delete, *t)),
    )


def _as_live(state: Document) -> Document:
    # Documents compare by content whatever their form; keeping every copy live makes the
    # canonical-encoding check compare like with like.
    live = Document()
    live.join(state)
    return live


_OPS: dict[str, Callable[[], SearchStrategy[Op]]] = {
    GCounter.TAG: gcounter_ops,
    PNCounter.TAG: pncounter_ops,
    GSet.TAG: gset_ops,
    ORSet.TAG: orset_ops,
    LWWRegister.TAG: lwwregister_ops,
    MVRegister.TAG: mvregister_ops,
    ORMap.TAG: ormap_ops,
    Document.TAG: document_ops,
}

BUILTIN_TAGS: tuple[str, ...] = tuple(_OPS)
"""Tags of every built-in type, in the order :data:`crdtmem.crdt.TYPES` lists them."""


def builtin_adapter(tag: str) -> CrdtAdapter[Any]:
    """The adapter :func:`check_join_laws` uses for a built-in type (``"orset"``, ...).

    States encode with :func:`crdtmem.codec.encode_state`. Useful as a template for your own.
    """
    if tag not in _OPS:
        raise ValueError(f"unknown CRDT type tag {tag!r}; built-in tags are {', '.join(BUILTIN_TAGS)}")
    cls = TYPES[tag]
    document = tag == Document.TAG
    return CrdtAdapter(
        zero=cls,
        mutators=_OPS[tag](),
        encode=codec.encode_state,
        decode=lambda data: codec.decode_state(data, tag),
        copy=_as_live if document else _copy_state,
        replica_zero=Document.for_replica if document else None,
        name=cls.__name__,
    )


# -- the replica state machine ---------------------------------------------------------------------------


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
_SMALL_ELEMENTS = st.sampled_from(_COMMON)


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
