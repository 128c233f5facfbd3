"""Every built-in type, and a user-defined one, passes the CRDT law kit in crdtmem.testing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from crdtmem import codec
from crdtmem.testing import (
    BUILTIN_TAGS,
    CrdtAdapter,
    Op,
    builtin_adapter,
    check_join_laws,
    histories,
    stored_values,
    values,
)
from crdtmem.values import decode_value, encode_value

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# For types that are broken on purpose: find a counterexample, skip shrinking it.
NO_SHRINK = settings(FAST, database=None, print_blob=False, phases=[Phase.generate])


@pytest.mark.parametrize("tag", BUILTIN_TAGS)
def test_builtin_type_is_a_join_semilattice_with_correct_deltas(tag: str) -> None:
    check_join_laws(builtin_adapter(tag), settings=FAST)


def test_every_builtin_type_is_covered_by_the_kit() -> None:
    from crdtmem.crdt import TYPES

    assert set(BUILTIN_TAGS) == set(TYPES)


# -- a user's own type, with its own encoding (not crdtmem's codec) ---------------------------------


class MaxRegister:
    """The smallest useful CRDT: the greatest value ever written."""

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"MaxRegister({self.value})"

    def set(self, value: int) -> MaxRegister:
        self.value = max(self.value, value)
        return MaxRegister(value)


MAX_REGISTER = CrdtAdapter(
    zero=MaxRegister,
    mutators=st.integers(0, 1000).map(lambda n: Op("set", lambda s, r, n: s.set(n), n)),
    join=lambda a, b: MaxRegister(max(a.value, b.value)),
    equal=lambda a, b: a.value == b.value,
    encode=lambda s: s.value.to_bytes(8, "big"),
    decode=lambda data: MaxRegister(int.from_bytes(data, "big")),
    name="MaxRegister",
)


def test_user_defined_type_plugs_into_the_law_kit() -> None:
    check_join_laws(MAX_REGISTER, settings=FAST)


class LastWriteRegister(MaxRegister):
    """Broken on purpose: join keeps the right-hand side, which is not commutative."""


def test_law_kit_rejects_a_join_that_is_not_commutative() -> None:
    broken = CrdtAdapter(
        zero=LastWriteRegister,
        mutators=st.integers(0, 9).map(lambda n: Op("set", lambda s, r, n: s.set(n), n)),
        join=lambda a, b: LastWriteRegister(b.value),
        equal=lambda a, b: a.value == b.value,
        name="LastWriteRegister",
    )
    with pytest.raises(AssertionError, match="does not hold for LastWriteRegister"):
        check_join_laws(broken, settings=NO_SHRINK)


def test_law_kit_rejects_a_non_canonical_encoding() -> None:
    wobbly = CrdtAdapter(
        zero=MaxRegister,
        mutators=st.integers(0, 9).map(lambda n: Op("set", lambda s, r, n: s.set(n), n)),
        join=lambda a, b: MaxRegister(max(a.value, b.value)),
        equal=lambda a, b: a.value == b.value,
        encode=lambda s: repr(id(s)).encode(),  # different bytes for equal states
        name="Wobbly",
    )
    with pytest.raises(AssertionError, match="canonical encoding"):
        check_join_laws(wobbly, settings=NO_SHRINK)


@FAST
@given(history=histories(builtin_adapter("orset"), max_steps=8))
def test_histories_hold_states_of_one_system(history) -> None:
    adapter = builtin_adapter("orset")
    for state in history.states:
        assert codec.decode_state(codec.encode_state(state)) == state
    for mutation in history.mutations:
        assert adapter.joined(mutation.before, mutation.delta) == mutation.after


@settings(max_examples=150, deadline=None)
@given(value=values())
def test_every_generated_set_element_round_trips(value) -> None:
    assert decode_value(encode_value(value)) == value


@settings(max_examples=150, deadline=None)
@given(value=stored_values())
def test_every_generated_register_value_round_trips(value) -> None:
    data = encode_value(value, hashable=False)
    assert encode_value(decode_value(data), hashable=False) == data
