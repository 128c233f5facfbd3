"""Adapters: how the law checks make, change, join, compare and encode one CRDT type.

Describe your own type with a :class:`CrdtAdapter` (its mutators wrapped in :class:`Op` for
readable failure reports) and pass it to :func:`~crdtmem.testing.check_join_laws`; once the type
is registered (:func:`crdtmem.crdt.register_type`), :func:`registered_adapter` builds one that
also checks its registered encoding. The ``*_ops`` strategies and :func:`builtin_adapter`
describe crdtmem's own types the same way, and serve as templates.
"""

from __future__ import annotations

import copy as _copy
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pycrdt
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from .. import codec
from ..crdt import Document, GCounter, GSet, LWWRegister, MVRegister, ORMap, ORSet, PNCounter, TypeSpec, lookup
from ..values import encode_value
from .strategies import elements, stored_values

__all__ = [
    "Op",
    "CrdtAdapter",
    "gcounter_ops",
    "pncounter_ops",
    "gset_ops",
    "orset_ops",
    "lwwregister_ops",
    "mvregister_ops",
    "ormap_ops",
    "document_ops",
    "builtin_adapter",
    "registered_adapter",
    "BUILTIN_TAGS",
]

S = TypeVar("S")


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


# -- the built-in types ------------------------------------------------------------------------------


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
    return elements().map(lambda v: Op("add", lambda s, r, v: s.add(_key(v)), v))


def _orset_remove(state: ORSet, replica: str, index: int, fallback: Any) -> ORSet:
    present = sorted(state.elements())
    return state.remove(present[index % len(present)] if present else _key(fallback))


def orset_ops() -> SearchStrategy[Op]:
    """Adds, removes (usually of a present element) and clears of an :class:`~crdtmem.crdt.ORSet`."""
    return st.one_of(
        elements().map(lambda v: Op("add", lambda s, r, v: s.add(r, _key(v)), v)),
        st.tuples(st.integers(0, 7), elements()).map(lambda t: Op("remove_present", _orset_remove, *t)),
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
    return elements().map(lambda v: Op("assign", lambda s, r, v: s.assign(r, _key(v)), v))


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


def registered_adapter(
    kind: str | TypeSpec, mutators: SearchStrategy[Callable[[Any, str], Any]], **options: Any
) -> CrdtAdapter[Any]:
    """The adapter of a registered type: states made, encoded and decoded as crdtmem does.

    Call it to check your own type after :func:`~crdtmem.crdt.register_type`: besides the
    join and delta laws, :func:`check_join_laws` then checks that its registered encoding is
    canonical and round-trips through :func:`crdtmem.codec.encode_state`.

    Args:
        kind: the type's friendly name, tag or spec.
        mutators: a strategy of :class:`Op` (or any ``(state, replica_id) -> delta``).
        options: other :class:`CrdtAdapter` fields to override (``equal``, ``copy``, ...).
    """
    spec = lookup(kind)
    fields: dict[str, Any] = {
        "zero": spec.cls,
        "mutators": mutators,
        "encode": codec.encode_state,
        "decode": lambda data: codec.decode_state(data, spec.tag),
        "replica_zero": spec.new,
        "name": spec.cls.__name__,
    }
    return CrdtAdapter(**{**fields, **options})


def builtin_adapter(tag: str) -> CrdtAdapter[Any]:
    """The adapter :func:`check_join_laws` uses for a built-in type (``"orset"``, ...).

    States encode with :func:`crdtmem.codec.encode_state`. Useful as a template for your own.
    """
    if tag not in _OPS:
        raise ValueError(f"unknown CRDT type tag {tag!r}; built-in tags are {', '.join(BUILTIN_TAGS)}")
    options = {"copy": _as_live} if tag == Document.TAG else {}
    return registered_adapter(tag, _OPS[tag](), **options)
