"""Leaf repair: what one replica's rows must carry, and how much of a peer's row is safe to adopt.

A *row* is one object's partial state (its entries for some keys plus the object's causal
context), keys named absent, and marks on the peer's previous row ("I lack this entry: judge
it by my context"). The receiver joins the row for exactly those keys and adopts the context.
Adopting a context is only safe if the row carries every live dot the receiver has not seen,
otherwise that dot would count as removed there and its element would be silently lost. So a
side that knows the peer's context sends every key holding a live dot outside it and flags
the row *complete* (:func:`repair_rows`), and a row that is not complete is adopted only in
its safe part (:func:`adoptable`).

These functions read a :class:`~crdtmem.memory.Memory` and never change it; the
:class:`~crdtmem.protocol.antientropy.Reconciler` decides when to call them and applies the
result with ``Memory.apply_repair``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pycrdt

from ... import codec
from ...clocks import CausalContext, count_unseen
from ...crdt import Crdt, ORMap, ORSet
from ...crdt.document import Document
from ...crdt.dotkernel import META, DotKernel
from ...merkle import LeafId
from .wire import Received, pack_bits, sent_keys

__all__ = ["context", "candidates", "repair_rows", "adoptable"]


def context(state: Crdt) -> CausalContext:
    """The causal context of a dot-kernel state (empty for the others)."""
    kernel = getattr(state, "kernel", None)
    return kernel.ctx if kernel is not None else CausalContext()


def _owners_unseen(state: ORSet | ORMap, seen: CausalContext, sending: set[Hashable]) -> set[Hashable]:
    """Keys not in ``sending`` that hold a live dot outside ``seen`` (a peer's context).

    Walks the live dots (every live dot is in the state's context), never the context's
    ranges, whose width a peer picks.
    """
    owner = state.kernel._index()  # dot → key, kept up to date by the kernel once built
    return {key for dot, key in owner.items() if key not in sending and dot not in seen}


def candidates(
    changed: set[LeafId],
    received: dict[str, Received],
    repair_sent: dict[str, list[Hashable]],
    *,
    diff: dict[LeafId, bool] | None = None,
    names: set[str] | None = None,
) -> dict[str, dict]:
    """Per object: every key to consider → what the peer holds (bytes, None, or ... unknown).

    Keys: my differing leaves (``diff``; those the peer listed no id like are known absent
    there), ``changed`` (leaves changed here), and whatever the peer's last repair carried
    (``received``, whose marks refer to the keys of my rows ``repair_sent``). Restricted to
    ``names`` when given.
    """
    plan: dict[str, dict] = {}
    if diff is not None:
        for (name, key), absent in diff.items():
            plan.setdefault(name, {})[key] = None if absent else ...
    for name, key in changed:
        plan.setdefault(name, {}).setdefault(key, ...)
    for name, got in received.items():
        known = plan.setdefault(name, {})
        for key in got.keys:
            known[key] = codec.encode_leaf(got.partial, key)
        for key in got.absent:
            known[key] = None
        for key, marked in zip(repair_sent.get(name, ()), got.marks):
            if marked:  # the peer lacks it (and now so do I)
                known[key] = None
        if isinstance(got.partial, (ORSet, ORMap)):
            known[META] = codec.encode_leaf(got.partial, META)
    if names is not None:
        plan = {name: keys for name, keys in plan.items() if name in names}
    return plan


def repair_rows(
    memory: Any,
    plan: dict[str, dict],
    received: dict[str, Received],
    basis: dict[str, CausalContext] | None = None,
) -> tuple[list[list], dict[str, list[Hashable]], set[str], int]:
    """Rows ``[name, tag, body, absent keys, marks, complete]`` for every object the peer needs.

    Per key: unknown to me what the peer holds → send it if I hold it, else name it
    absent; the peer holds bytes equal to mine → skip; it holds an entry I lack → mark
    it (the peer joins my context for that key); otherwise send mine. Where ``basis``
    gives a context the peer has seen, the row is made *complete*: every key holding a
    live dot outside that context is sent too, so the peer may adopt my whole context.

    Returns the rows, the keys each row carries entries for (what the peer's marks will
    refer to), the names of removable objects where I sent an entry the peer may have
    removed (it cannot know until it sees the key), and how many leaves the rows carry.
    """
    rows, sent_map, unsure, leaves = [], {}, set(), 0
    basis = basis or {}
    for name in sorted(plan):
        state = memory.state(name)
        got = received.get(name)
        if state is None:
            continue
        # The peer holds another type under this name (a type clash): its row and context say
        # nothing about mine, so every key is sent as if unknown there, and nothing is marked.
        clash = got is not None and got.tag != state.TAG
        in_basis = name in basis and not clash
        removable = isinstance(state, (ORSet, ORMap))
        # Whether the peer may hold an entry it removed, which only it can judge.
        may_have_removed = removable and not (got is None and in_basis)  # vs: lacks it all
        marks = [False] * (len(got.keys) if got else 0)
        positions = {key: i for i, key in enumerate(got.keys)} if got and not clash else {}
        send: set[Hashable] = set()
        absent: list[bytes] = []
        for key, theirs in plan[name].items():
            mine = memory.leaf_bytes(name, key)
            if clash:
                theirs = ...
            if theirs is ...:  # unknown: send what I hold, name what I lack
                if mine is not None:
                    send.add(key)
                    if may_have_removed and key != META:
                        unsure.add(name)
                elif key != META:
                    absent.append(key)
            elif theirs is None and got is None and mine is not None:
                # The peer lacks it, but may have removed it: without its context here, only
                # it can tell (ae.final) once it sees the key.
                send.add(key)
                if may_have_removed and key != META:
                    unsure.add(name)
            elif mine is None:
                if theirs is not None and key in positions:
                    marks[positions[key]] = True
            elif mine != theirs:
                send.add(key)
        complete = not removable or in_basis
        if removable and in_basis:
            send |= _owners_unseen(state, basis[name], send)
        if not (send or absent or any(marks)):
            continue
        partial = _partial(memory, name, state, send, got)
        tag, body = codec.state_to_plain(partial)
        sent = sent_keys(partial)
        sent_map[name] = sent
        leaves += len(sent) + len(absent)
        rows.append([name, tag, body, sorted(absent), pack_bits(marks), complete])
    return rows, sent_map, unsure, leaves


def _partial(memory: Any, name: str, state: Crdt, keys: set[Hashable], got: Received | None) -> Crdt:
    if isinstance(state, Document) and got is not None and isinstance(got.partial, Document):
        # The peer sent its whole document: answer with just what it lacks.
        their_state = pycrdt.get_state(got.partial.encoded())
        return Document.from_update(pycrdt.get_update(state.encoded(), their_state))
    return memory.restricted(name, keys)


def adoptable(memory: Any, name: str, got: Received, keys: set[Hashable]) -> tuple[Crdt, bool]:
    """What of a peer's row for ``keys`` may be joined here, and whether that is all of it.

    ``apply_repair`` adopts the row's whole causal context, which is only safe if the row
    carries every live dot this replica has not seen. A complete row (its sender checked
    against a context of ours) is adopted whole. Otherwise every dot of the context that
    is new here and not in the row's entries is suspect: either removed on the sender, or
    live under a key the diff missed (a truncated-fingerprint collision). Then only the
    safe part is adopted (the row's own dots and the dots its keys' merge needs), so a
    missed key is never silently turned into a removal; the sender vouches later.

    Returns the partial state to apply and False if part of its context was held back.
    """
    partial, whole = got.partial, True
    if isinstance(partial, (ORSet, ORMap)) and not got.complete:
        mine = memory.state(name)
        mine_ctx = context(mine) if mine is not None else CausalContext()
        theirs = partial.kernel
        carried = {dot for dots in theirs.entries.values() for dot in dots}
        carried_new = sum(1 for dot in carried if dot in theirs.ctx and dot not in mine_ctx)
        if count_unseen(theirs.ctx, mine_ctx) > carried_new:  # a new dot of the context is not carried
            whole = False
            safe = CausalContext()
            for dot in carried:
                safe.add(dot)
            if mine is not None:
                held = mine.kernel.entries
                for key in keys:
                    for dot in held.get(key, ()):
                        if dot in theirs.ctx:  # lets the merge drop what the sender removed
                            safe.add(dot)
            partial = type(partial)(DotKernel(theirs.entries, safe))
    return partial, whole
