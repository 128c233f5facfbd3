"""Your own CRDT type in crdtmem: register it, store it in a Memory, property-test it.

A type is a class (state, mutators returning deltas, ``join``) plus one ``register_type``
call that gives its wire tag, a friendly name, its canonical body both ways and, optionally,
a handle. After that a ``Memory`` stores it (``memory.get(name, "maxmap")``) and its deltas
travel through the same codec, signed batches and anti-entropy as the built-in types.

``check_join_laws`` runs a Hypothesis search over random histories (replicas writing,
deltas lost, duplicated and reordered, states merged) and checks that join is commutative,
associative and idempotent, that every mutator's delta is correct, and that equal states
encode to equal bytes. Here the registered type passes, and a subtly wrong one is caught.
A ``ReplicaMachine`` with one more rule then checks whole replicas that write it converge.

Run: python examples/property_test_custom_type.py   (or collect it with pytest)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule, run_state_machine_as_test

from crdtmem import Memory, codec
from crdtmem.crdt import WHOLE, TypeSpec, register_type
from crdtmem.errors import DecodeError
from crdtmem.handles import Handle
from crdtmem.testing import CrdtAdapter, Op, ReplicaMachine, check_join_laws, registered_adapter


class MaxMap:
    """A map of keys to the largest number ever written there (a correct CRDT)."""

    TAG = "example-maxmap"  # on the wire and in snapshots

    def __init__(self, entries: dict[str, int] | None = None) -> None:
        self.entries = dict(entries or {})

    def raise_to(self, key: str, value: int) -> MaxMap:
        """Mutator: changes the state, returns the delta."""
        if value > self.entries.get(key, value - 1):
            self.entries[key] = value
        return MaxMap({key: self.entries[key]})

    def join(self, other: MaxMap) -> set[Hashable]:
        """Join in place; return the leaves that changed (here one leaf: the whole map)."""
        changed = False
        for key, value in other.entries.items():
            if value > self.entries.get(key, value - 1):
                self.entries[key] = value
                changed = True
        return {WHOLE} if changed else set()

    def copy(self) -> MaxMap:
        return type(self)(self.entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MaxMap) and self.entries == other.entries

    def __repr__(self) -> str:
        return f"MaxMap({self.entries})"

    # What replication needs as well: who a delta writes as (nobody: any trusted peer may
    # raise any key), and the Merkle leaves (one: the whole state).
    def writers(self) -> set[str]:
        return set()

    def leaf_keys(self) -> Iterable[Hashable]:
        return (WHOLE,)


def max_map_from_plain(body: Any) -> MaxMap:
    """Strict decoding: a peer's bytes land here, so refuse anything ``to_plain`` cannot make."""
    entries: dict[str, int] = {}
    for pair in codec.expect_list(body, "max map"):
        key, value = codec.expect_list(pair, "max map entry", 2)
        if not isinstance(key, str) or key in entries:
            raise DecodeError("malformed max map key")
        entries[key] = codec.expect_count(value, "max map value", minimum=0)
    return MaxMap(entries)


class MaxMapHandle(Handle):
    """What ``memory.get(name, "maxmap")`` returns."""

    def raise_to(self, key: str, value: int) -> None:
        self.update(lambda state, replica: state.raise_to(key, value))

    @property
    def value(self) -> dict[str, int]:
        return dict(self.state.entries)


register_type(TypeSpec(
    tag=MaxMap.TAG,
    cls=MaxMap,
    friendly="maxmap",
    to_plain=lambda state: sorted([k, v] for k, v in state.entries.items()),  # sorted: canonical
    from_plain=max_map_from_plain,
    handle=MaxMapHandle,
))


class LastWriteMap(MaxMap):
    """Wrong: 'the incoming value wins' — not commutative, so replicas would diverge."""

    def join(self, other: MaxMap) -> set[Hashable]:
        self.entries.update(other.entries)
        return {WHOLE}


RAISES = st.builds(lambda k, v: Op("raise_to", lambda s, r, k, v: s.raise_to(k, v), k, v),
                   st.sampled_from("xyz"), st.integers(0, 50))


def test_max_map_replicates_between_memories() -> None:
    alice, bob = Memory("alice"), Memory("bob")
    alice.get("scores", "maxmap").raise_to("x", 3)
    bob.get("scores", "maxmap").raise_to("x", 5)
    bob.get("scores", "maxmap").raise_to("y", 1)
    for source, target in ((alice, bob), (bob, alice)):
        for name, delta in source.take_deltas():  # what the sync layer ships, through the codec
            target.apply_delta(name, codec.decode_state(codec.encode_state(delta)), source.replica_id)
    assert alice.values() == bob.values() == {"scores": {"x": 5, "y": 1}}
    assert alice.snapshot() == bob.snapshot()


def test_max_map_is_a_crdt() -> None:
    # The registered adapter also checks the registered encoding: canonical, and round trips.
    check_join_laws(registered_adapter("maxmap", RAISES), settings=settings(max_examples=50, deadline=None))


def test_last_write_map_is_caught() -> None:
    try:
        # Without shrinking, to keep the example fast; in your suite keep Hypothesis' default
        # phases and it reports the smallest history that breaks the law.
        check_join_laws(CrdtAdapter(zero=LastWriteMap, mutators=RAISES, name="LastWriteMap"), settings=settings(
            max_examples=200, deadline=None, database=None, phases=[Phase.generate]))
    except AssertionError as exc:
        print("LastWriteMap rejected, as it should be:", str(exc).splitlines()[0])
    else:
        raise SystemExit("LastWriteMap passed the laws: the check is broken")


class ReplicasKeepingScores(ReplicaMachine):
    """crdtmem's replica machine (every built-in type, lossy delivery, merges, rollbacks) plus
    one rule that writes the registered type; its invariant: replicas that saw the same writes
    hold equal values and equal snapshot bytes."""

    @rule(r=st.integers(0, 2), key=st.sampled_from("xyz"), value=st.integers(0, 50))
    def raise_score(self, r: int, key: str, value: int) -> None:
        self.replicas[r].get("scores", "maxmap").raise_to(key, value)
        self.ship(r)


def test_replicas_keeping_scores_converge() -> None:
    run_state_machine_as_test(ReplicasKeepingScores, settings=settings(
        max_examples=25, stateful_step_count=25, deadline=None))


if __name__ == "__main__":
    test_max_map_replicates_between_memories()
    print("MaxMap: registered, stored in two memories, converged")
    test_max_map_is_a_crdt()
    print("MaxMap: every CRDT law holds")
    test_last_write_map_is_caught()
    test_replicas_keeping_scores_converge()
    print("MaxMap: replicas writing it (and every built-in type) converge")
