"""Random histories: states of one system, built the way real ones are.

:func:`histories` runs random mutators on random replicas and delivers, duplicates, reorders,
loses and merges their deltas and states. The laws are checked between states of one history
only: states drawn independently could reuse a dot or a timestamp, which no real system does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from .adapters import CrdtAdapter

__all__ = ["Mutation", "History", "histories"]

S = TypeVar("S")


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

