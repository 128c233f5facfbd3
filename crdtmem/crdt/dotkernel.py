"""The dot kernel shared by OR-Set, MV-Register and OR-Map (Almeida et al., delta-state CRDTs).

State: ``entries`` maps a key to the dots that currently support it, each dot carrying a
payload, plus a causal context of every dot ever seen. A dot seen in the context but held by no
entry was removed, so nothing needs a tombstone. Removing supporters only ever shrinks state.

A key's dot dict is never changed in place, only replaced, so states, deltas and copies share
them freely (a local write's delta holds the very dict its state stores).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any, Self

from ..clocks import CausalContext, Dot

__all__ = ["DotKernel", "KernelContainer", "META"]

META = b"\xc1"
"""Leaf key of a container's causal context (0xc1 never starts a msgpack value, so no entry key
collides with it)."""


class DotKernel:
    """Keys supported by dots, each dot carrying a payload; joins by the add-wins rule."""

    __slots__ = ("entries", "ctx", "_owner")

    def __init__(
        self,
        entries: dict[Hashable, dict[Dot, Any]] | None = None,
        ctx: CausalContext | None = None,
    ) -> None:
        self.entries: dict[Hashable, dict[Dot, Any]] = entries if entries is not None else {}
        self.ctx = ctx if ctx is not None else CausalContext()
        self._owner: dict[Dot, Hashable] | None = None  # dot → key, built on first need

    @classmethod
    def build(cls, entries: dict[Hashable, dict[Dot, Any]] | None = None, ctx: CausalContext | None = None) -> Self:
        """An instance of this class (a container type too) holding ``entries`` and ``ctx`` as given.

        Call it where a state is put together from parts (decoding, copying, a new delta).
        """
        kernel = cls.__new__(cls)
        kernel.entries = entries if entries is not None else {}
        kernel.ctx = ctx if ctx is not None else CausalContext()
        kernel._owner = None
        return kernel

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DotKernel) and self.entries == other.entries and self.ctx == other.ctx

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.entries}, {self.ctx})"

    # -- mutators: each changes the state and returns the delta, of this state's class ------

    def add(self, replica: str, key: Hashable, payload: Any = None) -> Self:
        """Support ``key`` with a fresh dot of ``replica``, replacing the key's current dots."""
        # A plain tuple (equal and hash-equal to the Dot) is untracked by CPython's cyclic GC
        # once a collection has seen it; the one-dot dict is shared by state and delta.
        if key in self.entries:
            delta = self.remove(key)
            dot = (replica, self.ctx.next_counter(replica))
            delta.ctx.add(dot)
            delta.entries[key] = self.entries[key] = {dot: payload}
        else:
            counter = self.ctx.next_counter(replica)
            dot = (replica, counter)
            self.entries[key] = dots = {dot: payload}
            delta = self.build({key: dots}, CausalContext.of_dot(replica, counter))
        if self._owner is not None:
            self._owner[dot] = key
        return delta

    def remove(self, key: Hashable) -> Self:
        """Drop every dot supporting ``key``; the delta carries them as context only."""
        dots = self.entries.pop(key, None)
        if not dots:
            return self.build()
        if len(dots) == 1:  # the common case: the context of one dot, built directly
            (dot,) = dots
            delta = self.build(None, CausalContext.of_dot(*dot))
        else:
            delta = self.build()
            for dot in dots:
                delta.ctx.add(dot)
        owner = self._owner
        if owner is not None:
            for dot in dots:
                del owner[dot]
        return delta

    def remove_all(self) -> Self:
        """Drop every key (used by MV-Register assignment)."""
        delta = self.build()
        for key in list(self.entries):
            DotKernel.join(delta, self.remove(key))
        return delta

    # -- join ---------------------------------------------------------------------------------

    def join(self, other: DotKernel) -> set[Hashable]:
        """Join ``other`` (a state or a delta) into this one; return the keys whose dots changed.

        Never changes ``other``; this state may come to share dot dicts with it.
        """
        entries, their_ctx = self.entries, other.ctx
        changed: set[Hashable] = set()
        # Found before ``other``'s entries join: only keys held before can lose dots to its context.
        covered = self._covered_keys(their_ctx) - other.entries.keys() if entries else ()
        mine_ctx, tops = self.ctx, {}  # tops: replica → the greatest counter our context holds of it
        for key, theirs in other.entries.items():
            mine = entries.get(key)
            if mine is None:
                if len(theirs) == 1:  # the common entry: one dot, new if past all we saw of its replica
                    (dot,) = theirs
                    top = tops.get(dot[0])
                    if top is None:
                        top = tops[dot[0]] = mine_ctx.max(dot[0])
                    fresh = theirs if dot[1] > top else mine_ctx.unseen_of(theirs)
                else:
                    fresh = mine_ctx.unseen_of(theirs)  # ``theirs`` itself when all are new: shared
                if fresh:
                    if self._owner is None:
                        entries[key] = fresh
                    else:
                        self._set(key, fresh)
                    changed.add(key)
            elif mine is not theirs and self._merge_key(key, mine, theirs, their_ctx):
                changed.add(key)
        for key in covered:
            if self._merge_key(key, entries[key], {}, their_ctx):
                changed.add(key)
        if self.ctx.join(their_ctx):
            changed.add(META)
        return changed

    def absorb(self, delta: DotKernel) -> None:
        """Join a later local write's ``delta`` into this group of local deltas (see
        :func:`~crdtmem.memory.group_deltas`).

        A one-dot add (the common write) is taken in directly, without :meth:`join`'s search
        for the keys its context removes: a fresh dot of this process removes nothing. Call it
        only with deltas this process's own mutators returned, whose contexts cover their dots.
        """
        if len(delta.entries) == 1:
            ((key, theirs),) = delta.entries.items()
            dot = delta.ctx.single()
            if dot is not None and len(theirs) == 1 and dot in theirs and self.ctx.add(dot):
                mine = self.entries.get(key)
                if mine is None and self._owner is None:
                    self.entries[key] = theirs  # the common write: a new key, no dot index kept
                else:
                    self._set(key, theirs if mine is None else {**mine, **theirs})
                return
        self.join(delta)

    def _covered_keys(self, their_ctx: CausalContext) -> set[Hashable]:
        """Our keys holding a dot ``their_ctx`` covers: the only ones a join with it can remove.

        Found through those dots when there are few, else every key is a candidate: walking
        the ranges costs at most 4 dots per entry held, never a number a peer picks.
        """
        mine = self.ctx
        # Dots past what our context has seen of r are in no entry of ours, unless r was forgotten
        # (a departed incarnation: its dots that still support entries are no longer in the context).
        ranges = [(r, min(top, mine.max(r) or top)) for r, top in their_ctx.vv.items()] if their_ctx.vv else []
        strays = their_ctx.cloud_pairs_upto(mine)  # fresh dots (a new batch's) are in no entry: skipped
        walk = sum([top for _, top in ranges]) + len(strays) if ranges else len(strays)
        if not walk:
            return set()
        if walk > 4 * len(self.entries):
            return set(self.entries)
        owner = self._index()
        keys = {owner[d] for d in strays if d in owner}
        for r, top in ranges:
            keys.update([owner[d] for c in range(1, top + 1) if (d := (r, c)) in owner])
        return keys

    def _merge_key(self, key: Hashable, mine: dict[Dot, Any], theirs: dict[Dot, Any], their_ctx: CausalContext) -> bool:
        """Keep dots both sides hold, and dots one side holds that the other has not seen."""
        merged = {d: p for d, p in mine.items() if d in theirs or d not in their_ctx}
        mine_ctx = self.ctx
        for d, p in theirs.items():
            if d not in mine and d not in mine_ctx:
                merged[d] = p
        if merged == mine:
            return False
        self._set(key, merged)
        return True

    def _index(self) -> dict[Dot, Hashable]:
        if self._owner is None:
            self._owner = {d: key for key, dots in self.entries.items() for d in dots}
        return self._owner

    def _set(self, key: Hashable, dots: dict[Dot, Any]) -> None:
        owner = self._owner
        if owner is not None:
            for d in self.entries.get(key, ()):
                owner.pop(d, None)
            for d in dots:
                owner[d] = key
        if dots:
            self.entries[key] = dots
        else:
            self.entries.pop(key, None)

    def forget(self, replicas: Iterable[str]) -> set[Hashable]:
        """Drop ``replicas`` from the causal context (departed incarnations); return the leaves changed.

        Their dots that still support entries stay: those are data, not context. Call only for
        replicas whose every dot has been joined here (see :meth:`CausalContext.forget`).
        """
        ctx = self.ctx
        forgot = False
        for replica in replicas:
            forgot = ctx.forget(replica) or forgot
        return {META} if forgot else set()

    def copy(self) -> Self:
        return self.build(dict(self.entries), self.ctx.copy())  # dot dicts are shared, never changed

    def writers(self) -> set[str]:
        """Replicas whose dots this state (as a delta) creates."""
        return {d[0] for dots in self.entries.values() for d in dots}

    def only_writes_as(self, replica: str) -> bool:
        """True if every dot this state (as a delta) holds is ``replica``'s; no set is built."""
        for dots in self.entries.values():
            for d in dots:
                if d[0] != replica:
                    return False
        return True


class KernelContainer(DotKernel):
    """Shared plumbing for types whose state is one dot kernel split into entry leaves.

    The container *is* its kernel (one object per state and per delta, not two); ``kernel``
    returns itself, and ``Type(kernel)`` adopts a bare :class:`DotKernel`'s parts.
    """

    __slots__ = ()
    TAG = ""

    def __init__(self, kernel: DotKernel | None = None) -> None:
        if kernel is None:
            super().__init__()
        else:
            self.entries, self.ctx, self._owner = kernel.entries, kernel.ctx, kernel._owner

    @property
    def kernel(self) -> DotKernel:
        return self

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.entries == other.entries and self.ctx == other.ctx  # type: ignore[attr-defined]

    def leaf_keys(self) -> Iterable[Hashable]:
        return [*self.entries, META]
