"""A type registered by the user is stored, replicated, encoded and rolled back like a built-in."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from crdtmem import Memory, RollbackError, TypeMismatchError, codec
from crdtmem.crdt import WHOLE, RollbackPolicy, TypeSpec, register_type, unregister_type
from crdtmem.errors import DecodeError
from crdtmem.handles import Handle
from crdtmem.testing import Cluster, Op, check_join_laws, registered_adapter



class MaxRegister:
    """The largest number ever written: join is ``max``."""

    TAG = "test-maxregister"
    __slots__ = ("top",)

    def __init__(self, top: int = 0) -> None:
        self.top = top

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.top == other.top

    def __repr__(self) -> str:
        return f"MaxRegister({self.top})"

    @property
    def value(self) -> int:
        return self.top

    def raise_to(self, n: int) -> MaxRegister:
        self.top = max(self.top, n)
        return type(self)(self.top)

    def join(self, other: MaxRegister) -> set[Hashable]:
        if other.top > self.top:
            self.top = other.top
            return {WHOLE}
        return set()

    def copy(self) -> MaxRegister:
        return type(self)(self.top)

    def writers(self) -> set[str]:
        return set()  # a number names no author

    def leaf_keys(self) -> Iterable[Hashable]:
        return (WHOLE,)


class MaxHandle(Handle):
    __slots__ = ()

    def raise_to(self, n: int) -> None:
        self.update(lambda state, replica: state.raise_to(n))


SPEC = TypeSpec(
    tag=MaxRegister.TAG,
    cls=MaxRegister,
    friendly="test-max",
    to_plain=lambda state: state.top,
    from_plain=lambda body: MaxRegister(codec.expect_count(body, "max register", minimum=0)),
    handle=MaxHandle,
)
RAISES = st.integers(0, 50).map(lambda n: Op("raise_to", lambda s, r, n: s.raise_to(n), n))


@pytest.fixture
def registered() -> Iterator[TypeSpec]:
    register_type(SPEC)
    try:
        yield SPEC
    finally:
        unregister_type(SPEC.tag)


def variant(tag: str, **fields: object) -> TypeSpec:
    """A spec for a subclass of MaxRegister under another tag (registered by the caller)."""
    cls = type(f"MaxRegister_{tag}", (MaxRegister,), {"TAG": tag, "__slots__": ()})
    defaults = {"tag": tag, "cls": cls, "friendly": tag, "to_plain": SPEC.to_plain, "from_plain": SPEC.from_plain}
    return TypeSpec(**{**defaults, **fields})


def ship(source: Memory, target: Memory) -> None:
    """Every pending delta of ``source``, through the codec, into ``target``."""
    for name, delta in source.take_deltas():
        target.apply_delta(name, codec.decode_state(codec.encode_state(delta)), source.replica_id)


def test_registered_type_replicates_through_deltas_and_snapshots(registered: TypeSpec) -> None:
    alice, bob = Memory("alice"), Memory("bob")
    alice.get("top", "test-max").raise_to(5)
    bob.get("top", MaxRegister.TAG).raise_to(7)
    bob.get("top", registered).raise_to(3)
    ship(alice, bob)
    ship(bob, alice)
    assert alice.value("top") == bob.value("top") == 7
    assert alice.snapshot() == bob.snapshot()
    restored = Memory.from_snapshot("carol", alice.snapshot())
    assert restored.values() == {"top": 7}
    assert restored.snapshot() == alice.snapshot()


def test_registered_type_replicates_between_nodes_in_signed_batches(registered: TypeSpec) -> None:
    cluster = Cluster(seed=1)
    a, b = cluster.add("a"), cluster.add("b")
    cluster.connect("a", "b")
    a.memory.get("top", "test-max").raise_to(4)
    b.memory.get("top", "test-max").raise_to(9)
    a.memory.counter("hits").increment()
    assert cluster.run_until(cluster.converged, timeout=10)
    assert b.memory.values() == {"top": 9, "hits": 1}


def test_registered_type_obeys_the_join_laws_and_encodes_canonically(registered: TypeSpec) -> None:
    fast = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    check_join_laws(registered_adapter("test-max", RAISES), settings=fast)


def test_type_without_a_handle_class_is_written_with_update(registered: TypeSpec) -> None:
    spec = register_type(variant("test-plainmax"))
    try:
        memory = Memory("alice")
        memory.get("top", spec).update(lambda state, replica: state.raise_to(2))
        assert memory.value("top") == 2
        ((name, delta),) = memory.take_deltas()
        assert (name, delta) == ("top", spec.cls(2))
    finally:
        unregister_type(spec.tag)


def test_name_holding_a_registered_type_refuses_another_type_locally_but_keeps_a_peers_apart(
    registered: TypeSpec,
) -> None:
    alice, bob = Memory("alice"), Memory("bob")
    alice.get("x", "test-max").raise_to(1)
    with pytest.raises(TypeMismatchError, match=r"'x' is a test-max, not a set"):
        alice.set("x")
    bob.set("x").add(1)
    for name, delta in bob.take_deltas():
        alice.apply_delta(name, delta, "bob")
    assert alice.conflicts() == {"x": ["orset", "test-maxregister"]}
    assert alice.value("x") == frozenset({1})  # "orset" sorts before "test-maxregister"
    assert alice.get("x", "test-max").value == 1


def test_batch_naming_one_object_as_two_types_applies_both_and_the_lowest_tag_wins() -> None:
    bob, carol = Memory("bob"), Memory("carol")
    bob.set("x").add(1)
    carol.counter("x").increment()
    batch = bob.take_deltas() + carol.take_deltas()
    alice = Memory("alice")
    alice.check_deltas(batch)
    for name, delta in batch:
        alice.apply_delta(name, delta, "bob")
    assert alice.value("x") == 1  # "gcounter" sorts before "orset"
    assert alice.set("x").value == frozenset({1})
    assert alice.conflicts() == {"x": ["gcounter", "orset"]}


def test_node_applies_a_batch_whose_name_holds_another_type_here_and_keeps_the_link() -> None:
    cluster = Cluster(seed=2)
    a, b = cluster.add("a"), cluster.add("b")
    a.memory.set("x").add(1)
    b.memory.counter("x").increment()
    b.memory.counter("y").increment()  # flushed in the same batch as the clash
    cluster.connect("a", "b")
    cluster.run(1.0)
    assert not cluster.refusals("a") and not cluster.refusals("b")
    assert cluster.converged()
    assert a.memory.values() == {"x": 1, "y": 1}
    assert a.memory.set("x").value == frozenset({1})


def test_rollback_refuses_a_changed_object_whose_type_has_no_policy(registered: TypeSpec) -> None:
    memory = Memory("alice")
    memory.get("top", "test-max").raise_to(1)
    saved = memory.checkpoint()
    memory.rollback(saved)  # unchanged: nothing to revert
    memory.get("top", "test-max").raise_to(5)
    memory.take_deltas()
    with pytest.raises(RollbackError, match="'top' is a test-max: it cannot go back"):
        memory.rollback(saved)
    assert memory.value("top") == 5
    assert memory.take_deltas() == []


def test_rollback_asks_the_registered_policy() -> None:
    policy = RollbackPolicy(value=lambda state: state.top, refuse=lambda then: f"only grows (it was {then})")
    spec = register_type(variant("test-policymax", rollback=policy))
    try:
        memory = Memory("alice")
        memory.get("top", spec).update(lambda state, replica: state.raise_to(2))
        saved = memory.checkpoint()
        assert saved.values == {"top": ("test-policymax", 2)}
        memory.get("top", spec).update(lambda state, replica: state.raise_to(4))
        with pytest.raises(RollbackError, match=r"'top' only grows \(it was 2\)"):
            memory.rollback(saved)
    finally:
        unregister_type(spec.tag)


def test_unregistered_tag_is_refused_as_malformed_input(registered: TypeSpec) -> None:
    data = codec.encode_state(MaxRegister(3))
    assert codec.decode_state(data) == MaxRegister(3)
    unregister_type(SPEC.tag)
    try:
        with pytest.raises(DecodeError, match="unknown CRDT type tag"):
            codec.decode_state(data)
    finally:
        register_type(SPEC)


def test_registry_refuses_taken_names_and_a_class_with_another_tag(registered: TypeSpec) -> None:
    with pytest.raises(ValueError, match="already names"):
        register_type(variant("test-other", friendly="set"))
    with pytest.raises(ValueError, match="already names"):
        register_type(variant(MaxRegister.TAG, friendly="test-max2"))
    with pytest.raises(ValueError, match="TAG must be"):
        register_type(variant("test-third", cls=MaxRegister))
    assert register_type(SPEC) is SPEC  # registering the same spec again changes nothing
    with pytest.raises(ValueError, match="unknown CRDT type"):
        Memory("alice").get("x", "no-such-type")


def test_a_write_whose_delta_cannot_be_encoded_changes_nothing(registered: TypeSpec) -> None:
    memory = Memory("alice")
    top = memory.get("top", "test-max")
    top.raise_to(3)
    memory.take_deltas()
    with pytest.raises((TypeError, ValueError, OverflowError)):
        top.raise_to(2**64)  # the wire's integers stop at 2**64 - 1
    assert top.value == 3 and not memory.has_pending_deltas()
    top.raise_to(4)
    assert memory.take_deltas() == [("top", MaxRegister(4))]
