"""The dot kernel shared by OR-Set, MV-Register and OR-Map (Almeida et al., delta-state CRDTs).

State: ``entries`` maps a key to the dots that currently support it, each dot carrying a
payload, plus a causal context of every dot ever seen. A key's dot dict is never changed in
place, only replaced, so states and deltas share them freely. A dot seen in the context but held by no
entry was removed, so nothing needs a tombstone. Removing supporters only ever shrinks state.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

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

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DotKernel) and self.entries == other.entries and self.ctx == other.ctx

    def __repr__(self) -> str:
        return f"DotKernel({self.entries}, {self.ctx})"

    # -- mutators: each changes the state and returns the delta -----------------------------

    def add(self, replica: str, key: Hashable, payload: Any = None) -> DotKernel:
        """Support ``key`` with a fresh dot of ``replica``, replacing the key's current dots."""
        if key in self.entries:
            delta = self.remove(key)
        else:
            delta = DotKernel.__new__(DotKernel)
            delta.entries, delta.ctx, delta._owner = {}, CausalContext.__new__(CausalContext), None
            delta.ctx.vv, delta.ctx._stray = {}, {}
        # A plain tuple (equal and hash-equal to the Dot) is untracked by CPython's cyclic GC
        # once a collection has seen it; the one-dot dict is shared by state and delta (dot
        # dicts are never changed in place, only replaced).
        dot = (replica, self.ctx.next_counter(replica))
        delta.entries[key] = self.entries[key] = {dot: payload}
        if self._owner is not None:
            self._owner[dot] = key
        delta.ctx.add(dot)
        return delta

    def remove(self, key: Hashable) -> DotKernel:
        """Drop every dot supporting ``key``; the delta carries them as context only."""
        delta = DotKernel()
        dots = self.entries.pop(key, None)
        if dots:
            owner = self._owner
            for dot in dots:
                delta.ctx.add(dot)
                if owner is not None:
                    del owner[dot]
        return delta

    def remove_all(self) -> DotKernel:
        """Drop every key (used by MV-Register assignment)."""
        delta = DotKernel()
        for key in list(self.entries):
            delta.join(self.remove(key))
        return delta

    # -- join ---------------------------------------------------------------------------------

    def join(self, other: DotKernel) -> set[Hashable]:
        """Join ``other`` (a state or a delta) into this one; return the keys whose dots changed.

        Never changes ``other``; this state may come to share dot dicts with it.
        """
        entries, their_ctx = self.entries, other.ctx
        changed: set[Hashable] = set()
        for key, theirs in other.entries.items():
            mine = entries.get(key)
            if mine is None:
                fresh = self.ctx.unseen_of(theirs)  # ``theirs`` itself when all are new: shared
                if fresh:
                    if self._owner is None:
                        entries[key] = fresh
                    else:
                        self._set(key, fresh)
                    changed.add(key)
            elif mine is not theirs and self._merge_key(key, mine, theirs, their_ctx):
                changed.add(key)
        if entries:
            for key in self._covered_keys(their_ctx) - other.entries.keys():
                if self._merge_key(key, entries[key], {}, their_ctx):
                    changed.add(key)
        if self.ctx.join(their_ctx):
            changed.add(META)
        return changed

    def _covered_keys(self, their_ctx: CausalContext) -> set[Hashable]:
        """Our keys holding a dot ``their_ctx`` covers: the only ones a join with it can remove.

        Found through those dots when there are few, else every key is a candidate: walking
        the ranges costs at most 4 dots per entry held, never a number a peer picks.
        """
        mine = self.ctx
        ranges = [(r, min(top, mine.max(r))) for r, top in their_ctx.vv.items()]
        walk = sum([top for _, top in ranges]) + their_ctx.cloud_size()
        if not walk:
            return set()
        if walk > 4 * len(self.entries):
            return set(self.entries)
        owner = self._index()
        keys = {owner[d] for r, top in ranges for c in range(1, top + 1) if (d := (r, c)) in owner}
        keys.update([owner[d] for d in their_ctx.cloud_pairs() if d in owner])
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

    def copy(self) -> DotKernel:
        return DotKernel({k: dict(v) for k, v in self.entries.items()}, self.ctx.copy())

    def writers(self) -> set[str]:
        """Replicas whose dots this state (as a delta) creates."""
        return {d[0] for dots in self.entries.values() for d in dots}


class KernelContainer:
    """Shared plumbing for types whose state is one :class:`DotKernel` split into entry leaves."""

    __slots__ = ("kernel",)
    TAG = ""

    def __init__(self, kernel: DotKernel | None = None) -> None:
        self.kernel = kernel if kernel is not None else DotKernel()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.kernel == other.kernel

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kernel.entries}, {self.kernel.ctx})"

    def join(self, other: KernelContainer) -> set[Hashable]:
        return self.kernel.join(other.kernel)

    def copy(self):  # noqa: ANN201 - returns the subclass
        return type(self)(self.kernel.copy())

    def writers(self) -> set[str]:
        return self.kernel.writers()

    def leaf_keys(self) -> Iterable[Hashable]:
        return [*self.kernel.entries, META]
